package jobs

import (
	"context"
	"fmt"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
)

// Preview reads a mailbox's folder plan as its next pass would make it
// (service.Planner): it logs in to both sides through the registry,
// lists their folders and plans them with the mailbox's rules and the
// plan earlier passes recorded. It copies, creates and records nothing.
func (r *Runner) Preview(ctx context.Context, w service.Work) ([]service.PlanPreviewRow, error) {
	r.regOnce.Do(func() { r.reg = all.Registry() })
	s, d, err := r.sides(r.reg, w)
	if err != nil {
		return nil, err
	}
	// Listing folders needs one connection a side.
	s.o.MaxConnections, d.o.MaxConnections = 1, 1
	src, dst, srcErr, dstErr := r.reg.OpenBoth(ctx, s.e, s.o, d.e, d.o)
	if srcErr != nil {
		return nil, srcErr
	}
	if dstErr != nil {
		return nil, dstErr
	}
	defer src.Close()
	defer dst.Close()
	opts, err := engineOptions(w)
	if err != nil {
		return nil, err
	}
	srcFolders, err := src.Folders(ctx)
	if err != nil {
		return nil, err
	}
	dstFolders, err := dst.Folders(ctx)
	if err != nil {
		return nil, err
	}
	var recorded map[string]store.FolderPlan
	if r.State != nil {
		if recorded, err = r.State.FolderPlans(ctx, "mailbox:"+w.MailboxID); err != nil {
			return nil, err
		}
	}
	plans := migrate.PlanMail(srcFolders, dstFolders, connector.FeaturesOf(dst).Folders, opts.Rules, recorded)
	planned := map[string]bool{}
	var out []service.PlanPreviewRow
	for _, p := range plans {
		planned[p.Source.Path.String()] = true
		row := service.PlanPreviewRow{Source: p.Source.Path.String(), Destination: p.Dest.Path.String(), Action: "copy", Why: p.Why}
		if p.Create {
			row.Action = "create"
		}
		if p.Origin == migrate.PlanRecorded {
			row.Why = "recorded by an earlier pass (" + p.Why + ")"
		}
		out = append(out, row)
	}
	// What the rules leave out, so that the user sees it before the
	// pass (its messages are counted as skipped by a filter).
	for _, f := range srcFolders {
		if f.NoSelect || !f.IsMail() || planned[f.Path.String()] || opts.Rules.Selected(f.Path) {
			continue
		}
		out = append(out, service.PlanPreviewRow{Source: f.Path.String(), Action: "excluded", Why: "include/exclude rule"})
	}
	return out, nil
}

// excludedFolders reports the source mail folders that the include and
// exclude rules leave out, with their messages counted as skipped by a
// filter, so that a pass's per-folder numbers add up to the whole source
// mailbox. The engine does not open such folders; their counts come from
// one STATUS each (or a listing where the connector has no STATUS).
func excludedFolders(ctx context.Context, src connector.Source, rules migrate.Rules) ([]service.PlanRow, error) {
	folders, err := src.Folders(ctx)
	if err != nil {
		return nil, err
	}
	var left []connector.Folder
	for _, f := range folders {
		if f.IsMail() && !f.NoSelect && !rules.Selected(f.Path) {
			left = append(left, f)
		}
	}
	if len(left) == 0 {
		return nil, nil
	}
	rows := make([]service.PlanRow, len(left))
	sr, hasStatus := src.(connector.StatusReader)
	var sts []connector.FolderStatus
	var errs []error
	if hasStatus {
		sts, errs = sr.Statuses(ctx, left, nil)
	}
	for i, f := range left {
		var n, size int64
		if hasStatus && i < len(sts) && errs[i] == nil {
			n, size = sts[i].Messages, sts[i].Size
		} else {
			_, err := src.List(ctx, f, connector.ListOptions{}, func(ms []connector.Message) error {
				n += int64(len(ms))
				for _, m := range ms {
					size += m.Size
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("source: count the excluded folder %q: %w", f.Path.String(), err)
			}
		}
		rows[i] = service.PlanRow{Source: f.Path.String(), Messages: n, Bytes: size, Skipped: n, Excluded: true}
	}
	return rows, nil
}
