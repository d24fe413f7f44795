package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Pass is a pass's row.
type Pass struct {
	ID, ProjectID, Kind, State    string
	Cutoff, CreatedAt, FinishedAt int64
}

// MailboxPass is one mailbox's part of a pass, with its live progress as
// the worker running it last stored it.
type MailboxPass struct {
	PassID, Kind, MailboxID, SourceEmail, Status        string
	JobID                                               int64
	StartedAt, FinishedAt                               int64
	TotalMsgs, TotalBytes, Copied, CopiedBytes, Present int64
	Skipped, Failed, FlagUpdates                        int64
	Folder                                              string
	Rate                                                float64
	ETASeconds, QuotaUsed, QuotaLimit                   int64
	Warning, Plan, ErrorClass, LastError                string
	// Worker names the process that runs (or ran) it; ProgressAt is when
	// its progress was stored last.
	Worker     string
	ProgressAt int64
	// PauseCause and PauseUntil (Unix seconds) say that it waits on a
	// server's long hint; empty and 0 while it works.
	PauseCause string
	PauseUntil int64
}

// mailboxPassCols reads a MailboxPass from mp (a mailbox_passes row with
// its pass's kind as mp.kind) and m (its mailbox).
const mailboxPassCols = `mp.pass_id, mp.kind, mp.mailbox_id, m.source_email, mp.status, mp.job_id, mp.started_at, mp.finished_at,
	mp.total_msgs, mp.total_bytes, mp.copied, mp.copied_bytes, mp.present, mp.skipped, mp.failed, mp.flag_updates, mp.folder, mp.rate,
	mp.eta_seconds, mp.quota_used, mp.quota_limit, mp.warning, mp.plan, mp.error_class, mp.last_error, mp.worker, mp.progress_at,
	mp.pause_cause, mp.pause_until`

func scanMailboxPass(r row, m *MailboxPass) error {
	return r.Scan(&m.PassID, &m.Kind, &m.MailboxID, &m.SourceEmail, &m.Status, &m.JobID, &m.StartedAt, &m.FinishedAt,
		&m.TotalMsgs, &m.TotalBytes, &m.Copied, &m.CopiedBytes, &m.Present, &m.Skipped, &m.Failed, &m.FlagUpdates, &m.Folder, &m.Rate,
		&m.ETASeconds, &m.QuotaUsed, &m.QuotaLimit, &m.Warning, &m.Plan, &m.ErrorClass, &m.LastError, &m.Worker, &m.ProgressAt,
		&m.PauseCause, &m.PauseUntil)
}

const passCols = `x.id, x.project_id, x.kind, x.state, x.cutoff, x.created_at, x.finished_at`

func scanPass(r row, p *Pass) error {
	return r.Scan(&p.ID, &p.ProjectID, &p.Kind, &p.State, &p.Cutoff, &p.CreatedAt, &p.FinishedAt)
}

// JobRef names one mailbox's part of a pass, which one job works on.
type JobRef struct{ PassID, MailboxID string }

// Enqueuer inserts the jobs for refs in tx (River's InsertTx) and returns
// their IDs in the same order. Inserted in the transaction that records
// the pass, a job exists exactly when its pass does.
type Enqueuer func(ctx context.Context, tx *Tx, refs []JobRef) ([]int64, error)

// BusyError refuses a pass: a pass already works on this mailbox.
type BusyError struct{ MailboxID string }

func (e *BusyError) Error() string { return "mailbox " + e.MailboxID + " is already being worked on" }

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// CapError refuses a pass: the mailbox has taken part in the most passes
// of the capped kinds that the operator allows.
type CapError struct {
	MailboxID string
	// Passes is how many it has had, not counting the refused one.
	Passes int
}

func (e *CapError) Error() string {
	return fmt.Sprintf("mailbox %s has had %d passes, the most allowed", e.MailboxID, e.Passes)
}

// PassCap limits how many passes of Kinds one mailbox may take part in
// (stopped ones too: they copied mail). Max 0 means no limit.
type PassCap struct {
	Max   int
	Kinds []string
}

// CreatePass records a pass over mailboxIDs (each becomes queued, with
// detail in its history) and its jobs, in one transaction: if anything
// fails, neither the pass nor a job exists. A mailbox another pass works
// on (also one started by another process a moment ago) refuses the
// whole pass with a *BusyError.
func (s *Store) CreatePass(ctx context.Context, p Pass, createdNS int64, mailboxIDs []string, detail string, enqueue Enqueuer) error {
	return s.CreateCappedPass(ctx, p, createdNS, mailboxIDs, detail, PassCap{}, enqueue)
}

// CreateCappedPass is CreatePass that also refuses the whole pass with a
// *CapError when a mailbox would take part in more than limit.Max passes
// of limit.Kinds, this one included. The count is taken in the same
// transaction, after the mailboxes' rows are locked (PostgreSQL) or the
// write lock is held (SQLite), so concurrent requests cannot both slip
// under the cap.
func (s *Store) CreateCappedPass(ctx context.Context, p Pass, createdNS int64, mailboxIDs []string, detail string, limit PassCap, enqueue Enqueuer) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.q.exec(ctx, `INSERT INTO passes (id, project_id, kind, state, cutoff, created_at, created_ns) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			p.ID, p.ProjectID, p.Kind, p.State, p.Cutoff, p.CreatedAt, createdNS); err != nil {
			return fmt.Errorf("create pass: %w", err)
		}
		refs := make([]JobRef, len(mailboxIDs))
		for i, id := range mailboxIDs {
			n, err := tx.q.exec(ctx, `UPDATE mailboxes SET status = 'queued', status_at = $1 WHERE id = $2 AND project_id = $3
				AND status NOT IN `+busyStatuses, p.CreatedAt, id, p.ProjectID)
			if err != nil {
				return err
			}
			if n == 0 {
				return &BusyError{MailboxID: id}
			}
			if _, err := tx.q.exec(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, 'queued', $3)`,
				id, p.CreatedAt, detail); err != nil {
				return err
			}
			if _, err := tx.q.exec(ctx, `INSERT INTO mailbox_passes (pass_id, mailbox_id, status) VALUES ($1, $2, 'queued')`, p.ID, id); err != nil {
				return err
			}
			refs[i] = JobRef{PassID: p.ID, MailboxID: id}
		}
		if err := overCap(ctx, tx, p, limit); err != nil {
			return err
		}
		ids, err := enqueue(ctx, tx, refs)
		if err != nil {
			return err
		}
		if len(ids) != len(refs) {
			return fmt.Errorf("queue: %d jobs for %d mailboxes", len(ids), len(refs))
		}
		for i, r := range refs {
			if _, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET job_id = $1 WHERE pass_id = $2 AND mailbox_id = $3`,
				ids[i], r.PassID, r.MailboxID); err != nil {
				return err
			}
		}
		return nil
	})
}

// overCap returns a *CapError for a mailbox of p that, with p, has had
// more than limit.Max passes of limit.Kinds. It runs after p's rows are
// written and its mailboxes locked: a concurrent pass on one of them
// waits for this transaction and then counts p.
func overCap(ctx context.Context, tx *Tx, p Pass, limit PassCap) error {
	if limit.Max <= 0 || len(limit.Kinds) == 0 {
		return nil
	}
	args := []any{p.ID, limit.Max}
	in := make([]string, len(limit.Kinds))
	for i, k := range limit.Kinds {
		args = append(args, k)
		in[i] = fmt.Sprintf("$%d", len(args))
	}
	var id string
	var n int
	err := tx.q.queryRow(ctx, `SELECT mp.mailbox_id, COUNT(*) FROM mailbox_passes mp JOIN passes x ON x.id = mp.pass_id
		WHERE mp.mailbox_id IN (SELECT mailbox_id FROM mailbox_passes WHERE pass_id = $1) AND x.kind IN (`+strings.Join(in, ", ")+`)
		GROUP BY mp.mailbox_id HAVING COUNT(*) > $2 ORDER BY mp.mailbox_id LIMIT 1`, args...).Scan(&id, &n)
	if noRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("count passes: %w", err)
	}
	return &CapError{MailboxID: id, Passes: n - 1}
}

// Pass reads a project's pass with its mailboxes' parts; ErrNoRows when
// it is not there. An empty projectID reads any project's.
func (s *Store) Pass(ctx context.Context, projectID, passID string) (Pass, []MailboxPass, error) {
	q := s.q()
	var p Pass
	if err := scanPass(q.queryRow(ctx, `SELECT `+passCols+` FROM passes x WHERE x.id = $1 AND ($2 = '' OR x.project_id = $2)`,
		passID, projectID), &p); err != nil {
		return p, nil, err
	}
	rs, err := q.query(ctx, `SELECT `+mailboxPassCols+` FROM (SELECT mp.*, p.kind AS kind FROM mailbox_passes mp
			JOIN passes p ON p.id = mp.pass_id WHERE mp.pass_id = $1) mp
		JOIN mailboxes m ON m.id = mp.mailbox_id ORDER BY mp.mailbox_id`, passID)
	if err != nil {
		return p, nil, err
	}
	defer rs.Close()
	var out []MailboxPass
	for rs.Next() {
		var m MailboxPass
		if err := scanMailboxPass(rs, &m); err != nil {
			return p, nil, err
		}
		out = append(out, m)
	}
	return p, out, rs.Err()
}

// Passes lists a project's passes, newest first.
func (s *Store) Passes(ctx context.Context, projectID string) ([]Pass, error) {
	rs, err := s.q().query(ctx, `SELECT `+passCols+` FROM passes x WHERE x.project_id = $1
		ORDER BY x.created_at DESC, x.created_ns DESC, x.id DESC`, projectID)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Pass{}
	for rs.Next() {
		var p Pass
		if err := scanPass(rs, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rs.Err()
}

// StopPass marks a running pass stopping and returns its mailboxes'
// parts (their jobs to cancel).
func (s *Store) StopPass(ctx context.Context, passID string) ([]MailboxPass, error) {
	if _, err := s.q().exec(ctx, `UPDATE passes SET state = 'stopping' WHERE id = $1 AND state = 'running'`, passID); err != nil {
		return nil, err
	}
	_, mps, err := s.Pass(ctx, "", passID)
	return mps, err
}

// PassState returns a pass's state (running, stopping, completed,
// stopped); ErrNoRows when it is gone.
func (s *Store) PassState(ctx context.Context, passID string) (string, error) {
	var st string
	err := s.q().queryRow(ctx, `SELECT state FROM passes WHERE id = $1`, passID).Scan(&st)
	return st, err
}

// Work is everything a worker reads for one mailbox's part of a pass,
// in one query. It holds sealed passwords: never log it.
type Work struct {
	Pass         Pass
	Project      Project
	Owner        Owner
	SourceEmail  string
	SourceLogin  string
	SourceSecret string
	DestEmail    string
	DestLogin    string
	DestSecret   string
	MigratedOnce bool
	// Status and JobID are the mailbox's part of the pass.
	Status string
	JobID  int64
}

// Work reads a job's work; ErrNoRows when the pass, the mailbox or its
// part of the pass is gone (e.g. deleted).
func (s *Store) Work(ctx context.Context, passID, mailboxID string) (Work, error) {
	var w Work
	var once, ins, plain int
	p := &w.Project
	err := s.q().queryRow(ctx, `SELECT x.id, x.project_id, x.kind, x.state, x.cutoff, x.created_at, x.finished_at,
			p.id, p.owner_id, p.name, p.source_type, p.source_host, p.source_port, p.source_security, p.source_insecure,
			p.source_plaintext, p.destination_preset, p.options, p.state, p.created_at, p.finished_at,
			o.id, o.email, m.source_email, m.source_login, m.source_secret, m.dest_email, m.dest_login, m.dest_secret, m.migrated_once, mp.status, mp.job_id
		FROM mailbox_passes mp JOIN passes x ON x.id = mp.pass_id JOIN projects p ON p.id = x.project_id
			JOIN owners o ON o.id = p.owner_id JOIN mailboxes m ON m.id = mp.mailbox_id AND m.project_id = p.id
		WHERE mp.pass_id = $1 AND mp.mailbox_id = $2`, passID, mailboxID).Scan(
		&w.Pass.ID, &w.Pass.ProjectID, &w.Pass.Kind, &w.Pass.State, &w.Pass.Cutoff, &w.Pass.CreatedAt, &w.Pass.FinishedAt,
		&p.ID, &p.OwnerID, &p.Name, &p.SourceType, &p.SourceHost, &p.SourcePort, &p.SourceSecurity, &ins, &plain,
		&p.DestinationPreset, &p.Options, &p.State, &p.CreatedAt, &p.FinishedAt,
		&w.Owner.ID, &w.Owner.Email, &w.SourceEmail, &w.SourceLogin, &w.SourceSecret, &w.DestEmail, &w.DestLogin, &w.DestSecret, &once, &w.Status, &w.JobID)
	p.SourceInsecure, p.SourcePlaintext, w.MigratedOnce = ins != 0, plain != 0, once != 0
	return w, err
}

// Part is where one mailbox's part of a pass stands.
type Part struct {
	Status string
	// JobID is the job that is to work on it; Worker names the worker
	// process that claimed it ("" when none has).
	JobID  int64
	Worker string
}

// PartState reads one mailbox's part of a pass; ErrNoRows when there is
// none.
func (s *Store) PartState(ctx context.Context, passID, mailboxID string) (Part, error) {
	var p Part
	err := s.q().queryRow(ctx, `SELECT status, job_id, worker FROM mailbox_passes WHERE pass_id = $1 AND mailbox_id = $2`,
		passID, mailboxID).Scan(&p.Status, &p.JobID, &p.Worker)
	return p, err
}

// ClaimPart records that worker took the mailbox's lease for job, so that
// the part is taken over if the worker dies. It fails (false) when the
// part has another job by now or is over.
func (s *Store) ClaimPart(ctx context.Context, ref JobRef, job int64, worker string) (bool, error) {
	n, err := s.q().exec(ctx, `UPDATE mailbox_passes SET worker = $1 WHERE pass_id = $2 AND mailbox_id = $3 AND job_id = $4
		AND status IN `+busyStatuses, worker, ref.PassID, ref.MailboxID, job)
	return n == 1, err
}

// UnclaimPart withdraws job's claim (it waits in the queue again and is
// no one's to take over), unless the part has another job by now.
func (s *Store) UnclaimPart(ctx context.Context, ref JobRef, job int64) error {
	_, err := s.q().exec(ctx, `UPDATE mailbox_passes SET worker = '' WHERE pass_id = $1 AND mailbox_id = $2 AND job_id = $3
		AND status IN `+busyStatuses, ref.PassID, ref.MailboxID, job)
	return err
}

// HandOver gives a part a new job (inserted by enqueue) in place of
// oldJob, queues it again (detail says why), withdraws the claim and
// releases holder's mailbox lease, in one transaction: a worker shutting down leaves its part to whichever worker
// takes the new job, with nothing to wait for. ok is false (and nothing
// changed) when the part has another job by now.
func (s *Store) HandOver(ctx context.Context, ref JobRef, oldJob int64, holder string, at int64, detail string, enqueue Enqueuer) (ok bool, err error) {
	errChanged := errors.New("changed")
	err = s.inTx(ctx, func(tx *Tx) error {
		ids, err := enqueue(ctx, tx, []JobRef{ref})
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("queue: %d jobs for 1 mailbox", len(ids))
		}
		n, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET job_id = $1, worker = '', status = 'queued'
			WHERE pass_id = $2 AND mailbox_id = $3 AND job_id = $4 AND status IN `+busyStatuses, ids[0], ref.PassID, ref.MailboxID, oldJob)
		if err != nil {
			return err
		}
		if n == 0 {
			return errChanged
		}
		if err := setStatus(ctx, tx, ref.MailboxID, "queued", at, detail); err != nil {
			return err
		}
		_, err = tx.q.exec(ctx, `DELETE FROM leases WHERE resource = $1 AND holder = $2`, MailboxLease(ref.MailboxID), holder)
		return err
	})
	if errors.Is(err, errChanged) {
		return false, nil
	}
	return err == nil, err
}

func setStatus(ctx context.Context, tx *Tx, mailboxID, status string, at int64, detail string) error {
	if _, err := tx.q.exec(ctx, `UPDATE mailboxes SET status = $1, status_at = $2 WHERE id = $3`, status, at, mailboxID); err != nil {
		return err
	}
	_, err := tx.q.exec(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, $3, $4)`, mailboxID, at, status, detail)
	return err
}

// BeginMailboxPass marks a mailbox as being worked on by worker.
func (s *Store) BeginMailboxPass(ctx context.Context, passID, mailboxID, status, worker string, at int64) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET status = $1, worker = $2,
				started_at = CASE WHEN started_at = 0 THEN $3 ELSE started_at END
			WHERE pass_id = $4 AND mailbox_id = $5`, status, worker, at, passID, mailboxID); err != nil {
			return err
		}
		return setStatus(ctx, tx, mailboxID, status, at, "")
	})
}

// Progress is a snapshot of a running mailbox pass.
type Progress struct {
	TotalMsgs, TotalBytes, Copied, CopiedBytes, Present, Skipped, Failed, FlagUpdates int64
	Folder                                                                            string
	Rate                                                                              float64
	ETASeconds                                                                        int64
	PauseCause                                                                        string
	PauseUntil                                                                        int64
}

// UpdateProgress stores a running part's progress, so that every API
// process shows it, whichever worker runs the part. A part that is over
// keeps the counts its outcome recorded: a late report never overwrites
// them.
func (s *Store) UpdateProgress(ctx context.Context, passID, mailboxID string, p Progress, at int64) error {
	_, err := s.q().exec(ctx, `UPDATE mailbox_passes SET total_msgs = $1, total_bytes = $2, copied = $3, copied_bytes = $4,
			present = $5, skipped = $6, failed = $7, flag_updates = $8, folder = $9, rate = $10, eta_seconds = $11, progress_at = $12,
			pause_cause = $13, pause_until = $14
		WHERE pass_id = $15 AND mailbox_id = $16 AND status IN `+busyStatuses,
		p.TotalMsgs, p.TotalBytes, p.Copied, p.CopiedBytes, p.Present, p.Skipped, p.Failed, p.FlagUpdates, p.Folder, p.Rate,
		p.ETASeconds, at, p.PauseCause, p.PauseUntil, passID, mailboxID)
	return err
}

// Finish is how a mailbox's part of a pass ended.
type Finish struct {
	Status                string
	ErrorClass, ErrorSide string
	Error, Detail         string
	Progress              *Progress
	Failures              []FailedItem
	Plan                  string
	QuotaUsed, QuotaLimit int64
	Warning               string
	// Migrated records that the mailbox was migrated once (a later
	// refused login then means its password changed).
	Migrated bool
}

// FinishMailboxPass stores a part's outcome and, when it was the pass's
// last open part, completes the pass. done is true for the one caller
// (of all processes) that completed it, which then tells the owner.
func (s *Store) FinishMailboxPass(ctx context.Context, passID, mailboxID string, f Finish, at int64) (done bool, err error) {
	err = s.inTx(ctx, func(tx *Tx) error {
		// Finishers of one pass go one at a time (the pass row is
		// locked): two workers finishing its last two parts at once
		// would otherwise each see the other's part still running, and
		// neither would complete the pass.
		var state, kind string
		if err := tx.q.queryRow(ctx, `SELECT state, kind FROM passes WHERE id = $1`+s.dialect.forUpdate, passID).Scan(&state, &kind); err != nil {
			return err
		}
		// A Verify migration (proof) pass reads both mailboxes and
		// copies nothing: it neither marks the mailbox migrated nor
		// changes its migration status, which goes back to what its
		// newest other pass left (issue 15).
		proof := kind == PassKindProof
		status := f.Status
		if proof {
			f.Migrated = false
			if status, err = lastMigrationStatus(ctx, tx, passID, mailboxID); err != nil {
				return err
			}
		}
		if _, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET status = $1, finished_at = $2, quota_used = $3, quota_limit = $4,
				warning = $5, plan = $6, error_class = $7, last_error = $8, folder = '', eta_seconds = 0,
				pause_cause = '', pause_until = 0
			WHERE pass_id = $9 AND mailbox_id = $10`,
			f.Status, at, f.QuotaUsed, f.QuotaLimit, f.Warning, f.Plan, f.ErrorClass, f.Error, passID, mailboxID); err != nil {
			return err
		}
		if p := f.Progress; p != nil {
			if _, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET total_msgs = $1, total_bytes = $2, copied = $3, copied_bytes = $4,
					present = $5, skipped = $6, failed = $7, flag_updates = $8, rate = $9, progress_at = $10
				WHERE pass_id = $11 AND mailbox_id = $12`,
				p.TotalMsgs, p.TotalBytes, p.Copied, p.CopiedBytes, p.Present, p.Skipped, p.Failed, p.FlagUpdates, p.Rate, at,
				passID, mailboxID); err != nil {
				return err
			}
		}
		if _, err := tx.q.exec(ctx, `DELETE FROM failed_items WHERE pass_id = $1 AND mailbox_id = $2`, passID, mailboxID); err != nil {
			return err
		}
		if err := s.insertFailures(ctx, tx, passID, mailboxID, f.Failures); err != nil {
			return err
		}
		if _, err := tx.q.exec(ctx, `UPDATE mailboxes SET error_class = $1, error_side = $2, last_error = $3,
				migrated_once = CASE WHEN $4 = 1 THEN 1 ELSE migrated_once END WHERE id = $5`,
			f.ErrorClass, f.ErrorSide, f.Error, b2i(f.Migrated), mailboxID); err != nil {
			return err
		}
		if proof {
			// The mailbox's history still says how the proof ended.
			if _, err := tx.q.exec(ctx, `UPDATE mailboxes SET status = $1, status_at = $2 WHERE id = $3`, status, at, mailboxID); err != nil {
				return err
			}
			if _, err := tx.q.exec(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, $3, $4)`,
				mailboxID, at, f.Status, f.Detail); err != nil {
				return err
			}
		} else if err := setStatus(ctx, tx, mailboxID, f.Status, at, f.Detail); err != nil {
			return err
		}
		// The pass is over when no part of it is still queued or
		// running; of two workers finishing its last parts at once, the
		// one whose UPDATE flips notified from 0 completes it. A Stop
		// that came after every part had finished stopped nothing: the
		// pass is completed then, as its mailboxes are.
		n, err := tx.q.exec(ctx, `UPDATE passes SET state = CASE WHEN state = 'stopping'
					AND EXISTS (SELECT 1 FROM mailbox_passes WHERE pass_id = $2 AND status = 'stopped') THEN 'stopped'
				ELSE 'completed' END,
				finished_at = $1, notified = 1
			WHERE id = $2 AND notified = 0
				AND NOT EXISTS (SELECT 1 FROM mailbox_passes WHERE pass_id = $2 AND status IN `+busyStatuses+`)`, at, passID)
		done = n == 1
		return err
	})
	return done, err
}

// PassKindProof is the stored kind of a Verify migration pass
// (service.PassProof).
const PassKindProof = "proof"

// lastMigrationStatus is the status of the mailbox's part in its newest
// pass other than a proof (passID excluded); "not_started" when it had
// none.
func lastMigrationStatus(ctx context.Context, tx *Tx, passID, mailboxID string) (string, error) {
	var status string
	err := tx.q.queryRow(ctx, `SELECT mp.status FROM mailbox_passes mp JOIN passes x ON x.id = mp.pass_id
		WHERE mp.mailbox_id = $1 AND mp.pass_id <> $2 AND x.kind <> $3
		ORDER BY x.created_at DESC, x.created_ns DESC, x.id DESC LIMIT 1`, mailboxID, passID, PassKindProof).Scan(&status)
	if errors.Is(err, ErrNoRows) {
		return "not_started", nil
	}
	return status, err
}

// failureChunk is how many failed items one INSERT carries.
const failureChunk = 100

func (s *Store) insertFailures(ctx context.Context, tx *Tx, passID, mailboxID string, items []FailedItem) error {
	for len(items) > 0 {
		n := min(len(items), failureChunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO failed_items (pass_id, mailbox_id, folder, uid, size, kind, reason, subject, messages, item_id) VALUES `)
		args := make([]any, 0, n*10)
		for i, f := range items[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, passID, mailboxID, f.Folder, int64(f.UID), f.Size, f.Kind, f.Reason, f.Subject, f.Messages, f.ID)
		}
		if _, err := tx.q.exec(ctx, s.dialect.bind(b.String()), args...); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// ReplaceJob gives one mailbox's part of a pass a new job (inserted by
// enqueue in the same transaction) in place of oldJob, clears its claim
// and queues it again (detail says why in the mailbox's history), unless
// it changed meanwhile: another process replaced the job,
// or a worker holds the mailbox's lease again. ok is false then, and no
// job was inserted.
func (s *Store) ReplaceJob(ctx context.Context, ref JobRef, oldJob int64, at int64, detail string, enqueue Enqueuer) (ok bool, err error) {
	errChanged := errors.New("changed")
	err = s.inTx(ctx, func(tx *Tx) error {
		ids, err := enqueue(ctx, tx, []JobRef{ref})
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("queue: %d jobs for 1 mailbox", len(ids))
		}
		n, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET job_id = $1, worker = '', status = 'queued'
			WHERE pass_id = $2 AND mailbox_id = $3 AND job_id = $4 AND status IN `+busyStatuses+`
				AND NOT EXISTS (SELECT 1 FROM leases WHERE resource = $5 AND expires_at >= `+s.dialect.nowMillis+`)`,
			ids[0], ref.PassID, ref.MailboxID, oldJob, MailboxLease(ref.MailboxID))
		if err != nil {
			return err
		}
		if n == 0 {
			return errChanged
		}
		// Users see it queued again, and why, until a worker takes it.
		return setStatus(ctx, tx, ref.MailboxID, "queued", at, detail)
	})
	if errors.Is(err, errChanged) {
		return false, nil
	}
	return err == nil, err
}

// Abandoned is a claimed part of a running pass whose worker stopped
// renewing the mailbox's lease (it died, or lost the database).
type Abandoned struct {
	JobRef
	JobID  int64
	Worker string
}

// AbandonedParts lists the parts of running (or stopping) passes that a
// worker claimed but whose mailbox lease is gone or expired. A part
// still queued and never claimed is River's to run and is not listed.
func (s *Store) AbandonedParts(ctx context.Context) ([]Abandoned, error) {
	rs, err := s.q().query(ctx, `SELECT mp.pass_id, mp.mailbox_id, mp.job_id, mp.worker FROM mailbox_passes mp
			JOIN passes x ON x.id = mp.pass_id
		WHERE mp.status IN `+busyStatuses+` AND mp.worker <> '' AND x.state IN ('running', 'stopping')
			AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.resource = 'mailbox:' || mp.mailbox_id AND l.expires_at >= `+s.dialect.nowMillis+`)`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Abandoned
	for rs.Next() {
		var a Abandoned
		if err := rs.Scan(&a.PassID, &a.MailboxID, &a.JobID, &a.Worker); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rs.Err()
}

// Unfinished lists every part of a running (or stopping) pass that is
// still queued or running, with its job.
func (s *Store) Unfinished(ctx context.Context) ([]Abandoned, error) {
	rs, err := s.q().query(ctx, `SELECT mp.pass_id, mp.mailbox_id, mp.job_id, mp.worker FROM mailbox_passes mp JOIN passes x ON x.id = mp.pass_id
		WHERE mp.status IN `+busyStatuses+` AND x.state IN ('running', 'stopping')`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Abandoned
	for rs.Next() {
		var a Abandoned
		if err := rs.Scan(&a.PassID, &a.MailboxID, &a.JobID, &a.Worker); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rs.Err()
}

// ReplaceAllJobs gives every part in refs a new job (inserted by enqueue)
// in one transaction, whatever its job was: the upgrade from a separate
// job database, whose jobs are left behind.
func (s *Store) ReplaceAllJobs(ctx context.Context, refs []JobRef, enqueue Enqueuer) error {
	if len(refs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *Tx) error {
		ids, err := enqueue(ctx, tx, refs)
		if err != nil {
			return err
		}
		if len(ids) != len(refs) {
			return fmt.Errorf("queue: %d jobs for %d mailboxes", len(ids), len(refs))
		}
		for i, r := range refs {
			if _, err := tx.q.exec(ctx, `UPDATE mailbox_passes SET job_id = $1, worker = '' WHERE pass_id = $2 AND mailbox_id = $3`,
				ids[i], r.PassID, r.MailboxID); err != nil {
				return err
			}
		}
		return nil
	})
}
