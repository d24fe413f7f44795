package verify

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
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
