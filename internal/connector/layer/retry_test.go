package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
)

var fast = pacer.Backoff{Min: time.Millisecond, Max: time.Millisecond, Attempts: 3}

var errDrop = &connector.Error{Kind: connector.KindTransient, Err: errors.New("connection reset by peer")}

// While the side works (other calls succeed), an operation that keeps
// failing is given up after its attempts.
func TestRetryGivesUpOnItsOwnFailures(t *testing.T) {
	r := NewRetrier(Policy{Side: "destination", Backoff: fast, Budget: time.Hour})
	ctx := context.Background()
	var tr Tries
	for i := 1; ; i++ {
		_, final := r.Next(ctx, &tr, errDrop)
		if final != nil {
			if i != 3 || !errors.Is(final, errDrop) {
				t.Errorf("given up after %d tries with %v, want 3 and its own error", i, final)
			}
			break
		}
		r.OK() // another append succeeded meanwhile
	}
	// Errors that retrying cannot fix are final at once.
	if _, final := r.Next(ctx, &Tries{}, &connector.Error{Kind: connector.KindItem, Err: errors.New("too big")}); final == nil {
		t.Error("an item error was retried")
	}
	if _, final := r.Next(ctx, &Tries{}, errors.Join(connector.ErrCursorInvalid)); final == nil {
		t.Error("an invalid cursor was retried")
	}
}

// A side that answers nothing is waited for until the budget is spent,
// however many tries that takes; then the run ends with UnreachableError.
func TestRetryWaitsOutAnOutage(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	down := errors.New("refused")
	// The budget is measured on a clock the test steps by each wait: a
	// loaded machine's late wake-ups change nothing.
	start := time.Unix(1_000_000, 0)
	now := start
	r := NewRetrier(Policy{Side: "source", Backoff: fast, Budget: 50 * time.Millisecond, Outage: NewOutage(cancel),
		Probe: func(context.Context) error { return down }, Now: func() time.Time { return now }})
	var tr Tries
	var final error
	for final == nil {
		var wait time.Duration
		wait, final = r.Next(ctx, &tr, errDrop)
		now = now.Add(wait)
	}
	var u *UnreachableError
	if !errors.As(final, &u) || u.Side != "source" || now.Sub(start) < 50*time.Millisecond || tr.total < 4 {
		t.Fatalf("final %v after %v and %d tries; want UnreachableError after the budget", final, now.Sub(start), tr.total)
	}
	if context.Cause(ctx) != final {
		t.Errorf("the run was not ended: %v", context.Cause(ctx))
	}
}

// The tries an operation spent during an outage are not held against it
// once the side is back: a stale session failing once more is retried.
func TestRetryForgivesTheOutage(t *testing.T) {
	up := false
	r := NewRetrier(Policy{Side: "source", Backoff: fast, Budget: time.Hour, Probe: func(context.Context) error {
		if up {
			return nil
		}
		return errors.New("refused")
	}})
	ctx := context.Background()
	var tr Tries
	for i := 0; i < 10; i++ { // the outage
		if _, final := r.Next(ctx, &tr, errDrop); final != nil {
			t.Fatalf("given up during the outage after %d tries: %v", i+1, final)
		}
		r.probedAt = time.Time{} // let it probe again
	}
	up = true
	r.OK() // another fetch succeeded: the source is back
	if _, final := r.Next(ctx, &tr, errDrop); final != nil {
		t.Fatalf("given up on the first failure after the outage: %v", final)
	}
	// A side that answers probes while this one operation fails: its own
	// trouble, given up after its attempts.
	r.probedAt = time.Time{}
	var final error
	n := 0
	for final == nil && n < 20 {
		_, final = r.Next(ctx, &tr, errDrop)
		r.probedAt = time.Time{}
		n++
	}
	if final == nil || IsUnreachable(final) {
		t.Errorf("a failure the side does not share was never given up (%d tries): %v", n, final)
	}
}

// A server's hint of how long to wait (Retry-After, "Suggested Backoff
// Time") is honoured when it is longer than the backoff.
func TestRetryHonoursServerHint(t *testing.T) {
	r := NewRetrier(Policy{Side: "destination", Backoff: fast, Budget: time.Hour})
	hinted := &connector.Error{Kind: connector.KindTransient, Err: errors.New("throttled"), RetryAfter: 300 * time.Millisecond}
	wait, final := r.Next(context.Background(), &Tries{}, hinted)
	if final != nil || wait != 300*time.Millisecond {
		t.Fatalf("wait %v final %v, want the server's 300ms", wait, final)
	}
}

// flaky is a connector whose calls fail transiently a set number of
// times.
type flaky struct {
	connector.Conn // nil: only the methods below are called
	fails          atomic.Int32
	calls          atomic.Int32
	deliverFirst   bool // List delivers a batch before failing
	appends        atomic.Int32
}

func (f *flaky) Features() connector.Features { return connector.Features{MaxConnections: 2} }
func (f *flaky) Close() error                 { return nil }

func (f *flaky) Folders(context.Context) ([]connector.Folder, error) {
	f.calls.Add(1)
	if f.fails.Add(-1) >= 0 {
		return nil, errDrop
	}
	return []connector.Folder{{Path: mail.Path{"INBOX"}, Name: "INBOX"}}, nil
}

func (f *flaky) List(_ context.Context, _ connector.Folder, _ connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	f.calls.Add(1)
	if f.deliverFirst {
		if err := fn([]connector.Message{{ID: "1"}}); err != nil {
			return connector.Listing{}, err
		}
	}
	if f.fails.Add(-1) >= 0 {
		return connector.Listing{}, errDrop
	}
	return connector.Listing{Cursor: "c"}, nil
}

func (f *flaky) Append(context.Context, connector.Folder, connector.AppendRequest) (connector.PendingAppend, error) {
	f.appends.Add(1)
	return nil, errDrop
}

func (f *flaky) CreateFolder(context.Context, mail.Path, mail.Role) (connector.Folder, error) {
	return connector.Folder{}, nil
}

// The layer retries idempotent calls, a listing only until it delivered
// something, and never an append.
func TestRetryLayer(t *testing.T) {
	ctx := context.Background()
	in := &flaky{}
	in.fails.Store(2)
	c := Retry(in, NewRetrier(Policy{Side: "source", Backoff: fast, Budget: time.Hour}))
	if fs, err := c.Folders(ctx); err != nil || len(fs) != 1 || in.calls.Load() != 3 {
		t.Fatalf("Folders: %v %v after %d calls; want success on the third", fs, err, in.calls.Load())
	}
	in.calls.Store(0)
	in.fails.Store(1)
	if lst, err := c.List(ctx, connector.Folder{}, connector.ListOptions{}, func([]connector.Message) error { return nil }); err != nil || lst.Cursor != "c" || in.calls.Load() != 2 {
		t.Fatalf("List before delivering: %v %v after %d calls; want a retried success", lst, err, in.calls.Load())
	}
	in.calls.Store(0)
	in.fails.Store(1)
	in.deliverFirst = true
	if _, err := c.List(ctx, connector.Folder{}, connector.ListOptions{}, func([]connector.Message) error { return nil }); !errors.Is(err, errDrop) || in.calls.Load() != 1 {
		t.Fatalf("List after delivering: %v after %d calls; want the error at once", err, in.calls.Load())
	}
	if _, err := c.Append(ctx, connector.Folder{}, connector.AppendRequest{Body: bytes.NewReader(nil)}); !errors.Is(err, errDrop) || in.appends.Load() != 1 {
		t.Fatalf("Append: %v after %d tries; the layer must never resend an append", err, in.appends.Load())
	}
	// The layer reports the abilities of what it wraps.
	f := connector.FeaturesOf(c)
	if f.SetFlags || f.Delete || f.Status || f.Quota {
		t.Errorf("FeaturesOf(layer) = %+v, the wrapped connector has none of these", f)
	}
}

// A server's hint of PauseThreshold or more is reported as a pause with
// the time it ends (Gmail's daily limit by its own cause, anything else
// as throttling), a shorter one is not, and the pause clears when the
// side works again.
func TestRetryReportsLongWaitsAsPauses(t *testing.T) {
	var got []accounting.Pause
	r := NewRetrier(Policy{Side: "source", Backoff: fast, Budget: time.Hour, OnPause: func(p accounting.Pause) { got = append(got, p) }})
	ctx := context.Background()

	short := &connector.Error{Kind: connector.KindTransient, Err: errors.New("429"), RetryAfter: 2 * time.Second}
	if _, final := r.Next(ctx, &Tries{}, short); final != nil || len(got) != 0 {
		t.Fatalf("a 2 s Retry-After: final %v, pauses %v; want a quiet retry", final, got)
	}
	r.OK()
	if len(got) != 0 {
		t.Fatalf("a resume reported without a pause: %v", got)
	}

	before := time.Now()
	long := &connector.Error{Kind: connector.KindTransient, Err: errors.New("429"), RetryAfter: 10 * time.Minute}
	wait, final := r.Next(ctx, &Tries{}, long)
	if final != nil || wait < 10*time.Minute {
		t.Fatalf("a 10 min Retry-After: wait %v, final %v", wait, final)
	}
	if len(got) != 1 || got[0].Cause != accounting.PauseThrottled ||
		got[0].Until.Before(before.Add(10*time.Minute)) || got[0].Until.After(time.Now().Add(wait)) {
		t.Fatalf("a 10 min Retry-After reported %v, want throttled until about %v", got, before.Add(10*time.Minute))
	}
	r.OK()
	if len(got) != 2 || !got[1].Until.IsZero() {
		t.Fatalf("work resumed, reported %v; want the pause cleared", got)
	}

	daily := &connector.Error{Kind: connector.KindTransient, Err: errors.New("OVERQUOTA"), RetryAfter: 5 * time.Hour, DailyLimit: true}
	if _, final := r.Next(ctx, &Tries{}, fmt.Errorf("fetch: %w", daily)); final != nil {
		t.Fatal(final)
	}
	if len(got) != 3 || got[2].Cause != accounting.PauseDailyLimit || got[2].Until.Before(before.Add(5*time.Hour)) {
		t.Fatalf("Gmail's daily limit reported %v", got)
	}
}
