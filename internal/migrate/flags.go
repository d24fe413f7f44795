package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/store"
)

// Upkeep of the copies earlier passes made: flag changes on the source
// are carried over, and with DeleteMissing the copies of messages gone
// from the source are deleted. Only copies this tool made, whose
// destination ID it learned (IMAP APPENDUID), in the folder the plan
// names, are touched; mail that was on the destination before is never
// changed. The destination connector ignores IDs it no longer knows (a
// renumbered folder), so a stale ID cannot touch another message.

// flagBatch is how many flag changes are collected before they are sent.
const flagBatch = 1024

// flagChanges are a folder's pending flag updates.
type flagChanges struct {
	byFlags map[string][]connector.ID // new flag key -> destination IDs
	srcIDs  map[string]string         // source ID -> new flag key, for the state
	n       int
}

// deleting reports whether this pass deletes copies of messages gone
// from the source.
func (r *run) deleting() bool {
	return r.opts.DeleteMissing && r.opts.State != nil && !r.opts.DryRun && r.dstF.Delete
}

// addressable reports whether rec names a copy this tool made that can
// be changed: its destination ID is known and it is in the folder the
// plan says.
func (r *run) addressable(fs *folderState, rec *store.MessageRecord) bool {
	return rec.State == store.StateCopied && rec.DstID != "" && rec.DstPath == fs.plan.Dest.Path.String()
}

// checkFlags notes a flag change of m (listed now) against its entry.
func (r *run) checkFlags(fs *folderState, m connector.Message, rec *store.MessageRecord) {
	if !r.dstF.SetFlags || r.opts.DryRun || r.opts.State == nil || fs.led == nil || !r.addressable(fs, rec) {
		return
	}
	want := flagKey(mail.CopyableFlags(m.Flags, fs.led.acceptAny, fs.led.permanent))
	if want == rec.Flags {
		return
	}
	c := &fs.flags
	if c.byFlags == nil {
		c.byFlags, c.srcIDs = map[string][]connector.ID{}, map[string]string{}
	}
	c.byFlags[want] = append(c.byFlags[want], connector.ID(rec.DstID))
	c.srcIDs[rec.SrcID] = want
	c.n++
}

// applyFlags sends the collected flag changes and records them.
func (r *run) applyFlags(fs *folderState) error {
	c := &fs.flags
	if c.n == 0 {
		return nil
	}
	var updated int64
	for key, ids := range c.byFlags {
		var flags []string
		if key != "" {
			flags = strings.Split(key, " ")
		}
		if err := r.dst.(connector.FlagSetter).SetFlags(r.ctx, fs.led.dest, ids, flags); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		updated += int64(len(ids))
	}
	if err := r.opts.State.SetFlags(r.ctx, r.opts.Pair, fs.plan.Source.Path.String(), c.srcIDs); err != nil {
		return err
	}
	fs.res.FlagUpdates += updated
	r.opts.Stats.FlagUpdates(updated)
	*c = flagChanges{}
	return nil
}

// upkeep runs once a folder is listed: it sends the remaining flag
// changes and, in a delta pass with DeleteMissing, deletes the copies of
// the messages the listing no longer showed (the connector listed every
// old message, AllOld, or reported the removed ones).
func (r *run) upkeep(fs *folderState) error {
	if err := r.applyFlags(fs); err != nil {
		return err
	}
	if !r.deleting() || fs.mode != modeDelta {
		return nil // a full pass deletes in its sweep, once every message is settled
	}
	gone := fs.gone
	if !r.srcF.ReportsRemovals {
		err := r.opts.State.Copied(r.ctx, r.opts.Pair, fs.plan.Source.Path.String(), func(rec store.MessageRecord) error {
			if !fs.seen.has(connector.ID(rec.SrcID)) {
				gone = append(gone, rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := r.deleteCopies(fs, gone); err != nil {
		return err
	}
	ids := make([]string, 0, len(gone))
	for _, g := range gone {
		if r.addressable(fs, &g) {
			ids = append(ids, g.SrcID)
		}
	}
	return r.opts.State.Forget(context.Background(), r.opts.Pair, fs.plan.Source.Path.String(), ids)
}

// deleteCopies deletes the destination copies of gone, those this tool
// can address.
func (r *run) deleteCopies(fs *folderState, gone []store.MessageRecord) error {
	var ids []connector.ID
	for _, g := range gone {
		if r.addressable(fs, &g) {
			ids = append(ids, connector.ID(g.DstID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := r.dst.(connector.Deleter).Delete(r.ctx, fs.led.dest, ids); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	fs.res.Deleted += int64(len(ids))
	r.opts.Stats.Deleted(int64(len(ids)))
	return nil
}
