package migrate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/pacer"
)

func testRun(budget time.Duration) *run {
	r := &run{opts: Options{Backoff: pacer.Backoff{Min: time.Millisecond, Max: time.Millisecond, Attempts: 3},
		RetryBudget: budget, Stats: accounting.New()}}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	return r
}

var errDrop = &connector.Error{Kind: connector.KindTransient, Err: errors.New("connection reset by peer")}

// While the side works (other calls succeed), an operation that keeps
// failing is given up after its attempts.
func TestRetryGivesUpOnItsOwnFailures(t *testing.T) {
	r := testRun(time.Hour)
	h := newHealth("destination", nil)
	var tr tries
	for i := 1; ; i++ {
		_, final := r.next(h, &tr, errDrop)
		if final != nil {
			if i != 3 || !errors.Is(final, errDrop) {
				t.Errorf("given up after %d tries with %v, want 3 and its own error", i, final)
			}
			break
		}
		h.ok() // another append succeeded meanwhile
	}
	// Errors that retrying cannot fix are final at once.
	if _, final := r.next(h, &tries{}, &connector.Error{Kind: connector.KindItem, Err: errors.New("too big")}); final == nil {
		t.Error("an item error was retried")
	}
}

// A side that answers nothing is waited for until the budget is spent,
// however many tries that takes; then the run ends with UnreachableError.
func TestRetryWaitsOutAnOutage(t *testing.T) {
	r := testRun(50 * time.Millisecond)
	down := errors.New("refused")
	h := newHealth("source", func(context.Context) error { return down })
	var tr tries
	start := time.Now()
	var final error
	for final == nil {
		var wait time.Duration
		wait, final = r.next(h, &tr, errDrop)
		time.Sleep(wait)
	}
	var u *UnreachableError
	if !errors.As(final, &u) || u.Side != "source" || time.Since(start) < 50*time.Millisecond || tr.total < 4 {
		t.Fatalf("final %v after %v and %d tries; want UnreachableError after the budget", final, time.Since(start), tr.total)
	}
	if context.Cause(r.ctx) != final {
		t.Errorf("the run was not ended: %v", context.Cause(r.ctx))
	}
}

// The tries an operation spent during an outage are not held against it
// once the side is back: a stale session failing once more is retried.
func TestRetryForgivesTheOutage(t *testing.T) {
	r := testRun(time.Hour)
	up := false
	h := newHealth("source", func(context.Context) error {
		if up {
			return nil
		}
		return errors.New("refused")
	})
	var tr tries
	for i := 0; i < 10; i++ { // the outage
		if _, final := r.next(h, &tr, errDrop); final != nil {
			t.Fatalf("given up during the outage after %d tries: %v", i+1, final)
		}
		h.probedAt = time.Time{} // let it probe again
	}
	up = true
	h.ok() // another fetch succeeded: the source is back
	if _, final := r.next(h, &tr, errDrop); final != nil {
		t.Fatalf("given up on the first failure after the outage: %v", final)
	}
	// A side that answers probes while this one operation fails: its own
	// trouble, given up after its attempts.
	h.probedAt = time.Time{}
	var final error
	n := 0
	for final == nil && n < 20 {
		_, final = r.next(h, &tr, errDrop)
		h.probedAt = time.Time{}
		n++
	}
	if final == nil || isUnreachable(final) {
		t.Errorf("a failure the side does not share was never given up (%d tries): %v", n, final)
	}
}
