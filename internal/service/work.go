package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/store"
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
	// SourceAdmin and DestAdmin are set, with their secrets, for a side
	// that logs in with the project's app credentials (Microsoft 365);
	// that side's login is then the mailbox's address and it has no
	// password.
	SourceAdmin, DestAdmin *AdminCredentials
	// SourceMailbox and DestMailbox are set when that side logs in with
	// the project's admin account and acts on this mailbox (Exchange
	// impersonation, connector.Credentials.Mailbox); the login and
	// password are then the admin's, and SourceAdmin or DestAdmin is nil.
	SourceMailbox, DestMailbox string
	MigratedBefore             bool
	Owner                      Owner
}

// LoadWork reads a job's work; ErrNotFound when the pass or mailbox is
// gone (e.g. deleted), which ends the job, and ErrSecretKey when the
// stored passwords cannot be decrypted, which fails it.
func (s *Service) LoadWork(ctx context.Context, passID, mailboxID string) (Work, error) {
	r, err := s.st.Work(ctx, passID, mailboxID)
	if err != nil {
		return Work{}, notFound(err)
	}
	w := Work{Pass: fromPass(r.Pass), Project: s.fromProjectRow(r.Project), Owner: ownerFrom(r.Owner), MailboxID: mailboxID,
		SourceLogin: r.SourceLogin, DestLogin: r.DestLogin, MigratedBefore: r.MigratedOnce}
	preset, ok := s.presets[w.Project.DestinationPreset]
	if !ok {
		return w, fmt.Errorf("destination preset %q is no longer configured", w.Project.DestinationPreset)
	}
	w.Destination = preset
	// A mailbox's own options (options.go) over the project's.
	if err := s.applyMailboxOptions(ctx, &w); err != nil {
		return w, err
	}
	kinds, err := s.sideKinds(ctx, w.Project.ID)
	if err != nil {
		return w, err
	}
	for _, sd := range []struct {
		side                 Side
		sealed, email        string
		login, pass, mailbox *string
		admin                **AdminCredentials
	}{
		{SideSource, r.SourceSecret, r.SourceEmail, &w.SourceLogin, &w.SourcePassword, &w.SourceMailbox, &w.SourceAdmin},
		{SideDestination, r.DestSecret, r.DestEmail, &w.DestLogin, &w.DestPassword, &w.DestMailbox, &w.DestAdmin},
	} {
		if kinds[sd.side] == kindM365Delegated {
			// The user signed in: their refresh token is the secret.
			if *sd.admin, err = s.signedIn(ctx, w.Project.ID, mailboxID, sd.side, sd.sealed); err != nil {
				return w, err
			}
			continue
		}
		if sd.sealed == adminMarker {
			a, err := s.admin(ctx, w.Project.ID, sd.side)
			if err != nil {
				return w, err
			}
			if a.Kind == kindEWS {
				// The admin logs in and acts on the row's mailbox.
				*sd.login, *sd.pass, *sd.mailbox = a.Login, a.Password, sd.email
				continue
			}
			*sd.admin = a
			continue
		}
		if *sd.pass, err = s.open(mailboxID, string(sd.side), sd.sealed); err != nil {
			return w, err
		}
	}
	return w, nil
}

// PassState returns a pass's state (running, stopping, completed, stopped).
func (s *Service) PassState(ctx context.Context, passID string) (string, error) {
	st, err := s.st.PassState(ctx, passID)
	return st, notFound(err)
}

// BeginMailboxPass marks a mailbox as being worked on by worker (the
// worker process's name, shown by the API).
func (s *Service) BeginMailboxPass(ctx context.Context, passID, mailboxID string, st Status, worker string) error {
	return s.st.BeginMailboxPass(ctx, passID, mailboxID, string(st), worker, now())
}

// Progress is a live snapshot of a running mailbox pass.
type Progress struct {
	TotalMsgs, TotalBytes, Copied, CopiedBytes, Present, Skipped, Failed, FlagUpdates int64
	Folder                                                                            string
	Rate                                                                              float64
	ETA                                                                               time.Duration
	// PauseCause and PauseUntil say that the pass waits on its server
	// (PauseDailyLimit, PauseThrottled) until then; empty and zero while
	// it works.
	PauseCause string
	PauseUntil time.Time
}

func (p Progress) row() store.Progress {
	return store.Progress{TotalMsgs: p.TotalMsgs, TotalBytes: p.TotalBytes, Copied: p.Copied, CopiedBytes: p.CopiedBytes,
		Present: p.Present, Skipped: p.Skipped, Failed: p.Failed, FlagUpdates: p.FlagUpdates, Folder: p.Folder, Rate: p.Rate,
		ETASeconds: int64(p.ETA.Seconds()), PauseCause: p.PauseCause, PauseUntil: unixOrZero(p.PauseUntil)}
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// UpdateProgress stores a snapshot so any API process can show it.
func (s *Service) UpdateProgress(ctx context.Context, passID, mailboxID string, p Progress) error {
	return s.st.UpdateProgress(ctx, passID, mailboxID, p.row(), now())
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

// FinishMailboxPass stores the outcome; when it was the pass's last
// mailbox it completes the pass and tells the owner, exactly once
// whichever process finishes last.
func (s *Service) FinishMailboxPass(ctx context.Context, passID, mailboxID string, o Outcome) error {
	plan := ""
	if len(o.Plan) > 0 {
		b, _ := json.Marshal(o.Plan)
		plan = string(b)
	}
	detail := o.Detail
	if detail == "" && o.Error != "" {
		detail = o.Error
	}
	f := store.Finish{Status: string(o.Status), ErrorClass: string(o.Class), ErrorSide: string(o.Side), Error: o.Error, Detail: detail,
		Plan: plan, QuotaUsed: o.Quota.Used, QuotaLimit: o.Quota.Limit, Warning: o.Warning,
		Migrated: o.Status == StatusCompleted || o.Status == StatusCompletedWithErrors}
	if o.Progress != nil {
		p := o.Progress.row()
		f.Progress = &p
	}
	for _, x := range o.Failures {
		f.Failures = append(f.Failures, store.FailedItem{Folder: x.Folder, ID: x.ID, UID: x.UID, Size: x.Size, Messages: x.Messages, Kind: x.Kind,
			Reason: x.Reason, Subject: x.Subject})
	}
	done, err := s.st.FinishMailboxPass(ctx, passID, mailboxID, f, now())
	if err != nil {
		return err
	}
	if done && s.notifier != nil {
		s.notifyPass(ctx, passID)
	}
	return nil
}

// Notifier sends an email to a project owner.
type Notifier func(ctx context.Context, to, subject, text string) error

// SetNotifier configures pass reports; baseURL is where the portal is
// reachable, for the link in the email.
func (s *Service) SetNotifier(n Notifier, baseURL string) {
	s.notifier, s.baseURL = n, strings.TrimRight(baseURL, "/")
}

func (s *Service) notifyPass(ctx context.Context, passID string) {
	r, parts, err := s.st.Pass(ctx, "", passID)
	if err != nil {
		return
	}
	proj, err := s.st.Project(ctx, "", r.ProjectID)
	if err != nil {
		return
	}
	owner, err := s.OwnerByID(ctx, proj.OwnerID)
	if err != nil {
		return
	}
	name, kind, projectID := proj.Name, r.Kind, proj.ID
	var ok, failed, stopped int
	var copied, failedItems int64
	var lines []string
	for _, x := range parts {
		m := fromMailboxPass(x)
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
		line := fmt.Sprintf("  %-40s %s", x.SourceEmail, m.Status.Label())
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
	return s.st.AcquireLease(ctx, resource, holder, ttl)
}

// ReleaseLease gives a lease back.
func (s *Service) ReleaseLease(ctx context.Context, resource, holder string) error {
	return s.st.ReleaseLease(ctx, resource, holder)
}

// Store is the service's database, for the workers' leases and queue.
func (s *Service) Store() *store.Store { return s.st }
