package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func seedN(e *env, upn string, n int) {
	for i := range n {
		e.srv.SeedMessage(upn, "inbox", graphserver.Seed{MIME: msg(i, "")})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, nil)
	seedN(e, alice, 1)
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")
	_, all, _ := listAll(t, c, inbox, connector.ListOptions{})

	before := e.srv.RequestCount(graphserver.RouteGetMIME)
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 429, RetryAfter: 7 * time.Second})
	if got := fetchAll(t, c, inbox, all); len(got) != 1 {
		t.Fatal("not fetched after a 429")
	}
	if _, _, longest := e.clock.slept(); longest < 7*time.Second {
		t.Fatalf("waited at most %v after Retry-After: 7", longest)
	}
	if n := e.srv.RequestCount(graphserver.RouteGetMIME) - before; n != 2 {
		t.Fatalf("$value requests %d, want 2", n)
	}

	// 503 on a read is retried too.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteDelta, Status: 503, Count: 2})
	if byID, _, _ := listAll(t, c, inbox, connector.ListOptions{}); len(byID) != 1 {
		t.Fatal("listing failed after two 503s")
	}

	// Throttling that does not end: a transient error with the server's
	// hint, for the retry layer and the "throttled" report.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 429, RetryAfter: 30 * time.Second, Count: 100})
	err := c.Fetch(context.Background(), inbox, all, func(connector.Body, error) error { return nil })
	if connector.KindOf(err) != connector.KindTransient || connector.RetryAfterOf(err) != 30*time.Second {
		t.Fatalf("sustained 429: %v (kind %v, retry after %v)", err, connector.KindOf(err), connector.RetryAfterOf(err))
	}
}

// waitInFlight waits (bounded) until the server holds n requests.
func waitInFlight(t *testing.T, e *env, upn string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.InFlight(upn) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests in flight, want %d", e.srv.InFlight(upn), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrencyNeverAboveFour(t *testing.T) {
	e := newEnv(t, nil)
	const bob = "bob@contoso.onmicrosoft.com"
	e.srv.AddMailbox(tenantID, bob)
	seedN(e, alice, 12)
	seedN(e, bob, 12)
	ca := e.open(t, connector.RoleSource, nil)
	cb, err := e.openErr(t, bob, connector.RoleSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		c    *Conn
		f    connector.Folder
		msgs []connector.Message
	}
	var jobs []job
	for _, c := range []*Conn{ca, cb} {
		f := folderByPath(t, c, "INBOX")
		_, all, _ := listAll(t, c, f, connector.ListOptions{})
		jobs = append(jobs, job{c, f, all[:6]}, job{c, f, all[6:]})
	}
	release := e.srv.BlockRequests()
	defer release()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetchAll(t, j.c, j.f, j.msgs)
		}()
	}
	// Held until the app's cap is used (the server counts blocked
	// requests as in flight), however slowly the workers start on a
	// loaded machine; then a moment more for a fifth to get in if the
	// cap leaked.
	deadline := time.Now().Add(time.Minute)
	for e.srv.PeakAppConcurrency(appID) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests of the app in flight after a minute, want 4", e.srv.PeakAppConcurrency(appID))
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	release()
	wg.Wait()
	if p := e.srv.PeakAppConcurrency(appID); p != 4 {
		t.Errorf("peak concurrency of the app across mailboxes %d, want 4 (never more, and used)", p)
	}
	if e.srv.PeakConcurrency(alice) > 4 || e.srv.PeakConcurrency(bob) > 4 {
		t.Errorf("peak per mailbox %d, %d", e.srv.PeakConcurrency(alice), e.srv.PeakConcurrency(bob))
	}
	if n := e.srv.ThrottledCount(); n != 0 {
		t.Errorf("%d requests were throttled", n)
	}
}

func TestTokenRefreshedAfter401AndBeforeExpiry(t *testing.T) {
	e := newEnv(t, nil)
	c := e.open(t, connector.RoleSource, nil)
	ctx := context.Background()
	if _, err := c.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	// Revoked early: the 401 is answered with one new token.
	e.srv.ExpireAccessTokens()
	inbox := folderByPath(t, c, "INBOX")
	if n := e.srv.TokenRequests().ClientCredentials; n != 2 {
		t.Fatalf("grants %d after a 401, want 2", n)
	}
	// 56 minutes on, inside the five-minute margin: replaced before use,
	// so Graph sees no refused request.
	e.clock.Sleep(ctx, 56*time.Minute)
	before := e.srv.RequestCount(graphserver.RouteGetFolder)
	if _, err := c.List(ctx, inbox, connector.ListOptions{}, func([]connector.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.TokenRequests().ClientCredentials; n != 3 {
		t.Fatalf("grants %d, want a third before expiry", n)
	}
	if n := e.srv.RequestCount(graphserver.RouteGetFolder) - before; n != 1 {
		t.Fatalf("folder requests %d: a request was refused and sent again", n)
	}
	// The token endpoint briefly down while a token is replaced: waited
	// out, the request goes through.
	e.srv.ExpireAccessTokens()
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteMicrosoftToken, Status: 503})
	grants := e.srv.TokenRequests().ClientCredentials
	if _, errs := c.Statuses(ctx, []connector.Folder{inbox}, nil); errs[0] != nil {
		t.Fatalf("token endpoint 503 once: %v", errs[0])
	}
	if n := e.srv.TokenRequests().ClientCredentials - grants; n != 1 {
		t.Fatalf("grants %d after the 503, want 1", n)
	}
	// Refused again right after a refresh: an auth error, not a loop.
	e.srv.SetAppRoles(appID) // no roles at all
	e.srv.ExpireAccessTokens()
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetFolder, Status: 401, Count: 2})
	_, err := c.List(ctx, inbox, connector.ListOptions{}, func([]connector.Message) error { return nil })
	if connector.KindOf(err) != connector.KindAuth {
		t.Fatalf("two 401s: %v (kind %v)", err, connector.KindOf(err))
	}
}

func TestRequestBudgetPaced(t *testing.T) {
	e := newEnv(t, &graphserver.Options{RequestBudget: 40, RequestWindow: time.Minute})
	seedN(e, alice, 5)
	c := e.open(t, connector.RoleSource, func(_ *connector.OpenOptions, s *settings) {
		s.budgets.requests, s.budgets.reqWin = 40, time.Minute
	})
	inbox := folderByPath(t, c, "INBOX")
	_, all, _ := listAll(t, c, inbox, connector.ListOptions{})
	for range 20 {
		fetchAll(t, c, inbox, all)
	}
	if n := e.srv.ThrottledCount(); n != 0 {
		t.Fatalf("%d requests throttled: the pacing let too many through", n)
	}
	// 100 $value requests plus the listing at 36 a minute after a burst
	// of 4: well over two minutes of waiting.
	if _, total, _ := e.clock.slept(); total < 2*time.Minute {
		t.Fatalf("waited only %v", total)
	}
}

func TestUploadBudgetPaced(t *testing.T) {
	const budget = 1_000_000
	e := newEnv(t, &graphserver.Options{UploadBudget: budget, UploadWindow: time.Minute})
	c := e.open(t, connector.RoleDestination, func(_ *connector.OpenOptions, s *settings) {
		s.budgets.upload, s.budgets.upWin = budget, time.Minute
	})
	inbox := folderByPath(t, c, "INBOX")
	payload := make([]byte, 150_000)
	rand.Read(payload)
	for i := range 12 {
		raw := attachmentMIME(payload)
		raw = bytes.Replace(raw, []byte("<att@example.com>"), []byte("<att"+string(rune('a'+i))+"@example.com>"), 1)
		appendMsg(t, c, inbox, raw, nil, received)
	}
	if n := e.srv.ThrottledCount(); n != 0 {
		t.Fatalf("%d requests throttled: more than the upload budget went out", n)
	}
	if _, total, _ := e.clock.slept(); total < time.Minute {
		t.Fatalf("waited only %v for about 2.5 MB at 1 MB a minute", total)
	}
}

// A 30 MB message streams through the spool: the heap does not grow by
// its size, the bytes arrive exactly, and no temporary file is left.
func TestLargeBodyBoundedHeap(t *testing.T) {
	e := newEnv(t, &graphserver.Options{MaxRequestBody: 64 << 20})
	big := make([]byte, 30<<20)
	rand.Read(big)
	copy(big, msg(1, ""))
	want := sha256.Sum256(big)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: big})
	spoolDir := t.TempDir()
	c := e.open(t, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) { o.SpoolDir = spoolDir })
	inbox := folderByPath(t, c, "INBOX")
	m := connector.Message{ID: connector.ID(id)}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var grew uint64
	err := c.Fetch(context.Background(), inbox, []connector.Message{m}, func(b connector.Body, err error) error {
		if err != nil {
			return err
		}
		var during runtime.MemStats
		runtime.ReadMemStats(&during)
		if during.HeapAlloc > before.HeapAlloc {
			grew = during.HeapAlloc - before.HeapAlloc
		}
		if b.Size != int64(len(big)) {
			t.Errorf("Size %d, want %d", b.Size, len(big))
		}
		h := sha256.New()
		if n, err := io.Copy(h, b.Reader); err != nil || n != b.Size {
			t.Errorf("read %d: %v", n, err)
		}
		if [32]byte(h.Sum(nil)) != want {
			t.Error("bytes differ")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if grew > 12<<20 {
		t.Errorf("heap grew by %d MiB while a 30 MiB body was held", grew>>20)
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}
