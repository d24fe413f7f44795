package ews

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv"
)

// The identity of a message listed through EWS equals the identity the
// IMAP connector computes for the same MIME served by a real Dovecot
// (BODY.PEEK[HEADER.FIELDS (Message-Id Date From To Subject)] and
// RFC822.SIZE), for delivered mail and for mail this connector wrote, so
// that IMAP → EWS and EWS → IMAP passes recognise what is already
// copied.
func TestIdentityMatchesIMAP(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	d.AddUser(t, "ivy", pw)
	ic := d.Dial(t, "ivy", pw)
	for _, raw := range identityMIME {
		cmd := ic.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ic.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: mail.IdentityHeaderFields()}
	var set imap.SeqSet
	set.AddRange(1, uint32(len(identityMIME)))
	fetched, err := ic.Fetch(set, &imap.FetchOptions{RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range fetched {
		want = append(want, mail.ComputeIdentity(mail.ParseHeaders(m.FindBodySection(section)), m.RFC822Size).String())
	}
	sort.Strings(want)

	s := server(t, nil)
	seed(t, s, inboxID(s), identityMIME...)
	c := open(t, s, "")
	dst, err := c.CreateFolder(context.Background(), mail.Path{"Written"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range identityMIME {
		appendMsg(t, c, dst, raw, nil, time.Now())
	}
	for _, f := range []connector.Folder{folderByPath(t, c, "INBOX"), dst} {
		ms, _ := listAll(t, c, f, connector.ListOptions{})
		var got []string
		for _, m := range ms {
			got = append(got, m.Identity.String())
		}
		sort.Strings(got)
		if len(got) != len(want) {
			t.Fatalf("%q: %d identities, IMAP has %d", f.Path, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q: identities differ from IMAP's:\n got %v\nwant %v", f.Path, got, want)
				break
			}
		}
	}
}
