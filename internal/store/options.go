package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Pass options per project and per mailbox (issue 17 item 2). The
// service keeps them as JSON; the store only stores the text.

// SetProjectOptions replaces a project's pass options. It is refused
// (ErrBusy) while a pass of the project runs: its workers read the
// options when they start a mailbox.
func (s *Store) SetProjectOptions(ctx context.Context, projectID, options string) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `project_id = $1`, projectID); err != nil {
			return err
		}
		n, err := tx.q.exec(ctx, `UPDATE projects SET options = $1 WHERE id = $2`, options, projectID)
		if err != nil {
			return fmt.Errorf("set project options: %w", err)
		}
		if n == 0 {
			return sql.ErrNoRows
		}
		return nil
	})
}

// SetMailboxOptions stores a mailbox's own options; "" removes them, so
// that the project's apply again. Refused (ErrBusy) while a pass works
// on the mailbox.
func (s *Store) SetMailboxOptions(ctx context.Context, mailboxID, options string, at int64) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `id = $1`, mailboxID); err != nil {
			return err
		}
		if options == "" {
			_, err := tx.q.exec(ctx, `DELETE FROM mailbox_options WHERE mailbox_id = $1`, mailboxID)
			return err
		}
		_, err := tx.q.exec(ctx, `INSERT INTO mailbox_options (mailbox_id, options, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (mailbox_id) DO UPDATE SET options = excluded.options, updated_at = excluded.updated_at`,
			mailboxID, options, at)
		if err != nil {
			return fmt.Errorf("set mailbox options: %w", err)
		}
		return nil
	})
}

// MailboxOptions reads a mailbox's own options; "" when it has none.
func (s *Store) MailboxOptions(ctx context.Context, mailboxID string) (string, error) {
	var o string
	err := s.q().queryRow(ctx, `SELECT options FROM mailbox_options WHERE mailbox_id = $1`, mailboxID).Scan(&o)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return o, err
}

// MailboxOptionsOf reads the own options of a project's mailboxes that
// have any, by mailbox id: one query for the whole page.
func (s *Store) MailboxOptionsOf(ctx context.Context, projectID string) (map[string]string, error) {
	rows, err := s.q().query(ctx, `SELECT o.mailbox_id, o.options FROM mailbox_options o JOIN mailboxes m ON m.id = o.mailbox_id
		WHERE m.project_id = $1`, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, o string
		if err := rows.Scan(&id, &o); err != nil {
			return nil, err
		}
		out[id] = o
	}
	return out, rows.Err()
}

// MailboxWork is what a preview of one mailbox's folder plan needs: the
// project and the mailbox's logins and sealed passwords, without a pass.
type MailboxWork struct {
	Project                   Project
	SourceLogin, SourceSecret string
	DestLogin, DestSecret     string
}

// MailboxWork reads it; ErrNoRows when the mailbox is not the project's.
func (s *Store) MailboxWork(ctx context.Context, projectID, mailboxID string) (MailboxWork, error) {
	var w MailboxWork
	var ins, plain int
	p := &w.Project
	err := s.q().queryRow(ctx, `SELECT p.id, p.owner_id, p.name, p.source_type, p.source_host, p.source_port, p.source_security,
			p.source_insecure, p.source_plaintext, p.destination_preset, p.options, p.state, p.created_at, p.finished_at,
			m.source_login, m.source_secret, m.dest_login, m.dest_secret
		FROM mailboxes m JOIN projects p ON p.id = m.project_id WHERE m.id = $1 AND p.id = $2`, mailboxID, projectID).Scan(
		&p.ID, &p.OwnerID, &p.Name, &p.SourceType, &p.SourceHost, &p.SourcePort, &p.SourceSecurity, &ins, &plain,
		&p.DestinationPreset, &p.Options, &p.State, &p.CreatedAt, &p.FinishedAt,
		&w.SourceLogin, &w.SourceSecret, &w.DestLogin, &w.DestSecret)
	p.SourceInsecure, p.SourcePlaintext = ins != 0, plain != 0
	return w, err
}
