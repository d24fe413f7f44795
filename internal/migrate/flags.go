package migrate

import (
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/store"
)

// reconcileOld brings messages copied by earlier passes up to date: flag
// changes on the source are carried over, and with DeleteMissing the
// copies of messages gone from the source are deleted. Only messages
// this tool copied (and whose destination UID it learned from
// APPENDUID) are touched; mail that was on the destination before is
// never changed.
func (r *run) reconcileOld(fs *folderState) error {
	if r.opts.State == nil || r.opts.DryRun || fs.known.Watermark == 0 || fs.led == nil {
		return nil
	}
	st := r.opts.State
	deleting := r.opts.DeleteMissing
	opts := connector.ListOptions{FlagsOnly: true, MaxUID: fs.known.Watermark}
	if !deleting && fs.known.HighestModSeq != 0 && r.src.Features().CondStore {
		// CONDSTORE (RFC 7162): only what changed since the last pass.
		opts.ChangedSince = fs.known.HighestModSeq
	}
	path := fs.plan.Source.Path.String()
	uidv := fs.status.UIDValidity
	var gone []store.MessageRecord
	var changed map[string][]uint32 // new flag set -> destination UIDs
	var newFlags map[uint32]string  // source UID -> flags, for the state
	var next uint32
	// walk compares one listed batch (or, at the end, nothing) with the
	// state entries of the UID range it covers.
	walk := func(ms []connector.Message, upTo uint32) error {
		src := make(map[uint32]connector.Message, len(ms))
		for _, m := range ms {
			src[m.UID] = m
		}
		err := st.Copied(r.ctx, r.opts.Pair, path, uidv, next, upTo, func(rec store.MessageRecord) error {
			m, listed := src[rec.SrcUID]
			switch {
			case !listed && deleting:
				gone = append(gone, rec)
			case !listed:
			case rec.DstUID == 0 || rec.DstUIDValidity != fs.led.uidValidity || rec.DstPath != fs.plan.Dest.Path.String():
				// The copy cannot be addressed: no APPENDUID, or the
				// destination folder was renumbered or remapped.
			default:
				want := flagKey(mail.CopyableFlags(m.Flags, fs.led.acceptAny, fs.led.permanent))
				if want != rec.Flags {
					changed[want] = append(changed[want], rec.DstUID)
					newFlags[rec.SrcUID] = want
				}
			}
			return nil
		})
		next = upTo + 1
		return err
	}
	err := r.retry(r.srcHealth, nil, func() error {
		// A retry walks from the start again.
		gone, changed, newFlags, next = nil, map[string][]uint32{}, map[uint32]string{}, 1
		_, err := r.src.List(r.ctx, fs.plan.Source, opts, func(ms []connector.Message) error {
			if len(ms) == 0 {
				return nil
			}
			return walk(ms, ms[len(ms)-1].UID)
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if deleting && next <= fs.known.Watermark {
		if err := walk(nil, fs.known.Watermark); err != nil {
			return err
		}
	}
	var updated int64
	for key, uids := range changed {
		var flags []string
		if key != "" {
			flags = strings.Split(key, " ")
		}
		if err := r.retry(r.dstHealth, nil, func() error { return r.dst.SetFlags(r.ctx, fs.led.dest, uids, flags) }); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		updated += int64(len(uids))
	}
	if err := st.SetFlags(r.ctx, r.opts.Pair, path, uidv, newFlags); err != nil {
		return err
	}
	fs.res.FlagUpdates = updated
	r.opts.Stats.FlagUpdates(updated)
	if len(gone) == 0 {
		return nil
	}
	var dstUIDs, srcUIDs []uint32
	for _, rec := range gone {
		if rec.DstUID != 0 && rec.DstUIDValidity == fs.led.uidValidity && rec.DstPath == fs.plan.Dest.Path.String() {
			dstUIDs = append(dstUIDs, rec.DstUID)
			srcUIDs = append(srcUIDs, rec.SrcUID)
		}
	}
	if err := r.retry(r.dstHealth, nil, func() error { return r.dst.Delete(r.ctx, fs.led.dest, dstUIDs) }); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	fs.res.Deleted = int64(len(dstUIDs))
	r.opts.Stats.Deleted(int64(len(dstUIDs)))
	return st.Forget(r.ctx, r.opts.Pair, path, uidv, srcUIDs)
}
