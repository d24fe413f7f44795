package gmailimap

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"
)

// fuzzConn is a client connection made of a script: reads come from the
// script, writes are discarded.
type fuzzConn struct{ r io.Reader }

func (f fuzzConn) Read(b []byte) (int, error)  { return f.r.Read(b) }
func (f fuzzConn) Write(b []byte) (int, error) { return len(b), nil }
func (f fuzzConn) Close() error                { return nil }

// Seeds: the command examples of RFC 3501 section 6, of the extensions
// RFCs the server implements, and of Google's IMAP extensions and
// XOAUTH2 pages.
func fuzzSeeds() []string {
	return []string{
		"a001 LOGIN SMITH SESAME\r\n",
		"A142 SELECT INBOX\r\nA654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
		"A932 EXAMINE blurdybloop\r\nA003 CREATE owatagusiam/\r\nA004 CREATE owatagusiam/blurdybloop\r\n",
		"A683 DELETE blurdybloop\r\nA682 LIST \"\" *\r\nA684 RENAME \"owatagusiam/blurdybloop\" \"owatagusiam/foo\"\r\n",
		"A002 SUBSCRIBE #news.comp.mail.mime\r\nA003 UNSUBSCRIBE #news.comp.mail.mime\r\nA002 LSUB \"#news.\" \"comp.mail.*\"\r\n",
		"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
		"A003 APPEND saved-messages (\\Seen) {65}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nSubject: afternoon\r\n\r\nhi\r\n\r\n",
		"A004 APPEND INBOX (\\Flagged $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {4+}\r\nabcd\r\n",
		"A142 SELECT INBOX\r\nFXXZ CHECK\r\nA341 CLOSE\r\n",
		"A142 SELECT INBOX\r\nA003 STORE 2:4 +FLAGS (\\Deleted)\r\nA202 EXPUNGE\r\n",
		"A142 SELECT INBOX\r\nA282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\nA283 SEARCH TEXT \"string not in mailbox\"\r\nA284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
		"A142 SELECT INBOX\r\nA003 COPY 2:4 MEETING\r\nA999 UID FETCH 4827313:4828442 FLAGS\r\n",
		"a002 NOOP\r\nA023 LOGOUT\r\n",
		"a001 AUTHENTICATE XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n\r\n",
		"a001 AUTHENTICATE PLAIN\r\nAGZ1enpAZ21haWwuY29tAHB3\r\n",
		"a002 CAPABILITY\r\na003 ID (\"name\" \"clientname\" \"version\" \"1.2.3\" \"vendor\" \"companyname\" \"contact\" \"foo@example.com\")\r\n",
		"a004 LIST \"\" \"*\"\r\na004 XLIST \"\" \"*\"\r\n",
		"a1 SELECT \"[Gmail]/All Mail\"\r\na005 SEARCH X-GM-RAW \"has:attachment in:unread\"\r\na006 FETCH 1 (X-GM-MSGID)\r\na007 UID SEARCH X-GM-MSGID 1278455344230334865\r\n",
		"a1 SELECT \"[Gmail]/All Mail\"\r\na008 FETCH 1:4 (X-GM-THRID)\r\na009 UID SEARCH X-GM-THRID 1266894439832287888\r\na010 FETCH 1:4 (X-GM-LABELS)\r\n",
		"a1 SELECT INBOX\r\na011 STORE 1 +X-GM-LABELS (foo)\r\na012 SEARCH X-GM-LABELS foo\r\na013 STORE 1 X-GM-LABELS (\\Trash)\r\n",
		"a SELECT INBOX (CONDSTORE)\r\na103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\ns100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
		"a SELECT INBOX\r\nb UID MOVE 42:69 foo\r\nc MOVE 1 \"[Gmail]/Trash\"\r\n",
		"a SELECT INBOX\r\nA282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\nb UID SEARCH RETURN () ALL\r\n",
		"A01 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN)\r\nA02 LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\") RETURN (SPECIAL-USE STATUS (MESSAGES))\r\n",
		"A001 SELECT INBOX\r\nA002 IDLE\r\nDONE\r\n",
		"a ENABLE CONDSTORE X-GOOD-IDEA\r\nb GETQUOTAROOT INBOX\r\nc GETQUOTA \"\"\r\nd NAMESPACE\r\n",
		"a SELECT INBOX\r\nb FETCH 1 (BODY[]<0.10> RFC822.HEADER RFC822.TEXT RFC822 ENVELOPE INTERNALDATE RFC822.SIZE)\r\nc UID EXPUNGE 1:*\r\n",
		"a APPEND INBOX {5000+}\r\n" + strings.Repeat("x", 5000) + "\r\nb NOOP\r\n",
		"a LOGIN {5}\r\nalice {2}\r\npw\r\n",
	}
}

// FuzzSession runs arbitrary client input through a logged-in session
// (and one not logged in) against a seeded account, then checks that
// the store is still consistent: no command may panic, hang, or leave a
// message in a folder it does not belong to.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, prefix := range []string{"p LOGIN alice@gmail.com pw\r\n", ""} {
			s := newServer(&Options{
				Now:                func() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) },
				AppendLimit:        1 << 16,
				DailyDownloadBytes: 4000,
				DailyUploadBytes:   4000,
				Verify:             func(user, token string) error { return nil },
			})
			if err := s.AddAccount("alice@gmail.com", &AccountOptions{AppPassword: "pw", Labels: []string{"foo", "Work/2024"}}); err != nil {
				t.Fatal(err)
			}
			for i, labels := range [][]string{{`\Inbox`}, {`\Inbox`, "foo"}, {`\Sent`, `\Important`}, {`\Trash`}, nil} {
				raw := fmt.Sprintf("Message-ID: <%d@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: s%d\r\n\r\nbody %d\r\n", i, i, i)
				if _, err := s.Seed("alice@gmail.com", Message{Raw: []byte(raw), Labels: labels, Flags: []string{`\Seen`}}); err != nil {
					t.Fatal(err)
				}
			}
			c := s.newSession(fuzzConn{io.MultiReader(strings.NewReader(prefix), bytes.NewReader(in))}, fuzzConn{}, "127.0.0.1")
			s.sessions[c] = struct{}{}
			c.run()
			s.mu.Lock()
			err := checkInvariants(s.accounts["alice@gmail.com"])
			s.mu.Unlock()
			if err != nil {
				t.Fatalf("after %q: %v", in, err)
			}
		}
	})
}

// checkInvariants verifies the account's indexes agree: each message is
// in exactly the folders its labels and flags put it in, with one entry
// each; folders hold live messages in ascending, unique UIDs below
// UIDNEXT; the storage total matches.
func checkInvariants(a *account) error {
	var storage int64
	for id, m := range a.msgs {
		if m.gone || m.id != id {
			return fmt.Errorf("message %d: gone %v id %d", id, m.gone, m.id)
		}
		storage += int64(len(m.raw))
		want := a.visible(m)
		if len(want) != len(m.entries) {
			return fmt.Errorf("message %d: in %d folders, should be in %d", id, len(m.entries), len(want))
		}
		for f, e := range m.entries {
			if !want[f] || e.m != m || e.f != f || e.gone {
				return fmt.Errorf("message %d: bad entry in %s", id, f.name)
			}
		}
		if len(want) == 0 {
			return fmt.Errorf("message %d is in no folder", id)
		}
	}
	if storage != a.storage {
		return fmt.Errorf("storage %d, messages add up to %d", a.storage, storage)
	}
	for _, f := range a.folders() {
		if !sort.SliceIsSorted(f.entries, func(i, j int) bool { return f.entries[i].uid < f.entries[j].uid }) {
			return fmt.Errorf("%s: UIDs out of order", f.name)
		}
		for i, e := range f.entries {
			if i > 0 && f.entries[i-1].uid == e.uid {
				return fmt.Errorf("%s: UID %d twice", f.name, e.uid)
			}
			if e.uid >= f.uidNext || e.gone || e.m.gone || e.m.entries[f] != e {
				return fmt.Errorf("%s: bad entry UID %d", f.name, e.uid)
			}
		}
	}
	return nil
}

// FuzzHeader checks the header helpers on arbitrary messages: header
// and body split the message exactly, and the fields are the header's
// lines in order.
func FuzzHeader(f *testing.F) {
	f.Add([]byte("Subject: a\r\n b\r\nFrom: x\r\n\r\nbody"))
	f.Add([]byte("Subject: bare\n\nbody\n"))
	f.Add([]byte(" leading continuation\r\nA: b\r\n"))
	f.Add([]byte("no header at all"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, b := splitMessage(raw)
		if !bytes.Equal(append(append([]byte(nil), h...), b...), raw) {
			t.Fatalf("split %q into %q + %q", raw, h, b)
		}
		joined := bytes.Join(headerFields(h), nil)
		if !bytes.HasPrefix(h, joined) {
			t.Fatalf("fields %q are not a prefix of %q", joined, h)
		}
		all := selectFields(raw, nil, true)
		if !bytes.Equal(all, append(joined, "\r\n"...)) {
			t.Fatalf("HEADER.FIELDS.NOT () = %q, fields %q", all, joined)
		}
	})
}

// TestParserPieces checks grammar pieces the session tests reach only
// indirectly.
func TestParserPieces(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int64
		ns   bool
		ok   bool
	}{
		{"a APPEND INBOX {310}", 310, false, true},
		{"a APPEND INBOX {12+}", 12, true, true},
		{"a LOGIN {x}", 0, false, false},
		{"{}", 0, false, false},
		{"no literal", 0, false, false},
	} {
		n, ns, ok := trailingLiteral([]byte(tc.line))
		if n != tc.n || ns != tc.ns || ok != tc.ok {
			t.Errorf("%q: %d %v %v", tc.line, n, ns, ok)
		}
	}
	set := seqSet{{2, 4}, {7, 0}}
	for n, want := range map[uint32]bool{1: false, 2: true, 4: true, 5: false, 7: true, 9: true} {
		if set.contains(n, 9) != want {
			t.Errorf("2:4,7:* contains %d: %v", n, !want)
		}
	}
	if set.String() != "2:4,7:*" {
		t.Errorf("String %q", set.String())
	}
	if got := compactSet([]uint32{1, 2, 3, 5, 7, 8}); got != "1:3,5,7:8" {
		t.Errorf("compactSet %q", got)
	}
	if got := astringOut("[Mailbox]"); got != "[Mailbox]" {
		t.Errorf("astring %q", got)
	}
	if got := astringOut(`a "b"`); got != `"a \"b\""` {
		t.Errorf("astring %q", got)
	}
	if got := quoteString("8bit \xc3\xa4"); got != "{7}\r\n8bit \xc3\xa4" {
		t.Errorf("quoteString %q", got)
	}
}
