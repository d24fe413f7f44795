package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Leases are the cluster's locks: a row per resource, held by one holder
// until it expires, renewed by the holder while it works. Expiry is
// measured on the database's clock, so that workers whose clocks
// disagree still agree on who holds what. Leases keep one worker per
// mailbox, and slots (numbered leases) bound the mailboxes worked at once
// per provider host and in the whole cluster.

// MailboxLease is the lease that gives one worker a mailbox.
func MailboxLease(mailboxID string) string { return "mailbox:" + mailboxID }

// AcquireLease takes resource for holder for ttl, unless another holder
// has it and its lease has not expired; the holder itself may take it
// again (it is renewed then).
func (s *Store) AcquireLease(ctx context.Context, resource, holder string, ttl time.Duration) (bool, error) {
	n, err := s.q().exec(ctx, `INSERT INTO leases (resource, holder, expires_at) VALUES ($1, $2, `+s.dialect.nowMillis+` + $3)
		ON CONFLICT (resource) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.expires_at < `+s.dialect.nowMillis+` OR leases.holder = excluded.holder`,
		resource, holder, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", resource, err)
	}
	return n == 1, nil
}

// RenewLease extends holder's lease on resource by ttl from now. It
// fails (false) when the lease expired or another holder has it: a holder
// that could not renew in time must assume someone else took over.
func (s *Store) RenewLease(ctx context.Context, resource, holder string, ttl time.Duration) (bool, error) {
	n, err := s.q().exec(ctx, `UPDATE leases SET expires_at = `+s.dialect.nowMillis+` + $1
		WHERE resource = $2 AND holder = $3 AND expires_at >= `+s.dialect.nowMillis, ttl.Milliseconds(), resource, holder)
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", resource, err)
	}
	return n == 1, nil
}

// ReleaseLease gives a lease back; a former holder frees nothing.
func (s *Store) ReleaseLease(ctx context.Context, resource, holder string) error {
	_, err := s.q().exec(ctx, `DELETE FROM leases WHERE resource = $1 AND holder = $2`, resource, holder)
	return err
}

// AcquireSlot takes one of the n slots of group (the leases group:0 …
// group:n-1) for holder and returns its resource, or "" when all are
// held. It reads which slots are live first, in one query, and writes
// only to try a free one: waiting workers poll, and a full group costs
// them a read, not n contended upserts. Free slots are tried in random
// order, so that waiting workers do not all contend for the same one.
// Every process must use the same n for a group: the cap is the largest
// n in use.
func (s *Store) AcquireSlot(ctx context.Context, group string, n int, holder string, ttl time.Duration) (string, error) {
	names := make([]string, n)
	args := make([]any, n)
	marks := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s:%d", group, i)
		args[i], marks[i] = names[i], "?"
	}
	rs, err := s.q().query(ctx, s.dialect.bind(`SELECT resource, holder FROM leases WHERE resource IN (`+strings.Join(marks, ", ")+`)
		AND expires_at >= `+s.dialect.nowMillis), args...)
	if err != nil {
		return "", fmt.Errorf("read slots of %s: %w", group, err)
	}
	live := map[string]bool{}
	ours := ""
	for rs.Next() {
		var r, h string
		if err := rs.Scan(&r, &h); err != nil {
			rs.Close()
			return "", err
		}
		if h == holder {
			ours = r
		}
		live[r] = true
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return "", err
	}
	if ours != "" {
		// A holder asking again keeps its slot, renewed, and never
		// takes a second one of the group.
		ok, err := s.AcquireLease(ctx, ours, holder, ttl)
		if err != nil || !ok {
			return "", err
		}
		return ours, nil
	}
	for _, i := range rand.Perm(n) {
		if live[names[i]] {
			continue
		}
		ok, err := s.AcquireLease(ctx, names[i], holder, ttl)
		if err != nil || ok {
			if err != nil {
				return "", err
			}
			return names[i], nil
		}
	}
	return "", nil
}

// LeaseHolders lists the live leases whose resource starts with prefix,
// resource → holder (for tests and operators).
func (s *Store) LeaseHolders(ctx context.Context, prefix string) (map[string]string, error) {
	rs, err := s.q().query(ctx, `SELECT resource, holder FROM leases WHERE resource LIKE $1 AND expires_at >= `+s.dialect.nowMillis,
		prefix+"%")
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string]string{}
	for rs.Next() {
		var r, h string
		if err := rs.Scan(&r, &h); err != nil {
			return nil, err
		}
		out[r] = h
	}
	return out, rs.Err()
}
