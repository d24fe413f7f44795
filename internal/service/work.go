package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Work is everything a worker needs for one mailbox's part of a pass. It
// holds the opened passwords, so it must never be logged or stored.
type Work struct {
	Pass           Pass
	Project        Project
	Destination    Preset
	MailboxID      string
	SourceLogin    string
	SourcePassword string
	DestLogin      string
	DestPassword   string
	// SourceMailbox and DestMailbox are set when that side logs in with
	// the project's admin account and acts on this mailbox (Exchange
	// impersonation, connector.Credentials.Mailbox); the login and
	// password are then the admin's.
	SourceMailbox, DestMailbox string
	MigratedBefore             bool
	Owner                      Owner
}

// LoadWork reads a job's work; ErrNotFound when the pass or mailbox is
// gone (e.g. deleted), which ends the job, and ErrSecretKey when the
// stored passwords cannot be decrypted, which fails it.
func (s *Service) LoadWork(ctx context.Context, passID, mailboxID string) (Work, error) {
	var w Work
	var err error
	w.Pass, err = scanPass(s.db.QueryRowContext(ctx, `SELECT id, project_id, kind, state, cutoff, created_at, finished_at FROM passes WHERE id = $1`, passID))
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	w.Project, err = scanProject(s.db.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = $1`, w.Pass.ProjectID))
	if err != nil {
		return w, err
	}
	preset, ok := s.presets[w.Project.DestinationPreset]
	if !ok {
		return w, fmt.Errorf("destination preset %q is no longer configured", w.Project.DestinationPreset)
	}
	w.Destination = preset
	if w.Owner, err = s.OwnerByID(ctx, w.Project.ownerID); err != nil {
		return w, err
	}
	var srcSecret, dstSecret, srcEmail, dstEmail string
	var once int
	err = s.db.QueryRowContext(ctx, `SELECT source_email, source_login, source_secret, dest_email, dest_login, dest_secret, migrated_once FROM mailboxes
		WHERE id = $1 AND project_id = $2`, mailboxID, w.Project.ID).Scan(&srcEmail, &w.SourceLogin, &srcSecret, &dstEmail, &w.DestLogin, &dstSecret, &once)
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	w.MailboxID, w.MigratedBefore = mailboxID, once != 0
	for _, sd := range []struct {
		side                 Side
		secret, email        string
		login, pass, mailbox *string
	}{
		{SideSource, srcSecret, srcEmail, &w.SourceLogin, &w.SourcePassword, &w.SourceMailbox},
		{SideDestination, dstSecret, dstEmail, &w.DestLogin, &w.DestPassword, &w.DestMailbox},
	} {
		if sd.secret != adminMarker {
			if *sd.pass, err = s.open(mailboxID, string(sd.side), sd.secret); err != nil {
				return w, err
			}
			continue
		}
		login, pass, ok, err := s.admin(ctx, w.Project.ID, sd.side)
		if err != nil {
			return w, err
		}
		if !ok {
			return w, fmt.Errorf("%w (the %s mailbox uses the project's admin login, which is gone)", ErrSecretKey, sd.side)
		}
		*sd.login, *sd.pass, *sd.mailbox = login, pass, sd.email
	}
	return w, nil
}

// PassState returns a pass's state (running, stopping, completed, stopped).
func (s *Service) PassState(ctx context.Context, passID string) (string, error) {
	var st string
	err := s.db.QueryRowContext(ctx, `SELECT state FROM passes WHERE id = $1`, passID).Scan(&st)
	return st, err
}

// BeginMailboxPass marks a mailbox as being worked on.
func (s *Service) BeginMailboxPass(ctx context.Context, passID, mailboxID string, st Status) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, `UPDATE mailbox_passes SET status = $1, started_at = CASE WHEN started_at = 0 THEN $2 ELSE started_at END
		WHERE pass_id = $3 AND mailbox_id = $4`, st, now(), passID, mailboxID); err != nil {
		return err
	}
	if err := setStatusTx(ctx, tx, mailboxID, st, ""); err != nil {
		return err
	}
	return tx.Commit()
}

// Progress is a live snapshot of a running mailbox pass.
type Progress struct {
	TotalMsgs, TotalBytes, Copied, CopiedBytes, Present, Skipped, Failed, FlagUpdates int64
	Folder                                                                            string
	Rate                                                                              float64
	ETA                                                                               time.Duration
}

// UpdateProgress stores a snapshot so any API process can show it.
func (s *Service) UpdateProgress(ctx context.Context, passID, mailboxID string, p Progress) error {
	_, err := s.db.ExecContext(ctx, `UPDATE mailbox_passes SET total_msgs = $1, total_bytes = $2, copied = $3, copied_bytes = $4,
			present = $5, skipped = $6, failed = $7, flag_updates = $8, folder = $9, rate = $10, eta_seconds = $11
		WHERE pass_id = $12 AND mailbox_id = $13`,
		p.TotalMsgs, p.TotalBytes, p.Copied, p.CopiedBytes, p.Present, p.Skipped, p.Failed, p.FlagUpdates, p.Folder, p.Rate,
		int64(p.ETA.Seconds()), passID, mailboxID)
	return err
}

// Outcome is how a mailbox's part of a pass ended.
type Outcome struct {
	Status   Status
	Class    ErrorClass
	Side     Side
	Error    string // the exact error ("More info")
	Detail   string // for the status history
	Progress *Progress
	Failures []FailedItem
	Plan     []PlanRow
	Quota    struct{ Used, Limit int64 }
	Warning  string
}

// FinishMailboxPass stores the outcome and, when it was the pass's last
// mailbox, completes the pass and returns true so the caller can notify
// the owner exactly once.
func (s *Service) FinishMailboxPass(ctx context.Context, passID, mailboxID string, o Outcome) error {
	_, err := s.finishMailboxPass(ctx, passID, mailboxID, o)
	return err
}

func (s *Service) finishMailboxPass(ctx context.Context, passID, mailboxID string, o Outcome) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	plan := ""
	if len(o.Plan) > 0 {
		b, _ := json.Marshal(o.Plan)
		plan = string(b)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailbox_passes SET status = $1, finished_at = $2, quota_used = $3, quota_limit = $4,
			warning = $5, plan = $6, error_class = $7, last_error = $8, folder = '', eta_seconds = 0
		WHERE pass_id = $9 AND mailbox_id = $10`,
		o.Status, now(), o.Quota.Used, o.Quota.Limit, o.Warning, plan, string(o.Class), o.Error, passID, mailboxID); err != nil {
		return false, err
	}
	if p := o.Progress; p != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE mailbox_passes SET total_msgs = $1, total_bytes = $2, copied = $3, copied_bytes = $4,
				present = $5, skipped = $6, failed = $7, flag_updates = $8, rate = $9 WHERE pass_id = $10 AND mailbox_id = $11`,
			p.TotalMsgs, p.TotalBytes, p.Copied, p.CopiedBytes, p.Present, p.Skipped, p.Failed, p.FlagUpdates, p.Rate, passID, mailboxID); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM failed_items WHERE pass_id = $1 AND mailbox_id = $2`, passID, mailboxID); err != nil {
		return false, err
	}
	for _, f := range o.Failures {
		if _, err := tx.ExecContext(ctx, `INSERT INTO failed_items (pass_id, mailbox_id, folder, uid, size, kind, reason, subject, messages, item_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, passID, mailboxID, f.Folder, f.UID, f.Size, f.Kind, f.Reason, f.Subject, f.Messages, f.ID); err != nil {
			return false, err
		}
	}
	once := 0
	if o.Status == StatusCompleted || o.Status == StatusCompletedWithErrors {
		once = 1
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET error_class = $1, error_side = $2, last_error = $3,
			migrated_once = CASE WHEN $4 = 1 THEN 1 ELSE migrated_once END WHERE id = $5`,
		string(o.Class), string(o.Side), o.Error, once, mailboxID); err != nil {
		return false, err
	}
	detail := o.Detail
	if detail == "" && o.Error != "" {
		detail = o.Error
	}
	if err := setStatusTx(ctx, tx, mailboxID, o.Status, detail); err != nil {
		return false, err
	}
	// The pass is over when no mailbox of it is still queued or running.
	var open int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailbox_passes WHERE pass_id = $1 AND status IN ('queued', 'verifying', 'migrating')`,
		passID).Scan(&open); err != nil {
		return false, err
	}
	done := false
	if open == 0 {
		res, err := tx.ExecContext(ctx, `UPDATE passes SET state = CASE WHEN state = 'stopping' THEN 'stopped' ELSE 'completed' END,
			finished_at = $1, notified = 1 WHERE id = $2 AND notified = 0`, now(), passID)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		done = n == 1
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	if done && s.notifier != nil {
		s.notifyPass(ctx, passID)
	}
	return done, nil
}

// Notifier sends an email to a project owner.
type Notifier func(ctx context.Context, to, subject, text string) error

// SetNotifier configures pass reports; baseURL is where the portal is
// reachable, for the link in the email.
func (s *Service) SetNotifier(n Notifier, baseURL string) {
	s.notifier, s.baseURL = n, strings.TrimRight(baseURL, "/")
}

func (s *Service) notifyPass(ctx context.Context, passID string) {
	var projectID, ownerID, name, kind string
	err := s.db.QueryRowContext(ctx, `SELECT p.id, p.owner_id, p.name, x.kind FROM passes x JOIN projects p ON p.id = x.project_id WHERE x.id = $1`,
		passID).Scan(&projectID, &ownerID, &name, &kind)
	if err != nil {
		return
	}
	owner, err := s.OwnerByID(ctx, ownerID)
	if err != nil {
		return
	}
	p, err := s.Pass(ctx, ownerID, projectID, passID)
	if err != nil {
		return
	}
	var ok, failed, stopped int
	var copied, failedItems int64
	var lines []string
	for _, m := range p.Mailboxes {
		var email string
		_ = s.db.QueryRowContext(ctx, `SELECT source_email FROM mailboxes WHERE id = $1`, m.MailboxID).Scan(&email)
		switch m.Status {
		case StatusFailed:
			failed++
		case StatusStopped:
			stopped++
		default:
			ok++
		}
		copied += m.Copied
		failedItems += m.Failed
		line := fmt.Sprintf("  %-40s %s", email, m.Status.Label())
		if m.Kind.Copies() {
			line += fmt.Sprintf(" (%d copied, %d already there, %d failed)", m.Copied, m.Present, m.Failed)
		}
		if m.LastError != "" && m.Status == StatusFailed {
			line += "\n      " + m.LastError
		}
		lines = append(lines, line)
	}
	subject := fmt.Sprintf("Mailferry: %s pass of %q finished: %d succeeded, %d failed", kind, name, ok, failed)
	text := fmt.Sprintf("Hello,\n\nThe %s pass of your migration project %q has finished.\n\n"+
		"Succeeded: %d mailbox(es)\nFailed:    %d mailbox(es)\nStopped:   %d mailbox(es)\n"+
		"Messages copied: %d, messages that could not be copied: %d\n\n%s\n\n"+
		"See the details and what to do about failures at:\n%s/projects/%s\n\n"+
		"When everything is migrated, remember to reconfigure Outlook, other mail clients and phones to the new server.\n",
		kind, name, ok, failed, stopped, copied, failedItems, strings.Join(lines, "\n"), s.baseURL, projectID)
	_ = s.notifier(ctx, owner.Email, subject, text)
}

// AcquireLease takes resource for holder until ttl from now, unless
// another holder has it and its lease has not expired. Leases keep one
// worker per mailbox and bound the workers per source host across every
// process sharing the database.
func (s *Service) AcquireLease(ctx context.Context, resource, holder string, ttl time.Duration) (bool, error) {
	t := time.Now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO leases (resource, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (resource) DO UPDATE SET holder = $2, expires_at = $3 WHERE leases.expires_at < $4 OR leases.holder = $2`,
		resource, holder, t.Add(ttl).UnixMilli(), t.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseLease gives a lease back.
func (s *Service) ReleaseLease(ctx context.Context, resource, holder string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE resource = $1 AND holder = $2`, resource, holder)
	return err
}

// Unfinished lists the mailbox passes left queued or running, with their
// job IDs: after a restart of the single embedded process their jobs can
// only be orphans.
func (s *Service) Unfinished(ctx context.Context) ([]UnfinishedJob, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT mp.pass_id, mp.mailbox_id, mp.job_id FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
		WHERE mp.status IN ('queued', 'verifying', 'migrating') AND p.state IN ('running', 'stopping')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UnfinishedJob
	for rows.Next() {
		var u UnfinishedJob
		if err := rows.Scan(&u.PassID, &u.MailboxID, &u.JobID); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UnfinishedJob is one mailbox pass that did not finish.
type UnfinishedJob struct {
	PassID, MailboxID string
	JobID             int64
}

// SetJob records the job now responsible for a mailbox pass.
func (s *Service) SetJob(ctx context.Context, passID, mailboxID string, jobID int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE mailbox_passes SET job_id = $1 WHERE pass_id = $2 AND mailbox_id = $3`, jobID, passID, mailboxID)
	return err
}

// MailboxPassStatus returns the status of one mailbox's part of a pass.
func (s *Service) MailboxPassStatus(ctx context.Context, passID, mailboxID string) (Status, int64, error) {
	var st Status
	var job int64
	err := s.db.QueryRowContext(ctx, `SELECT status, job_id FROM mailbox_passes WHERE pass_id = $1 AND mailbox_id = $2`, passID, mailboxID).Scan(&st, &job)
	if errors.Is(err, sql.ErrNoRows) {
		return st, 0, ErrNotFound
	}
	return st, job, err
}
