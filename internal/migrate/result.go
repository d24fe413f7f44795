package migrate

import (
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/accounting"
)

// Failure is one message that was not copied.
type Failure struct {
	Folder string `json:"folder"` // source path, '/'-separated
	UID    uint32 `json:"uid,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Reason string `json:"reason"`
	Hint   string `json:"hint,omitempty"`
	Kind   string `json:"kind"`
	// Subject is filled only when the user opted in (--log-subjects):
	// subjects are private.
	Subject string `json:"subject,omitempty"`
}

// FolderResult is what happened to one source folder.
type FolderResult struct {
	Source  string `json:"source"`
	Dest    string `json:"destination"`
	Why     string `json:"why"`
	Created bool   `json:"created,omitempty"`
	// Unchanged folders were skipped after one STATUS showed nothing new.
	Unchanged bool `json:"unchanged,omitempty"`

	Listed      int64 `json:"listed"`
	ListedBytes int64 `json:"listed_bytes"`
	ToCopy      int64 `json:"to_copy"`
	ToCopyBytes int64 `json:"to_copy_bytes"`

	Copied      int64 `json:"copied"`
	CopiedBytes int64 `json:"copied_bytes"`
	Present     int64 `json:"already_present"`
	Skipped     int64 `json:"skipped"`
	Failed      int64 `json:"failed"`
	FlagUpdates int64 `json:"flag_updates,omitempty"`
	Deleted     int64 `json:"deleted,omitempty"`
}

// Result is the outcome of a run.
type Result struct {
	DryRun   bool                `json:"dry_run,omitempty"`
	Folders  []*FolderResult     `json:"folders"`
	Failures []Failure           `json:"failures"`
	Stats    accounting.Snapshot `json:"stats"`
}

// counters are a folder's live tallies, updated from many goroutines.
type counters struct {
	copied, copiedBytes, present, skipped, failed atomic.Int64
}

func (c *counters) into(r *FolderResult) {
	r.Copied = c.copied.Load()
	r.CopiedBytes = c.copiedBytes.Load()
	r.Present = c.present.Load()
	r.Skipped = c.skipped.Load()
	r.Failed = c.failed.Load()
}
