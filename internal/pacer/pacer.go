// Package pacer decides how long to wait before retrying a remote call.
// Every retry in Mailferry goes through it: there are no ad-hoc sleeps.
// It imports nothing from the application so any layer can use it.
package pacer

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with full jitter.
type Backoff struct {
	Min, Max time.Duration
	// Attempts is how many times an operation is tried in all (the first
	// try included) before its error is final.
	Attempts int
}

// The defaults are used where the caller sets nothing: five tries spread
// over roughly half a minute, enough to ride out a dropped connection or a
// short throttling window without stalling a migration for long.
const (
	DefaultMin      = 250 * time.Millisecond
	DefaultMax      = 15 * time.Second
	DefaultAttempts = 5
)

// Delay returns the wait before try number attempt+1 (attempt counts
// from 1). A server's own hint (Retry-After, "Suggested Backoff Time")
// overrides the computed value when it is longer.
func (b Backoff) Delay(attempt int, hint time.Duration) time.Duration {
	if b.Min <= 0 {
		b.Min = DefaultMin
	}
	if b.Max <= 0 {
		b.Max = DefaultMax
	}
	d := b.Min
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	// Full jitter keeps parallel workers that failed together from
	// retrying together.
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	if hint > d {
		d = hint
	}
	return d
}

// MaxAttempts returns Attempts, or DefaultAttempts when unset.
func (b Backoff) MaxAttempts() int {
	if b.Attempts <= 0 {
		return DefaultAttempts
	}
	return b.Attempts
}

// Sleep waits for d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
