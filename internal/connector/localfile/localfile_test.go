package localfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRootCheck: paths inside pass, '..' and links leading out do not.
func TestRootCheck(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "in"), nil, 0o644)
	os.Symlink(filepath.Join(dir, "in"), filepath.Join(dir, "link-in"))
	os.Symlink(t.TempDir(), filepath.Join(dir, "link-out"))
	for p, ok := range map[string]bool{
		filepath.Join(dir, "in"):       true,
		filepath.Join(dir, "link-in"):  true,
		filepath.Join(dir, "link-out"): false,
		dir + "/x/../in":               false,
		filepath.Dir(dir):              false,
	} {
		_, err := r.Check(p)
		if ok && err != nil || !ok && err == nil {
			t.Errorf("Check(%q) = %v", p, err)
		}
		if !ok && p != dir+"/x/../in" && !errors.Is(err, ErrOutsideRoot) {
			t.Errorf("Check(%q) = %v, want ErrOutsideRoot", p, err)
		}
	}
}

// TestReceivedDate: the newest Received: wins, then Date:.
func TestReceivedDate(t *testing.T) {
	cases := []struct {
		block string
		want  time.Time
		ok    bool
	}{
		{"Received: from a by b; Tue, 5 Mar 2019 10:00:00 +0000\r\nReceived: from c by a;\r\n Tue, 5 Mar 2019 11:30:00 +0100 (CET)\r\nDate: Mon, 1 Jan 2001 00:00:00 +0000\r\n\r\n", time.Date(2019, 3, 5, 10, 30, 0, 0, time.UTC), true},
		{"Received: no date here\nDate: Mon, 1 Jan 2001 00:00:00 +0000\n\n", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"Subject: none\n\n", time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := ReceivedDate([]byte(c.block))
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("ReceivedDate(%q) = %v %v, want %v %v", c.block, got, ok, c.want, c.ok)
		}
	}
}

// TestHeaderBlock stops at the empty line and at MaxHeader.
func TestHeaderBlock(t *testing.T) {
	if got := HeaderBlock(strings.NewReader("A: b\r\n\r\nbody\r\n")); string(got) != "A: b\r\n\r\n" {
		t.Errorf("got %q", got)
	}
	huge := "X: " + strings.Repeat("y", 3*MaxHeader) + "\r\n\r\n"
	if got := HeaderBlock(strings.NewReader(huge)); len(got) != MaxHeader || !bytes.HasPrefix([]byte(huge), got) {
		t.Errorf("a huge header gave %d bytes, want the first %d", len(got), MaxHeader)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("v1;a=1;b=2")
	f.Add("v1")
	f.Add("x;=")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseCursor(s)
		if !ok {
			return
		}
		if again, ok := ParseCursor(c.String()); !ok || len(again) != len(c) {
			t.Fatalf("%q: %v does not survive String", s, c)
		}
	})
}

// TestCRLFSize counts bare LFs as CRLF, also across read boundaries.
func TestCRLFSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "a\r\nb\r\n": 6, "a\nb\n": 6, "\n": 2, "a\rb": 3, "x\r\r\n\n": 6,
		strings.Repeat("y", 70000) + "\n": 70002, strings.Repeat("z", 65535) + "\r\n": 65537} {
		got, err := CRLFSize(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("CRLFSize(%.10q…) = %d, %v; want %d", in, got, err, want)
		}
	}
}
