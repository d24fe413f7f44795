package imap

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/spool"
)

func crlfOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestCRLFConversion(t *testing.T) {
	for _, in := range []string{"", "a\r\nb\r\n", "a\nb\n", "\n\n", "a\rb\n", "a\r\r\nb", "x\r", "\r\n\n\r", strings.Repeat("line\n", 20000)} {
		n, err := bareLFs(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		want := crlfOf(in)
		if int(n) != len(want)-len(in) {
			t.Errorf("bareLFs(%.20q) = %d, want %d", in, n, len(want)-len(in))
		}
		// One byte at a time: a CR at the end of one read and the LF at
		// the start of the next are one line end.
		got, err := io.ReadAll(newCRLFReader(iotest.OneByteReader(strings.NewReader(in))))
		if err != nil || string(got) != want {
			t.Errorf("crlfReader(%.20q) = %.20q, %v; want %.20q", in, got, err, want)
		}
		n2, _ := bareLFs(iotest.OneByteReader(strings.NewReader(in)))
		if n2 != n {
			t.Errorf("bareLFs one byte at a time = %d, want %d", n2, n)
		}
	}
}

func FuzzCRLF(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(newCRLFReader(bytes.NewReader(in)))
		if err != nil || string(got) != crlfOf(string(in)) {
			t.Fatalf("crlfReader(%q) = %q", in, got)
		}
		n, _ := bareLFs(bytes.NewReader(in))
		if int(n) != len(got)-len(in) {
			t.Fatalf("bareLFs(%q) = %d, converted grew by %d", in, n, len(got)-len(in))
		}
	})
}

// A throttled answer's "Suggested Backoff Time" becomes RetryAfter.
func TestSuggestedBackoff(t *testing.T) {
	for text, want := range map[string]time.Duration{
		"Request is throttled. Suggested Backoff Time: 10000 milliseconds": 10 * time.Second,
		"Request is throttled. Suggested backoff time: 250 milliseconds":   250 * time.Millisecond,
		"Request is throttled.": 0,
		"Request is throttled. Suggested Backoff Time: 99999999999 milliseconds": 10 * time.Minute,
	} {
		err := classify(&imap.Error{Type: imap.StatusResponseTypeNo, Text: text}, "append")
		if got := connector.RetryAfterOf(err); got != want || connector.KindOf(err) != connector.KindTransient {
			t.Errorf("%q: RetryAfter %v kind %v, want %v transient", text, got, connector.KindOf(err), want)
		}
	}
}

// TestBareLFsAllocatesNothingPerMessage: bareLFs runs for every message
// appended, so it must not allocate buffers per call (a 64 KiB buffer
// and a 64 KiB bufio.Reader per message were a quarter of the CPU of a
// 100k-message copy, issue 14). A spool buffer in memory hands its
// chunks over through WriteTo.
func TestBareLFsAllocatesNothingPerMessage(t *testing.T) {
	sp := spool.New(t.TempDir(), 1<<20)
	body := strings.Repeat("line with CRLF\r\nbare\n", 200) // 4,200 bytes, 200 bare LFs
	buf, err := sp.Read(context.Background(), strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Release()
	if n, err := bareLFs(buf.Open()); err != nil || n != 200 {
		t.Fatalf("bareLFs = %d, %v; want 200", n, err)
	}
	const runs = 100
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := bareLFs(buf.Open()); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 1024 {
		t.Errorf("bareLFs allocated %d bytes per 4 KB message; want no per-message buffers", per)
	}
}
