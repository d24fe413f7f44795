package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailferry/mailferry/internal/store"
)

// Queue is River in the service database: its SQLite driver in the
// embedded default (the queue's tables live in mailferry.db), its pgx
// driver on PostgreSQL. Jobs are inserted in the transaction that records
// what they work on (service.Queue).
type Queue struct {
	st     *store.Store
	client riverClient
	log    *slog.Logger
	cfg    Config
	runner *Runner

	stopReaper context.CancelFunc
	reaperDone chan struct{}
	stopOnce   sync.Once
}

// Config tunes the queue.
type Config struct {
	// MaxWorkers is the limit of mailboxes worked at once by this
	// process (default 10).
	MaxWorkers int
	// Work, when false, only inserts and cancels jobs (an API-only
	// process).
	Work bool
	Log  *slog.Logger
	// RescueAfter is when River's rescuer retires a job left running by
	// a dead worker once the reaper has cancelled it (default 1 minute).
	// Dead workers' mailboxes are taken over by the reaper through their
	// leases (Runner.LeaseTTL), not by River: its rescuer never runs a
	// job again that has no timeout, and migrations have none.
	RescueAfter time.Duration
	// DataDir is where an older version kept its separate job database
	// (jobs.db), to be moved over (SQLite only).
	DataDir string
}

// riverClient is a River client of either driver.
type riverClient interface {
	Start(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	insert(ctx context.Context, tx *store.Tx, refs []store.JobRef, at time.Time) ([]int64, error)
	JobCancel(ctx context.Context, id int64) error
	running(ctx context.Context) ([]*rivertype.JobRow, error)
}

type client[TTx any] struct {
	*river.Client[TTx]
	unwrap func(*store.Tx) TTx
}

func (c client[TTx]) insert(ctx context.Context, tx *store.Tx, refs []store.JobRef, at time.Time) ([]int64, error) {
	params := make([]river.InsertManyParams, len(refs))
	for i, r := range refs {
		params[i] = river.InsertManyParams{Args: PassArgs{PassID: r.PassID, MailboxID: r.MailboxID}}
		if !at.IsZero() {
			params[i].InsertOpts = &river.InsertOpts{ScheduledAt: at}
		}
	}
	res, err := c.InsertManyTx(ctx, c.unwrap(tx), params)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert: %w", err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids, nil
}

// running lists the mailbox jobs River has as running (on any worker,
// dead or alive): at most the cluster's worker slots, plus jobs whose
// process died, until they are cancelled.
func (c client[TTx]) running(ctx context.Context) ([]*rivertype.JobRow, error) {
	res, err := c.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).Kinds(PassArgs{}.Kind()).First(10000))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

func (c client[TTx]) JobCancel(ctx context.Context, id int64) error {
	_, err := c.Client.JobCancel(ctx, id)
	return err
}

// Open sets up River in st's database: it runs River's migrations for the
// engine (under the store's migration lock, so that processes starting
// together take turns), and on SQLite moves the unfinished passes of an
// older version's separate job database over (see upgradeJobsDB).
func Open(ctx context.Context, st *store.Store, runner *Runner, cfg Config) (*Queue, error) {
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 10
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	rc := &river.Config{
		Logger:            cfg.Log,
		JobTimeout:        -1,
		FetchPollInterval: 250 * time.Millisecond,
		FetchCooldown:     50 * time.Millisecond,
		// See Config.RescueAfter.
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          25,
	}
	if cfg.Work {
		workers := river.NewWorkers()
		river.AddWorker(workers, &Worker{R: runner})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}}
	}
	q := &Queue{st: st, log: cfg.Log, cfg: cfg, runner: runner}
	if runner != nil {
		runner.queue = q
	}
	var err error
	switch st.Engine() {
	case "postgres":
		q.client, err = newClient(ctx, st, riverpgxv5.New(st.Pool()), rc, func(tx *store.Tx) pgx.Tx { return tx.Pgx() })
	default:
		// River's SQLite driver shares the store's single connection:
		// one writer at a time is SQLite's model, and it is what lets
		// the store's transactions carry River's inserts.
		q.client, err = newClient(ctx, st, riversqlite.New(st.DB()), rc, func(tx *store.Tx) *sql.Tx { return tx.SQL() })
	}
	if err != nil {
		return nil, err
	}
	if st.Engine() == "sqlite" && cfg.DataDir != "" {
		if err := q.upgradeJobsDB(ctx, cfg.DataDir); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func newClient[TTx any](ctx context.Context, st *store.Store, driver riverdriver.Driver[TTx], rc *river.Config,
	unwrap func(*store.Tx) TTx) (riverClient, error) {
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("jobs: prepare migrations: %w", err)
	}
	err = st.Locked(ctx, func(ctx context.Context) error {
		_, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: migrate the job queue: %w", err)
	}
	c, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return client[TTx]{Client: c, unwrap: unwrap}, nil
}

// upgradeJobsDB moves an older version's queue over. Up to now the
// embedded default kept River's jobs in jobs.db next to mailferry.db, and
// a pass was committed before its jobs were queued. Its jobs are not
// read: every part of a running pass that is still queued or running gets
// a new job here, in one transaction, and resumes from the sync state
// without duplicates like after any restart. jobs.db is then renamed
// jobs.db.old (with its -wal and -shm files), kept for the operator to
// delete; a crash before the rename just does this again at the next
// start.
func (q *Queue) upgradeJobsDB(ctx context.Context, dir string) error {
	old := filepath.Join(dir, "jobs.db")
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	parts, err := q.st.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("jobs: moving the queue from jobs.db: %w", err)
	}
	refs := make([]store.JobRef, len(parts))
	for i, p := range parts {
		refs[i] = p.JobRef
	}
	if err := q.st.ReplaceAllJobs(ctx, refs, q.Enqueue); err != nil {
		return fmt.Errorf("jobs: moving the queue from jobs.db: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Rename(old+suffix, old+".old"+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("jobs: the queue moved into mailferry.db, but %s could not be renamed: %w (remove it by hand)", old+suffix, err)
		}
	}
	q.log.Warn("moved the job queue from jobs.db into mailferry.db; the old file is kept as jobs.db.old and can be deleted",
		"requeued_mailbox_passes", len(refs))
	return nil
}

// Start begins working jobs, and taking over the mailboxes of workers
// that died (see reap).
func (q *Queue) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stopReaper, q.reaperDone = cancel, make(chan struct{})
	go q.reap(rctx)
	return nil
}

// Stop cancels running jobs (each hands its mailbox over to a new job,
// which resumes from the sync state here after a restart or on another
// worker) and waits for them to return.
func (q *Queue) Stop(ctx context.Context) error {
	var err error
	q.stopOnce.Do(func() {
		if q.stopReaper != nil {
			q.stopReaper()
			<-q.reaperDone
		}
		err = q.client.StopAndCancel(ctx)
	})
	return err
}

// Enqueue implements service.Queue and store.Enqueuer: jobs inserted in
// tx, committed with it.
func (q *Queue) Enqueue(ctx context.Context, tx *store.Tx, refs []store.JobRef) ([]int64, error) {
	return q.client.insert(ctx, tx, refs, time.Time{})
}

// enqueueAt is Enqueue for jobs to run no sooner than at.
func (q *Queue) enqueueAt(at time.Time) store.Enqueuer {
	return func(ctx context.Context, tx *store.Tx, refs []store.JobRef) ([]int64, error) {
		return q.client.insert(ctx, tx, refs, at)
	}
}

// Cancel implements service.Queue.
func (q *Queue) Cancel(ctx context.Context, jobID int64) error {
	err := q.client.JobCancel(ctx, jobID)
	if err != nil && !errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("jobs: cancel: %w", err)
	}
	return nil
}

// reap takes over, every few seconds, the mailboxes whose worker died
// (was killed, lost its machine or the database):
//
//   - a part a worker claimed whose mailbox lease expired gets a new job
//     in place of its old one (which, if it is ever delivered again, finds
//     itself replaced and ends);
//   - a job River has had running for two lease times whose part nobody
//     claimed (its process died between River handing it out and the
//     claim, or between giving the part back and River recording that)
//     gets a new job the same way. River's own rescuer never runs jobs
//     again that have no timeout, which migrations cannot have;
//   - a job left running by a dead worker and since replaced is
//     cancelled, so that River's rescuer retires it.
//
// Only parts without a live lease are touched, never a live worker's:
// every worker process reaps, and of two reaping the same part one wins.
func (q *Queue) reap(ctx context.Context) {
	defer close(q.reaperDone)
	ttl := q.runner.leaseTTL()
	for {
		// Jitter keeps the workers' reapers out of step.
		wait := ttl/2 + time.Duration(rand.Int64N(int64(ttl/4)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := q.reapOnce(ctx, ttl); err != nil && ctx.Err() == nil {
			q.log.Warn("looking for mailbox passes of workers that died", "error", err)
		}
	}
}

func (q *Queue) reapOnce(ctx context.Context, ttl time.Duration) error {
	parts, err := q.st.AbandonedParts(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		q.takeOver(ctx, p.JobRef, p.JobID, "worker "+p.Worker+" stopped renewing its lease")
	}
	jobs, err := q.client.running(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.AttemptedAt == nil || time.Since(*j.AttemptedAt) < 2*ttl {
			continue
		}
		var a PassArgs
		if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
			continue
		}
		ref := store.JobRef{PassID: a.PassID, MailboxID: a.MailboxID}
		part, err := q.st.PartState(ctx, a.PassID, a.MailboxID)
		switch {
		case errors.Is(err, store.ErrNoRows) || err == nil && (part.JobID != j.ID || isOver(part.Status)):
			// Replaced or over: nothing runs it any more.
			_ = q.Cancel(ctx, j.ID)
		case err != nil:
			return err
		case part.Worker == "":
			q.takeOver(ctx, ref, j.ID, "its job was handed to a worker that stopped before it began")
		}
	}
	return nil
}

func isOver(status string) bool {
	switch status {
	case "queued", "verifying", "migrating":
		return false
	}
	return true
}

// takeOver gives a part a new job in place of oldJob, unless it changed
// meanwhile (another reaper was first, or a worker holds its lease).
func (q *Queue) takeOver(ctx context.Context, ref store.JobRef, oldJob int64, why string) {
	ok, err := q.st.ReplaceJob(ctx, ref, oldJob, time.Now().Unix(), "taken over: "+why+"; resumes where it stopped", q.Enqueue)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn("taking over an abandoned mailbox pass", "mailbox", ref.MailboxID, "error", err)
		}
		return
	}
	if !ok {
		return
	}
	q.log.Info("taking over a mailbox pass whose worker stopped renewing its lease; it resumes from the sync state",
		"mailbox", ref.MailboxID, "pass", ref.PassID, "why", why)
	if m := q.runner.Metrics; m != nil {
		m.takeovers.Inc()
	}
	_ = q.Cancel(ctx, oldJob) // retired by River's rescuer
}
