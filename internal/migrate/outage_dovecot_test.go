package migrate_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/testenv"
)

// viaProxy is cfg reached through p.
func viaProxy(t testing.TB, cfg imapconn.Config, p *testenv.Proxy) imapconn.Config {
	host, port := splitAddr(t, p.Addr)
	cfg.Host, cfg.Port = host, port
	return cfg
}

// whenCopied calls fn once the run has copied n messages.
func whenCopied(stats *accounting.Stats, n int64, fn func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if stats.Snapshot().Copied >= n {
				fn()
				return
			}
		}
	}()
	return func() { close(done) }
}

// Connections to the source cut in the middle of FETCH responses are
// reconnected and the rest of the batch is fetched again: no message is
// reported as failed, everything arrives once. (Each connection carries
// 48 KB, a batch of fetches about 500 KB: it takes about ten connections;
// before, a batch was given up after five and its messages reported as
// failed with "connection reset".)
func TestFetchResetsAreRetried(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "sven", pw)
	dst.AddUser(t, "sven", pw)
	folders := []string{"INBOX", "Work", "Lists", "Old"}
	var msgs []seedMsg
	for i := 0; i < 200; i++ {
		raw := fmt.Sprintf("Message-ID: <reset%d@x>\r\nFrom: a@x\r\nSubject: %d\r\n\r\n%s\r\n", i, i, strings.Repeat("0123456789abcdef", 600+i))
		msgs = append(msgs, seedMsg{folder: folders[i%4], raw: []byte(raw), date: time.Date(2021, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	seed(t, src, "sven", folders[1:], msgs)
	proxy := testenv.StartProxy(t, src.Addr())
	proxy.CutReadsAfter(t, 48<<10)
	opts := migrate.Options{Backoff: pacer.Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}}
	res, err := run(t, viaProxy(t, plainConfig(src, "sven"), proxy), plainConfig(dst, "sven"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 0 || res.Stats.Copied != 200 {
		t.Fatalf("copied %d, failures %d: %+v", res.Stats.Copied, len(res.Failures), res.Failures[:min(3, len(res.Failures))])
	}
	proxy.Clear()
	sameContent(t, dump(t, src, "sven"), dump(t, dst, "sven"), nil)
}

// outageSetup is a source of several folders behind a proxy, slowed down
// so that a pass is still running when the proxy goes down.
func outageSetup(t *testing.T, user string, folders, perFolder int) (src, dst *testenv.Dovecot, proxy *testenv.Proxy) {
	src = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, user, pw)
	dst.AddUser(t, user, pw)
	var names []string
	for i := 0; i < folders; i++ {
		names = append(names, fmt.Sprintf("F%d", i))
	}
	seed(t, src, user, names, realistic(folders*perFolder, func(i int) string { return names[i%folders] }))
	proxy = testenv.StartProxy(t, src.Addr())
	proxy.AddLatency(t, 30)
	return src, dst, proxy
}

// A source that is unreachable for a while in the middle of a pass (a
// restart, a fail-over) costs time, not mail: the pass waits, retries and
// completes with every message. Before, it gave up after about four
// seconds of retries and reported a part of the rest as failed.
func TestSourceOutageMidPassCompletes(t *testing.T) {
	t.Parallel()
	src, dst, proxy := outageSetup(t, "tara", 4, 60)
	stats := accounting.New()
	opts := migrate.Options{Stats: stats, Streams: 2, PinStreams: true, FetchBatch: 8,
		Backoff: pacer.Backoff{Min: 50 * time.Millisecond, Max: time.Second}}
	down := make(chan time.Time, 1)
	stop := whenCopied(stats, 30, func() {
		proxy.Down()
		down <- time.Now()
		time.Sleep(8 * time.Second)
		proxy.Up(t)
	})
	defer stop()
	res, err := run(t, viaProxy(t, plainConfig(src, "tara"), proxy), plainConfig(dst, "tara"), opts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-down:
		t.Logf("source down at %d copied; the pass took %v more", 30, time.Since(at).Round(time.Millisecond))
	default:
		t.Fatal("the pass ended before the source went down")
	}
	if len(res.Failures) != 0 || res.Stats.Copied != 240 || res.Unreachable != "" {
		t.Fatalf("copied %d, unreachable %q, failures %d: %+v", res.Stats.Copied, res.Unreachable, len(res.Failures), res.Failures[:min(3, len(res.Failures))])
	}
	sameContent(t, dump(t, src, "tara"), dump(t, dst, "tara"), nil)
}

// A source that stays away longer than the budget ends the pass: every
// message not copied is reported as failed, with its folder and UID where
// it was listed (else its folder and how many), and the reason; the
// counts balance. The next pass, with the source back, copies exactly the
// rest.
func TestOutageLongerThanBudget(t *testing.T) {
	t.Parallel()
	src, dst, proxy := outageSetup(t, "ugo", 6, 40)
	stats := accounting.New()
	st := openStore(t, t.TempDir())
	opts := migrate.Options{Stats: stats, Streams: 2, PinStreams: true, FetchBatch: 8, RetryBudget: 2 * time.Second,
		Backoff: pacer.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}, State: st, Pair: "ugo"}
	// The source goes away the moment its first folder is copied, from
	// within the engine's own event: the rest of its folders (five of
	// six, less the few messages read ahead) can only fail, however fast
	// or slowly the machine copies. (Polling the counters every 2 ms, a
	// loaded machine saw the whole pass through before the outage.)
	var down sync.Once
	opts.OnEvent = func(e migrate.Event) {
		if e.Type == "folder_done" && e.Folder != nil && e.Folder.Copied > 0 {
			down.Do(proxy.Down)
		}
	}
	start := time.Now()
	res, err := run(t, viaProxy(t, plainConfig(src, "ugo"), proxy), plainConfig(dst, "ugo"), opts)
	if err != nil {
		t.Fatalf("a pass that outlived its budget must end with its failures, not an error: %v", err)
	}
	t.Logf("pass ended after %v: %d copied, %d failed", time.Since(start).Round(time.Millisecond), res.Stats.Copied, res.Stats.Failed)
	if !strings.Contains(res.Unreachable, "source was unreachable for") {
		t.Errorf("Unreachable = %q", res.Unreachable)
	}
	if res.Stats.Copied+res.Stats.Failed != 240 || res.Stats.Failed == 0 {
		t.Errorf("copied %d + failed %d, want 240 in all and some failed", res.Stats.Copied, res.Stats.Failed)
	}
	byUID, byFolder := 0, 0
	for _, f := range res.Failures {
		switch {
		case f.Folder == "" || !strings.Contains(f.Reason, "not copied: the source was unreachable for"):
			t.Errorf("failure without folder or reason: %+v", f)
		case f.ID != "" && f.Messages == 1:
			byUID++
		case f.ID == "" && f.Messages > 0:
			byFolder++
		default:
			t.Errorf("failure neither names a UID nor counts its folder's messages: %+v", f)
		}
	}
	t.Logf("%d failures by UID, %d whole folders", byUID, byFolder)

	// The source comes back; the next pass copies the rest, once.
	proxy.Up(t)
	opts.Stats = nil
	res, err = run(t, viaProxy(t, plainConfig(src, "ugo"), proxy), plainConfig(dst, "ugo"), opts)
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("next pass: %v, failures %+v", err, res.Failures)
	}
	proxy.Clear()
	sameContent(t, dump(t, src, "ugo"), dump(t, dst, "ugo"), nil)
}
