package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PassInput starts a pass.
type PassInput struct {
	Kind PassKind `json:"kind"`
	// MailboxIDs limits the pass; empty means every mailbox of the project.
	MailboxIDs []string `json:"mailbox_ids,omitempty"`
	// Cutoff is the pre-stage date (YYYY-MM-DD) or a number of days ago
	// ("30", "60", "90").
	Cutoff string `json:"cutoff,omitempty"`
}

// StartPass creates a pass and queues one job per mailbox.
func (s *Service) StartPass(ctx context.Context, ownerID, projectID string, in PassInput) (Pass, error) {
	if s.queue == nil {
		return Pass{}, errors.New("no job queue configured")
	}
	if !in.Kind.Valid() {
		return Pass{}, inputErr("kind", "use one of verify, trial, pre-stage, full, delta, retry-errors")
	}
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return Pass{}, err
	}
	var cutoff time.Time
	if in.Kind == PassPreStage {
		var err error
		if cutoff, err = parseCutoff(in.Cutoff); err != nil {
			return Pass{}, err
		}
	}
	mbs, err := s.Mailboxes(ctx, ownerID, projectID)
	if err != nil {
		return Pass{}, err
	}
	want := map[string]bool{}
	for _, id := range in.MailboxIDs {
		want[id] = true
	}
	filtered := len(want) > 0
	var chosen []Mailbox
	for _, m := range mbs {
		if filtered && !want[m.ID] {
			continue
		}
		delete(want, m.ID)
		if !m.HasPasswords {
			return Pass{}, inputErr("mailbox_ids", "mailbox %s has no stored passwords", m.SourceEmail)
		}
		switch m.Status {
		case StatusQueued, StatusVerifying, StatusMigrating:
			return Pass{}, fmt.Errorf("%w: mailbox %s is already being worked on; stop that pass first", ErrConflict, m.SourceEmail)
		}
		if in.Kind == PassRetryErrors && m.LastPass != nil && m.LastPass.Failed == 0 {
			continue // nothing to retry
		}
		chosen = append(chosen, m)
	}
	if len(want) > 0 {
		return Pass{}, ErrNotFound
	}
	if len(chosen) == 0 {
		return Pass{}, inputErr("mailbox_ids", "no mailbox to run this pass on")
	}
	p := Pass{ID: newID(), ProjectID: projectID, Kind: in.Kind, State: "running", Cutoff: cutoff, CreatedAt: time.Unix(now(), 0)}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return p, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var cut int64
	if !cutoff.IsZero() {
		cut = cutoff.Unix()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO passes (id, project_id, kind, state, cutoff, created_at, created_ns) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, projectID, p.Kind, p.State, cut, p.CreatedAt.Unix(), time.Now().UnixNano()); err != nil {
		return p, fmt.Errorf("create pass: %w", err)
	}
	for _, m := range chosen {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_passes (pass_id, mailbox_id, status) VALUES ($1, $2, $3)`,
			p.ID, m.ID, StatusQueued); err != nil {
			return p, err
		}
		if err := setStatusTx(ctx, tx, m.ID, StatusQueued, string(in.Kind)+" pass queued"); err != nil {
			return p, err
		}
	}
	if err := tx.Commit(); err != nil {
		return p, err
	}
	// Jobs are queued after the commit so a worker always finds its rows.
	for _, m := range chosen {
		jobID, err := s.queue.Enqueue(ctx, p.ID, m.ID)
		if err != nil {
			return p, fmt.Errorf("queue mailbox %s: %w", m.SourceEmail, err)
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE mailbox_passes SET job_id = $1 WHERE pass_id = $2 AND mailbox_id = $3`, jobID, p.ID, m.ID); err != nil {
			return p, err
		}
	}
	return s.Pass(ctx, ownerID, projectID, p.ID)
}

func parseCutoff(v string) (time.Time, error) {
	switch v {
	case "30", "60", "90":
		days := map[string]int{"30": 30, "60": 60, "90": 90}[v]
		return time.Now().AddDate(0, 0, -days), nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return t, inputErr("cutoff", "a pre-stage pass needs a cutoff: 30, 60 or 90 (days ago) or a date like 2024-01-31")
	}
	return t, nil
}

func setStatusTx(ctx context.Context, tx *sql.Tx, mailboxID string, st Status, detail string) error {
	t := now()
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET status = $1, status_at = $2 WHERE id = $3`, st, t, mailboxID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, $3, $4)`, mailboxID, t, st, detail)
	return err
}

// StopPass cancels a pass's jobs. Mailboxes stop at a consistent point
// and a later pass resumes without duplicates.
func (s *Service) StopPass(ctx context.Context, ownerID, projectID, passID string) (Pass, error) {
	p, err := s.Pass(ctx, ownerID, projectID, passID)
	if err != nil {
		return p, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE passes SET state = 'stopping' WHERE id = $1 AND state = 'running'`, passID); err != nil {
		return p, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT mailbox_id, job_id, status FROM mailbox_passes WHERE pass_id = $1`, passID)
	if err != nil {
		return p, err
	}
	type job struct {
		mailbox string
		id      int64
		status  Status
	}
	var jobs []job
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.mailbox, &j.id, &j.status); err != nil {
			rows.Close()
			return p, err
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	for _, j := range jobs {
		if j.status.Terminal() {
			continue
		}
		if j.id != 0 && s.queue != nil {
			if err := s.queue.Cancel(ctx, j.id); err != nil {
				return p, err
			}
		}
		if j.status == StatusQueued {
			// Never started: stopped right away.
			if err := s.FinishMailboxPass(ctx, passID, j.mailbox, Outcome{Status: StatusStopped, Detail: "stopped before it started"}); err != nil {
				return p, err
			}
		}
	}
	return s.Pass(ctx, ownerID, projectID, passID)
}

const mailboxPassCols = `mp.pass_id, p.kind, mp.mailbox_id, mp.status, mp.started_at, mp.finished_at, mp.total_msgs, mp.total_bytes,
	mp.copied, mp.copied_bytes, mp.present, mp.skipped, mp.failed, mp.flag_updates, mp.folder, mp.rate, mp.eta_seconds,
	mp.quota_used, mp.quota_limit, mp.warning, mp.plan, mp.error_class, mp.last_error`

func scanMailboxPass(row interface{ Scan(...any) error }) (MailboxPass, error) {
	var m MailboxPass
	var started, finished int64
	var plan string
	err := row.Scan(&m.PassID, &m.Kind, &m.MailboxID, &m.Status, &started, &finished, &m.TotalMsgs, &m.TotalBytes, &m.Copied,
		&m.CopiedBytes, &m.Present, &m.Skipped, &m.Failed, &m.FlagUpdates, &m.Folder, &m.Rate, &m.ETASeconds, &m.QuotaUsed,
		&m.QuotaLimit, &m.Warning, &plan, &m.ErrorClass, &m.LastError)
	if err != nil {
		return m, err
	}
	if started != 0 {
		m.StartedAt = time.Unix(started, 0)
		end := time.Now()
		if finished != 0 {
			m.FinishedAt = time.Unix(finished, 0)
			end = m.FinishedAt
		}
		m.DurationSec = end.Sub(m.StartedAt).Seconds()
	}
	if plan != "" {
		_ = json.Unmarshal([]byte(plan), &m.Plan)
	}
	return m, nil
}

func (s *Service) lastPass(ctx context.Context, mailboxID string) (*MailboxPass, error) {
	m, err := scanMailboxPass(s.db.QueryRowContext(ctx, `SELECT `+mailboxPassCols+` FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
		WHERE mp.mailbox_id = $1 ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC LIMIT 1`, mailboxID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func scanPass(row interface{ Scan(...any) error }) (Pass, error) {
	var p Pass
	var cutoff, created, finished int64
	err := row.Scan(&p.ID, &p.ProjectID, &p.Kind, &p.State, &cutoff, &created, &finished)
	if err != nil {
		return p, err
	}
	if cutoff != 0 {
		p.Cutoff = time.Unix(cutoff, 0)
	}
	p.CreatedAt = time.Unix(created, 0)
	if finished != 0 {
		p.FinishedAt = time.Unix(finished, 0)
	}
	return p, nil
}

// Pass returns one pass with its mailboxes' progress.
func (s *Service) Pass(ctx context.Context, ownerID, projectID, passID string) (Pass, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return Pass{}, err
	}
	p, err := scanPass(s.db.QueryRowContext(ctx, `SELECT id, project_id, kind, state, cutoff, created_at, finished_at FROM passes
		WHERE id = $1 AND project_id = $2`, passID, projectID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+mailboxPassCols+` FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
		WHERE mp.pass_id = $1 ORDER BY mp.mailbox_id`, passID)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMailboxPass(rows)
		if err != nil {
			return p, err
		}
		p.Mailboxes = append(p.Mailboxes, m)
	}
	return p, rows.Err()
}

// Passes lists a project's passes, newest first, without mailboxes.
func (s *Service) Passes(ctx context.Context, ownerID, projectID string) ([]Pass, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, project_id, kind, state, cutoff, created_at, finished_at FROM passes
		WHERE project_id = $1 ORDER BY created_at DESC, created_ns DESC, id DESC`, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Pass{}
	for rows.Next() {
		p, err := scanPass(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// FinishProject closes a project: it becomes read-only and its stored
// passwords are erased.
func (s *Service) FinishProject(ctx context.Context, ownerID, projectID string) (Project, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return p, err
	}
	for st, n := range p.Mailboxes {
		if n > 0 && (st == StatusQueued || st == StatusVerifying || st == StatusMigrating) {
			return p, fmt.Errorf("%w: a pass is still running; wait for it or stop it first", ErrConflict)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return p, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET source_secret = '', dest_secret = '' WHERE project_id = $1`, projectID); err != nil {
		return p, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE project_admins SET secret = '' WHERE project_id = $1`, projectID); err != nil {
		return p, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projects SET state = 'finished', finished_at = $1 WHERE id = $2`, now(), projectID); err != nil {
		return p, err
	}
	if err := tx.Commit(); err != nil {
		return p, err
	}
	return s.Project(ctx, ownerID, projectID)
}

// ExportRows gives the CSV export of a project's mailboxes: statuses and
// statistics, never passwords.
func (s *Service) ExportRows(ctx context.Context, ownerID, projectID string) ([]MailboxExportRow, error) {
	mbs, err := s.Mailboxes(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	var out []MailboxExportRow
	for _, m := range mbs {
		r := MailboxExportRow{SourceEmail: m.SourceEmail, SourceLogin: m.SourceLogin, DestEmail: m.DestEmail, DestLogin: m.DestLogin,
			Status: m.StatusLabel, StatusAt: m.StatusAt, LastError: m.MoreInfo}
		if m.SolveIssue != nil {
			r.ErrorClass = string(m.SolveIssue.Class)
		}
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(copied), 0), COALESCE(SUM(present), 0), COALESCE(SUM(failed), 0),
				COALESCE(SUM(copied_bytes), 0), COALESCE(SUM(CASE WHEN finished_at > 0 THEN finished_at - started_at ELSE 0 END), 0)
			FROM mailbox_passes WHERE mailbox_id = $1 AND started_at > 0`, m.ID).
			Scan(&r.Passes, &r.Copied, &r.Present, &r.Failed, &r.BytesCopied, new(int64))
		if err != nil {
			return nil, err
		}
		if m.LastPass != nil && r.Failed > 0 {
			r.Failed = m.LastPass.Failed // failures are per pass; earlier ones were retried
		}
		if m.LastPass != nil {
			r.Duration = time.Duration(m.LastPass.DurationSec * float64(time.Second))
		}
		out = append(out, r)
	}
	return out, nil
}
