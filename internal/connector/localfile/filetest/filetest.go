// Package filetest holds test helpers shared by the local file
// connectors' tests: listing and fetching through the connector
// interfaces, hostile folder names, and a bounded-memory check.
package filetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// HostileNames are folder paths that break naive name mapping: the
// characters layouts reserve ('.', '/', '&' which starts modified UTF-7,
// '\', '%'), names of a maildir's own directories and of mbox tree
// suffixes, spaces, non-ASCII and nesting. The first seven are the
// conformance suite's.
func HostileNames() []mail.Path {
	return []mail.Path{
		{"Archive", "2019"},
		{"Ärger & Co"},
		{"Projects", "Q1 plans", "Größe"},
		{"hello? sausage", "êé", "Hello, 世界"},
		{"a&b"},
		{"Dots.in.name"},
		{"&-literal"},
		{"slash/inside"},
		{".hidden"},
		{"back\\slash", "100% sure"},
		{"cur"},
		{"Name.sbd"},
		{"x.mbox"},
		{"mbox"},
		{"INBOX", "child"},
	}
}

// Ctx is a test context with a deadline.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Folder finds p among c's folders.
func Folder(t testing.TB, c connector.Conn, p mail.Path) connector.Folder {
	t.Helper()
	fs, err := c.Folders(Ctx(t))
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for _, f := range fs {
		if f.Path.Equal(p) {
			return f
		}
	}
	t.Fatalf("folder %q not listed; have %v", p, Paths(fs))
	return connector.Folder{}
}

// Paths lists the folders' paths, sorted.
func Paths(fs []connector.Folder) []string {
	var out []string
	for _, f := range fs {
		s := f.Path.String()
		if f.NoSelect {
			s += " (noselect)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// List lists f whole and checks the batch bound.
func List(t testing.TB, c connector.Conn, f connector.Folder, opts connector.ListOptions) ([]connector.Message, connector.Listing) {
	t.Helper()
	var out []connector.Message
	l, err := c.List(Ctx(t), f, opts, func(ms []connector.Message) error {
		if opts.Batch > 0 && len(ms) > opts.Batch {
			t.Errorf("List handed %d messages in one batch, more than Batch=%d", len(ms), opts.Batch)
		}
		out = append(out, ms...)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", f.Path, err)
	}
	return out, l
}

// Fetch fetches msgs and returns bodies and per-message errors by ID.
func Fetch(t testing.TB, s connector.Source, f connector.Folder, msgs []connector.Message) (map[connector.ID][]byte, map[connector.ID]error) {
	t.Helper()
	bodies, errs := map[connector.ID][]byte{}, map[connector.ID]error{}
	err := s.Fetch(Ctx(t), f, msgs, func(b connector.Body, err error) error {
		if err != nil {
			if b.Reader != nil {
				t.Errorf("%s: error %v came with a reader", b.Message.ID, err)
			}
			errs[b.Message.ID] = err
			return nil
		}
		data, rerr := io.ReadAll(b.Reader)
		if rerr != nil {
			errs[b.Message.ID] = rerr
			return nil
		}
		if int64(len(data)) != b.Size {
			t.Errorf("%s: Size %d but the reader gave %d bytes", b.Message.ID, b.Size, len(data))
		}
		bodies[b.Message.ID] = data
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return bodies, errs
}

// Append stores raw in f and returns the new ID.
func Append(t testing.TB, d connector.Destination, f connector.Folder, raw []byte, flags []string, date time.Time) connector.ID {
	t.Helper()
	pa, err := d.Append(Ctx(t), f, connector.AppendRequest{Flags: flags, InternalDate: date, Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	res, err := pa.Wait()
	if err != nil {
		t.Fatalf("Append answer: %v", err)
	}
	return res.ID
}

// SameFlags compares flag sets (order and case of system flags aside).
func SameFlags(a, b []string) bool {
	norm := func(fs []string) string {
		var out []string
		for _, f := range fs {
			if strings.HasPrefix(f, "\\") {
				f = strings.ToLower(f)
			}
			out = append(out, f)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	return norm(a) == norm(b)
}

// Message builds a distinct message with CRLF line ends.
func Message(i int, extra string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <filetest-%d@mailferry.test>\r\nDate: Mon, 2 Jan 2006 15:04:%02d +0100\r\n"+
		"From: Tester <t@mailferry.test>\r\nTo: r@mailferry.test\r\nSubject: message %d\r\n\r\nBody %d\r\n%s", i, i%60, i, i, extra))
}

// BigBody is a reader of a message of n bytes, made as it is read (so
// the test itself holds none of it).
type BigBody struct {
	n, off int64
	head   []byte
}

// NewBigBody returns a message of exactly n bytes (n > 200).
func NewBigBody(n int64) *BigBody {
	return &BigBody{n: n, head: []byte("Message-ID: <big@mailferry.test>\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n\r\n")}
}

const line = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n"

// Read implements io.Reader.
func (b *BigBody) Read(p []byte) (int, error) {
	if b.off >= b.n {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n-b.off {
		p = p[:b.n-b.off]
	}
	for i := range p {
		o := b.off + int64(i)
		if o < int64(len(b.head)) {
			p[i] = b.head[o]
		} else {
			p[i] = line[(o-int64(len(b.head)))%int64(len(line))]
		}
	}
	b.off += int64(len(p))
	return len(p), nil
}

// HeapGrowth runs fn and returns how far the heap in use rose above
// where it was before, sampled every 2 ms (as internal/migrate's test of
// a 40 MB message does).
func HeapGrowth(fn func()) int64 {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return int64(peak.Load()) - int64(base.HeapInuse)
}

// Identity is the identity a local connector must list raw with: its
// size counted with CRLF line ends (see localfile.CRLFSize).
func Identity(raw []byte) mail.Identity {
	n, _ := localfile.CRLFSize(bytes.NewReader(raw))
	return mail.ComputeIdentity(mail.ParseHeaders(raw), n)
}
