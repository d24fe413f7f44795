package verify

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

func TestCRLFWriterTurnsBareLFIntoCRLFAcrossWrites(t *testing.T) {
	for _, in := range []string{"a\nb\r\nc\n", "\n\n", "x\r\n\r\n", "no newline"} {
		want := strings.ReplaceAll(strings.ReplaceAll(in, "\r\n", "\n"), "\n", "\r\n")
		var out bytes.Buffer
		// One byte per Write: a CR at the end of one write and its LF
		// at the start of the next must not become CRCRLF.
		if _, err := io.Copy(&crlfWriter{w: &out}, iotest.OneByteReader(strings.NewReader(in))); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("%q: got %q, want %q", in, out.String(), want)
		}
	}
}

func TestSealDetectsAChangedCount(t *testing.T) {
	r := &Report{Folders: []*Folder{{Source: "INBOX", SourceMessages: 3, Matched: 3, Exact: 3}}}
	r.total()
	r.Seal()
	if !r.Check() {
		t.Fatal("a sealed report does not check")
	}
	r.Folders[0].Exact = 2
	if r.Check() {
		t.Fatal("a changed count still checks")
	}
}

// TestPairUpPrefersTheSameDateAndFlags: two identical messages (same
// identity) told apart by their dates pair with the copy of their own
// date, whatever the listing order, so no date difference is reported.
func TestPairUpPrefersTheSameDateAndFlags(t *testing.T) {
	var id mail.Identity
	id[0] = 1
	msg := func(n int, date time.Time, flags ...string) *copyOf {
		return &copyOf{m: connector.Message{ID: connector.ID(fmt.Sprint(n)), Identity: id, InternalDate: date, Flags: flags}, pair: -1}
	}
	d1, d2 := time.Unix(1000, 0), time.Unix(2000, 0)
	src := []*copyOf{msg(1, d1, `\Seen`), msg(2, d2)}
	dst := []*copyOf{msg(10, d2), msg(11, d1, `\Seen`), msg(12, d1)}
	pairUp(src, dst)
	if src[0].pair != 1 || src[1].pair != 0 {
		t.Fatalf("pairs %d, %d; want 1, 0", src[0].pair, src[1].pair)
	}
	if dst[2].pair >= 0 {
		t.Error("the third copy was paired: it is extra")
	}
}
