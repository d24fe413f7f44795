package store

import (
	"context"
	"database/sql"
	"fmt"
)

// End users sign in with Microsoft through their link (issue 17): a
// started sign-in waits here for its callback. Only hashes of the state
// and of the nonce cookie are stored; the service seals the rest.

// SignInRequest is one started sign-in.
type SignInRequest struct {
	StateHash, TokenHash, NonceHash string
	// Side is "source" or "destination".
	Side string
	// Sealed holds the PKCE verifier and the link's token, sealed.
	Sealed               string
	CreatedAt, ExpiresAt int64
}

// AddSignIn stores a started sign-in.
func (s *Store) AddSignIn(ctx context.Context, r SignInRequest) error {
	// Sign-ins older than the rate limit's hour are of no more use.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sign_in_requests WHERE created_at < $1`, r.CreatedAt-3600); err != nil {
		return fmt.Errorf("drop old sign-ins: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO sign_in_requests (state_hash, token_hash, nonce_hash, side, sealed, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.StateHash, r.TokenHash, r.NonceHash, r.Side, r.Sealed, r.CreatedAt, r.ExpiresAt); err != nil {
		return fmt.Errorf("store the sign-in: %w", err)
	}
	return nil
}

// SignInsSince counts the sign-ins started for a link after since.
func (s *Store) SignInsSince(ctx context.Context, tokenHash string, since int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sign_in_requests WHERE token_hash = $1 AND created_at > $2`, tokenHash, since).Scan(&n)
	return n, err
}

// TakeSignIn uses a started sign-in up, once, at time now and returns
// it: sql.ErrNoRows when it is unknown, used or expired. The nonce is
// not checked here: a callback whose cookie does not match still uses the
// state up, so that a leaked state cannot be tried again.
func (s *Store) TakeSignIn(ctx context.Context, stateHash string, now int64) (SignInRequest, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return SignInRequest{}, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	r := SignInRequest{StateHash: stateHash}
	err = tx.QueryRowContext(ctx, `SELECT token_hash, nonce_hash, side, sealed, created_at, expires_at FROM sign_in_requests
		WHERE state_hash = $1 AND used_at = 0 AND expires_at > $2`, stateHash, now).Scan(
		&r.TokenHash, &r.NonceHash, &r.Side, &r.Sealed, &r.CreatedAt, &r.ExpiresAt)
	if err != nil {
		return r, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE sign_in_requests SET used_at = $1, sealed = '' WHERE state_hash = $2 AND used_at = 0`, now, stateHash)
	if err != nil {
		return r, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return r, sql.ErrNoRows
	}
	return r, tx.Commit()
}

// StoreSignIn stores the sealed refresh token a user's sign-in gave for
// one side of the mailbox of a link that is still usable at time now
// (else sql.ErrNoRows). When both sides of the mailbox then have their
// credentials, the link is used up and the mailbox becomes
// "not_started", as with UsePasswordLink; complete says so.
func (s *Store) StoreSignIn(ctx context.Context, tokenHash, mailboxID, side, secret string, now int64) (complete bool, err error) {
	col := map[string]string{"source": "source_secret", "destination": "dest_secret"}[side]
	if col == "" {
		return false, fmt.Errorf("store the sign-in: unknown side %q", side)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM password_requests WHERE token_hash = $1 AND mailbox_id = $2 AND used_at = 0 AND expires_at > $3`,
		tokenHash, mailboxID, now).Scan(&n); err != nil {
		return false, err
	}
	if n != 1 {
		return false, sql.ErrNoRows
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET `+col+` = $1 WHERE id = $2`, secret, mailboxID); err != nil {
		return false, fmt.Errorf("store the sign-in: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, 'waiting_for_user', $3)`,
		mailboxID, now, "the end user signed in with Microsoft for the "+side); err != nil {
		return false, err
	}
	var src, dst string
	if err := tx.QueryRowContext(ctx, `SELECT source_secret, dest_secret FROM mailboxes WHERE id = $1`, mailboxID).Scan(&src, &dst); err != nil {
		return false, err
	}
	if src != "" && dst != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE password_requests SET used_at = $1 WHERE token_hash = $2`, now, tokenHash); err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET status = 'not_started', status_at = $1, error_class = '', error_side = '', last_error = '' WHERE id = $2`,
			now, mailboxID); err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, 'not_started', 'credentials given by the end user')`,
			mailboxID, now); err != nil {
			return false, err
		}
		complete = true
	}
	return complete, tx.Commit()
}

// ReplaceSideSecret replaces one side's stored secret of a mailbox, only
// while it has one (a rotated refresh token must not bring back
// credentials that Finish erased).
func (s *Store) ReplaceSideSecret(ctx context.Context, mailboxID, side, secret string) error {
	col := map[string]string{"source": "source_secret", "destination": "dest_secret"}[side]
	if col == "" {
		return fmt.Errorf("replace a secret: unknown side %q", side)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE mailboxes SET `+col+` = $1 WHERE id = $2 AND `+col+` <> ''`, secret, mailboxID); err != nil {
		return fmt.Errorf("replace the %s secret: %w", side, err)
	}
	return nil
}
