package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/store"
)

// folderMode says how much of a folder a pass must look at.
type folderMode int

const (
	// modeFull indexes the destination folder and copies every source
	// message it lacks, recognised by identity: first passes, rescans,
	// a folder whose cursor the connector no longer accepts, and folders
	// an interrupted or failed pass left with unsettled entries.
	modeFull folderMode = iota
	// modeDelta lists what changed since the stored cursor and copies the
	// new messages that no entry of the state settled, without indexing
	// the destination.
	modeDelta
	// modeUnchanged skips a folder whose status says nothing changed.
	modeUnchanged
)

// folderState is one source folder in flight.
type folderState struct {
	order int // its place in the pass; fetchers serve earlier folders first
	plan  FolderPlan
	res   *FolderResult
	led   *ledger
	c     counters
	open  sync.WaitGroup // listing plus each unresolved message
	// ahead counts the folder's messages queued for fetching or waiting
	// for an appender: while it is above zero another message for the
	// same destination folder is on its way (AppendRequest.More), so a
	// connector that groups appends keeps its group open for it.
	ahead atomic.Int64

	status   connector.FolderStatus // source status before the pass; fixed from then on
	statusOK bool                   // status was read
	listing  connector.Listing      // the source listing's outcome; read after the folder is done
	known    knownFolder            // what the state said before this pass
	mode     folderMode
	complete bool // listed in full without error
	// invalid is set when the folder's IDs turned out to be renumbered
	// while a full pass listed it: nothing this pass learnt of its
	// messages may be kept; checked when the stored cursor was found
	// still valid after a full listing (see checkAfterFull).
	invalid, checked bool

	// seen holds the IDs this pass listed in the folder (hashed), so
	// that a listing retried after a dropped connection skips what the
	// first attempt delivered, and so that entries of messages no longer
	// on the source can be found (sweep, --delete-missing).
	seen idSet
	// flags collects flag changes to carry over to earlier copies, gone
	// the copies of messages removed from the source.
	flags flagChanges
	gone  []store.MessageRecord

	// estimate (and estimateBytes) is what the pass expects to deal
	// with in this folder, added to the totals at the start and
	// corrected once the folder is listed (totalFixed).
	estimate, estimateBytes int64
	totalFixed              bool
	// unlisted messages were never listed (the listing failed or the run
	// stopped); they are counted as failed or left.
	unlisted int64
	// indexDest is set when some folder of this pass with the same
	// destination needs the destination's messages indexed (a full pass
	// over it): a delta folder alone does not read them, but one sharing
	// the destination with a full folder must not hand it an empty index.
	indexDest bool
}

// knownFolder is what earlier passes left of a folder.
type knownFolder struct {
	store.FolderState
	ok bool
}

// idSeed hashes IDs for the per-folder sets; one seed per run.
type idSeed struct{ s maphash.Seed }

func newIDSeed() idSeed { return idSeed{maphash.MakeSeed()} }

// idSet is a set of IDs by 64-bit hash: 8 bytes of key per message
// however long the connector's IDs are (an mbox offset and digest, a
// Graph id of 150 bytes). Two IDs of one folder share a hash with a
// chance of about n²/2⁶⁵ (3·10⁻¹⁰ for 100,000 messages); the effect would
// be one message skipped by a retried listing, or an entry of a message
// gone from the source kept.
type idSet struct {
	seed idSeed
	m    map[uint64]struct{}
}

func (s *idSet) hash(id connector.ID) uint64 { return maphash.String(s.seed.s, string(id)) }

// add reports whether id was new.
func (s *idSet) add(id connector.ID) bool {
	if s.m == nil {
		s.m = make(map[uint64]struct{})
	}
	h := s.hash(id)
	if _, ok := s.m[h]; ok {
		return false
	}
	s.m[h] = struct{}{}
	return true
}

func (s *idSet) has(id connector.ID) bool {
	_, ok := s.m[s.hash(id)]
	return ok
}

// loadKnown reads what earlier passes recorded of the planned folders.
func (r *run) loadKnown(plans []FolderPlan) error {
	r.known = map[string]knownFolder{}
	if r.opts.State == nil || r.opts.DryRun {
		return nil
	}
	for _, p := range plans {
		path := p.Source.Path.String()
		f, ok, err := r.opts.State.Folder(r.ctx, r.opts.Pair, path)
		if err != nil {
			return err
		}
		if ok {
			r.known[path] = knownFolder{FolderState: f, ok: true}
		}
	}
	return nil
}

// readStatuses asks the source for every folder's status in one batch
// (pipelined where the protocol allows), with each folder's stored
// cursor so that the connector can say which are unchanged. The retry
// layer asks again for those a dropped connection left without an
// answer. A folder without status is listed in full.
func (r *run) readStatuses(plans []FolderPlan) error {
	r.statuses = make(map[string]connector.FolderStatus, len(plans))
	if !r.srcF.Status || len(plans) == 0 {
		return nil
	}
	folders := make([]connector.Folder, len(plans))
	since := make([]connector.Cursor, len(plans))
	for i, p := range plans {
		folders[i] = p.Source
		since[i] = connector.Cursor(r.known[p.Source.Path.String()].Cursor)
	}
	sts, errs := r.src.(connector.StatusReader).Statuses(r.ctx, folders, since)
	for i, p := range plans {
		switch err := errs[i]; {
		case err == nil:
			r.statuses[p.Source.Path.Key()] = sts[i]
		case connector.KindOf(err).Fatal():
			return fmt.Errorf("source: %w", err)
		case isUnreachable(err):
			return err
		}
	}
	if err := r.ctx.Err(); err != nil {
		if u := r.unreachable(); u != nil {
			return u
		}
		return err
	}
	return nil
}

// chooseModes prepares every folder's state before the transfer starts:
// how much of it this pass must look at, and how many messages that is
// expected to be, so that the totals (progress, ETA, the service's "7 of
// 7") count what this pass has to do from the start.
func (r *run) chooseModes(plans []FolderPlan) error {
	r.mu.Lock()
	r.folders = make([]*folderState, len(plans))
	for i, p := range plans {
		res := &FolderResult{Source: p.Source.Path.String(), Dest: p.Dest.Path.String(), Why: p.Why, Plan: p.Origin}
		if p.Origin == PlanRuleChanged {
			res.Was = p.Was.String()
		}
		r.folders[i] = &folderState{plan: p, res: res, seen: idSet{seed: r.seed}, order: i}
	}
	r.mu.Unlock()
	for _, fs := range r.folders {
		if err := r.chooseMode(fs); err != nil {
			return err
		}
		st := fs.status
		switch fs.mode {
		case modeUnchanged:
		case modeDelta:
			// The connector knows what is new, the engine only how many
			// messages the folder held: at least this many are new.
			fs.estimate = max(0, st.Messages-fs.known.Messages)
		default:
			fs.estimate = st.Messages
		}
		if st.Messages > 0 {
			fs.estimateBytes = st.Size * fs.estimate / st.Messages
		}
		r.opts.Stats.AddTotal(fs.estimate, fs.estimateBytes)
	}
	index := map[string]bool{}
	for _, fs := range r.folders {
		if fs.mode == modeFull {
			index[fs.plan.Dest.Path.Canonical().Key()] = true
		}
	}
	for _, fs := range r.folders {
		fs.indexDest = index[fs.plan.Dest.Path.Canonical().Key()]
	}
	return nil
}

// chooseMode decides, from the state of earlier passes and the status
// just read, how much of a folder this pass must look at.
func (r *run) chooseMode(fs *folderState) error {
	fs.mode = modeFull
	fs.status, fs.statusOK = r.statuses[fs.plan.Source.Path.Key()]
	if r.opts.State == nil || r.opts.DryRun {
		return nil
	}
	fs.known = r.known[fs.plan.Source.Path.String()]
	if !fs.known.ok || fs.known.Cursor == "" {
		return nil
	}
	if r.srcF.Status && !fs.statusOK {
		return nil // no status: be thorough
	}
	if r.opts.FullRescan {
		return nil
	}
	n, err := r.opts.State.Unsettled(r.ctx, r.opts.Pair, fs.plan.Source.Path.String())
	if err != nil {
		return err
	}
	if n > 0 {
		// Interrupted mid-APPEND, or failed before: reconcile by
		// identity, which also tries failed messages again.
		return nil
	}
	if fs.status.Unchanged {
		fs.mode = modeUnchanged
		return nil
	}
	fs.mode = modeDelta
	return nil
}

// resetFolder is what happens when the source says that a folder's
// cursor is no longer valid (IMAP UIDVALIDITY changed, an mbox file was
// rewritten): the IDs recorded under it mean nothing, so they are
// forgotten, and the folder is compared by identity like a first pass
// (a rescan, not a blind copy).
func (r *run) resetFolder(fs *folderState) error {
	if r.opts.State != nil && !r.opts.DryRun {
		if err := r.rec.flush(); err != nil {
			return err
		}
		if err := r.opts.State.ForgetFolder(r.ctx, r.opts.Pair, fs.plan.Source.Path.String()); err != nil {
			return err
		}
	}
	fs.known = knownFolder{}
	fs.mode = modeFull
	old, oldBytes := fs.estimate, fs.estimateBytes
	fs.estimate, fs.estimateBytes = fs.status.Messages, fs.status.Size
	r.opts.Stats.AddTotal(fs.estimate-old, fs.estimateBytes-oldBytes)
	return r.indexLedger(fs.led)
}

// checkAfterFull runs after a full listing of a folder that had a
// stored cursor: if the connector no longer accepts that cursor, the
// folder was renumbered while (or before) it was listed, and the IDs
// this pass saw may belong to either numbering.
func (r *run) checkAfterFull(fs *folderState, cur string) (valid bool, err error) {
	_, err = r.src.List(r.ctx, fs.plan.Source, connector.ListOptions{Since: connector.Cursor(cur), StrictSince: true, NoMessages: true},
		func([]connector.Message) error { return nil })
	if errors.Is(err, connector.ErrCursorInvalid) {
		return false, nil
	}
	return err == nil, err
}

// finishFolder closes a folder's books once every message is settled.
func (r *run) finishFolder(fs *folderState) {
	defer r.finishers.Done()
	fs.open.Wait()
	r.releaseLedger(fs)
	fs.c.into(fs.res)
	fs.res.Messages = fs.res.Listed + fs.unlisted
	switch {
	case fs.mode == modeUnchanged:
		fs.res.Earlier = fs.status.Messages
	case fs.mode == modeDelta && fs.complete:
		fs.res.Earlier = max(0, fs.listing.Status.Messages-fs.res.Messages)
	case fs.mode == modeDelta:
		fs.res.Earlier = max(0, fs.status.Messages-fs.res.Messages)
	}
	r.fixTotal(fs)
	r.sweep(fs)
	r.saveFolder(fs)
	fs.free()
	r.opts.Stats.FolderDone()
	r.emit(Event{Type: "folder_done", Folder: fs.res})
}

// free drops what a folder needed only while in flight: its ledger (the
// destination's index, which releaseLedger took out of the run's map but
// this pointer kept alive to the end of the run), the IDs it listed and
// the flag changes. The run keeps every folder's result to the end, so
// without this a run held the index of every destination folder it had
// copied into, about 200 bytes per message (issue 14).
func (fs *folderState) free() {
	fs.led, fs.seen, fs.flags, fs.gone = nil, idSet{seed: fs.seen.seed}, flagChanges{}, nil
}

// fixTotal replaces the folder's estimate in the totals by what it turned
// out to hold, once that is known.
func (r *run) fixTotal(fs *folderState) {
	if fs.totalFixed {
		return
	}
	fs.totalFixed = true
	var unlistedBytes int64
	if fs.estimate > 0 {
		unlistedBytes = fs.estimateBytes * fs.unlisted / fs.estimate
	}
	r.opts.Stats.AddTotal(fs.res.Listed+fs.unlisted-fs.estimate, fs.res.ListedBytes+unlistedBytes-fs.estimateBytes)
}

// settledAll reports whether every message the pass listed in fs is
// settled and the listing covered the folder.
func (r *run) settledAll(fs *folderState) bool {
	return r.opts.State != nil && !r.opts.DryRun && fs.mode != modeUnchanged && fs.complete && fs.c.left.Load() == 0
}

// sweep drops the entries of a folder listed in full whose messages the
// listing no longer showed: they are gone from the source (or were
// renumbered before this pass), so an intent or failure of theirs must
// not keep every later pass in full mode, and no later pass may take
// them for copies of messages deleted since. With --delete-missing and
// IDs known to be of the folder's current numbering, their copies are
// deleted first.
func (r *run) sweep(fs *folderState) {
	if !r.settledAll(fs) || fs.mode != modeFull {
		return
	}
	if err := r.rec.flush(); err != nil {
		r.stop(err)
		return
	}
	path := fs.plan.Source.Path.String()
	if fs.invalid {
		if err := r.opts.State.ForgetFolder(context.Background(), r.opts.Pair, path); err != nil {
			r.stop(err)
		}
		return
	}
	var gone []store.MessageRecord
	err := r.opts.State.Records(r.ctx, r.opts.Pair, path, func(rec store.MessageRecord) error {
		if !fs.seen.has(connector.ID(rec.SrcID)) {
			gone = append(gone, rec)
		}
		return nil
	})
	if err == nil && len(gone) > 0 && r.deleting() && fs.knownValid() {
		err = r.deleteCopies(fs, gone)
	}
	if err == nil {
		ids := make([]string, len(gone))
		for i, g := range gone {
			ids[i] = g.SrcID
		}
		err = r.opts.State.Forget(context.Background(), r.opts.Pair, path, ids)
	}
	if err != nil && r.ctx.Err() == nil {
		r.failNone(fs, fmt.Errorf("the record of messages no longer on the source could not be updated: %w", err))
	}
}

// knownValid reports whether the IDs recorded before this pass were
// confirmed to be of the folder's current numbering.
func (fs *folderState) knownValid() bool { return fs.mode == modeDelta || fs.checked }

// saveFolder stores the cursor once every message of a folder is
// settled, so the next pass starts from it.
func (r *run) saveFolder(fs *folderState) {
	if !r.settledAll(fs) || fs.invalid || fs.listing.Cursor == "" {
		// Unfinished, or renumbered while we listed: keep the old
		// cursor; the next pass reconciles by identity.
		return
	}
	if err := r.rec.flush(); err != nil {
		r.stop(err)
		return
	}
	st := store.FolderState{
		SrcPath: fs.plan.Source.Path.String(), Cursor: string(fs.listing.Cursor), DstPath: fs.plan.Dest.Path.String(),
		Messages: fs.listing.Status.Messages,
		Copied:   fs.known.Copied + fs.c.copied.Load(), Present: fs.known.Present + fs.c.present.Load(),
		Failed: fs.known.Failed + fs.c.failed.Load(),
	}
	if err := r.opts.State.SaveFolder(context.Background(), r.opts.Pair, st); err != nil {
		r.stop(err)
	}
}
