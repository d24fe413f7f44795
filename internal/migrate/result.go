package migrate

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/accounting"
)

// Failure is one message that was not copied, or several: a folder that
// could not be listed has no IDs to report, so its messages are one
// Failure with Messages set to their number (from its status) and no ID.
type Failure struct {
	Folder string `json:"folder"` // source path, '/'-separated
	// ID is the source connector's ID of the message (IMAP
	// "<uidvalidity>.<uid>", a POP3 UIDL, a Maildir file name, an mbox
	// "<offset>.<digest>", an EML path).
	ID   string `json:"id,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Messages is how many messages the failure stands for: 1 for a
	// message, the folder's count for a folder, 0 for a failure that left
	// no message uncopied (flag changes that could not be carried over).
	Messages int64  `json:"messages"`
	Reason   string `json:"reason"`
	Hint     string `json:"hint,omitempty"`
	Kind     string `json:"kind"`
	// Subject is filled only when the user opted in (--log-subjects):
	// subjects are private.
	Subject string `json:"subject,omitempty"`
}

// FolderResult is what happened to one source folder.
//
// The counts balance: Messages = Copied + Present + Skipped + Failed +
// Left, where Messages is every source message this pass had to deal
// with (all of the folder in a full pass, the new ones in a delta pass,
// none in an unchanged folder) and Left is nonzero only
// when the pass was stopped. Earlier counts the messages that earlier
// passes settled and this one did not need to look at.
type FolderResult struct {
	Source  string `json:"source"`
	Dest    string `json:"destination"`
	Why     string `json:"why"`
	Plan    string `json:"plan"`              // PlanNew, PlanRecorded or PlanRuleChanged
	Was     string `json:"was,omitempty"`     // the recorded destination a changed rule replaced
	Created bool   `json:"created,omitempty"` // the destination folder was created
	// Unchanged folders were skipped after one STATUS showed nothing new.
	Unchanged bool `json:"unchanged,omitempty"`
	// Class is set for a folder that holds no mail (a calendar, contacts,
	// tasks: the source's class name); it is not copied.
	Class string `json:"class,omitempty"`

	Messages int64 `json:"source_messages"`
	Earlier  int64 `json:"settled_earlier,omitempty"`

	Listed      int64 `json:"listed"`
	ListedBytes int64 `json:"listed_bytes"`
	ToCopy      int64 `json:"to_copy"`
	ToCopyBytes int64 `json:"to_copy_bytes"`

	Copied      int64 `json:"copied"`
	CopiedBytes int64 `json:"copied_bytes"`
	// Rebuilt counts the copies among Copied that the destination stored
	// rebuilt from their content (connector.AppendResult.Rebuilt: Graph's
	// JSON path): content-equivalent, not byte-exact.
	Rebuilt int64 `json:"rebuilt,omitempty"`
	Present int64 `json:"already_present"`
	Skipped int64 `json:"skipped"`
	// Elsewhere counts the messages among Skipped that the source
	// copies from another of its folders (connector.Message.Skip: Gmail
	// labels).
	Elsewhere   int64 `json:"copied_from_another_folder,omitempty"`
	Failed      int64 `json:"failed"`
	Left        int64 `json:"left,omitempty"`
	FlagUpdates int64 `json:"flag_updates,omitempty"`
	Deleted     int64 `json:"deleted,omitempty"`
}

// Balance checks that every source message of the folder is accounted
// for exactly once.
func (f *FolderResult) Balance() error {
	if sum := f.Copied + f.Present + f.Skipped + f.Failed + f.Left; sum != f.Messages {
		return fmt.Errorf("folder %s: %d source messages, but %d copied + %d already present + %d skipped + %d failed + %d left = %d",
			f.Source, f.Messages, f.Copied, f.Present, f.Skipped, f.Failed, f.Left, sum)
	}
	return nil
}

// Result is the outcome of a run.
type Result struct {
	DryRun   bool                `json:"dry_run,omitempty"`
	Folders  []*FolderResult     `json:"folders"`
	Failures []Failure           `json:"failures"`
	Stats    accounting.Snapshot `json:"stats"`
	// Unreachable says why the pass ended early when a side did not
	// answer for longer than Options.RetryBudget ("the source was
	// unreachable for 5m0s (…)"); every message not copied is then among
	// Failures.
	Unreachable string `json:"unreachable,omitempty"`
}

// Balance checks the counts of a finished run: every folder balances,
// the totals are the sums of the folders', and the failures listed stand
// for exactly the messages counted as failed.
func (r *Result) Balance() error {
	var errs []error
	var sum FolderResult
	for _, f := range r.Folders {
		if err := f.Balance(); err != nil {
			errs = append(errs, err)
		}
		sum.Messages += f.Messages
		sum.Copied += f.Copied
		sum.CopiedBytes += f.CopiedBytes
		sum.Present += f.Present
		sum.Skipped += f.Skipped
		sum.Failed += f.Failed
		sum.Left += f.Left
	}
	s := r.Stats
	for _, c := range []struct {
		name        string
		total, sums int64
	}{
		{"messages", s.TotalMsgs, sum.Messages}, {"copied", s.Copied, sum.Copied}, {"copied bytes", s.CopiedBytes, sum.CopiedBytes},
		{"already present", s.Present, sum.Present}, {"skipped", s.Skipped, sum.Skipped}, {"failed", s.Failed, sum.Failed},
		{"left", s.Left, sum.Left},
	} {
		if c.total != c.sums {
			errs = append(errs, fmt.Errorf("%s: the pass's total is %d, its folders add up to %d", c.name, c.total, c.sums))
		}
	}
	var listed int64
	for _, f := range r.Failures {
		listed += f.Messages
	}
	if listed != sum.Failed {
		errs = append(errs, fmt.Errorf("the failures listed stand for %d messages, %d are counted as failed", listed, sum.Failed))
	}
	return errors.Join(errs...)
}

// counters are a folder's live tallies, updated from many goroutines.
type counters struct {
	copied, copiedBytes, present, skipped, failed, left atomic.Int64
	rebuilt, elsewhere                                  atomic.Int64
}

func (c *counters) into(r *FolderResult) {
	r.Copied = c.copied.Load()
	r.CopiedBytes = c.copiedBytes.Load()
	r.Rebuilt = c.rebuilt.Load()
	r.Elsewhere = c.elsewhere.Load()
	r.Present = c.present.Load()
	r.Skipped = c.skipped.Load()
	r.Failed = c.failed.Load()
	r.Left = c.left.Load()
}
