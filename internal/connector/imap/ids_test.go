package imap

import (
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
)

func TestIDRoundTrip(t *testing.T) {
	id := makeID(1700000000, 42)
	if id != "1700000000.42" {
		t.Fatalf("makeID = %q", id)
	}
	v, u, ok := parseID(id)
	if !ok || v != 1700000000 || u != 42 {
		t.Fatalf("parseID(%q) = %d %d %v", id, v, u, ok)
	}
	for _, bad := range []connector.ID{"", "42", "1.", ".1", "0.5", "5.0", "1.2.3", "x.1", "4294967296.1", "1.-2"} {
		if _, _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}

// TestCursorFormat pins the text the schema migration writes (00010):
// the migration builds cursors in SQL, so the format may not drift.
func TestCursorFormat(t *testing.T) {
	c := cursor{uidValidity: 7, uidNext: 11, from: 12, messages: 9, modSeq: 99}
	const want = "imap1;from=12;messages=9;modseq=99;uidnext=11;uidvalidity=7"
	if got := c.String(); got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	back, ok := parseCursor(want)
	if !ok || back != c {
		t.Fatalf("parseCursor = %+v %v, want %+v", back, ok, c)
	}
	for _, bad := range []connector.Cursor{"", "imap1", "imap1;from=1", "imap2;from=1;messages=0;modseq=0;uidnext=1;uidvalidity=1",
		"imap1;from=1;messages=0;modseq=0;uidnext=1;uidvalidity=0", "v1;a=1", "imap1;from=1;messages=0;modseq=0;uidnext=1;uidvalidity=1;x=2",
		"imap1;from=x;messages=0;modseq=0;uidnext=1;uidvalidity=1"} {
		if _, ok := parseCursor(bad); ok {
			t.Errorf("parseCursor(%q) accepted", bad)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("imap1;from=12;messages=9;modseq=99;uidnext=11;uidvalidity=7")
	f.Add("imap1;from=0;messages=0;modseq=0;uidnext=0;uidvalidity=1")
	f.Add("imap1;;")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := parseCursor(connector.Cursor(s))
		if !ok {
			return
		}
		again, ok := parseCursor(connector.Cursor(c.String()))
		if !ok || again != c {
			t.Fatalf("%q: %+v does not survive String (%+v, %v)", s, c, again, ok)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add("1.1")
	f.Add("4294967295.4294967295")
	f.Fuzz(func(t *testing.T, s string) {
		v, u, ok := parseID(connector.ID(s))
		if ok && makeID(v, u) != connector.ID(s) && len(s) < 30 {
			// Leading zeros are accepted and normalised; that is fine
			// as long as the values round-trip.
			if v2, u2, ok2 := parseID(makeID(v, u)); !ok2 || v2 != v || u2 != u {
				t.Fatalf("%q does not round-trip", s)
			}
		}
	})
}
