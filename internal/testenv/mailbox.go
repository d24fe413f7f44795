package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// SeedMailbox appends n messages to user's INBOX and a "Projects" folder
// (alternately), each with a distinct Message-ID, \Seen on every third
// one, a date of its own and pad bytes more than a small body, all in
// pipelined APPENDs. first numbers the messages, so that a later call
// adds new ones.
func SeedMailbox(t testing.TB, d *Dovecot, user, password string, first, n, pad int) {
	t.Helper()
	c := d.Dial(t, user, password)
	projects := d.Layout.Prefix() + "Projects"
	_ = c.Create(projects, nil).Wait() // exists after the first call
	var cmds []*imapclient.AppendCommand
	for i := first; i < first+n; i++ {
		raw := fmt.Sprintf("Message-ID: <%s-%d@seed>\r\nFrom: a@example.com\r\nSubject: %d\r\n\r\n%s\r\n", user, i, i,
			strings.Repeat("x", i%300+pad))
		var flags []imap.Flag
		if i%3 == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		mbox := []string{"INBOX", projects}[i%2]
		cmd := c.Append(mbox, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: time.Date(2021, 3, 1, 0, i%60, i%59, 0, time.UTC)})
		if _, err := cmd.Write([]byte(raw)); err != nil {
			t.Fatalf("testenv: seeding %s: %v", user, err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("testenv: seeding %s: %v", user, err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("testenv: seeding %s: %v", user, err)
		}
	}
	_ = c.Logout().Wait()
}

// Fingerprint describes every message of every folder of user: per
// folder (named without the personal namespace prefix, so that layouts
// compare), the sorted list of its messages as a SHA-256 of the exact
// bytes, the flags and the INTERNALDATE. Two mailboxes with equal
// fingerprints hold the same messages, byte for byte, with the same flags
// and dates, in the same folders, each as often.
func Fingerprint(t testing.TB, d *Dovecot, user, password string) map[string][]string {
	t.Helper()
	c := d.Dial(t, user, password)
	defer func() { _ = c.Logout().Wait() }()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("testenv: listing %s: %v", user, err)
	}
	out := map[string][]string{}
	for _, mb := range list {
		if slices.Contains(mb.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sel, err := c.Select(mb.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("testenv: selecting %s of %s: %v", mb.Mailbox, user, err)
		}
		name := strings.TrimPrefix(mb.Mailbox, d.Layout.Prefix())
		if sel.NumMessages == 0 {
			continue
		}
		var seq imap.SeqSet
		seq.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(seq, &imap.FetchOptions{Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatalf("testenv: fetching %s of %s: %v", mb.Mailbox, user, err)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			sum := sha256.Sum256(body)
			var flags []string
			for _, f := range m.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					flags = append(flags, string(f))
				}
			}
			slices.Sort(flags)
			out[name] = append(out[name], fmt.Sprintf("%s %s %s", hex.EncodeToString(sum[:8]), strings.Join(flags, ","),
				m.InternalDate.UTC().Format(time.RFC3339)))
		}
		slices.Sort(out[name])
	}
	return out
}

// SameMailbox reports how the fingerprint got differs from want, or ""
// when they are equal: which folders have messages missing or extra
// (duplicates count as extra).
func SameMailbox(want, got map[string][]string) string {
	var diffs []string
	names := map[string]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	for n := range names {
		w, g := want[n], got[n]
		if slices.Equal(w, g) {
			continue
		}
		missing, extra := 0, 0
		count := map[string]int{}
		for _, m := range w {
			count[m]++
		}
		for _, m := range g {
			count[m]--
		}
		for _, c := range count {
			if c > 0 {
				missing += c
			} else {
				extra -= c
			}
		}
		diffs = append(diffs, fmt.Sprintf("%s: %d messages, want %d (%d missing, %d extra or duplicated)", n, len(g), len(w), missing, extra))
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}
