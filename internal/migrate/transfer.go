package migrate

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/spool"
	"github.com/mailferry/mailferry/internal/store"
)

// The transfer pipeline: fetchers stream units of messages from the
// source into the spool, appenders write them to the destination without
// waiting for answers, waiters read the answers in order, and settle
// decides what each outcome means (copied, failed, retried, or lost and
// handed to the reconciler in resolve.go).

type unit struct {
	fs   *folderState
	msgs []connector.Message
}

type item struct {
	fs      *folderState
	msg     connector.Message
	buf     *spool.Buffer
	attempt int         // sends so far, minus one
	tries   layer.Tries // for the retry policy
	lostAt  time.Time
	lostErr error // the error that left its APPEND's outcome unknown
}

type pending struct {
	it   *item
	pa   connector.PendingAppend
	held int64 // of run.wire
}

// fetcher streams units from the source into the spool.
func (r *run) fetcher() {
	for {
		// A stream's slot first, then its unit: a fetcher waiting for a
		// slot must not hold a unit of the folder the others are reading.
		if r.ctx.Err() != nil || !r.gov.acquire(r.ctx) {
			u, ok := r.units.get()
			if !ok {
				return
			}
			for _, m := range u.msgs {
				r.leave(u.fs, m)
			}
			u.fs.open.Add(-len(u.msgs))
			u.fs.ahead.Add(-int64(len(u.msgs)))
			continue
		}
		u, ok := r.units.get()
		if !ok {
			r.gov.release()
			return
		}
		if r.ctx.Err() == nil {
			r.fetchUnit(u)
		} else {
			for _, m := range u.msgs {
				r.leave(u.fs, m)
			}
			u.fs.open.Add(-len(u.msgs))
			u.fs.ahead.Add(-int64(len(u.msgs)))
		}
		r.gov.release()
	}
}

func (r *run) fetchUnit(u unit) {
	fs := u.fs
	left := make(map[connector.ID]connector.Message, len(u.msgs))
	for _, m := range u.msgs {
		left[m.ID] = m
	}
	// Whatever is left at the end will not be copied in this run.
	defer func() {
		for _, m := range u.msgs {
			if _, ok := left[m.ID]; ok {
				r.leave(fs, m)
				fs.open.Done()
				fs.ahead.Add(-1)
			}
		}
	}()
	if r.opts.State != nil {
		// The intent is durable before any APPEND of these messages can
		// start: a crash from here on leaves a trace to reconcile.
		recs := make([]store.MessageRecord, len(u.msgs))
		for i, m := range u.msgs {
			recs[i] = r.record(fs, m, store.StateIntent, connector.AppendResult{}, "")
		}
		if err := r.opts.State.Record(r.ctx, r.opts.Pair, recs); err != nil {
			if r.ctx.Err() == nil {
				r.stop(err)
			}
			return
		}
	}
	var t layer.Tries
	for len(left) > 0 {
		todo := make([]connector.Message, 0, len(left))
		for _, m := range u.msgs {
			if _, ok := left[m.ID]; ok {
				todo = append(todo, m)
			}
		}
		progressed, called := false, false
		var cbErr error
		err := r.src.Fetch(r.ctx, fs.plan.Source, todo, func(body connector.Body, ierr error) error {
			called = true
			m, ok := left[body.Message.ID]
			if !ok {
				return nil
			}
			if ierr != nil {
				if k := connector.KindOf(ierr); k == connector.KindTransient {
					// The connection, not the message: retry it.
					return ierr
				}
				delete(left, m.ID)
				r.fail(fs, m, ierr)
				r.unclaim(fs, m)
				fs.open.Done()
				fs.ahead.Add(-1)
				return nil
			}
			buf, err := r.sp.Read(r.ctx, body.Reader, body.Size)
			if err != nil {
				// A body cut off mid-stream is the connection's fault:
				// the message is fetched again.
				return &connector.Error{Kind: connector.KindTransient, Op: fmt.Sprintf("read %s", m.ID), Err: err}
			}
			delete(left, m.ID)
			progressed = true
			r.srcTry.OK()
			// The body's own length is authoritative: the listed size
			// (IMAP RFC822.SIZE) is advisory on some servers.
			m.Size = body.Size
			r.inflight.Add(1)
			select {
			case r.appends <- &item{fs: fs, msg: m, buf: buf}:
				return nil
			case <-r.ctx.Done():
				buf.Release()
				r.inflight.Done()
				r.leave(fs, m)
				fs.open.Done()
				fs.ahead.Add(-1)
				cbErr = r.ctx.Err()
				return cbErr
			}
		})
		if err == nil {
			r.srcTry.OK()
			break
		}
		if r.ctx.Err() != nil || cbErr != nil {
			return
		}
		if connector.KindOf(err).Fatal() {
			r.stop(fmt.Errorf("source: %w", err))
			return
		}
		if progressed {
			t.Reset()
		}
		final := err
		var wait time.Duration
		if called {
			// Failed after delivering some: the retry layer returned at
			// once, the rest is fetched again here.
			wait, final = r.srcTry.Next(r.ctx, &t, err)
		}
		if final != nil {
			if isUnreachable(final) {
				return // the deferred leave reports them
			}
			for _, m := range u.msgs {
				if _, ok := left[m.ID]; ok {
					delete(left, m.ID)
					r.fail(fs, m, final)
					r.unclaim(fs, m)
					fs.open.Done()
					fs.ahead.Add(-1)
				}
			}
			return
		}
		r.opts.Stats.Retried()
		if pacer.Sleep(r.ctx, wait) != nil {
			return
		}
	}
}

func (r *run) unclaim(fs *folderState, m connector.Message) { fs.led.unclaim(m) }

// appender writes spooled messages to the destination, leaving their
// answers to the waiters so that writes pipeline.
func (r *run) appender() {
	for it := range r.appends {
		// Taken off the folder's queue: is another of its messages on
		// the way? (a hint to connectors that group appends). Not when
		// the answers queue is full: the next append would wait for an
		// answer, which a group kept open waiting for it cannot give.
		more := it.fs.ahead.Add(-1) > 0 && len(r.answers) < cap(r.answers)-1
		if r.ctx.Err() != nil {
			r.drop(it)
			continue
		}
		held := min(it.buf.Size(), r.opts.WireBytes)
		if err := r.wire.Acquire(r.ctx, held); err != nil {
			r.drop(it)
			continue
		}
		led := it.fs.led
		led.appends.RLock()
		buf := it.buf
		req := connector.AppendRequest{
			Flags:        mail.CopyableFlags(it.msg.Flags, led.acceptAny, led.permanent),
			InternalDate: it.msg.InternalDate,
			Size:         buf.Size(),
			Body:         buf.Open(),
			Reopen:       func() io.Reader { return buf.Open() },
			Retry:        it.attempt > 0,
			More:         more,
		}
		pa, err := r.dst.Append(r.ctx, led.dest, req)
		if err != nil {
			led.appends.RUnlock()
			r.wire.Release(held)
			r.settle(it, connector.AppendResult{}, err)
			continue
		}
		r.answers <- pending{it: it, pa: pa, held: held}
	}
}

// waiter reads append answers in order.
func (r *run) waiter() {
	for p := range r.answers {
		res, err := p.pa.Wait()
		p.it.fs.led.appends.RUnlock()
		r.wire.Release(p.held)
		r.settle(p.it, res, err)
	}
}

// settle decides what to do with an append's outcome.
func (r *run) settle(it *item, res connector.AppendResult, err error) {
	fs := it.fs
	switch {
	case err == nil:
		r.dstTry.OK()
		if r.rec != nil {
			r.rec.add(r.record(fs, it.msg, store.StateCopied, res, ""))
		}
		fs.led.confirm(it.msg)
		fs.c.copied.Add(1)
		fs.c.copiedBytes.Add(it.msg.Size)
		if res.Rebuilt {
			fs.c.rebuilt.Add(1)
		}
		r.opts.Stats.Copied(it.msg.Size)
		r.finish(it)
	case r.ctx.Err() != nil && !connector.IsUncertain(err):
		r.drop(it)
	case connector.IsUncertain(err):
		// Never write again before knowing: the reconciler looks. The
		// queue never blocks, because the reconciler waits for this very
		// goroutine to release other appends' locks.
		r.opts.Stats.Uncertain()
		it.lostAt, it.lostErr = time.Now(), err
		r.uncertain.push(it)
	default:
		k := connector.KindOf(err)
		switch {
		case k.Fatal():
			r.stop(fmt.Errorf("destination: %w", err))
			r.drop(it)
		case k == connector.KindQuota:
			r.fail(fs, it.msg, err)
			r.unclaim(fs, it.msg)
			r.finish(it)
			r.stop(fmt.Errorf("destination: %w", err))
		case k == connector.KindTransient || k == connector.KindUnknown:
			r.again(it, err, nil)
		default:
			r.fail(fs, it.msg, err)
			r.unclaim(fs, it.msg)
			r.finish(it)
		}
	}
}

// again decides, off the caller's goroutine, whether an item whose append
// failed with err is sent again (after a backoff) or given up; a given-up
// item fails with final(err) when final is set, else with err.
func (r *run) again(it *item, err error, final func(error) error) {
	go func() {
		wait, ferr := r.dstTry.Next(r.ctx, &it.tries, err)
		switch {
		case ferr != nil && (isUnreachable(ferr) || r.ctx.Err() != nil):
			r.drop(it)
			return
		case ferr != nil:
			if final != nil {
				ferr = final(ferr)
			}
			r.fail(it.fs, it.msg, ferr)
			r.unclaim(it.fs, it.msg)
			r.finish(it)
			return
		}
		r.opts.Stats.Retried()
		it.attempt++
		if pacer.Sleep(r.ctx, wait) != nil {
			r.drop(it)
			return
		}
		it.fs.ahead.Add(1)
		select {
		case r.appends <- it:
		case <-r.ctx.Done():
			it.fs.ahead.Add(-1)
			r.drop(it)
		}
	}()
}

func (r *run) finish(it *item) {
	it.buf.Release()
	it.fs.open.Done()
	r.inflight.Done()
}

// drop abandons an item because the run is stopping (see leave).
func (r *run) drop(it *item) {
	r.leave(it.fs, it.msg)
	r.finish(it)
}

func (r *run) record(fs *folderState, m connector.Message, state string, res connector.AppendResult, reason string) store.MessageRecord {
	rec := store.MessageRecord{
		SrcPath: fs.plan.Source.Path.String(), SrcID: string(m.ID),
		Identity: m.Identity.String(), State: state, DstPath: fs.plan.Dest.Path.String(),
		DstID: string(res.ID), Reason: reason,
	}
	if state == store.StateCopied && fs.led != nil {
		rec.Flags = flagKey(mail.CopyableFlags(m.Flags, fs.led.acceptAny, fs.led.permanent))
	}
	if state == store.StateCopied {
		// Kept per message for verify: a destination that keeps bytes
		// may still rebuild one message (Graph's JSON fallback).
		rec.Bytes = store.BytesExact
		if res.Rebuilt || !r.dstF.ByteExact {
			rec.Bytes = store.BytesRebuilt
		}
	}
	return rec
}

// flagKey is a canonical form of a flag set, for comparing and storing.
// Flags are case-insensitive (RFC 3501 2.3.2) and CopyableFlags already
// spells system flags canonically; keywords keep the source's spelling.
func flagKey(flags []string) string {
	f := append([]string(nil), flags...)
	sort.Slice(f, func(i, j int) bool { return strings.ToLower(f[i]) < strings.ToLower(f[j]) })
	return strings.Join(f, " ")
}
