package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// Projects of thousands of mailboxes (issue 17, item 1): pages, search,
// filters and sort done by the database, project totals in one query,
// and actions on a selection or on everything a filter matches.

// DefaultPageSize is the number of mailboxes on a page unless asked.
const DefaultPageSize = 50

// MaxPageSize bounds what a request may ask for.
const MaxPageSize = 500

// MailboxQuery selects a page of a project's mailboxes.
type MailboxQuery struct {
	// Search matches part of the source or destination address.
	Search string
	// Status keeps one status only; empty means every status.
	Status Status
	// NoPasswords keeps only mailboxes missing a stored password whose
	// users have not been asked yet (not "Waiting for end user").
	NoPasswords bool
	// Sort: "address", "status", "updated", or "" for the order added.
	Sort string
	Desc bool
	// Page is 1-based; PerPage 0 means DefaultPageSize.
	Page, PerPage int
}

// Matching reports whether the query filters at all.
func (q MailboxQuery) Matching() bool { return strings.TrimSpace(q.Search) != "" || q.Status != "" }

// MailboxPage is one page of mailboxes with their last pass.
type MailboxPage struct {
	Mailboxes []Mailbox `json:"mailboxes"`
	// Total is how many mailboxes the query matches; Pages how many
	// pages they fill.
	Total   int `json:"total"`
	Page    int `json:"page"`
	Pages   int `json:"pages"`
	PerPage int `json:"per_page"`
}

func (q MailboxQuery) filter(projectID string) (store.MailboxFilter, error) {
	f := store.MailboxFilter{ProjectID: projectID, Search: q.Search, Desc: q.Desc, NoPasswords: q.NoPasswords}
	if q.NoPasswords {
		f.NotStatuses = []string{string(StatusWaitingForUser)}
	}
	switch q.Sort {
	case "", "address", "status", "updated":
		f.Sort = q.Sort
	default:
		return f, inputErr("sort", "sort by address, status or updated")
	}
	if q.Status != "" {
		if q.Status.Label() == string(q.Status) {
			return f, inputErr("status", "unknown status %q", string(q.Status))
		}
		f.Statuses = []string{string(q.Status)}
	}
	return f, nil
}

// MailboxPage returns one page of the mailboxes q selects, each with its
// last pass: a page costs the same whatever the project's size.
func (s *Service) MailboxPage(ctx context.Context, ownerID, projectID string, q MailboxQuery) (MailboxPage, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return MailboxPage{}, err
	}
	f, err := q.filter(projectID)
	if err != nil {
		return MailboxPage{}, err
	}
	per := q.PerPage
	if per <= 0 {
		per = DefaultPageSize
	}
	per = min(per, MaxPageSize)
	page := max(q.Page, 1)
	f.Offset, f.Limit = (page-1)*per, per
	rows, total, err := s.st.MailboxPage(ctx, f)
	if err != nil {
		return MailboxPage{}, err
	}
	pages := max((total+per-1)/per, 1)
	if page > pages && total > 0 {
		// Past the end (the filter now matches fewer): the last page.
		q.Page = pages
		return s.MailboxPage(ctx, ownerID, projectID, q)
	}
	out := MailboxPage{Mailboxes: make([]Mailbox, 0, len(rows)), Total: total, Page: page, Pages: pages, PerPage: per}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	last, err := s.st.LastPassesOf(ctx, ids)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		m := mailboxFromRow(r)
		if lp, ok := last[r.ID]; ok {
			mp := fromMailboxPass(lp)
			m.LastPass = &mp
			m.livePause()
		}
		out.Mailboxes = append(out.Mailboxes, m)
	}
	return out, nil
}

func mailboxFromRow(r store.MailboxRow) Mailbox {
	m := Mailbox{ID: r.ID, ProjectID: r.ProjectID, SourceEmail: r.SourceEmail, SourceLogin: r.SourceLogin, DestEmail: r.DestEmail,
		DestLogin: r.DestLogin, Flags: r.Flags, Status: Status(r.Status), StatusAt: time.Unix(r.StatusAt, 0), MoreInfo: r.LastError,
		HasPasswords: r.HasPasswords}
	m.StatusLabel = m.Status.Label()
	if r.ErrorClass != "" {
		sol := SolveFor(ErrorClass(r.ErrorClass), Side(r.ErrorSide))
		m.SolveIssue = &sol
	}
	return m
}

// MatchingMailboxIDs returns the IDs of every mailbox q matches (paging
// ignored): the target of a bulk action on "everything that matches".
func (s *Service) MatchingMailboxIDs(ctx context.Context, ownerID, projectID string, q MailboxQuery) ([]string, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	f, err := q.filter(projectID)
	if err != nil {
		return nil, err
	}
	return s.st.MailboxIDs(ctx, f)
}

// CopyTotals are a project's totals over each mailbox's latest copying
// pass.
type CopyTotals = store.CopyTotals

// ProjectCopyTotals adds up the latest copying pass of every mailbox.
func (s *Service) ProjectCopyTotals(ctx context.Context, ownerID, projectID string) (CopyTotals, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return CopyTotals{}, err
	}
	return s.st.ProjectCopyTotals(ctx, projectID)
}

// StopMailboxes stops the given mailboxes' parts of the passes at work
// (queued ones at once, running ones at their next consistent point) and
// leaves the other mailboxes of those passes running. It returns how many
// it stopped. Operators may stop any project's mailboxes.
func (s *Service) StopMailboxes(ctx context.Context, ownerID, projectID string, mailboxIDs []string) (int, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return 0, err
	}
	want := make(map[string]bool, len(mailboxIDs))
	for _, id := range mailboxIDs {
		want[id] = true
	}
	jobs, err := s.st.ActiveJobs(ctx, projectID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		if !want[j.MailboxID] {
			continue
		}
		if j.JobID != 0 && s.queue != nil {
			if err := s.queue.Cancel(ctx, j.JobID); err != nil {
				return n, fmt.Errorf("stop mailbox: %w", err)
			}
		}
		if Status(j.Status) == StatusQueued {
			if err := s.FinishMailboxPass(ctx, j.PassID, j.MailboxID, Outcome{Status: StatusStopped, Detail: "stopped before it started"}); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

// DeleteMailboxes removes the given mailboxes, each as DeleteMailbox
// does; it stops at the first that cannot be removed (one being worked
// on) and returns how many it removed.
func (s *Service) DeleteMailboxes(ctx context.Context, ownerID, projectID string, mailboxIDs []string) (int, error) {
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return 0, err
	}
	for i, id := range mailboxIDs {
		if err := s.DeleteMailbox(ctx, ownerID, projectID, id); err != nil {
			return i, err
		}
	}
	return len(mailboxIDs), nil
}

// PageFailures lists, for each of the given mailboxes of a project, the
// failed items of its latest copying pass: Failures for a page of
// mailboxes, with one ownership check for all of them.
func (s *Service) PageFailures(ctx context.Context, ownerID, projectID string, mailboxIDs []string) (map[string][]FailedItem, error) {
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	// The store keeps to the project's mailboxes: another project's ID
	// in mailboxIDs finds nothing.
	rows, err := s.st.LatestCopyFailures(ctx, projectID, mailboxIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]FailedItem, len(rows))
	for id, fs := range rows {
		for _, f := range fs {
			out[id] = append(out[id], FailedItem{PassID: f.PassID, Folder: f.Folder, ID: f.ItemID, UID: uint32(f.UID), Size: f.Size,
				Messages: f.Messages, Kind: f.Kind, Reason: f.Reason, Subject: shownSubject(p.Options.LogSubjects, f.Subject)})
		}
	}
	return out, nil
}
