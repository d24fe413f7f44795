package migrate

import (
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/store"
)

// This file is what other readers of a mailbox pair (mailferry verify)
// share with the engine, so that they decide exactly as a pass does.

// PlanMail plans the mail folders of src onto dst as a pass does:
// folders that hold no mail are left out (the engine reports them as
// skipped), the recorded plan of earlier passes is followed, and into a
// destination without a folder tree (dstFolders false) everything goes
// to INBOX. It records nothing.
func PlanMail(src, dst []connector.Folder, dstFolders bool, rules Rules, recorded map[string]store.FolderPlan) []FolderPlan {
	mailFolders := src[:0:0]
	for _, f := range src {
		if f.IsMail() {
			mailFolders = append(mailFolders, f)
		}
	}
	plans := PlanFolders(mailFolders, dst, rules, recorded)
	if !dstFolders {
		plans = intoInbox(plans, dst)
	}
	return plans
}

// Wanted reports whether a pass with these options copies m, or skips it
// by a filter (--since, --before, \Deleted without --include-deleted).
func (o *Options) Wanted(m connector.Message) bool {
	return (&run{opts: *o}).wanted(m)
}

// FlagKey is the form in which the engine compares a message's flags
// with a copy's: the flags a copy can carry, lower-cased and sorted.
func FlagKey(flags []string) string { return matchKey(flags) }

// DateKey is the INTERNALDATE as the engine compares it between servers
// (Unix seconds; 0 when unknown).
func DateKey(m connector.Message) int64 { return unixDate(m) }
