package store

import (
	"context"
	"fmt"
)

// Mailbox is a mailbox pair's row as the API shows it: never its sealed
// passwords, only whether it has them.
type Mailbox struct {
	ID, ProjectID                                  string
	SourceEmail, SourceLogin, DestEmail, DestLogin string
	Flags, Status                                  string
	StatusAt                                       int64
	ErrorClass, ErrorSide, LastError               string
	HasPasswords                                   bool
	CreatedAt                                      int64
	// LastPass is the mailbox's part of its latest pass, if any.
	LastPass *MailboxPass
}

// NewMailbox is a mailbox pair to add, with its sealed passwords.
type NewMailbox struct {
	ID, SourceEmail, SourceLogin, SourceSecret string
	DestEmail, DestLogin, DestSecret, Flags    string
}

// DuplicateError means a mailbox pair is already in the project.
type DuplicateError struct {
	// Index is the position of the refused pair in the input.
	Index int
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("mailbox %d is already in the project", e.Index+1)
}

const mailboxCols = `m.id, m.project_id, m.source_email, m.source_login, m.dest_email, m.dest_login, m.flags, m.status, m.status_at,
	m.error_class, m.error_side, m.last_error, m.source_secret <> '' AND m.dest_secret <> '', m.created_at`

func scanMailbox(r row, m *Mailbox) error {
	return r.Scan(&m.ID, &m.ProjectID, &m.SourceEmail, &m.SourceLogin, &m.DestEmail, &m.DestLogin, &m.Flags, &m.Status, &m.StatusAt,
		&m.ErrorClass, &m.ErrorSide, &m.LastError, &m.HasPasswords, &m.CreatedAt)
}

// AddMailboxes adds pairs to a project in status, all or none. A pair
// already in the project refuses the whole call with a *DuplicateError.
func (s *Store) AddMailboxes(ctx context.Context, projectID string, ms []NewMailbox, status string, at int64) error {
	return s.inTx(ctx, func(tx *Tx) error {
		for i, m := range ms {
			if _, err := tx.q.exec(ctx, `INSERT INTO mailboxes (id, project_id, source_email, source_login, source_secret, dest_email,
					dest_login, dest_secret, flags, status, status_at, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
				m.ID, projectID, m.SourceEmail, m.SourceLogin, m.SourceSecret, m.DestEmail, m.DestLogin, m.DestSecret, m.Flags,
				status, at); err != nil {
				if unique(err) {
					return &DuplicateError{Index: i}
				}
				return fmt.Errorf("add mailbox: %w", err)
			}
			if _, err := tx.q.exec(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, $3, 'added')`,
				m.ID, at, status); err != nil {
				return err
			}
		}
		return nil
	})
}

// Mailboxes lists a project's pairs with their last pass: two queries,
// whatever the number of mailboxes.
func (s *Store) Mailboxes(ctx context.Context, projectID string) ([]Mailbox, error) {
	q := s.q()
	rs, err := q.query(ctx, `SELECT `+mailboxCols+` FROM mailboxes m WHERE m.project_id = $1 ORDER BY m.created_at, m.source_email`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	var out []Mailbox
	for rs.Next() {
		var m Mailbox
		if err := scanMailbox(rs, &m); err != nil {
			rs.Close()
			return nil, fmt.Errorf("list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	last, err := s.lastPasses(ctx, q, `p.project_id = $1`, projectID)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if lp, ok := last[out[i].ID]; ok {
			out[i].LastPass = &lp
		}
	}
	return out, nil
}

// Mailbox reads one pair of a project with its last pass; ErrNoRows when
// it is not there.
func (s *Store) Mailbox(ctx context.Context, projectID, id string) (Mailbox, error) {
	q := s.q()
	var m Mailbox
	if err := scanMailbox(q.queryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes m WHERE m.id = $1 AND m.project_id = $2`, id, projectID), &m); err != nil {
		return m, err
	}
	last, err := s.lastPasses(ctx, q, `mp.mailbox_id = $1`, id)
	if lp, ok := last[id]; ok {
		m.LastPass = &lp
	}
	return m, err
}

// lastPasses returns, by mailbox, the part of the latest pass (the one
// started last) of the mailboxes whose passes satisfy cond.
func (s *Store) lastPasses(ctx context.Context, q querier, cond string, args ...any) (map[string]MailboxPass, error) {
	rs, err := q.query(ctx, `SELECT `+mailboxPassCols+` FROM (
			SELECT mp.*, p.kind AS kind, ROW_NUMBER() OVER (PARTITION BY mp.mailbox_id
				ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC) AS rn
			FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id WHERE `+cond+`) mp
		JOIN mailboxes m ON m.id = mp.mailbox_id WHERE mp.rn = 1`, args...)
	if err != nil {
		return nil, fmt.Errorf("read last passes: %w", err)
	}
	defer rs.Close()
	out := map[string]MailboxPass{}
	for rs.Next() {
		var mp MailboxPass
		if err := scanMailboxPass(rs, &mp); err != nil {
			return nil, fmt.Errorf("read last passes: %w", err)
		}
		out[mp.MailboxID] = mp
	}
	return out, rs.Err()
}

// Event is one stored status change of a mailbox.
type Event struct {
	At             int64
	Status, Detail string
}

// MailboxEvents is a mailbox's status history, oldest first.
func (s *Store) MailboxEvents(ctx context.Context, id string) ([]Event, error) {
	rs, err := s.q().query(ctx, `SELECT at, status, detail FROM mailbox_events WHERE mailbox_id = $1 ORDER BY at, status`, id)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Event
	for rs.Next() {
		var e Event
		if err := rs.Scan(&e.At, &e.Status, &e.Detail); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rs.Err()
}

// MailboxUpdate changes a pair's addresses, logins and flags, and its
// sealed passwords where they are not empty.
type MailboxUpdate struct {
	SourceEmail, SourceLogin, DestEmail, DestLogin, Flags string
	SourceSecret, DestSecret                              string
	// ClearSourceSecret and ClearDestSecret erase that side's secret (a
	// user's sign-in that belongs to the old address).
	ClearSourceSecret, ClearDestSecret bool
}

// UpdateMailbox applies u to a mailbox no pass works on (ErrBusy
// otherwise); a pair that would repeat another of the project is a
// *DuplicateError.
func (s *Store) UpdateMailbox(ctx context.Context, id string, u MailboxUpdate) error {
	n, err := s.q().exec(ctx, `UPDATE mailboxes SET source_email = $1, source_login = $2, dest_email = $3, dest_login = $4,
			source_secret = CASE WHEN $9 THEN '' WHEN $5 = '' THEN source_secret ELSE $5 END,
			dest_secret = CASE WHEN $10 THEN '' WHEN $6 = '' THEN dest_secret ELSE $6 END, flags = $7
		WHERE id = $8 AND status NOT IN `+busyStatuses, u.SourceEmail, u.SourceLogin, u.DestEmail, u.DestLogin, u.SourceSecret, u.DestSecret,
		u.Flags, id, u.ClearSourceSecret, u.ClearDestSecret)
	if unique(err) {
		return &DuplicateError{}
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrBusy
	}
	return nil
}

// DeleteMailbox removes a pair no pass works on (ErrBusy otherwise), with
// its passes' statistics, failures and history.
func (s *Store) DeleteMailbox(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `id = $1`, id); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM failed_items WHERE mailbox_id = $1`, `DELETE FROM proof_reports WHERE mailbox_id = $1`, `DELETE FROM mailbox_passes WHERE mailbox_id = $1`,
			`DELETE FROM mailbox_events WHERE mailbox_id = $1`, `DELETE FROM mailboxes WHERE id = $1`} {
			if _, err := tx.q.exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// SealedSecrets is one mailbox's stored (sealed) passwords.
type SealedSecrets struct{ MailboxID, Source, Dest string }

// Secrets lists the sealed passwords of every mailbox that has any (for
// the start-up check that the secret key opens them).
func (s *Store) Secrets(ctx context.Context) ([]SealedSecrets, error) {
	rs, err := s.q().query(ctx, `SELECT id, source_secret, dest_secret FROM mailboxes WHERE source_secret <> '' OR dest_secret <> ''`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []SealedSecrets
	for rs.Next() {
		var x SealedSecrets
		if err := rs.Scan(&x.MailboxID, &x.Source, &x.Dest); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rs.Err()
}

// FailedItem is one message (or folder) a pass could not copy.
type FailedItem struct {
	PassID, Folder string
	// ID is the source connector's ID of the message (issue 11); items
	// recorded before the connector model have only UID.
	ID             string
	UID            uint32
	Size, Messages int64
	Kind, Reason   string
	Subject        string
}

// Failures lists the failed items of a mailbox's last copying pass.
func (s *Store) Failures(ctx context.Context, mailboxID string) ([]FailedItem, error) {
	rs, err := s.q().query(ctx, `SELECT pass_id, folder, uid, size, kind, reason, subject, messages, item_id FROM failed_items
		WHERE mailbox_id = $1 AND pass_id = (SELECT mp.pass_id FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
			WHERE mp.mailbox_id = $1 AND p.kind NOT IN ('verify', 'trial', 'proof') ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC LIMIT 1)
		ORDER BY folder, uid, item_id`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []FailedItem{}
	for rs.Next() {
		var f FailedItem
		var uid int64
		if err := rs.Scan(&f.PassID, &f.Folder, &uid, &f.Size, &f.Kind, &f.Reason, &f.Subject, &f.Messages, &f.ID); err != nil {
			return nil, err
		}
		f.UID = uint32(uid)
		out = append(out, f)
	}
	return out, rs.Err()
}

// Totals sums a mailbox's passes that started, for the CSV export;
// Verify migration (proof) passes copy nothing and are not counted.
type Totals struct {
	Passes                               int
	Copied, Present, Failed, CopiedBytes int64
}

// MailboxTotals returns the totals of every mailbox of a project that had
// a pass start: one query.
func (s *Store) MailboxTotals(ctx context.Context, projectID string) (map[string]Totals, error) {
	rs, err := s.q().query(ctx, `SELECT mp.mailbox_id, COUNT(*), CAST(COALESCE(SUM(mp.copied), 0) AS BIGINT),
			CAST(COALESCE(SUM(mp.present), 0) AS BIGINT), CAST(COALESCE(SUM(mp.failed), 0) AS BIGINT),
			CAST(COALESCE(SUM(mp.copied_bytes), 0) AS BIGINT)
		FROM mailbox_passes mp JOIN mailboxes m ON m.id = mp.mailbox_id JOIN passes x ON x.id = mp.pass_id
		WHERE m.project_id = $1 AND mp.started_at > 0 AND x.kind <> $2 GROUP BY mp.mailbox_id`, projectID, PassKindProof)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string]Totals{}
	for rs.Next() {
		var id string
		var t Totals
		if err := rs.Scan(&id, &t.Passes, &t.Copied, &t.Present, &t.Failed, &t.CopiedBytes); err != nil {
			return nil, err
		}
		out[id] = t
	}
	return out, rs.Err()
}
