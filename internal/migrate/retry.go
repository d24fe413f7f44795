package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/pacer"
)

// DefaultRetryBudget is how long a pass keeps retrying a side that stopped
// answering before it gives up on what is left (Options.RetryBudget).
// Five minutes ride out a server restart, a fail-over or a provider's
// throttling window; a longer outage ends the pass with every message not
// copied reported, so that a later pass (or "Retry errors") picks them up.
const DefaultRetryBudget = 5 * time.Minute

// health follows one side of a run: whether its calls succeed, and since
// when it has failed without a single success in between (an outage).
// Every call that reached the server and succeeded calls ok; every
// transient failure calls fail.
type health struct {
	side  string // "source" or "destination"
	probe func(context.Context) error

	seq       atomic.Uint64 // successes so far
	downSince atomic.Int64  // UnixNano of the first failure since the last success; 0 while up

	probeMu  sync.Mutex
	probedAt time.Time
	probeErr error
}

func newHealth(side string, probe func(context.Context) error) *health {
	return &health{side: side, probe: probe}
}

func (h *health) ok() {
	h.seq.Add(1)
	if h.downSince.Load() != 0 {
		h.downSince.Store(0)
	}
}

// fail records a transient failure and returns the success count and how
// long the side has been failing without a success.
func (h *health) fail() (uint64, time.Duration) {
	now := time.Now().UnixNano()
	h.downSince.CompareAndSwap(0, now)
	since := h.downSince.Load()
	if since == 0 { // a success came in between
		return h.seq.Load(), 0
	}
	return h.seq.Load(), time.Duration(now - since)
}

// answers asks the side for something cheap, at most once a second for
// all callers, to tell an operation's own trouble (the server answers
// everything else) from an outage (it answers nothing).
func (h *health) answers(ctx context.Context) bool {
	if h.probe == nil {
		return false
	}
	h.probeMu.Lock()
	defer h.probeMu.Unlock()
	if time.Since(h.probedAt) < time.Second {
		return h.probeErr == nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	h.probeErr = h.probe(pctx)
	cancel()
	h.probedAt = time.Now()
	if h.probeErr == nil {
		h.ok()
	}
	return h.probeErr == nil
}

// tries is the retry state of one operation (a listing, a batch of
// fetches, one message's append).
type tries struct {
	total int    // failures in a row, for the backoff
	own   int    // those while the side otherwise worked: the operation's own
	seq   uint64 // the side's success count at the last failure
}

// reset forgets the failures: the operation made progress.
func (t *tries) reset() { *t = tries{} }

// UnreachableError ends a pass whose source or destination did not answer
// for longer than Options.RetryBudget. Every message not copied is then
// reported with it.
type UnreachableError struct {
	Side string        // "source" or "destination"
	For  time.Duration // how long it had been failing
	Last error         // the last error seen
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the %s was unreachable for %s (%v)", e.Side, e.For.Round(time.Second), e.Last)
}

func (e *UnreachableError) Unwrap() error { return e.Last }

// unreachableHint is what a user should do about an UnreachableError.
const unreachableHint = "Check that the server is up and reachable from here, then run the pass again: what was copied stays copied, and only the rest is sent."

// next decides what to do after an operation on side h failed with err:
// try again after wait, or give up with final (err itself, or an
// *UnreachableError once the side has been down for the whole budget).
//
// A transient error is retried with backoff. A failure counts against the
// operation's attempts (Options.Backoff.Attempts) only when the side is
// evidently working: it is the operation's first, or another call
// succeeded since its previous try, or (once it has failed that many
// times in a row) the side answers a probe. Failures while the side
// answers nothing are an outage: the operation waits, backing off, and
// the attempts it used during the outage are not held against it when the
// side is back (a session left over from before the outage fails once
// more). Once an outage has lasted Options.RetryBudget, the pass ends.
func (r *run) next(h *health, t *tries, err error) (wait time.Duration, final error) {
	k := connector.KindOf(err)
	if !(k == connector.KindTransient || k == connector.KindUnknown) || r.ctx.Err() != nil {
		return 0, err
	}
	seq, down := h.fail()
	b := r.opts.Backoff
	worked := t.total == 0 || seq != t.seq
	t.total++
	t.seq = seq
	if !worked && t.total >= b.MaxAttempts() && h.answers(r.ctx) {
		worked, t.seq = true, h.seq.Load()
	}
	if worked {
		if t.own++; t.own >= b.MaxAttempts() {
			return 0, err // the side works: this operation's own failure
		}
	} else if down >= r.opts.RetryBudget {
		return 0, r.abandon(h, down, err)
	}
	return b.Delay(t.total, 0), nil
}

// retry runs op until it succeeds, fails for good, or the run stops. t
// may be nil; an op that makes progress between failures resets it.
func (r *run) retry(h *health, t *tries, op func() error) error {
	if t == nil {
		t = &tries{}
	}
	for {
		err := op()
		if err == nil {
			h.ok()
			return nil
		}
		wait, final := r.next(h, t, err)
		if final != nil {
			return final
		}
		r.opts.Stats.Retried()
		if pacer.Sleep(r.ctx, wait) != nil {
			if u := r.unreachable.Load(); u != nil {
				return u
			}
			return err
		}
	}
}

// abandon ends the run because side h has been unreachable for too long.
// Everything not done by then is reported as failed with the returned
// error (see leave).
func (r *run) abandon(h *health, down time.Duration, last error) error {
	u := &UnreachableError{Side: h.side, For: down, Last: last}
	if r.unreachable.CompareAndSwap(nil, u) {
		r.cancel(u)
	}
	return r.unreachable.Load()
}

// isUnreachable reports whether err is (or wraps) the end of a run for an
// unreachable side.
func isUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}
