package migrate_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/testenv"
)

// A destination whose connections are cut every few dozen kilobytes, in
// the middle of pipelined APPENDs, must end with every message exactly
// once: an APPEND whose answer was lost is looked for on the destination
// before it is sent again.
func TestDroppedConnectionsNeverDuplicate(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "gina", pw)
	dst.AddUser(t, "gina", pw)
	const n = 400
	seed(t, src, "gina", []string{"Work"}, realistic(n, func(i int) string { return []string{"INBOX", "Work"}[i%2] }))

	proxy := testenv.StartProxy(t, dst.Addr())
	proxy.CutAfter(t, 48<<10)
	dcfg := plainConfig(dst, "gina")
	dcfg.Dial = nil
	host, port := splitAddr(t, proxy.Addr)
	dcfg.Host, dcfg.Port = host, port
	opts := migrate.Options{PipelineDepth: 16, Backoff: pacer.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 200}}
	res, err := run(t, plainConfig(src, "gina"), dcfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 0 {
		t.Fatalf("failures: %+v", res.Failures)
	}
	if res.Stats.Uncertain == 0 {
		t.Fatal("no APPEND answer was lost: the test did not exercise the check before resending")
	}
	t.Logf("appends whose answer was lost: %d, transfers retried: %d", res.Stats.Uncertain, res.Stats.Retried)
	proxy.Clear()
	sameContent(t, dump(t, src, "gina"), dump(t, dst, "gina"), nil)
	if res.Stats.Copied != n {
		t.Errorf("reported %d copied, want %d", res.Stats.Copied, n)
	}
}

// A 40 MB message is streamed through a spool file: the heap must not
// grow by anything near its size.
func TestLargeMessageMemoryBounded(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "hank", pw)
	dst.AddUser(t, "hank", pw)
	const size = 40 << 20
	func() {
		var b strings.Builder
		b.WriteString("Message-ID: <huge@x>\r\nSubject: big attachment\r\nContent-Type: application/octet-stream\r\n\r\n")
		line := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n"
		for b.Len() < size {
			b.WriteString(line)
		}
		seed(t, src, "hank", nil, []seedMsg{
			{folder: "INBOX", raw: []byte(b.String()), flags: []imap.Flag{imap.FlagSeen}, date: time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)},
			{folder: "INBOX", raw: []byte("Message-ID: <small@x>\r\n\r\nsmall\r\n"), date: time.Now()},
		})
	}()
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
	res, err := run(t, plainConfig(src, "hank"), plainConfig(dst, "hank"), migrate.Options{})
	close(stop)
	wg.Wait()
	if err != nil || len(res.Failures) != 0 || res.Stats.Copied != 2 {
		t.Fatalf("copy: %v %+v", err, res)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %.1f MB while copying a %d MB message", float64(growth)/(1<<20), size>>20)
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MB: the message was buffered in memory", growth>>20)
	}
	sameContent(t, dump(t, src, "hank"), dump(t, dst, "hank"), nil)
}

// A mailbox of a few thousand messages over several folders, copied
// between the two layouts, verifies exactly: bytes, flags, dates,
// folders and no extras.
func TestThousandsOfMessagesExact(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	src.AddUser(t, "ivy", pw)
	dst.AddUser(t, "ivy", pw)
	folders := []string{"INBOX.Sent Items", "INBOX.Clients", "INBOX.Clients.Acme", "INBOX.Clients.Globex", "INBOX.Archive", "INBOX.Archive.2018"}
	all := append([]string{"INBOX"}, folders...)
	const n = 3000
	seed(t, src, "ivy", folders, realistic(n, func(i int) string { return all[(i*7)%len(all)] }))
	start := time.Now()
	res, err := run(t, plainConfig(src, "ivy"), plainConfig(dst, "ivy"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages in %v", res.Stats.Copied, time.Since(start))
	if res.Stats.Copied != n || len(res.Failures) != 0 {
		t.Fatalf("copied %d, failures %d", res.Stats.Copied, len(res.Failures))
	}
	want, got := dump(t, src, "ivy"), dump(t, dst, "ivy")
	sameContent(t, want, got, map[string]string{"Sent Items": "Sent"})
	total := 0
	for _, ms := range got {
		total += len(ms)
	}
	if total != n {
		t.Errorf("destination holds %d messages, want exactly %d", total, n)
	}
}

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	var host string
	var port int
	i := strings.LastIndex(addr, ":")
	host = addr[:i]
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return host, port
}
