package layer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
)

// DefaultBudget is how long a side may fail without a single success (an
// outage) before the operations waiting for it give up (Policy.Budget).
// Five minutes ride out a server restart, a fail-over or a provider's
// throttling window; a longer outage ends the pass with every message
// not copied reported, so that a later pass picks them up.
const DefaultBudget = 5 * time.Minute

// PauseThreshold is the shortest server-hinted wait reported as a pause
// (Policy.OnPause): shorter ones are ordinary retries nobody needs to
// hear about, longer ones leave the progress standing still for a while
// and the user should see why and until when.
const PauseThreshold = 30 * time.Second

// Policy says how a Retrier retries.
type Policy struct {
	// Side names the connector in errors: "source" or "destination".
	Side string
	// Backoff paces retries; Backoff.Attempts is how often one operation
	// is tried while its side otherwise works.
	Backoff pacer.Backoff
	// Budget is how long the side may fail without a success before
	// every operation waiting for it gives up (DefaultBudget when 0).
	Budget time.Duration
	// Probe asks the side for something cheap (a folder list), to tell
	// an operation's own trouble from an outage. It must not go through
	// the Retrier.
	Probe func(context.Context) error
	// OnRetry is called before each retry (counters, throttling signals).
	OnRetry func()
	// OnPause, when set, is told when an operation waits at least
	// PauseThreshold because the server asked (a Retry-After, Gmail's
	// daily limit), and with the zero Pause when the side works again.
	OnPause func(accounting.Pause)
	// Outage, when set, is shared by the retriers of one run: the first
	// side to stay down for its budget ends it (see Outage).
	Outage *Outage
	// Now is the clock the budget and the probes' pacing are measured
	// on (time.Now when nil): tests step it instead of sleeping.
	Now func() time.Time
}

// Outage ends a run whose source or destination stopped answering for
// longer than its budget. Share one between the retriers of a run.
type Outage struct {
	cancel context.CancelCauseFunc
	u      atomic.Pointer[UnreachableError]
}

// NewOutage returns an Outage that calls cancel (nil for none) with the
// UnreachableError when a side's budget runs out.
func NewOutage(cancel context.CancelCauseFunc) *Outage { return &Outage{cancel: cancel} }

// Err is the error that ended the run, nil while it goes on.
func (o *Outage) Err() *UnreachableError { return o.u.Load() }

// UnreachableError ends a run whose source or destination did not answer
// for longer than its budget. Every message not copied is then reported
// with it.
type UnreachableError struct {
	Side string        // "source" or "destination"
	For  time.Duration // how long it had been failing
	Last error         // the last error seen
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the %s was unreachable for %s (%v)", e.Side, e.For.Round(time.Second), e.Last)
}

func (e *UnreachableError) Unwrap() error { return e.Last }

// IsUnreachable reports whether err is (or wraps) an UnreachableError.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// Retrier follows one side of a run (whether its calls succeed, and since
// when it has failed without a single success: an outage) and decides
// what to do after a failure. It is safe for concurrent use; every
// operation on the side shares it.
type Retrier struct {
	p Policy

	seq       atomic.Uint64 // successes so far
	downSince atomic.Int64  // UnixNano of the first failure since the last success; 0 while up

	paused atomic.Bool // OnPause was told of a pause not yet over

	probeMu  sync.Mutex
	probedAt time.Time
	probeErr error
}

// NewRetrier returns a Retrier with policy p.
func NewRetrier(p Policy) *Retrier {
	if p.Budget <= 0 {
		p.Budget = DefaultBudget
	}
	if p.Outage == nil {
		p.Outage = NewOutage(nil)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Retrier{p: p}
}

// OK records a success, or progress of a long operation.
func (r *Retrier) OK() {
	r.seq.Add(1)
	if r.downSince.Load() != 0 {
		r.downSince.Store(0)
	}
	if r.paused.Load() && r.paused.CompareAndSwap(true, false) {
		r.p.OnPause(accounting.Pause{})
	}
}

// pause tells OnPause that an operation waits for wait on the server's
// hint in err.
func (r *Retrier) pause(err error, wait time.Duration) {
	if r.p.OnPause == nil {
		return
	}
	cause := accounting.PauseThrottled
	if connector.IsDailyLimit(err) {
		cause = accounting.PauseDailyLimit
	}
	r.paused.Store(true)
	r.p.OnPause(accounting.Pause{Cause: cause, Until: r.p.Now().Add(wait).UTC()})
}

// fail records a transient failure and returns the success count and how
// long the side has been failing without a success.
func (r *Retrier) fail() (uint64, time.Duration) {
	now := r.p.Now().UnixNano()
	r.downSince.CompareAndSwap(0, now)
	since := r.downSince.Load()
	if since == 0 { // a success came in between
		return r.seq.Load(), 0
	}
	return r.seq.Load(), time.Duration(now - since)
}

// answers probes the side, at most once a second for all callers.
func (r *Retrier) answers(ctx context.Context) bool {
	if r.p.Probe == nil {
		return false
	}
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	if r.p.Now().Sub(r.probedAt) < time.Second {
		return r.probeErr == nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r.probeErr = r.p.Probe(pctx)
	cancel()
	r.probedAt = r.p.Now()
	if r.probeErr == nil {
		r.OK()
	}
	return r.probeErr == nil
}

// Tries is the retry state of one operation (a listing, a batch of
// fetches, one message's append). The zero value is ready.
type Tries struct {
	total int    // failures in a row, for the backoff
	own   int    // those while the side otherwise worked: the operation's own
	seq   uint64 // the side's success count at the last failure
}

// Reset forgets the failures: the operation made progress.
func (t *Tries) Reset() { *t = Tries{} }

// Next decides what to do after an operation on the side failed with
// err: try again after wait, or give up with final (err itself, or an
// *UnreachableError once the side has been down for the whole budget).
//
// A transient error (or one of unknown kind) is retried with backoff,
// waiting at least as long as the server asked (connector.RetryAfterOf).
// A failure counts against the operation's attempts
// (Policy.Backoff.Attempts) only when the side is evidently working: it
// is the operation's first, or another call succeeded since its previous
// try, or (once it has failed that many times in a row) the side answers
// a probe. Failures while the side answers nothing are an outage: the
// operation waits, backing off, and the attempts it used during the
// outage are not held against it when the side is back (a session left
// over from before the outage fails once more). Once an outage has
// lasted the budget, every operation gives up with the UnreachableError.
func (r *Retrier) Next(ctx context.Context, t *Tries, err error) (wait time.Duration, final error) {
	k := connector.KindOf(err)
	if !(k == connector.KindTransient || k == connector.KindUnknown) || ctx.Err() != nil || errors.Is(err, connector.ErrCursorInvalid) {
		return 0, err
	}
	if u := r.p.Outage.Err(); u != nil {
		return 0, u
	}
	seq, down := r.fail()
	b := r.p.Backoff
	worked := t.total == 0 || seq != t.seq
	t.total++
	t.seq = seq
	if !worked && t.total >= b.MaxAttempts() && r.answers(ctx) {
		worked, t.seq = true, r.seq.Load()
	}
	if worked {
		if t.own++; t.own >= b.MaxAttempts() {
			return 0, err // the side works: this operation's own failure
		}
	} else if down >= r.p.Budget {
		return 0, r.abandon(down, err)
	}
	hint := connector.RetryAfterOf(err)
	wait = b.Delay(t.total, hint)
	if hint >= PauseThreshold {
		r.pause(err, wait)
	}
	return wait, nil
}

// abandon ends the run: the side has been down for the whole budget.
func (r *Retrier) abandon(down time.Duration, last error) error {
	u := &UnreachableError{Side: r.p.Side, For: down, Last: last}
	o := r.p.Outage
	if o.u.CompareAndSwap(nil, u) && o.cancel != nil {
		o.cancel(u)
	}
	return o.u.Load()
}

// Do runs op until it succeeds, fails for good, or ctx ends. t may be
// nil; an op that makes progress between failures should reset it. An
// error wrapped with Final ends the loop at once.
func (r *Retrier) Do(ctx context.Context, t *Tries, op func() error) error {
	if t == nil {
		t = &Tries{}
	}
	for {
		err := op()
		if err == nil {
			r.OK()
			return nil
		}
		var fe finalError
		if errors.As(err, &fe) {
			return fe.err
		}
		wait, final := r.Next(ctx, t, err)
		if final != nil {
			return final
		}
		if r.p.OnRetry != nil {
			r.p.OnRetry()
		}
		if pacer.Sleep(ctx, wait) != nil {
			if u := r.p.Outage.Err(); u != nil {
				return u
			}
			return err
		}
	}
}

// finalError marks an error that Do must not retry.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }

// Final wraps err so that Do returns it without retrying.
func Final(err error) error { return finalError{err} }

// Retry wraps c so that its idempotent calls are retried through r:
// Folders, FoldersNoted, Statuses (the folders that failed transiently),
// Quota, SetFlags, Delete, CreateFolder, and List and Fetch until their
// callback was first called. Once a callback has been called, a failure
// is returned at once: the caller knows what it has received and
// continues from there (the engine relists, or fetches the rest). Append
// is never retried here: whether a lost APPEND stored its message is for
// the engine to find out before sending it again. Warm and Close pass
// through.
func Retry(c connector.Conn, r *Retrier) *Retrying { return &Retrying{base: base{c}, r: r} }

// Retrying is a connector wrapped by Retry.
type Retrying struct {
	base
	r *Retrier
}

// Retrier returns the layer's Retrier.
func (c *Retrying) Retrier() *Retrier { return c.r }

func (c *Retrying) Folders(ctx context.Context) ([]connector.Folder, error) {
	var out []connector.Folder
	err := c.r.Do(ctx, nil, func() error {
		var err error
		out, err = c.in.Folders(ctx)
		return err
	})
	return out, err
}

func (c *Retrying) FoldersNoted(ctx context.Context) ([]connector.Folder, []connector.FolderNote, error) {
	var out []connector.Folder
	var notes []connector.FolderNote
	err := c.r.Do(ctx, nil, func() error {
		var err error
		out, notes, err = c.base.FoldersNoted(ctx)
		return err
	})
	return out, notes, err
}

func (c *Retrying) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var lst connector.Listing
	err := c.r.Do(ctx, nil, func() error {
		called := false
		var err error
		lst, err = c.in.List(ctx, f, opts, func(ms []connector.Message) error {
			called = true
			c.r.OK()
			return fn(ms)
		})
		if err != nil && called {
			return Final(err)
		}
		return err
	})
	return lst, err
}

func (c *Retrying) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	return c.r.Do(ctx, nil, func() error {
		called := false
		err := c.base.Fetch(ctx, f, msgs, func(b connector.Body, err error) error {
			called = true
			return fn(b, err)
		})
		if err != nil && called {
			return Final(err)
		}
		return err
	})
}

func (c *Retrying) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	var out connector.Folder
	err := c.r.Do(ctx, nil, func() error {
		var err error
		out, err = c.base.CreateFolder(ctx, p, role)
		return err
	})
	return out, err
}

func (c *Retrying) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	return c.r.Do(ctx, nil, func() error { return c.base.SetFlags(ctx, f, ids, flags) })
}

func (c *Retrying) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	return c.r.Do(ctx, nil, func() error { return c.base.Delete(ctx, f, ids) })
}

func (c *Retrying) Quota(ctx context.Context) (connector.Quota, bool, error) {
	var q connector.Quota
	var ok bool
	err := c.r.Do(ctx, nil, func() error {
		var err error
		q, ok, err = c.base.Quota(ctx)
		return err
	})
	return q, ok, err
}

// Statuses asks again for the folders whose status failed transiently;
// a fatal error (a refused login) or the end of the budget is left in
// their errors.
func (c *Retrying) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	todo := make([]int, len(folders))
	for i := range todo {
		todo[i] = i
	}
	var t Tries
	for len(todo) > 0 {
		fs := make([]connector.Folder, len(todo))
		var cs []connector.Cursor
		if since != nil {
			cs = make([]connector.Cursor, len(todo))
		}
		for j, i := range todo {
			fs[j] = folders[i]
			if since != nil && i < len(since) {
				cs[j] = since[i]
			}
		}
		got, gerrs := c.base.Statuses(ctx, fs, cs)
		var again []int
		var last error
		for j, i := range todo {
			sts[i], errs[i] = got[j], gerrs[j]
			if k := connector.KindOf(gerrs[j]); gerrs[j] != nil && (k == connector.KindTransient || k == connector.KindUnknown) {
				again, last = append(again, i), gerrs[j]
			}
		}
		if len(again) == 0 {
			c.r.OK()
			return sts, errs
		}
		if len(again) < len(todo) {
			c.r.OK()
			t.Reset()
		}
		wait, final := c.r.Next(ctx, &t, last)
		if final != nil {
			for _, i := range again {
				if IsUnreachable(final) {
					errs[i] = final
				}
			}
			return sts, errs
		}
		if c.r.p.OnRetry != nil {
			c.r.p.OnRetry()
		}
		if err := pacer.Sleep(ctx, wait); err != nil {
			return sts, errs
		}
		todo = again
	}
	return sts, errs
}
