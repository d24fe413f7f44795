package testenv_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv"
)

// A Cyrus instance serves its own users in either namespace layout and
// offers what the tests rely on it for (CREATE-SPECIAL-USE).
func TestCyrusServesUsers(t *testing.T) {
	t.Parallel()
	for _, l := range []testenv.Layout{testenv.LayoutCourier, testenv.LayoutSlash} {
		t.Run(l.String(), func(t *testing.T) {
			t.Parallel()
			c := testenv.StartCyrus(t, testenv.CyrusOptions{Layout: l})
			c.AddUser(t, "alice", "pa:ss word")
			c.AddUser(t, "bob", "other")
			cl := c.Dial(t, "alice", "pa:ss word")
			if !hasCap(cl, "CREATE-SPECIAL-USE") {
				t.Errorf("capabilities %v lack CREATE-SPECIAL-USE", capsOf(cl))
			}
			ns, err := cl.Namespace().Wait()
			if err != nil {
				t.Fatal(err)
			}
			if p := ns.Personal[0]; p.Prefix != l.Prefix() || p.Delim != l.Separator() {
				t.Errorf("personal namespace %q %q, want %q %q", p.Prefix, p.Delim, l.Prefix(), l.Separator())
			}
			sent := l.Prefix() + "Sent"
			if err := cl.Create(sent, &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait(); err != nil {
				t.Fatal(err)
			}
			list, err := cl.List("", sent, &imap.ListOptions{ReturnSpecialUse: true}).Collect()
			if err != nil || len(list) != 1 || !strings.Contains(strings.ToLower(attrs(list[0].Attrs)), `\sent`) {
				t.Fatalf("LIST %q: %+v %v", sent, list, err)
			}
			if err := appendMessage(cl, sent, []byte(testMessage)); err != nil {
				t.Fatal(err)
			}
			if got := fetchBody(t, cl, sent); string(got) != testMessage {
				t.Errorf("served %q, want %q", got, testMessage)
			}
			c.AddUser(t, "alice", "new")
			c.Dial(t, "alice", "new")
			c.Dial(t, "bob", "other")
		})
	}
}

func attrs(as []imap.MailboxAttr) string {
	var out []string
	for _, a := range as {
		out = append(out, string(a))
	}
	return strings.Join(out, " ")
}
