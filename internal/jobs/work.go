package jobs

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
)

// Worker is the River worker for PassArgs.
type Worker struct {
	river.WorkerDefaults[PassArgs]
	R *Runner
}

// Timeout: migrations take as long as they take; a stuck server is
// handled by connection timeouts, and leases guard against a dead worker.
func (w *Worker) Timeout(*river.Job[PassArgs]) time.Duration { return -1 }

// Why a job's work was cancelled, besides the process shutting down.
var (
	errStopRequested = errors.New("the pass was stopped")
	errLeaseLost     = errors.New("lost the mailbox's lease")
)

// Work runs one mailbox's part of a pass.
//
// A part is worked on by the job the database names (mailbox_passes.job_id)
// and by one worker at a time: the one holding the mailbox's lease, which
// it renews while it works. Having taken the lease, the worker claims the
// part (records its name on it); a claimed part whose lease expires is
// taken over by another worker's reaper (Queue.reap), which gives it a
// new job. A worker shutting down hands its part over to a new job the
// same way (in one transaction). So River's own deliveries, retries and
// rescues can never make two workers copy one mailbox, and a job
// delivered twice ends at once.
func (w *Worker) Work(ctx context.Context, job *river.Job[PassArgs]) error {
	r := w.R
	a := job.Args
	ref := store.JobRef{PassID: a.PassID, MailboxID: a.MailboxID}
	st := r.State
	part, err := st.PartState(ctx, a.PassID, a.MailboxID)
	if errors.Is(err, store.ErrNoRows) {
		return nil // deleted meanwhile: nothing to do
	}
	if err != nil {
		return err
	}
	// Replaced (after a worker died or shut down) or already over.
	if part.JobID != job.ID || service.Status(part.Status).Terminal() {
		return nil
	}
	work, err := r.Service.LoadWork(ctx, a.PassID, a.MailboxID)
	if errors.Is(err, service.ErrNotFound) {
		return nil
	}
	keyErr := errors.Is(err, service.ErrSecretKey)
	if err != nil && !keyErr {
		return err
	}
	// One worker per mailbox. The holder names this execution, not just
	// the process or the job: River may deliver one job twice (its
	// rescue of a long-running job), and two jobs of one process (a
	// stopped pass winding down and the next one) must not share a
	// mailbox either.
	holder := fmt.Sprintf("%s/job:%d/%s", r.Holder, job.ID, nonce())
	mbLease := store.MailboxLease(a.MailboxID)
	ok, err := st.AcquireLease(ctx, mbLease, holder, r.leaseTTL())
	if err != nil {
		return err
	}
	if !ok {
		if part.Worker != "" {
			// This job is being worked on by a live worker (River
			// delivered it again): that worker finishes it, or hands
			// it over, or its lease expires and it is taken over.
			return nil
		}
		// The previous pass over this mailbox is still letting go.
		return river.JobSnooze(5 * time.Second)
	}
	// The leases are renewed until the work is over, not until the job
	// is cancelled: a cancelled engine still settles the appends on the
	// wire, and until they are settled no one else may start on the
	// mailbox.
	bg := context.WithoutCancel(ctx)
	keepCtx, stopKeeping := context.WithCancel(bg)
	keep := r.keeper(holder, a.PassID, mbLease)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go keep.run(keepCtx, cancel)
	release := func() {
		stopKeeping()
		keep.wait()
		keep.release(bg)
		cancel(nil)
	}
	defer stopKeeping()
	if ok, err := st.ClaimPart(ctx, ref, job.ID, r.name()); err != nil || !ok {
		release()
		return err // replaced meanwhile (nil), or a database error to retry
	}
	if s, _ := r.Service.PassState(ctx, a.PassID); s == "stopping" || s == "stopped" {
		defer release()
		return r.Service.FinishMailboxPass(bg, a.PassID, a.MailboxID, service.Outcome{Status: service.StatusStopped, Detail: "stopped"})
	}
	if keyErr {
		defer release()
		// The passwords were sealed with another key: retrying (River
		// would, 25 times over days) cannot help, new passwords can.
		if r.Metrics != nil {
			r.Metrics.failures.WithLabelValues(string(service.ClassSecretKey)).Inc()
		}
		return r.Service.FinishMailboxPass(bg, a.PassID, a.MailboxID, service.Outcome{Status: service.StatusFailed,
			Class: service.ClassSecretKey, Error: service.ErrSecretKey.Error(), Detail: "the stored passwords cannot be read"})
	}
	// A bounded number of mailboxes per provider host and in the whole
	// cluster; the leases are renewed from here on with the mailbox's.
	slots, err := r.waitSlots(ctx, work, holder)
	if err == nil && slots == nil && ctx.Err() == nil {
		// Every slot is taken: give the River worker back for a
		// while, unclaimed, so that no one takes the part over.
		_ = st.UnclaimPart(bg, ref, job.ID)
		release()
		return river.JobSnooze(time.Second)
	}
	keep.add(slots...)
	if err != nil || ctx.Err() != nil {
		return r.interrupted(bg, ctx, ref, job.ID, holder, release, err, nil)
	}

	status := service.StatusMigrating
	if !work.Pass.Kind.Copies() {
		status = service.StatusVerifying
	}
	if err := r.Service.BeginMailboxPass(ctx, a.PassID, a.MailboxID, status, r.name()); err != nil {
		return r.interrupted(bg, ctx, ref, job.ID, holder, release, err, nil)
	}
	start := time.Now()
	out := r.run(ctx, work)
	if r.afterRun != nil {
		r.afterRun(ctx)
	}
	// The outcome is what the work did, whatever came after: a pass
	// that finished (r.run decided that once, from what the engine
	// returned) stays finished when a Stop or a shutdown cancels the job
	// an instant later, and a pass that was cut short is stopped with
	// the counts of what it copied, not those of the last progress
	// report. Only a lost lease writes nothing (see interrupted).
	if ctx.Err() != nil && (!finished(out.Status) || errors.Is(context.Cause(ctx), errLeaseLost)) {
		return r.interrupted(bg, ctx, ref, job.ID, holder, release, nil, &out)
	}
	defer release()
	if err := r.Service.FinishMailboxPass(bg, a.PassID, a.MailboxID, out); err != nil {
		return err
	}
	if r.Metrics != nil {
		r.Metrics.passes.WithLabelValues(string(work.Pass.Kind), string(out.Status)).Inc()
		r.Metrics.passDuration.WithLabelValues(string(work.Pass.Kind)).Observe(time.Since(start).Seconds())
		if out.Class != "" {
			r.Metrics.failures.WithLabelValues(string(out.Class)).Inc()
		}
	}
	return nil
}

// finished reports whether a part's work ran to its end (with or
// without per-message failures), as opposed to being cut short.
func finished(s service.Status) bool {
	switch s {
	case service.StatusCompleted, service.StatusCompletedWithErrors, service.StatusReady:
		return true
	}
	return false
}

// interrupted ends a job whose work was cut short (its context was
// cancelled, or err): stopped by the user, the lease lost, or the process
// shutting down. The engine has returned by now: what it did is in the
// sync state, and appends still in flight were settled or are recorded as
// intents that the next pass reconciles by identity. done, when the work
// got that far, is what it did: a stopped part shows those counts.
func (r *Runner) interrupted(bg, ctx context.Context, ref store.JobRef, jobID int64, holder string, release func(), err error,
	done *service.Outcome) error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errStopRequested) || r.stopping(bg, ref.PassID):
		defer release()
		out := service.Outcome{Status: service.StatusStopped, Detail: "stopped by the user"}
		if done != nil {
			out.Progress, out.Plan, out.Failures = done.Progress, done.Plan, done.Failures
		}
		return r.Service.FinishMailboxPass(bg, ref.PassID, ref.MailboxID, out)
	case errors.Is(cause, errLeaseLost):
		// Another worker may own the mailbox by now: write nothing
		// more about it. If no one does, the reaper gives it a new job
		// once the lease has expired.
		if r.Metrics != nil {
			r.Metrics.leaseLosses.Inc()
		}
		r.Log.Warn("stopped working on a mailbox: its lease could not be kept", "mailbox", ref.MailboxID, "pass", ref.PassID,
			"cause", cause.Error())
		release()
		return nil
	}
	// Shutting down (or the database failed us): hand the part over to
	// a new job, which resumes from the sync state here after a restart
	// or on any other worker, and let this one end.
	cancelRelease := func() { release() }
	if r.queue != nil {
		ok, herr := r.State.HandOver(bg, ref, jobID, holder, time.Now().Unix(),
			"worker "+r.name()+" shut down; resumes where it stopped", r.queue.enqueueAt(time.Now().Add(time.Second)))
		if herr == nil && ok {
			cancelRelease()
			return nil
		}
		if herr != nil {
			err = errors.Join(err, herr)
		}
	}
	cancelRelease()
	if err != nil {
		return err // River retries it
	}
	return river.JobSnooze(time.Second)
}

func (r *Runner) stopping(ctx context.Context, passID string) bool {
	s, _ := r.Service.PassState(ctx, passID)
	return s == "stopping" || s == "stopped"
}

func (r *Runner) name() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Holder
}

func nonce() string {
	b := make([]byte, 6)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// waitSlots waits a while for a slot of every provider host the part
// connects to (source and destination) and, with MaxMailboxes, one of the
// cluster's. It takes all or none at each try, so that a job never holds
// one host's slot while it waits for another's. Waiting here rather than
// snoozing the job for seconds lets the next mailbox start as soon as one
// finishes: with 20 mailboxes on one host and 5 slots, 5-second snoozes
// made the passes take twice as long as the copying. After hostWait it
// returns no slots (nil) so that a long queue does not hold every worker.
func (r *Runner) waitSlots(ctx context.Context, w service.Work, holder string) ([]string, error) {
	limit := r.HostLimit
	if limit <= 0 {
		limit = 5
	}
	var groups []slotGroup
	hosts := map[string]bool{}
	for _, h := range []string{w.Project.Source.Host, w.Destination.Host} {
		h = strings.ToLower(h)
		if h != "" && !hosts[h] {
			hosts[h] = true
			groups = append(groups, slotGroup{"host:" + h, limit})
		}
	}
	if r.MaxMailboxes > 0 {
		groups = append(groups, slotGroup{"cluster", r.MaxMailboxes})
	}
	deadline := time.Now().Add(hostWait)
	poll := hostPoll
	for {
		got, err := r.trySlots(ctx, groups, holder)
		if err != nil || got != nil || time.Now().After(deadline) {
			return got, err
		}
		// Jitter keeps waiting jobs from polling in step; the longer a
		// job waits, the less often it looks, up to every 300-600 ms: a
		// full group costs a poll one read (Store.AcquireSlot), and a
		// longer wait leaves a freed slot idle (at a second, about 0.75
		// s per mailbox handed on, some 15 % of a 5-second mailbox).
		wait := poll + time.Duration(rand.Int64N(int64(poll)))
		poll = min(poll*3/2, hostPollMax)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

type slotGroup struct {
	name string
	n    int
}

const (
	hostWait    = 30 * time.Second
	hostPoll    = 100 * time.Millisecond
	hostPollMax = 300 * time.Millisecond
)

func (r *Runner) trySlots(ctx context.Context, groups []slotGroup, holder string) ([]string, error) {
	got := make([]string, 0, len(groups))
	giveBack := func() {
		for _, l := range got {
			_ = r.State.ReleaseLease(context.WithoutCancel(ctx), l, holder)
		}
	}
	for _, g := range groups {
		l, err := r.State.AcquireSlot(ctx, g.name, g.n, holder, r.leaseTTL())
		if err != nil || l == "" {
			giveBack()
			return nil, err
		}
		got = append(got, l)
	}
	return got, nil
}

// keeper renews a job's leases while it works, and watches its pass for
// a Stop given to any API process.
type keeper struct {
	r      *Runner
	holder string
	passID string

	mu     sync.Mutex
	leases []string
	done   chan struct{}
}

func (r *Runner) keeper(holder, passID string, leases ...string) *keeper {
	return &keeper{r: r, holder: holder, passID: passID, leases: leases, done: make(chan struct{})}
}

func (k *keeper) add(leases ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.leases = append(k.leases, leases...)
}

func (k *keeper) held() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.leases...)
}

// run renews the leases every third of their time to live until ctx ends
// (the work is over). A lease lost to someone else stops the work at once
// (cancel with errLeaseLost). So does failing to renew for two thirds of
// the time to live (the database is out of reach, or too slow to answer
// within a third): the lease is about to expire and another worker to
// take over, so the work stops while the lease still holds, and the
// appends in flight settle before anyone else can start on the mailbox.
// Renewing goes on while the work winds down: a renewal that gets
// through before the lease expires protects the rest of the wind-down.
func (k *keeper) run(ctx context.Context, cancel context.CancelCauseFunc) {
	defer close(k.done)
	ttl := k.r.leaseTTL()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	lastOK := time.Now()
	stopped := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var failure error
		for _, l := range k.held() {
			rctx, done := context.WithTimeout(ctx, ttl/3)
			ok, err := k.r.State.RenewLease(rctx, l, k.holder, ttl)
			done()
			if ctx.Err() != nil {
				return
			}
			if err == nil && !ok {
				cancel(fmt.Errorf("%w %s: another worker has it, or it expired", errLeaseLost, l))
				return
			}
			if err != nil {
				failure = err
			}
		}
		if failure != nil {
			if !stopped && time.Since(lastOK) >= ttl*2/3 {
				cancel(fmt.Errorf("%w: renewing failed for %v: %v", errLeaseLost, time.Since(lastOK).Round(time.Millisecond), failure))
				stopped = true
			}
			continue
		}
		lastOK = time.Now()
		if !stopped && k.r.stopping(ctx, k.passID) {
			// Keep renewing while the work winds down.
			cancel(errStopRequested)
			stopped = true
		}
	}
}

// wait waits for run to return (after the context was cancelled).
func (k *keeper) wait() { <-k.done }

// release gives every lease back (what it cannot give back within a
// lease's time expires anyway).
func (k *keeper) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, k.r.leaseTTL())
	defer cancel()
	for _, l := range k.held() {
		_ = k.r.State.ReleaseLease(ctx, l, k.holder)
	}
}
