package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/internal/store"
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
		return Pass{}, inputErr("kind", "use one of verify, trial, pre-stage, full, delta, retry-errors, proof")
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
		if !m.HasPasswords && m.Status == StatusWaitingForUser {
			return Pass{}, inputErr("mailbox_ids", "mailbox %s is waiting for its user to enter the passwords; resend the link, or leave it out", m.SourceEmail)
		}
		if !m.HasPasswords {
			return Pass{}, inputErr("mailbox_ids", "mailbox %s has no stored passwords", m.SourceEmail)
		}
		switch m.Status {
		case StatusQueued, StatusVerifying, StatusMigrating:
			return Pass{}, fmt.Errorf("%w: mailbox %s is already being worked on; stop that pass first", ErrConflict, m.SourceEmail)
		}
		// A proof copies nothing: the failures to retry are those of the
		// copying pass before it.
		if in.Kind == PassRetryErrors && m.LastPass != nil && m.LastPass.Kind != PassProof && m.LastPass.Failed == 0 {
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
	var cut int64
	if !cutoff.IsZero() {
		cut = cutoff.Unix()
	}
	ids := make([]string, len(chosen))
	for i, m := range chosen {
		ids[i] = m.ID
	}
	// The pass, its mailboxes' statuses and its jobs are committed
	// together: a crash can leave neither a pass without jobs nor jobs
	// without a pass, and a worker always finds its rows.
	// The operator's cap is counted in the same transaction: checked
	// before it, two requests at once could both pass the check.
	err = s.st.CreateCappedPass(ctx, store.Pass{ID: p.ID, ProjectID: projectID, Kind: string(p.Kind), State: p.State, Cutoff: cut,
		CreatedAt: p.CreatedAt.Unix()}, time.Now().UnixNano(), ids, string(in.Kind)+" pass queued", s.passCap(in.Kind), s.queue.Enqueue)
	var over *store.CapError
	if errors.As(err, &over) {
		return Pass{}, s.overCapErr(over, chosen)
	}
	var busy *store.BusyError
	if errors.As(err, &busy) {
		// Started by another request (or API process) a moment ago.
		email := busy.MailboxID
		for _, m := range chosen {
			if m.ID == busy.MailboxID {
				email = m.SourceEmail
			}
		}
		return Pass{}, fmt.Errorf("%w: mailbox %s is already being worked on; stop that pass first", ErrConflict, email)
	}
	if err != nil {
		return Pass{}, err
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

// StopPass cancels a pass's jobs. Mailboxes stop at a consistent point
// and a later pass resumes without duplicates.
func (s *Service) StopPass(ctx context.Context, ownerID, projectID, passID string) (Pass, error) {
	p, err := s.Pass(ctx, ownerID, projectID, passID)
	if err != nil {
		return p, err
	}
	// Workers see the state in the database (they look while they
	// renew their leases), whichever process runs them; cancelling the
	// jobs only makes it quicker.
	parts, err := s.st.StopPass(ctx, passID)
	if err != nil {
		return p, err
	}
	for _, j := range parts {
		st := Status(j.Status)
		if st.Terminal() {
			continue
		}
		if j.JobID != 0 && s.queue != nil {
			if err := s.queue.Cancel(ctx, j.JobID); err != nil {
				return p, err
			}
		}
		if st == StatusQueued && j.Worker == "" {
			// Never started: stopped right away.
			if err := s.FinishMailboxPass(ctx, passID, j.MailboxID, Outcome{Status: StatusStopped, Detail: "stopped before it started"}); err != nil {
				return p, err
			}
		}
	}
	return s.Pass(ctx, ownerID, projectID, passID)
}

func fromMailboxPass(r store.MailboxPass) MailboxPass {
	m := MailboxPass{PassID: r.PassID, Kind: PassKind(r.Kind), MailboxID: r.MailboxID, Status: Status(r.Status),
		TotalMsgs: r.TotalMsgs, TotalBytes: r.TotalBytes, Copied: r.Copied, CopiedBytes: r.CopiedBytes, Present: r.Present,
		Skipped: r.Skipped, Failed: r.Failed, FlagUpdates: r.FlagUpdates, Folder: r.Folder, Rate: r.Rate, ETASeconds: r.ETASeconds,
		QuotaUsed: r.QuotaUsed, QuotaLimit: r.QuotaLimit, Warning: r.Warning, ErrorClass: r.ErrorClass, LastError: r.LastError,
		Worker: r.Worker}
	if r.StartedAt != 0 {
		m.StartedAt = time.Unix(r.StartedAt, 0)
		end := time.Now()
		if r.FinishedAt != 0 {
			m.FinishedAt = time.Unix(r.FinishedAt, 0)
			end = m.FinishedAt
		}
		m.DurationSec = end.Sub(m.StartedAt).Seconds()
	}
	if r.ProgressAt != 0 {
		m.ProgressAt = time.Unix(r.ProgressAt, 0)
	}
	m.Paused = pauseOf(r, time.Now())
	if r.Plan != "" {
		_ = json.Unmarshal([]byte(r.Plan), &m.Plan)
	}
	return m
}

func fromPass(r store.Pass) Pass {
	p := Pass{ID: r.ID, ProjectID: r.ProjectID, Kind: PassKind(r.Kind), State: r.State, CreatedAt: time.Unix(r.CreatedAt, 0)}
	if r.Cutoff != 0 {
		p.Cutoff = time.Unix(r.Cutoff, 0)
	}
	if r.FinishedAt != 0 {
		p.FinishedAt = time.Unix(r.FinishedAt, 0)
	}
	return p
}

// Pass returns one pass with its mailboxes' progress.
func (s *Service) Pass(ctx context.Context, ownerID, projectID, passID string) (Pass, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return Pass{}, err
	}
	r, parts, err := s.st.Pass(ctx, projectID, passID)
	if err != nil {
		return Pass{}, notFound(err)
	}
	p := fromPass(r)
	for _, m := range parts {
		p.Mailboxes = append(p.Mailboxes, fromMailboxPass(m))
	}
	return p, nil
}

// Passes lists a project's passes, newest first, without mailboxes.
func (s *Service) Passes(ctx context.Context, ownerID, projectID string) ([]Pass, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	rs, err := s.st.Passes(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := []Pass{}
	for _, r := range rs {
		out = append(out, fromPass(r))
	}
	return out, nil
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
	if err := s.st.FinishProject(ctx, projectID, now()); errors.Is(err, store.ErrBusy) {
		return p, fmt.Errorf("%w: a pass is still running; wait for it or stop it first", ErrConflict)
	} else if err != nil {
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
	totals, err := s.st.MailboxTotals(ctx, projectID)
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
		t := totals[m.ID]
		r.Passes, r.Copied, r.Present, r.Failed, r.BytesCopied = t.Passes, t.Copied, t.Present, t.Failed, t.CopiedBytes
		if m.LastPass != nil && m.LastPass.Kind != PassProof && r.Failed > 0 {
			r.Failed = m.LastPass.Failed // failures are per pass; earlier ones were retried
		}
		if m.LastPass != nil {
			r.Duration = time.Duration(m.LastPass.DurationSec * float64(time.Second))
		}
		out = append(out, r)
	}
	return out, nil
}
