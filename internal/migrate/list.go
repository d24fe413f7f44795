package migrate

import (
	"errors"
	"fmt"
	"sync"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/store"
)

// plannerCount folders are prepared at once, which overlaps their round
// trips (create, open, list: a few per folder, so at 20 ms RTT a 20-folder
// mailbox spent over a second on them one folder at a time). Folder
// creation itself stays serial per destination (imap.Conn.CreateFolder):
// with several sessions creating folders at once, Dovecot 2.3 was seen
// to leave a new folder out of later LIST answers.
const plannerCount = 4

// plan prepares folders and feeds their messages to the fetchers. It runs
// ahead of the transfer by at most a few units.
func (r *run) plan() {
	next := make(chan int)
	var wg sync.WaitGroup
	// Planners hold a source session while listing and block when the
	// fetchers are busy; at least one session must stay free for the
	// fetchers, or neither side could move.
	planners := max(1, min(plannerCount, r.srcF.MaxConnections-1, len(r.folders)))
	for w := 0; w < planners; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r.planFolder(r.folders[i])
			}
		}()
	}
	i := 0
	for ; i < len(r.folders) && r.ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-r.ctx.Done():
			i--
		}
	}
	close(next)
	wg.Wait()
	// Folders never reached: the run stopped first.
	for ; i < len(r.folders); i++ {
		r.skipFolder(r.folders[i])
	}
}

// skipFolder closes the books of a folder the run never worked on.
func (r *run) skipFolder(fs *folderState) {
	r.emit(Event{Type: "folder_start", Folder: fs.res})
	if fs.mode != modeUnchanged {
		r.leaveUnlisted(fs)
	}
	r.finishers.Add(1)
	go r.finishFolder(fs)
}

func (r *run) planFolder(fs *folderState) {
	if r.ctx.Err() != nil {
		r.skipFolder(fs)
		return
	}
	r.opts.Stats.SetFolder(fs.res.Source)
	r.emit(Event{Type: "folder_start", Folder: fs.res})
	fs.open.Add(1)
	if fs.mode == modeUnchanged {
		fs.res.Unchanged = true
		fs.open.Done()
		r.finishers.Add(1)
		go r.finishFolder(fs)
		return
	}
	r.warm.Do(r.warmUp)
	err := r.prepare(fs)
	if err != nil {
		k := connector.KindOf(err)
		switch {
		case r.ctx.Err() != nil || isUnreachable(err):
			r.leaveUnlisted(fs)
		case k.Fatal() || k == connector.KindQuota:
			r.stop(err)
			r.leaveUnlisted(fs)
		default:
			r.failFolder(fs, r.unlisted(fs), err)
		}
	} else if err := r.upkeep(fs); err != nil && r.ctx.Err() == nil {
		r.failNone(fs, fmt.Errorf("flag changes or deletions could not be carried over to the copies made earlier: %w", err))
	}
	fs.open.Done()
	r.finishers.Add(1)
	go r.finishFolder(fs)
}

// lister turns one folder's listing into units for the fetchers.
type lister struct {
	r    *run
	fs   *folderState
	cl   *claimer
	u    unit
	size int64
	// holdBack: a listing holds a source session while it runs. With a
	// single session allowed, blocking on the fetchers from inside the
	// listing would wait for a session that can only be freed by the
	// listing itself, so then the folder's units are held back until the
	// listing is over (memory grows with the folder; only in that
	// configuration).
	holdBack bool
	held     []unit
	// deferred are the entries of messages whose pairing waits for the
	// whole folder (claimer.resolve), by ID.
	deferred map[connector.ID]*store.MessageRecord
}

func (l *lister) send(u unit) bool {
	r, fs := l.r, l.fs
	fs.open.Add(len(u.msgs))
	fs.ahead.Add(int64(len(u.msgs)))
	if r.ctx.Err() == nil && r.units.put(u) {
		return true
	}
	// Never queued: the cursor must not pass them.
	for _, m := range u.msgs {
		r.leave(fs, m)
	}
	fs.open.Add(-len(u.msgs))
	fs.ahead.Add(-int64(len(u.msgs)))
	return false
}

func (l *lister) flush() bool {
	if len(l.u.msgs) == 0 {
		return true
	}
	ok := true
	if l.holdBack {
		l.held = append(l.held, l.u)
	} else {
		ok = l.send(l.u)
	}
	l.u, l.size = unit{}, 0
	return ok
}

func (l *lister) queue(m connector.Message) bool {
	r, fs := l.r, l.fs
	fs.res.ToCopy++
	fs.res.ToCopyBytes += m.Size
	if r.opts.DryRun {
		return true
	}
	l.u.fs = fs
	l.u.msgs = append(l.u.msgs, m)
	l.size += m.Size
	if len(l.u.msgs) >= r.opts.FetchBatch || l.size >= r.opts.FetchBatchBytes {
		return l.flush()
	}
	return true
}

// present settles a message found on the destination. Its entry says
// so, unless it already records the copy this tool made (whose
// destination ID flag changes need).
func (l *lister) present(m connector.Message, rec *store.MessageRecord) {
	r, fs := l.r, l.fs
	if r.rec != nil && (rec == nil || rec.State != store.StateCopied && rec.State != store.StatePresent) {
		r.rec.add(r.record(fs, m, store.StatePresent, connector.AppendResult{}, ""))
	}
	fs.c.present.Add(1)
	r.opts.Stats.Present(1)
}

// listed handles one batch of a listing.
func (l *lister) listed(ms []connector.Message) error {
	r, fs := l.r, l.fs
	// Entries of earlier passes, one lookup per batch: what the engine
	// holds stays bounded by the batch, not the folder.
	var recs map[string]store.MessageRecord
	fresh := ms[:0:0]
	for _, m := range ms {
		// A listing retried after a dropped connection delivers again
		// what the first attempt delivered.
		if fs.seen.add(m.ID) {
			fresh = append(fresh, m)
		}
	}
	if r.opts.State != nil && len(fresh) > 0 {
		ids := make([]string, len(fresh))
		for i, m := range fresh {
			ids[i] = string(m.ID)
		}
		var err error
		if recs, err = r.opts.State.Lookup(r.ctx, r.opts.Pair, fs.plan.Source.Path.String(), ids); err != nil {
			return err
		}
	}
	for _, m := range fresh {
		var rec *store.MessageRecord
		if e, ok := recs[string(m.ID)]; ok {
			rec = &e
		}
		switch m.Change {
		case connector.ChangeRemoved:
			if rec != nil && rec.State == store.StateCopied {
				fs.gone = append(fs.gone, *rec)
			}
			continue
		case connector.ChangeFlags:
			if rec != nil {
				r.checkFlags(fs, m, rec)
			}
			continue
		}
		if fs.mode == modeDelta && rec != nil && (rec.State == store.StateCopied || rec.State == store.StatePresent) {
			// Settled by an earlier pass: a connector that lists every
			// message again when something changed (Maildir, EML), or
			// a pass that was interrupted after settling it.
			r.checkFlags(fs, m, rec)
			continue
		}
		fs.res.Listed++
		fs.res.ListedBytes += m.Size
		if m.Skip != "" {
			fs.c.skipped.Add(1)
			fs.c.elsewhere.Add(1)
			r.opts.Stats.Skipped(1)
			continue
		}
		if !r.wanted(m) {
			fs.c.skipped.Add(1)
			r.opts.Stats.Skipped(1)
			continue
		}
		if fs.mode == modeDelta {
			// New since the last pass and unknown to the state: not on
			// the destination.
			l.cl.force(m)
		} else {
			if rec != nil {
				r.checkFlags(fs, m, rec)
			}
			there, deferred := l.cl.claim(m)
			if there {
				l.present(m, rec)
				continue
			}
			if deferred {
				if l.deferred == nil {
					l.deferred = map[connector.ID]*store.MessageRecord{}
				}
				l.deferred[m.ID] = rec
				continue
			}
		}
		if !l.queue(m) {
			return r.ctx.Err()
		}
	}
	if len(fs.flags.byFlags) >= flagBatch {
		if err := r.applyFlags(fs); err != nil {
			return err
		}
	}
	return nil
}

// prepare creates and indexes the destination folder, then lists the
// source folder and queues what is missing.
func (r *run) prepare(fs *folderState) error {
	led, err := r.ledgerFor(fs)
	if err != nil {
		return err
	}
	fs.led = led
	l := &lister{r: r, fs: fs, cl: led.claimer(), holdBack: r.srcF.MaxConnections <= 1}
	listErr := r.listSource(fs, l)
	// The messages whose pairing waited for the whole folder are settled
	// whatever the listing's outcome: what was listed is known.
	there, rest := l.cl.resolve()
	for _, m := range there {
		l.present(m, l.deferred[m.ID])
	}
	for _, m := range rest {
		l.queue(m)
	}
	l.flush()
	for _, h := range l.held {
		l.send(h)
	}
	if listErr != nil {
		if isUnreachable(listErr) {
			return listErr
		}
		return fmt.Errorf("source: %w", listErr)
	}
	fs.complete = true
	r.fixTotal(fs)
	return nil
}

// listOptions is how fs is listed in its mode.
func (r *run) listOptions(fs *folderState) connector.ListOptions {
	if fs.mode != modeDelta {
		return connector.ListOptions{}
	}
	return connector.ListOptions{Since: connector.Cursor(fs.known.Cursor), StrictSince: true,
		Changes: r.dstF.SetFlags, AllOld: r.deleting() && !r.srcF.ReportsRemovals}
}

// listSource lists the source folder through l. The retry layer retries
// a listing that failed before it delivered anything; one that failed
// later is listed again here (l skips what it already saw), its tries
// reset by every batch that arrives.
func (r *run) listSource(fs *folderState, l *lister) error {
	var t layer.Tries
	opts := r.listOptions(fs)
	for {
		called := false
		var cbErr error
		lst, err := r.src.List(r.ctx, fs.plan.Source, opts, func(ms []connector.Message) error {
			called = true
			t.Reset() // the listing moves on: only failures in a row count
			r.srcTry.OK()
			cbErr = l.listed(ms)
			return cbErr
		})
		if err == nil {
			fs.listing = lst
			return r.checkFull(fs)
		}
		if cbErr != nil {
			return cbErr // the engine's own trouble (the state, a stop), not the source's
		}
		if errors.Is(err, connector.ErrCursorInvalid) && fs.mode == modeDelta && !called {
			if err := r.resetFolder(fs); err != nil {
				return err
			}
			opts = r.listOptions(fs)
			continue
		}
		if !called || r.ctx.Err() != nil {
			return err // the retry layer has retried it already
		}
		wait, final := r.srcTry.Next(r.ctx, &t, err)
		if final != nil {
			return final
		}
		r.opts.Stats.Retried()
		if pacer.Sleep(r.ctx, wait) != nil {
			if u := r.unreachable(); u != nil {
				return u
			}
			return err
		}
	}
}

// checkFull checks, after a full listing of a folder with a stored
// cursor, that the cursor is still valid (see checkAfterFull).
func (r *run) checkFull(fs *folderState) error {
	if fs.mode != modeFull || !fs.known.ok || fs.known.Cursor == "" || r.opts.DryRun {
		return nil
	}
	valid, err := r.checkAfterFull(fs, fs.known.Cursor)
	switch {
	case err != nil && r.ctx.Err() != nil:
		return err
	case err != nil:
		// Unknown: keep what was learnt, but delete nothing.
	case valid:
		fs.checked = true
	default:
		fs.invalid = true
	}
	return nil
}

func (r *run) wanted(m connector.Message) bool {
	if !r.opts.IncludeDeleted && mail.HasFlag(m.Flags, mail.FlagDeleted) {
		return false
	}
	if !r.opts.Since.IsZero() && m.InternalDate.Before(r.opts.Since) {
		return false
	}
	if !r.opts.Before.IsZero() && !m.InternalDate.Before(r.opts.Before) {
		return false
	}
	return true
}

// ledgerFor returns the ledger of fs's destination, creating and
// indexing the destination folder the first time it is needed. Every
// folder that got a ledger gives it back with releaseLedger.
func (r *run) ledgerFor(fs *folderState) (*ledger, error) {
	key := fs.plan.Dest.Path.Canonical().Key()
	// Folders are planned in parallel; two that share a destination must
	// share one ledger, so its creation is serialised per destination.
	r.mu.Lock()
	lock, ok := r.ledgerLocks[key]
	if !ok {
		lock = &sync.Mutex{}
		r.ledgerLocks[key] = lock
	}
	r.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	r.mu.Lock()
	led := r.ledgers[key]
	if led != nil {
		led.refs++
	}
	r.mu.Unlock()
	if led != nil {
		return led, nil
	}
	dest := fs.plan.Dest
	r.mu.Lock()
	made, done := r.created[key]
	r.mu.Unlock()
	switch {
	case done:
		dest = made
	case fs.plan.Create && !r.opts.DryRun:
		var err error
		dest, err = r.dst.CreateFolder(r.ctx, fs.plan.Dest.Path, fs.plan.Dest.Role)
		if err != nil {
			return nil, destErr(err)
		}
		fs.res.Created = true
		r.mu.Lock()
		r.created[key] = dest
		r.mu.Unlock()
	}
	led = newLedger(dest)
	if fs.plan.Create && r.opts.DryRun {
		fs.res.Created = true
		led.indexed = true // nothing there to index
	} else if err := r.openDest(led, fs.indexDest); err != nil {
		return nil, destErr(err)
	}
	led.refs = 1
	r.mu.Lock()
	r.ledgers[key] = led
	r.mu.Unlock()
	return led, nil
}

// listWhole lists f of c in full: the retry layer retries a listing
// that failed before it delivered anything, and one that failed midway
// is listed again from the start here, after restart (its tries reset by
// every batch that arrives).
func (r *run) listWhole(c connector.Conn, try *layer.Retrier, f connector.Folder, opts connector.ListOptions,
	restart func(), fn func([]connector.Message)) (connector.Listing, error) {
	var t layer.Tries
	var lst connector.Listing
	err := try.Do(r.ctx, &t, func() error {
		restart()
		called := false
		var err error
		lst, err = c.List(r.ctx, f, opts, func(ms []connector.Message) error {
			called = true
			t.Reset()
			fn(ms)
			return nil
		})
		if err != nil && !called {
			return layer.Final(err) // retried by the layer already
		}
		return err
	})
	return lst, err
}

// openDest opens a destination folder: with index, its messages are
// read into the ledger; without, only its flags and cursor (a delta
// pass does not read the destination's messages).
func (r *run) openDest(led *ledger, index bool) error {
	lst, err := r.listWhole(r.dst, r.dstTry, led.dest, connector.ListOptions{ForAppend: true, NoMessages: !index}, led.reset,
		func(ms []connector.Message) {
			if index {
				for _, m := range ms {
					led.index(m)
				}
			}
		})
	if err != nil {
		return err
	}
	led.cursor, led.acceptAny, led.permanent, led.indexed = lst.Cursor, lst.Accept.AnyKeyword, lst.Accept.Flags, index
	return nil
}

// indexLedger reads a destination folder's messages into a ledger that
// was opened without them (a delta folder's), because a folder mapping
// to it turned out to need a full comparison. Appends this run already
// made to it are in the ledger (as the copies it decided to write) and
// are not counted twice; none is in flight meanwhile.
func (r *run) indexLedger(led *ledger) error {
	led.appends.Lock()
	defer led.appends.Unlock()
	led.mu.Lock()
	if led.indexed {
		led.mu.Unlock()
		return nil
	}
	mine := make(map[copyKey]int, len(led.confirmed))
	for k, n := range led.confirmed {
		mine[k] = n
	}
	led.mu.Unlock()
	var found []connector.Message
	_, err := r.listWhole(r.dst, r.dstTry, led.dest, connector.ListOptions{ForAppend: true}, func() { found = found[:0] },
		func(ms []connector.Message) { found = append(found, ms...) })
	if err != nil {
		return destErr(err)
	}
	for _, m := range found {
		k := copyKey{m.Identity, unixDate(m)}
		if mine[k] > 0 {
			mine[k]--
			continue
		}
		led.index(m)
	}
	led.mu.Lock()
	led.indexed = true
	led.mu.Unlock()
	return nil
}

func destErr(err error) error {
	if isUnreachable(err) {
		return err
	}
	return fmt.Errorf("destination: %w", err)
}

// releaseLedger gives back fs's use of its ledger; the last folder to
// give it back frees it, so that a run holds the index of the folders in
// flight only. A later folder with the same destination indexes it anew
// and finds what this run wrote there.
func (r *run) releaseLedger(fs *folderState) {
	if fs.led == nil {
		return
	}
	key := fs.plan.Dest.Path.Canonical().Key()
	r.mu.Lock()
	fs.led.refs--
	if fs.led.refs == 0 && r.ledgers[key] == fs.led {
		delete(r.ledgers, key)
	}
	r.mu.Unlock()
}
