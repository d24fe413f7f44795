package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
)

// Queue is River with its embedded SQLite driver. It implements
// service.Queue.
type Queue struct {
	db     *sql.DB
	client *river.Client[*sql.Tx]
}

// Config tunes the queue.
type Config struct {
	// MaxWorkers is the global limit of mailboxes worked at once by this
	// process (default 10).
	MaxWorkers int
	// Work, when false, only inserts jobs (an API-only process).
	Work bool
	Log  *slog.Logger
	// RescueAfter is when a job whose process died is run again
	// (default 1 minute); the mailbox lease keeps it from running twice.
	RescueAfter time.Duration
}

// OpenSQLite opens the job database in dataDir (jobs.db, separate from
// the state database so neither waits on the other's writer) and applies
// River's migrations.
func OpenSQLite(ctx context.Context, dataDir string, runner *Runner, cfg Config) (*Queue, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, "jobs.db")
	if err := store.PrivateSQLite(path); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("jobs: open %s: %w", path, err)
	}
	// River's SQLite driver needs a single connection (one process).
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: prepare migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: migrate: %w", err)
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 10
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = time.Minute
	}
	rc := &river.Config{
		Logger:            cfg.Log,
		JobTimeout:        -1,
		FetchPollInterval: 250 * time.Millisecond,
		FetchCooldown:     50 * time.Millisecond,
		// A job whose process died is picked up again after this; the
		// mailbox lease (30 s) keeps it from running twice meanwhile.
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          25,
	}
	if cfg.Work {
		workers := river.NewWorkers()
		river.AddWorker(workers, &Worker{R: runner})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}}
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Queue{db: db, client: client}, nil
}

// Start begins working jobs.
func (q *Queue) Start(ctx context.Context) error { return q.client.Start(ctx) }

// Stop cancels running jobs (they checkpoint and are worked again after a
// restart) and waits for them to return.
func (q *Queue) Stop(ctx context.Context) error {
	err := q.client.StopAndCancel(ctx)
	if cerr := q.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Enqueue implements service.Queue.
func (q *Queue) Enqueue(ctx context.Context, passID, mailboxID string) (int64, error) {
	res, err := q.client.Insert(ctx, PassArgs{PassID: passID, MailboxID: mailboxID}, nil)
	if err != nil {
		return 0, fmt.Errorf("jobs: insert: %w", err)
	}
	return res.Job.ID, nil
}

// Cancel implements service.Queue.
func (q *Queue) Cancel(ctx context.Context, jobID int64) error {
	_, err := q.client.JobCancel(ctx, jobID)
	if err != nil && err != river.ErrNotFound {
		return fmt.Errorf("jobs: cancel: %w", err)
	}
	return nil
}

// Recover re-queues the mailbox passes a previous run of this process
// left unfinished (killed, crashed, power loss). River's SQLite driver
// serves a single process, so every job still marked running is an
// orphan: it is cancelled and replaced by a fresh job, which resumes from
// the sync state without duplicates. (With PostgreSQL and several
// workers, River's rescuer and the mailbox leases do this instead.)
func (q *Queue) Recover(ctx context.Context, svc interface {
	Unfinished(context.Context) ([]service.UnfinishedJob, error)
	SetJob(context.Context, string, string, int64) error
}) (int, error) {
	list, err := svc.Unfinished(ctx)
	if err != nil {
		return 0, err
	}
	for _, u := range list {
		if u.JobID != 0 {
			_ = q.Cancel(ctx, u.JobID)
		}
		id, err := q.Enqueue(ctx, u.PassID, u.MailboxID)
		if err != nil {
			return 0, err
		}
		if err := svc.SetJob(ctx, u.PassID, u.MailboxID, id); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}
