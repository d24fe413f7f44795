package store

import (
	"context"
	"fmt"
)

// The service's owners, API tokens, portal login tokens and sessions.
// Tokens and session IDs are stored as hashes only; the service hashes
// them.

// Owner is a user of the service.
type Owner struct{ ID, Email string }

// EnsureOwner returns the owner with email, creating it with id when
// there is none (also when another process creates it at the same time).
func (s *Store) EnsureOwner(ctx context.Context, id, email string, at int64) (Owner, error) {
	q := s.q()
	if _, err := q.exec(ctx, `INSERT INTO owners (id, email, created_at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING`,
		id, email, at); err != nil {
		return Owner{}, fmt.Errorf("create owner: %w", err)
	}
	var o Owner
	err := q.queryRow(ctx, `SELECT id, email FROM owners WHERE email = $1`, email).Scan(&o.ID, &o.Email)
	if err != nil {
		return o, fmt.Errorf("read owner: %w", err)
	}
	return o, nil
}

// Owner reads an owner; ErrNoRows when there is none.
func (s *Store) Owner(ctx context.Context, id string) (Owner, error) {
	var o Owner
	err := s.q().queryRow(ctx, `SELECT id, email FROM owners WHERE id = $1`, id).Scan(&o.ID, &o.Email)
	return o, err
}

// AddToken stores an API token's hash.
func (s *Store) AddToken(ctx context.Context, hash, ownerID string, at int64) error {
	_, err := s.q().exec(ctx, `INSERT INTO api_tokens (token_hash, owner_id, created_at) VALUES ($1, $2, $3)`, hash, ownerID, at)
	return err
}

// OwnerByToken finds the owner of an API token hash; ErrNoRows if none.
func (s *Store) OwnerByToken(ctx context.Context, hash string) (Owner, error) {
	var o Owner
	err := s.q().queryRow(ctx, `SELECT o.id, o.email FROM api_tokens t JOIN owners o ON o.id = t.owner_id WHERE t.token_hash = $1`,
		hash).Scan(&o.ID, &o.Email)
	return o, err
}

// LoginRequests counts the login-link requests of bucket made after
// since, and gives the time of the oldest of them (0 when none).
func (s *Store) LoginRequests(ctx context.Context, bucket string, since int64) (n int, oldest int64, err error) {
	err = s.q().queryRow(ctx, `SELECT COUNT(*), COALESCE(MIN(at), 0) FROM login_requests WHERE bucket = $1 AND at > $2`,
		bucket, since).Scan(&n, &oldest)
	return n, oldest, err
}

// AddLoginRequest counts one login-link request in each bucket and
// forgets requests older than prune.
func (s *Store) AddLoginRequest(ctx context.Context, at, prune int64, buckets ...string) error {
	return s.inTx(ctx, func(tx *Tx) error {
		for _, b := range buckets {
			if _, err := tx.q.exec(ctx, `INSERT INTO login_requests (bucket, at) VALUES ($1, $2)`, b, at); err != nil {
				return err
			}
		}
		_, err := tx.q.exec(ctx, `DELETE FROM login_requests WHERE at < $1`, prune)
		return err
	})
}

// AddLoginToken stores a login token's hash.
func (s *Store) AddLoginToken(ctx context.Context, hash, email string, expires int64) error {
	_, err := s.q().exec(ctx, `INSERT INTO login_tokens (token_hash, email, expires_at) VALUES ($1, $2, $3)`, hash, email, expires)
	return err
}

// LoginTokenEmail returns the address of an unused, unexpired login
// token without using it; ErrNoRows otherwise.
func (s *Store) LoginTokenEmail(ctx context.Context, hash string, now int64) (string, error) {
	var email string
	err := s.q().queryRow(ctx, `SELECT email FROM login_tokens WHERE token_hash = $1 AND used_at = 0 AND expires_at > $2`,
		hash, now).Scan(&email)
	return email, err
}

// UseLoginToken marks an unused, unexpired login token used and returns
// its address; ErrNoRows when it is unknown, used or expired. Only one
// caller can ever get the address: flipping used_at from 0 is the
// single-use guarantee, on every engine and across processes.
func (s *Store) UseLoginToken(ctx context.Context, hash string, now int64) (string, error) {
	var email string
	err := s.q().queryRow(ctx, `UPDATE login_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at = 0 AND expires_at > $1
		RETURNING email`, now, hash).Scan(&email)
	return email, err
}

// AddSession stores a portal session (its ID's hash).
func (s *Store) AddSession(ctx context.Context, idHash, ownerID, csrf string, created, expires int64) error {
	_, err := s.q().exec(ctx, `INSERT INTO sessions (id_hash, owner_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		idHash, ownerID, csrf, created, expires)
	return err
}

// Session finds a live session by its ID's hash; ErrNoRows otherwise.
func (s *Store) Session(ctx context.Context, idHash string, now int64) (o Owner, csrf string, err error) {
	err = s.q().queryRow(ctx, `SELECT o.id, o.email, x.csrf FROM sessions x JOIN owners o ON o.id = x.owner_id
		WHERE x.id_hash = $1 AND x.expires_at > $2`, idHash, now).Scan(&o.ID, &o.Email, &csrf)
	return o, csrf, err
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	_, err := s.q().exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, idHash)
	return err
}
