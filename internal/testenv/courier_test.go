package testenv_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

// A Courier instance serves its own users, answers as Courier does and
// stores mail byte for byte (lone CRs aside, see Courier's doc).
func TestCourierServesUsers(t *testing.T) {
	t.Parallel()
	c := testenv.StartCourier(t, testenv.CourierOptions{})
	c.AddUser(t, "alice", "pa:ss word")
	c.AddUser(t, "bob", "other")
	cl := c.Dial(t, "alice", "pa:ss word")
	if !strings.Contains(strings.Join(capsOf(cl), " "), "UIDPLUS") || hasCap(cl, "LITERAL+") {
		t.Errorf("capabilities %v: want Courier's (UIDPLUS, no LITERAL+)", capsOf(cl))
	}
	if err := cl.Create("INBOX.Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	err := cl.Create("INBOX.Foo", nil).Wait()
	if err == nil || !strings.Contains(err.Error(), "Cannot create this folder") {
		t.Errorf("CREATE of an existing folder: %v, want Courier's bare NO", err)
	}
	if err := appendMessage(cl, "INBOX.Foo", []byte(testMessage)); err != nil {
		t.Fatal(err)
	}
	if got := fetchBody(t, cl, "INBOX.Foo"); string(got) != testMessage {
		t.Errorf("served %q, want %q", got, testMessage)
	}
	// A replaced password takes effect; the other user is unaffected.
	c.AddUser(t, "alice", "new")
	c.Dial(t, "alice", "new")
	c.Dial(t, "bob", "other")
}

func capsOf(c *imapclient.Client) []string {
	var out []string
	for cp := range c.Caps() {
		out = append(out, string(cp))
	}
	sort.Strings(out)
	return out
}

func hasCap(c *imapclient.Client, name string) bool { return c.Caps().Has(imap.Cap(name)) }
