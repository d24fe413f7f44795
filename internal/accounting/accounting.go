// Package accounting counts what a migration has done: messages and bytes
// copied, already present, skipped and failed, and derives rates and an
// ETA. Progress bars, JSON events and (later) the API and metrics all read
// from this one place, so they can never disagree.
package accounting

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is safe for concurrent use. The zero value is not ready; use New.
type Stats struct {
	start time.Time

	totalMsgs  atomic.Int64
	totalBytes atomic.Int64

	copied      atomic.Int64
	copiedBytes atomic.Int64
	present     atomic.Int64
	skipped     atomic.Int64
	failed      atomic.Int64
	failedBytes atomic.Int64
	left        atomic.Int64
	folders     atomic.Int64
	retried     atomic.Int64
	uncertain   atomic.Int64
	flagUpdates atomic.Int64
	deleted     atomic.Int64

	mu     sync.Mutex
	folder string
	pauses map[string]Pause // by side, while a side waits on a server's long hint
}

// Causes of a Pause.
const (
	PauseDailyLimit = "daily-limit" // a provider's daily quota (Gmail's IMAP bandwidth limits)
	PauseThrottled  = "throttled"   // the server asked to slow down (429/503 Retry-After, backoff hints)
)

// Pause is a wait on a server's hint long enough to tell the user: the
// pass is not stuck, it goes on at Until.
type Pause struct {
	Cause string    `json:"cause"`
	Until time.Time `json:"until"`
}

// New starts the clock.
func New() *Stats { return &Stats{start: time.Now()} }

// AddTotal grows (or, with negative values, corrects) the work the pass
// has to do: the messages it must deal with, whatever the outcome. The
// engine adds its estimate per folder when the pass starts and corrects it
// once the folder is listed, so that at the end the total is exactly
// what the pass dealt with (a delta pass with 7 new messages: 7, not the
// whole mailbox).
func (s *Stats) AddTotal(msgs, bytes int64) {
	s.totalMsgs.Add(msgs)
	s.totalBytes.Add(bytes)
}

// Copied records one message written to the destination.
func (s *Stats) Copied(bytes int64) {
	s.copied.Add(1)
	s.copiedBytes.Add(bytes)
}

// Present records messages found already on the destination.
func (s *Stats) Present(n int64) { s.present.Add(n) }

// Skipped records messages left out on purpose (filters, \Deleted).
func (s *Stats) Skipped(n int64) { s.skipped.Add(n) }

// Failed records one message that could not be copied.
func (s *Stats) Failed(bytes int64) {
	s.failed.Add(1)
	s.failedBytes.Add(bytes)
}

// FailedMany records n messages that could not be copied at once, such as
// the messages of a folder that could not be listed.
func (s *Stats) FailedMany(n, bytes int64) {
	s.failed.Add(n)
	s.failedBytes.Add(bytes)
}

// Left records messages not dealt with because the pass was stopped
// (interrupted, or ended by a mailbox-wide error); the next pass takes
// them up.
func (s *Stats) Left(n int64) { s.left.Add(n) }

// Retried counts a transfer tried again after a transient error.
func (s *Stats) Retried() { s.retried.Add(1) }

// Uncertain counts an append whose answer was lost and had to be checked
// on the destination before anything was resent.
func (s *Stats) Uncertain() { s.uncertain.Add(1) }

// FlagUpdates counts copies whose flags were brought up to date.
func (s *Stats) FlagUpdates(n int64) { s.flagUpdates.Add(n) }

// Deleted counts copies removed because their source message is gone.
func (s *Stats) Deleted(n int64) { s.deleted.Add(n) }

// FolderDone counts a finished folder.
func (s *Stats) FolderDone() { s.folders.Add(1) }

// SetFolder names the folder being worked on, for display.
func (s *Stats) SetFolder(name string) {
	s.mu.Lock()
	s.folder = name
	s.mu.Unlock()
}

// SetPause records that side ("source", "destination") waits until
// p.Until for p.Cause; the zero Pause says it works again.
func (s *Stats) SetPause(side string, p Pause) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Until.IsZero() {
		delete(s.pauses, side)
		return
	}
	if s.pauses == nil {
		s.pauses = make(map[string]Pause)
	}
	s.pauses[side] = p
}

// Snapshot is a consistent-enough copy of the counters at one instant.
type Snapshot struct {
	Elapsed     time.Duration `json:"elapsed_ns"`
	Folder      string        `json:"folder,omitempty"`
	Folders     int64         `json:"folders_done"`
	TotalMsgs   int64         `json:"total_messages"`
	TotalBytes  int64         `json:"total_bytes"`
	Copied      int64         `json:"copied"`
	CopiedBytes int64         `json:"copied_bytes"`
	Present     int64         `json:"already_present"`
	Skipped     int64         `json:"skipped"`
	Failed      int64         `json:"failed"`
	FailedBytes int64         `json:"failed_bytes"`
	Left        int64         `json:"left,omitempty"`
	FlagUpdates int64         `json:"flag_updates"`
	Deleted     int64         `json:"deleted"`
	Retried     int64         `json:"retried"`
	Uncertain   int64         `json:"uncertain_checked"`
	MsgsPerSec  float64       `json:"messages_per_second"`
	BytesPerSec float64       `json:"bytes_per_second"`
	ETA         time.Duration `json:"eta_ns"`
	// Paused is set while a side waits on a long server hint (the
	// longest wait when both do).
	Paused *Pause `json:"paused,omitempty"`
}

// Done is the number of messages dealt with, whatever the outcome.
func (s Snapshot) Done() int64 { return s.Copied + s.Present + s.Skipped + s.Failed }

// Snapshot reads the counters.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	folder := s.folder
	var paused *Pause
	for _, p := range s.pauses {
		if paused == nil || p.Until.After(paused.Until) {
			paused = &p
		}
	}
	s.mu.Unlock()
	snap := Snapshot{
		Elapsed:     time.Since(s.start),
		Folder:      folder,
		Folders:     s.folders.Load(),
		TotalMsgs:   s.totalMsgs.Load(),
		TotalBytes:  s.totalBytes.Load(),
		Copied:      s.copied.Load(),
		CopiedBytes: s.copiedBytes.Load(),
		Present:     s.present.Load(),
		Skipped:     s.skipped.Load(),
		Failed:      s.failed.Load(),
		FailedBytes: s.failedBytes.Load(),
		Left:        s.left.Load(),
		FlagUpdates: s.flagUpdates.Load(),
		Deleted:     s.deleted.Load(),
		Retried:     s.retried.Load(),
		Uncertain:   s.uncertain.Load(),
		Paused:      paused,
	}
	if secs := snap.Elapsed.Seconds(); secs > 0 {
		snap.MsgsPerSec = float64(snap.Copied) / secs
		snap.BytesPerSec = float64(snap.CopiedBytes) / secs
	}
	// The ETA is based on messages still to deal with at the current
	// overall pace, which includes the cheap "already present" ones.
	if done := snap.Done(); done > 0 && snap.TotalMsgs > done {
		perMsg := snap.Elapsed / time.Duration(done)
		snap.ETA = perMsg * time.Duration(snap.TotalMsgs-done)
	}
	return snap
}

// HumanBytes formats a byte count for people (SI units: 1 kB = 1000 B),
// the same way in the CLI, the portal and emails.
func HumanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
