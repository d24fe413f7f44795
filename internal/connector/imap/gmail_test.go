package imap_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

const gmailUser, gmailAppPassword = "alice@gmail.com", "abcd efgh ijkl mnop"

func startGmail(t *testing.T, opts *gmailimap.Options) *gmailimap.Server {
	t.Helper()
	srv := gmailimap.Start(t, opts)
	if err := srv.AddAccount(gmailUser, &gmailimap.AccountOptions{AppPassword: gmailAppPassword}); err != nil {
		t.Fatal(err)
	}
	return srv
}

func openGmail(t *testing.T, srv *gmailimap.Server, labels string) *imapconn.Conn {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	c, err := imapconn.Open(context.Background(), imapconn.Config{Host: host, Port: p, Security: imapconn.SecurityTLS,
		RootCAs: srv.CertPool, Username: gmailUser, Password: gmailAppPassword, MaxConnections: 2, GmailLabels: labels, Source: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func gmailMsg(name string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <%s@example.com>\r\nFrom: b@example.com\r\nSubject: %s\r\n\r\nbody\r\n", name, name))
}

// copiedFrom lists every folder and returns, per message subject, the
// folders it would be copied from (no Skip), and per folder how many
// messages were skipped with a reason.
func copiedFrom(t *testing.T, c *imapconn.Conn) (map[string][]string, map[string]int) {
	t.Helper()
	ctx := context.Background()
	fs, err := c.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from, skipped := map[string][]string{}, map[string]int{}
	for _, f := range fs {
		if f.NoSelect {
			continue
		}
		_, err := c.List(ctx, f, connector.ListOptions{Batch: 2}, func(ms []connector.Message) error {
			for _, m := range ms {
				if m.Skip != "" {
					skipped[f.Path.String()]++
					continue
				}
				from[m.Headers.Subject] = append(from[m.Headers.Subject], f.Path.String())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("list %s: %v", f.Path, err)
		}
	}
	for k := range from {
		sort.Strings(from[k])
	}
	return from, skipped
}

// Gmail shows a message in the folder of each label and in All Mail. By
// default each is copied once, from its first folder in the documented
// order (INBOX, Sent, Drafts, labels by name, Spam, Trash, All Mail
// last); Starred and Important are views whose messages come from their
// other folders. With --gmail-labels=folders every label folder gets
// its copy and All Mail only the unlabelled mail.
func TestGmailLabelsOnceAndFolders(t *testing.T) {
	srv := startGmail(t, nil)
	for _, m := range []struct {
		name   string
		labels []string
		flags  []string
	}{
		{"inbox-work", []string{`\Inbox`, "Work"}, nil},
		{"work", []string{"Work"}, nil},
		{"archived", nil, nil},
		{"starred-inbox", []string{`\Inbox`, `\Important`}, []string{`\Flagged`}},
		{"starred-archived", nil, []string{`\Flagged`}},
		{"sent-work", []string{`\Sent`, "Work"}, nil},
		{"travel-work", []string{"Work", "Travel"}, nil},
		{"trash", []string{`\Trash`}, nil},
	} {
		if _, err := srv.Seed(gmailUser, gmailimap.Message{Raw: gmailMsg(m.name), Labels: m.labels, Flags: m.flags}); err != nil {
			t.Fatal(err)
		}
	}

	from, skipped := copiedFrom(t, openGmail(t, srv, ""))
	want := map[string][]string{
		"inbox-work": {"INBOX"}, "work": {"Work"}, "archived": {"[Gmail]/All Mail"}, "starred-inbox": {"INBOX"},
		"starred-archived": {"[Gmail]/All Mail"}, "sent-work": {"[Gmail]/Sent Mail"}, "travel-work": {"Travel"}, "trash": {"[Gmail]/Trash"},
	}
	for name, w := range want {
		if got := from[name]; strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("once: %s copied from %v, want %v", name, got, w)
		}
	}
	if skipped["[Gmail]/Starred"] != 2 || skipped["[Gmail]/Important"] != 1 || skipped["Work"] != 3 || skipped["[Gmail]/All Mail"] != 5 {
		t.Errorf("once: skipped per folder %v", skipped)
	}

	from, _ = copiedFrom(t, openGmail(t, srv, imapconn.GmailLabelsFolders))
	want = map[string][]string{
		"inbox-work": {"INBOX", "Work"}, "work": {"Work"}, "archived": {"[Gmail]/All Mail"}, "starred-inbox": {"INBOX"},
		"starred-archived": {"[Gmail]/All Mail"}, "sent-work": {"Work", "[Gmail]/Sent Mail"}, "travel-work": {"Travel", "Work"}, "trash": {"[Gmail]/Trash"},
	}
	for name, w := range want {
		if got := from[name]; strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("folders: %s copied from %v, want %v", name, got, w)
		}
	}
}

// Past Gmail's daily download limit a fetch gets NO [OVERQUOTA]
// "Account exceeded command or bandwidth limits.": that is a pause until
// the limit resets (a transient error with a RetryAfter of at most a
// day and a hint saying so), not a full mailbox and not a failed message.
func TestGmailDailyLimitPauses(t *testing.T) {
	srv := startGmail(t, &gmailimap.Options{DailyDownloadBytes: 300})
	for i := range 4 {
		if _, err := srv.Seed(gmailUser, gmailimap.Message{Raw: gmailMsg("m" + strconv.Itoa(i)), Labels: []string{`\Inbox`}}); err != nil {
			t.Fatal(err)
		}
	}
	c := openGmail(t, srv, "")
	ctx := context.Background()
	inbox := connector.Folder{Path: mail.Path{"INBOX"}, Name: "INBOX", Role: mail.RoleInbox}
	var ms []connector.Message
	if _, err := c.List(ctx, inbox, connector.ListOptions{}, func(b []connector.Message) error { ms = append(ms, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	var limitErr error
	fetched := 0
	err := c.Fetch(ctx, inbox, ms, func(b connector.Body, err error) error {
		if err != nil {
			limitErr = err
			return nil
		}
		fetched++
		return nil
	})
	if err == nil {
		err = limitErr
	}
	if err == nil {
		t.Fatalf("fetched %d messages past a 300-byte daily limit", fetched)
	}
	if k := connector.KindOf(err); k != connector.KindTransient {
		t.Fatalf("daily limit: kind %v (%v), want transient", k, err)
	}
	d := connector.RetryAfterOf(err)
	if d <= 0 || d > 24*time.Hour+10*time.Minute || !strings.Contains(connector.HintOf(err), "daily") {
		t.Fatalf("daily limit: RetryAfter %v, hint %q", d, connector.HintOf(err))
	}
}
