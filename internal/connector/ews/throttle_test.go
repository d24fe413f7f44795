package ews

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// Throttling and busy servers are transient errors that carry the
// server's hint of how long to wait (connector.Error.RetryAfter), for
// the retry layer to honour.
func TestThrottling(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault ewsserver.Fault
		wait  time.Duration
		code  string
	}{
		{"ErrorServerBusy fault with BackOffMilliseconds", ewsserver.Fault{Code: "ErrorServerBusy", BackOff: 1500 * time.Millisecond}, 1500 * time.Millisecond, "ErrorServerBusy"},
		{"ErrorServerBusy without a hint", ewsserver.Fault{Code: "ErrorServerBusy"}, 0, "ErrorServerBusy"},
		{"ErrorServerBusy in the response message", ewsserver.Fault{Code: "ErrorServerBusy", Scope: ewsserver.FaultMessages, BackOff: 2 * time.Second}, 2 * time.Second, "ErrorServerBusy"},
		{"HTTP 503 with Retry-After", ewsserver.Fault{HTTPStatus: 503, BackOff: 3 * time.Second}, 3 * time.Second, "503"},
		{"ErrorExceededConnectionCount", ewsserver.Fault{Code: "ErrorExceededConnectionCount"}, 0, "ErrorExceededConnectionCount"},
		{"ErrorTooManyObjectsOpened", ewsserver.Fault{Code: "ErrorTooManyObjectsOpened", Scope: ewsserver.FaultMessages}, 0, "ErrorTooManyObjectsOpened"},
		{"ErrorInternalServerError (HTTP 200)", ewsserver.Fault{Code: "ErrorInternalServerError", Scope: ewsserver.FaultMessages}, 0, "ErrorInternalServerError"},
		{"ErrorMailboxStoreUnavailable", ewsserver.Fault{Code: "ErrorMailboxStoreUnavailable", Scope: ewsserver.FaultMessages}, 0, "ErrorMailboxStoreUnavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := server(t, nil)
			c := open(t, s, "")
			f := tc.fault
			f.Op, f.Count = "FindFolder", 1
			s.Inject(f)
			_, err := c.Folders(context.Background())
			if connector.KindOf(err) != connector.KindTransient {
				t.Fatalf("%v (kind %v), want transient", err, connector.KindOf(err))
			}
			if got := connector.RetryAfterOf(err); got != tc.wait {
				t.Errorf("RetryAfter %v, want %v", got, tc.wait)
			}
			if !strings.Contains(err.Error(), tc.code) || connector.HintOf(err) == "" {
				t.Errorf("error %q (hint %q) does not name %s", err, connector.HintOf(err), tc.code)
			}
			if _, err := c.Folders(context.Background()); err != nil {
				t.Errorf("after the fault: %v", err)
			}
		})
	}
}

// With MaxConnections above the server's EWSMaxConcurrency, the request
// one too many gets ErrorExceededConnectionCount: a transient error.
func TestExceededConnectionCount(t *testing.T) {
	s := server(t, &ewsserver.Options{MaxConcurrency: 2})
	c := open(t, s, "", func(o *connector.OpenOptions) { o.MaxConnections = 3 })
	release := s.Block("FindFolder")
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Folders(context.Background())
			errs <- err
		}()
	}
	var first error
	select {
	case first = <-errs:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	release()
	<-errs
	<-errs
	if connector.KindOf(first) != connector.KindTransient || !strings.Contains(first.Error(), "ErrorExceededConnectionCount") {
		t.Fatalf("third request over EWSMaxConcurrency 2: %v", first)
	}
	// The default cap (4) is well under Exchange's default of 27.
	s2 := server(t, nil)
	c2 := open(t, s2, "")
	if c2.Features().MaxConnections != 4 {
		t.Errorf("default MaxConnections %d", c2.Features().MaxConnections)
	}
}

// A failure of one item in a batch is that item's: ErrorItemSave on
// CreateItem is KindItem with the folder in the message.
func TestItemSaveError(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	s.Inject(ewsserver.Fault{Op: "CreateItem", Scope: ewsserver.FaultItems, Code: "ErrorItemSave", Text: "The item could not be saved.", Count: 1})
	raw := msg(1, "")
	p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: strings.NewReader(string(raw))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Wait()
	if connector.KindOf(err) != connector.KindItem || !strings.Contains(err.Error(), `"INBOX"`) || !strings.Contains(err.Error(), "ErrorItemSave") {
		t.Fatalf("ErrorItemSave: %v (kind %v)", err, connector.KindOf(err))
	}
	appendMsg(t, c, in, raw, nil, time.Time{})
}

// A server that Open reached and that then refuses connections (a
// restart, a load balancer shedding them) is a passing outage that the
// retry layer waits out, not the wrong address that the same refusal
// means at Open.
func TestRefusedAfterOpenIsTransient(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	s.Close()
	_, err := c.Folders(context.Background())
	if connector.KindOf(err) != connector.KindTransient {
		t.Fatalf("Folders after the server went away: %v (kind %v), want transient", err, connector.KindOf(err))
	}
	_, err = Open(context.Background(), endpoint(t, s, ""), options(s, alice, pw))
	if k := connector.KindOf(err); k != connector.KindConnect {
		t.Fatalf("Open of a server that does not answer: %v (kind %v), want connect", err, k)
	}
}
