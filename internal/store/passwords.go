package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Links that let an end user enter their own passwords (issue 17). Only
// token hashes are stored; the service hashes and seals.

// PasswordRequest is one emailed link.
type PasswordRequest struct {
	TokenHash, MailboxID, ProjectID, SentTo string
	CreatedAt, ExpiresAt                    int64
}

// AskForPasswords stores a link, retires the mailbox's older unused
// links (a forwarded old mail stops working) and marks the mailbox
// "waiting_for_user", all at once.
func (s *Store) AskForPasswords(ctx context.Context, r PasswordRequest) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, `UPDATE password_requests SET used_at = $1 WHERE mailbox_id = $2 AND used_at = 0`, r.CreatedAt, r.MailboxID); err != nil {
		return fmt.Errorf("retire old links: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO password_requests (token_hash, mailbox_id, project_id, sent_to, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, r.TokenHash, r.MailboxID, r.ProjectID, r.SentTo, r.CreatedAt, r.ExpiresAt); err != nil {
		return fmt.Errorf("store link: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET status = 'waiting_for_user', status_at = $1 WHERE id = $2`, r.CreatedAt, r.MailboxID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, 'waiting_for_user', $3)`,
		r.MailboxID, r.CreatedAt, "passwords asked for by email to "+r.SentTo); err != nil {
		return err
	}
	return tx.Commit()
}

// PasswordRequestsSince counts the links sent for a mailbox after since.
func (s *Store) PasswordRequestsSince(ctx context.Context, mailboxID string, since int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM password_requests WHERE mailbox_id = $1 AND created_at > $2`, mailboxID, since).Scan(&n)
	return n, err
}

// PasswordLink is what the end user's page shows of a valid link.
type PasswordLink struct {
	MailboxID, ProjectID, ProjectName, OwnerEmail string
	SourceEmail, DestEmail, DestinationPreset     string
	ExpiresAt                                     int64
	// HasSourceSecret and HasDestSecret: that side's credentials are
	// stored (e.g. the user already signed in with Microsoft there).
	HasSourceSecret, HasDestSecret bool
}

// PasswordLinkByHash reads an unused, unexpired link at time now;
// sql.ErrNoRows for any other (unknown, used, expired, or its mailbox
// or project gone).
func (s *Store) PasswordLinkByHash(ctx context.Context, hash string, now int64) (PasswordLink, error) {
	var l PasswordLink
	err := s.db.QueryRowContext(ctx, `SELECT m.id, p.id, p.name, o.email, m.source_email, m.dest_email, p.destination_preset, r.expires_at,
		m.source_secret <> '', m.dest_secret <> ''
		FROM password_requests r JOIN mailboxes m ON m.id = r.mailbox_id JOIN projects p ON p.id = m.project_id JOIN owners o ON o.id = p.owner_id
		WHERE r.token_hash = $1 AND r.used_at = 0 AND r.expires_at > $2 AND p.state = 'active'`, hash, now).Scan(
		&l.MailboxID, &l.ProjectID, &l.ProjectName, &l.OwnerEmail, &l.SourceEmail, &l.DestEmail, &l.DestinationPreset, &l.ExpiresAt, &l.HasSourceSecret, &l.HasDestSecret)
	return l, err
}

// UsePasswordLink stores the sealed passwords the end user entered and
// uses the link up, once: sql.ErrNoRows when it was used or expired
// meanwhile. The mailbox becomes "not_started", ready for its trial. An
// empty secret keeps the stored one (a side the user signed in to).
func (s *Store) UsePasswordLink(ctx context.Context, hash, mailboxID, sourceSecret, destSecret string, now int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	res, err := tx.ExecContext(ctx, `UPDATE password_requests SET used_at = $1 WHERE token_hash = $2 AND mailbox_id = $3 AND used_at = 0 AND expires_at > $1`,
		now, hash, mailboxID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return sql.ErrNoRows
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET source_secret = CASE WHEN $1 = '' THEN source_secret ELSE $1 END,
		dest_secret = CASE WHEN $2 = '' THEN dest_secret ELSE $2 END, status = 'not_started', status_at = $3,
		error_class = '', error_side = '', last_error = '' WHERE id = $4`, sourceSecret, destSecret, now, mailboxID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, 'not_started', 'passwords entered by the end user')`,
		mailboxID, now); err != nil {
		return err
	}
	return tx.Commit()
}

// RateCount counts the requests of bucket after since; RateAdd records
// one. (The end-user page's limit per client address.)
func (s *Store) RateCount(ctx context.Context, bucket string, since int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM login_requests WHERE bucket = $1 AND at > $2`, bucket, since).Scan(&n)
	return n, err
}

// RateAdd records a request of bucket at time at.
func (s *Store) RateAdd(ctx context.Context, bucket string, at int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO login_requests (bucket, at) VALUES ($1, $2)`, bucket, at)
	return err
}
