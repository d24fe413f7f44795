package store

import (
	"context"
	"fmt"
	"strings"
)

// Pages of a project's mailboxes (issue 17): search, filter and sort in
// the database, so that a page of a 2,000-mailbox project reads one page
// of rows and a few aggregates, never every mailbox.

// MailboxFilter selects a project's mailboxes.
type MailboxFilter struct {
	ProjectID string
	// Search matches part of the source or destination address, case
	// insensitively.
	Search string
	// Statuses keeps only these statuses (any when empty).
	Statuses []string
	// NoPasswords keeps only mailboxes missing a stored password.
	NoPasswords bool
	// NotStatuses leaves these statuses out.
	NotStatuses []string
	// Sort is "address", "status", "updated" or "" (the order added);
	// Desc reverses it.
	Sort string
	Desc bool
	// Offset and Limit bound the page (Limit 0: no bound).
	Offset, Limit int
}

// MailboxRow is one mailbox as a list shows it: no secrets, only whether
// both are stored.
type MailboxRow struct {
	ID, ProjectID, SourceEmail, SourceLogin, DestEmail, DestLogin, Flags string
	Status                                                               string
	StatusAt                                                             int64
	ErrorClass, ErrorSide, LastError                                     string
	HasPasswords                                                         bool
}

// where builds the filter's WHERE clause and arguments.
func (f MailboxFilter) where() (string, []any) {
	var b strings.Builder
	args := []any{f.ProjectID}
	b.WriteString(`m.project_id = $1`)
	if q := strings.ToLower(strings.TrimSpace(f.Search)); q != "" {
		r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		args = append(args, "%"+r.Replace(q)+"%")
		n := len(args)
		fmt.Fprintf(&b, ` AND (LOWER(m.source_email) LIKE $%d ESCAPE '\' OR LOWER(m.dest_email) LIKE $%d ESCAPE '\')`, n, n)
	}
	if len(f.Statuses) > 0 {
		b.WriteString(` AND m.status IN (`)
		for i, st := range f.Statuses {
			args = append(args, st)
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", len(args))
		}
		b.WriteString(")")
	}
	if len(f.NotStatuses) > 0 {
		b.WriteString(` AND m.status NOT IN (`)
		for i, st := range f.NotStatuses {
			args = append(args, st)
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", len(args))
		}
		b.WriteString(")")
	}
	if f.NoPasswords {
		b.WriteString(` AND (m.source_secret = '' OR m.dest_secret = '')`)
	}
	return b.String(), args
}

func (f MailboxFilter) orderBy() string {
	dir := " ASC"
	if f.Desc {
		dir = " DESC"
	}
	switch f.Sort {
	case "address":
		return "m.source_email" + dir + ", m.dest_email" + dir + ", m.id"
	case "status":
		return "m.status" + dir + ", m.source_email, m.id"
	case "updated":
		return "m.status_at" + dir + ", m.source_email, m.id"
	}
	return "m.created_at" + dir + ", m.source_email" + dir + ", m.id"
}

// MailboxPage returns one page of the mailboxes f selects, and how many
// it selects in all.
func (s *Store) MailboxPage(ctx context.Context, f MailboxFilter) ([]MailboxRow, int, error) {
	where, args := f.where()
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes m WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count mailboxes: %w", err)
	}
	q := `SELECT m.id, m.project_id, m.source_email, m.source_login, m.dest_email, m.dest_login, m.flags, m.status, m.status_at,
		m.error_class, m.error_side, m.last_error, m.source_secret <> '' AND m.dest_secret <> ''
		FROM mailboxes m WHERE ` + where + ` ORDER BY ` + f.orderBy()
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", f.Limit, max(f.Offset, 0))
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []MailboxRow
	for rows.Next() {
		var m MailboxRow
		if err := rows.Scan(&m.ID, &m.ProjectID, &m.SourceEmail, &m.SourceLogin, &m.DestEmail, &m.DestLogin, &m.Flags, &m.Status, &m.StatusAt,
			&m.ErrorClass, &m.ErrorSide, &m.LastError, &m.HasPasswords); err != nil {
			return nil, 0, fmt.Errorf("list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	return out, total, rows.Err()
}

// MailboxIDs returns the IDs of every mailbox f selects (Offset and
// Limit are ignored), in f's order: bulk actions on "everything that
// matches the filter".
func (s *Store) MailboxIDs(ctx context.Context, f MailboxFilter) ([]string, error) {
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, `SELECT m.id FROM mailboxes m WHERE `+where+` ORDER BY `+f.orderBy(), args...)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// CopyTotals adds up, over a project's mailboxes whose latest pass copies
// mail, that pass's counts: the project total of the Migrate page.
type CopyTotals struct {
	// Mailboxes counts the mailboxes whose latest pass copies mail.
	Mailboxes                                    int
	Messages, Processed, Copied, Present, Failed int64
	Bytes, CopiedBytes                           int64
	// Rate and ETASeconds are of the mailboxes still at work: the sum of
	// their rates and the longest of their estimates.
	Rate       float64
	ETASeconds int64
}

// ProjectCopyTotals computes CopyTotals in one query.
func (s *Store) ProjectCopyTotals(ctx context.Context, projectID string) (CopyTotals, error) {
	var t CopyTotals
	// The latest pass of each mailbox by a window function: one scan of
	// the project's mailbox passes, not one subquery per mailbox. A
	// proof (Verify migration) copies nothing and leaves the totals of
	// the copying before it.
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(x.total_msgs), 0),
			COALESCE(SUM(CASE WHEN x.copied + x.present + x.skipped + x.failed < x.total_msgs
				THEN x.copied + x.present + x.skipped + x.failed ELSE x.total_msgs END), 0),
			COALESCE(SUM(x.copied), 0), COALESCE(SUM(x.present), 0), COALESCE(SUM(x.failed), 0),
			COALESCE(SUM(x.total_bytes), 0), COALESCE(SUM(x.copied_bytes), 0),
			COALESCE(SUM(CASE WHEN x.status IN `+activeStatusesSQL+` THEN x.rate ELSE 0 END), 0),
			COALESCE(MAX(CASE WHEN x.status IN `+activeStatusesSQL+` THEN x.eta_seconds ELSE 0 END), 0)
		FROM (SELECT mp.total_msgs, mp.copied, mp.present, mp.skipped, mp.failed, mp.total_bytes, mp.copied_bytes, mp.status,
				mp.rate, mp.eta_seconds, p.kind,
				ROW_NUMBER() OVER (PARTITION BY mp.mailbox_id ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC) AS latest
			FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id WHERE p.project_id = $1 AND p.kind <> 'proof') x
		WHERE x.latest = 1 AND x.kind NOT IN ('verify', 'trial')`, projectID).Scan(
		&t.Mailboxes, &t.Messages, &t.Processed, &t.Copied, &t.Present, &t.Failed, &t.Bytes, &t.CopiedBytes, &t.Rate, &t.ETASeconds)
	if err != nil {
		return t, fmt.Errorf("project totals: %w", err)
	}
	return t, nil
}

// ActiveJob is a mailbox's part of a pass that has not ended.
type ActiveJob struct {
	PassID, MailboxID, Status string
	JobID                     int64
}

// ActiveJobs lists the parts of a project's passes that are queued or at
// work: what "stop" on a selection of mailboxes cancels.
func (s *Store) ActiveJobs(ctx context.Context, projectID string) ([]ActiveJob, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT mp.pass_id, mp.mailbox_id, mp.status, mp.job_id FROM mailbox_passes mp
		JOIN passes p ON p.id = mp.pass_id WHERE p.project_id = $1 AND mp.status IN `+activeStatusesSQL, projectID)
	if err != nil {
		return nil, fmt.Errorf("active jobs: %w", err)
	}
	defer rows.Close()
	var out []ActiveJob
	for rows.Next() {
		var j ActiveJob
		if err := rows.Scan(&j.PassID, &j.MailboxID, &j.Status, &j.JobID); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// activeStatusesSQL are the statuses of a pass still at work, as SQL.
const activeStatusesSQL = `('queued', 'verifying', 'migrating')`

// FailedItemRow is one item a pass could not copy.
type FailedItemRow struct {
	PassID, Folder, Kind, Reason, Subject, ItemID string
	UID, Size, Messages                           int64
}

// LatestCopyFailures returns, for each mailbox of the project among
// mailboxIDs (the mailboxes of one page), the failed items of its latest
// copying pass. IDs of other projects' mailboxes find nothing.
func (s *Store) LatestCopyFailures(ctx context.Context, projectID string, mailboxIDs []string) (map[string][]FailedItemRow, error) {
	out := make(map[string][]FailedItemRow, len(mailboxIDs))
	if len(mailboxIDs) == 0 {
		return out, nil
	}
	// One query for the page, not one per mailbox: the live status of a
	// page runs it on every poll.
	args := []any{projectID}
	marks := make([]string, len(mailboxIDs))
	for i, id := range mailboxIDs {
		args = append(args, id)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT f.mailbox_id, f.pass_id, f.folder, f.uid, f.size, f.kind, f.reason, f.subject, f.messages, f.item_id
		FROM failed_items f JOIN mailboxes m ON m.id = f.mailbox_id
		WHERE m.project_id = $1 AND f.mailbox_id IN (`+strings.Join(marks, ", ")+`)
			AND f.pass_id = (SELECT mp.pass_id FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
				WHERE mp.mailbox_id = f.mailbox_id AND p.kind NOT IN ('verify', 'trial', 'proof') ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC LIMIT 1)
		ORDER BY f.mailbox_id, f.folder, f.uid, f.item_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("failed items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var f FailedItemRow
		if err := rows.Scan(&id, &f.PassID, &f.Folder, &f.UID, &f.Size, &f.Kind, &f.Reason, &f.Subject, &f.Messages, &f.ItemID); err != nil {
			return nil, fmt.Errorf("failed items: %w", err)
		}
		out[id] = append(out[id], f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed items: %w", err)
	}
	return out, nil
}

// PassFailures lists the failed items of one mailbox in one pass.
func (s *Store) PassFailures(ctx context.Context, passID, mailboxID string) ([]FailedItemRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT pass_id, folder, uid, size, kind, reason, subject, messages, item_id FROM failed_items
		WHERE pass_id = $1 AND mailbox_id = $2 ORDER BY folder, uid, item_id`, passID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("failed items: %w", err)
	}
	defer rows.Close()
	var out []FailedItemRow
	for rows.Next() {
		var f FailedItemRow
		if err := rows.Scan(&f.PassID, &f.Folder, &f.UID, &f.Size, &f.Kind, &f.Reason, &f.Subject, &f.Messages, &f.ItemID); err != nil {
			return nil, fmt.Errorf("failed items: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// LastPassesOf returns, by mailbox, the part of the latest pass of each
// of the given mailboxes (a page's).
func (s *Store) LastPassesOf(ctx context.Context, ids []string) (map[string]MailboxPass, error) {
	if len(ids) == 0 {
		return map[string]MailboxPass{}, nil
	}
	var b strings.Builder
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i+1)
		args[i] = id
	}
	return s.lastPasses(ctx, s.q(), `mp.mailbox_id IN (`+b.String()+`)`, args...)
}

// PassRecord is a mailbox's part of a pass with the pass's state.
type PassRecord struct {
	MailboxPass
	PassState string
}

// MailboxPassHistory lists every pass of a mailbox, newest first.
func (s *Store) MailboxPassHistory(ctx context.Context, mailboxID string) ([]PassRecord, error) {
	rs, err := s.q().query(ctx, `SELECT `+mailboxPassCols+`, mp.pass_state FROM (
			SELECT mp.*, p.kind AS kind, p.state AS pass_state, p.created_at AS pass_at, p.created_ns AS pass_ns
			FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id WHERE mp.mailbox_id = $1) mp
		JOIN mailboxes m ON m.id = mp.mailbox_id ORDER BY mp.pass_at DESC, mp.pass_ns DESC, mp.pass_id DESC`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("pass history: %w", err)
	}
	defer rs.Close()
	var out []PassRecord
	for rs.Next() {
		var r PassRecord
		if err := scanMailboxPass(extraRow{rs, &r.PassState}, &r.MailboxPass); err != nil {
			return nil, fmt.Errorf("pass history: %w", err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// extraRow scans mailboxPassCols followed by one more column.
type extraRow struct {
	r     row
	extra any
}

func (e extraRow) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra)...) }
