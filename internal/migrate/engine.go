package migrate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/spool"
	"github.com/mailferry/mailferry/internal/store"
	"golang.org/x/sync/semaphore"
)

// Options tune a run. The zero value is a sensible default.
type Options struct {
	Rules          Rules
	Since, Before  time.Time // INTERNALDATE window; zero means open
	IncludeDeleted bool      // copy messages flagged \Deleted too
	DryRun         bool      // plan and count only

	// Streams caps the parallel fetch/append streams; by default the
	// smaller of the two connectors' connection caps. Unless PinStreams
	// is set, the engine starts with four and adapts between one and the
	// cap (see governor).
	Streams    int
	PinStreams bool
	// FetchBatch and FetchBatchBytes bound one pipelined FETCH.
	FetchBatch      int
	FetchBatchBytes int64
	// PipelineDepth is how many appends per stream may await their
	// answers at once.
	PipelineDepth int
	// SettleDelay is how long after an APPEND's answer was lost (the
	// connection dropped) the destination is checked for the message
	// before it is sent again (default 1s). A server may still be storing
	// what it received before the drop; looking too early saw nothing and
	// sent a second copy (TestDroppedConnectionsNeverDuplicate, once in
	// CI under load).
	SettleDelay time.Duration
	// WireBytes bounds the bytes of appends sent but not yet answered,
	// across all streams (default 8 MiB). A Stop waits for those
	// answers, so this is also what a Stop may still deliver: on a slow
	// link it keeps Stop prompt, on a fast one it is well above what a
	// round trip holds.
	WireBytes int64

	Backoff     pacer.Backoff
	SpoolDir    string
	SpoolMemory int64 // bytes of message bodies held in memory (default 32 MiB)
	LogSubjects bool  // put subjects of failed messages in the report

	// State, when set, remembers passes: interrupted ones resume without
	// duplicates and later ones copy only what is new. Pair identifies
	// the mailbox pair in it.
	State State
	Pair  string
	// FullRescan ignores what State knows and checks every message by
	// identity against the destination.
	FullRescan bool
	// DeleteMissing deletes from the destination the copies this tool
	// made of messages that are gone from the source; never anything
	// else. Needs State.
	DeleteMissing bool

	// Stats, when set, receives live counters (for progress display).
	Stats *accounting.Stats
	// OnEvent, when set, is called for folder and failure events. It is
	// called from several goroutines, one call at a time.
	OnEvent func(Event)
}

// Event is a notable moment of a run, for --json output and logs.
type Event struct {
	Type    string        `json:"type"` // folder_start, folder_done, failure
	Folder  *FolderResult `json:"folder,omitempty"`
	Failure *Failure      `json:"failure,omitempty"`
}

func (o *Options) defaults(src, dst connector.Conn) {
	if o.Streams <= 0 {
		o.Streams = min(max(src.Features().MaxConnections, 1), max(dst.Features().MaxConnections, 1))
	}
	if o.FetchBatch <= 0 {
		o.FetchBatch = 64
	}
	if o.FetchBatchBytes <= 0 {
		o.FetchBatchBytes = 8 << 20
	}
	if o.PipelineDepth <= 0 {
		// Appends whose answers are awaited, per stream. MULTIAPPEND
		// answers a whole batch at once, a round trip after its last
		// message, so at 20 ms RTT 32 per stream capped the transfer at
		// about 3,800 messages/s; the spool bounds the memory they hold.
		o.PipelineDepth = 128
	}
	if o.SettleDelay <= 0 {
		o.SettleDelay = time.Second
	}
	if o.WireBytes <= 0 {
		o.WireBytes = 8 << 20
	}
	if o.SpoolMemory <= 0 {
		o.SpoolMemory = 32 << 20
	}
	if o.Stats == nil {
		o.Stats = accounting.New()
	}
}

// folderState is one source folder in flight.
type folderState struct {
	plan   FolderPlan
	res    *FolderResult
	led    *ledger
	c      counters
	open   sync.WaitGroup // listing plus each unresolved message
	doneFn sync.Once

	status   connector.FolderStatus // source STATUS before the pass; fixed from then on
	listed   connector.FolderStatus // source status as listed; read after the folder is done
	known    store.FolderState      // what the state said before this pass
	mode     folderMode
	settled  map[uint32]store.MessageRecord // entries above the watermark
	maxUID   uint32                         // highest source UID listed
	complete bool                           // listed in full without error
	dropped  atomic.Int64                   // messages abandoned on cancel
}

type unit struct {
	fs   *folderState
	msgs []connector.Message
}

type item struct {
	fs      *folderState
	msg     connector.Message
	buf     *spool.Buffer
	attempt int
	lostAt  time.Time // when its APPEND's answer was lost
}

type pending struct {
	it   *item
	pa   connector.PendingAppend
	held int64 // of run.wire
}

type run struct {
	src  connector.Source
	dst  connector.Destination
	opts Options
	sp   *spool.Spool

	ctx    context.Context
	cancel context.CancelCauseFunc

	units     chan unit
	appends   chan *item
	answers   chan pending
	uncertain *queue
	inflight  sync.WaitGroup // spooled items not yet resolved
	finishers sync.WaitGroup // folder_done bookkeeping

	rec      *recorder
	statuses map[string]connector.FolderStatus
	gov      *governor
	wire     *semaphore.Weighted // bytes of unanswered appends

	mu       sync.Mutex
	failures []Failure
	folders  []*FolderResult
	ledgers  map[string]*ledger
	// ledgerLocks serialise creating a destination folder's ledger.
	ledgerLocks map[string]*sync.Mutex
	eventMu     sync.Mutex
	warm        sync.Once
}

// warmUp has the connectors open the sessions the transfer will use while
// the first folders are still being prepared. It waits for the first
// folder with work, so an unchanged mailbox costs no extra logins.
func (r *run) warmUp() {
	if w, ok := r.src.(connector.Warmer); ok {
		w.Warm(r.opts.Streams, false)
	}
	if w, ok := r.dst.(connector.Warmer); ok {
		// One session for folder work next to the first one; the rest
		// of the cap is left to append connections.
		w.Warm(2, true)
	}
}

// Run copies every selected folder from src to dst. It returns an error
// only when the whole mailbox had to stop (login, TLS, connection or a
// full destination); failures of single messages are in Result.Failures.
// The Result is returned in both cases.
func Run(ctx context.Context, src connector.Source, dst connector.Destination, opts Options) (*Result, error) {
	opts.defaults(src, dst)
	r := &run{src: src, dst: dst, opts: opts, ledgers: make(map[string]*ledger), ledgerLocks: make(map[string]*sync.Mutex),
		sp: spool.New(opts.SpoolDir, opts.SpoolMemory), wire: semaphore.NewWeighted(opts.WireBytes)}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(nil)

	plans, err := discover(r.ctx, src, dst, opts.Rules)
	if err != nil {
		return r.result(), err
	}
	if err := r.readStatuses(plans); err != nil {
		return r.result(), err
	}
	if opts.State != nil && !opts.DryRun {
		r.rec = newRecorder(opts.State, opts.Pair)
	}

	n := opts.Streams
	r.gov = newGovernor(4, n, opts.PinStreams)
	go r.gov.run(r.ctx, opts.Stats, time.Second)
	r.units = make(chan unit, n)
	r.appends = make(chan *item, n*2)
	r.answers = make(chan pending, n*opts.PipelineDepth)
	r.uncertain = newQueue()

	var fetchers, appenders, waiters, reconciler sync.WaitGroup
	go func() {
		defer close(r.units)
		r.plan(plans)
	}()
	for i := 0; i < n; i++ {
		fetchers.Add(1)
		go func() { defer fetchers.Done(); r.fetcher() }()
		appenders.Add(1)
		go func() { defer appenders.Done(); r.appender() }()
		waiters.Add(1)
		go func() { defer waiters.Done(); r.waiter() }()
	}
	reconciler.Add(1)
	go func() { defer reconciler.Done(); r.reconciler() }()

	// Shut the stages down in order. Retries re-enter the append stage,
	// so it may close only when no spooled item is unresolved.
	fetchers.Wait()
	r.inflight.Wait()
	close(r.appends)
	appenders.Wait()
	close(r.answers)
	waiters.Wait()
	r.uncertain.close()
	reconciler.Wait()
	r.finishers.Wait()
	if r.rec != nil {
		r.rec.close()
	}

	res := r.result()
	if cause := context.Cause(r.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return res, cause
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

func (r *run) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var folders []*FolderResult
	for _, f := range r.folders {
		if f != nil { // folders never reached when a run stops early
			folders = append(folders, f)
		}
	}
	return &Result{DryRun: r.opts.DryRun, Folders: folders, Failures: append([]Failure(nil), r.failures...), Stats: r.opts.Stats.Snapshot()}
}

// stop ends the run for a mailbox-wide reason.
func (r *run) stop(err error) { r.cancel(err) }

func (r *run) emit(e Event) {
	if r.opts.OnEvent == nil {
		return
	}
	r.eventMu.Lock()
	defer r.eventMu.Unlock()
	r.opts.OnEvent(e)
}

// fail records one message that will not be copied.
func (r *run) fail(fs *folderState, m connector.Message, err error) {
	f := Failure{Folder: fs.res.Source, UID: m.UID, Size: m.Size, Reason: reason(err),
		Hint: connector.HintOf(err), Kind: connector.KindOf(err).String()}
	if r.opts.LogSubjects {
		f.Subject = m.Headers.Subject
	}
	fs.c.failed.Add(1)
	r.opts.Stats.Failed(m.Size)
	if r.rec != nil && m.UID != 0 {
		r.rec.add(r.record(fs, m, store.StateFailed, connector.AppendResult{}, f.Reason))
	}
	r.mu.Lock()
	r.failures = append(r.failures, f)
	r.mu.Unlock()
	r.emit(Event{Type: "failure", Failure: &f})
}

func reason(err error) string {
	var ce *connector.Error
	if errors.As(err, &ce) && ce.Err != nil {
		return ce.Err.Error()
	}
	return err.Error()
}

// retry runs op until it succeeds, fails for good, or the run stops.
func (r *run) retry(op func() error) error {
	b := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		k := connector.KindOf(err)
		if r.ctx.Err() != nil || attempt >= b.MaxAttempts() || !(k == connector.KindTransient || k == connector.KindUnknown) {
			return err
		}
		if pacer.Sleep(r.ctx, b.Delay(attempt, 0)) != nil {
			return err
		}
	}
}

// plannerCount folders are prepared at once, which overlaps their round
// trips (create, open, list: a few per folder, so at 20 ms RTT a 20-folder
// mailbox spent over a second on them one folder at a time). Folder
// creation itself stays serial per destination (imap.Conn.CreateFolder):
// with several sessions creating folders at once, Dovecot 2.3 was seen
// to leave a new folder out of later LIST answers.
const plannerCount = 4

// plan prepares folders and feeds their messages to the fetchers. It runs
// ahead of the transfer by at most a few units.
func (r *run) plan(plans []FolderPlan) {
	r.mu.Lock()
	r.folders = make([]*FolderResult, len(plans))
	r.mu.Unlock()
	next := make(chan int)
	var wg sync.WaitGroup
	// Planners hold a source session while listing and block when the
	// fetchers are busy; at least one session must stay free for the
	// fetchers, or neither side could move.
	planners := max(1, min(plannerCount, r.src.Features().MaxConnections-1, len(plans)))
	for w := 0; w < planners; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r.planFolder(i, plans[i])
			}
		}()
	}
	for i := range plans {
		if r.ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-r.ctx.Done():
		}
	}
	close(next)
	wg.Wait()
}

func (r *run) planFolder(i int, p FolderPlan) {
	if r.ctx.Err() != nil {
		return
	}
	fs := &folderState{plan: p, res: &FolderResult{Source: p.Source.Path.String(), Dest: p.Dest.Path.String(), Why: p.Why}}
	r.mu.Lock()
	r.folders[i] = fs.res
	r.mu.Unlock()
	r.opts.Stats.SetFolder(fs.res.Source)
	r.emit(Event{Type: "folder_start", Folder: fs.res})
	fs.open.Add(1)
	if err := r.chooseMode(fs); err != nil {
		r.stop(err)
		fs.open.Done()
		return
	}
	if fs.mode != modeUnchanged {
		r.warm.Do(r.warmUp)
	}
	if fs.mode == modeUnchanged {
		fs.res.Unchanged = true
		fs.res.Listed = int64(fs.status.Messages)
		r.opts.Stats.AddTotal(-int64(fs.status.Messages), -fs.status.Size)
		fs.open.Done()
		r.finishers.Add(1)
		go r.finishFolder(fs)
		return
	}
	err := r.prepare(fs)
	if err == nil {
		err = r.reconcileOld(fs)
	}
	if err != nil {
		if connector.KindOf(err).Fatal() || connector.KindOf(err) == connector.KindQuota {
			r.stop(err)
		} else if r.ctx.Err() == nil {
			r.fail(fs, connector.Message{}, err)
		}
	}
	fs.open.Done()
	r.finishers.Add(1)
	go r.finishFolder(fs)
}

func (r *run) finishFolder(fs *folderState) {
	defer r.finishers.Done()
	fs.open.Wait()
	fs.c.into(fs.res)
	r.saveFolder(fs)
	r.opts.Stats.FolderDone()
	r.emit(Event{Type: "folder_done", Folder: fs.res})
}

// prepare creates and indexes the destination folder, then lists the
// source folder and queues what is missing.
func (r *run) prepare(fs *folderState) error {
	led, err := r.ledgerFor(fs)
	if err != nil {
		return err
	}
	fs.led = led
	cl := led.claimer()
	var last uint32
	if fs.mode == modeDelta {
		last = fs.known.Watermark
	}
	var u unit
	// A listing holds a source session while it runs. With a single
	// session allowed, blocking on the fetchers from inside the listing
	// would wait for a session that can only be freed by the listing
	// itself, so then the folder's units are held back until the
	// listing is over (memory grows with the folder; only in that
	// configuration).
	holdBack := r.src.Features().MaxConnections <= 1
	var held []unit
	send := func(u unit) bool {
		fs.open.Add(len(u.msgs))
		select {
		case r.units <- u:
			return true
		case <-r.ctx.Done():
			fs.open.Add(-len(u.msgs))
			return false
		}
	}
	flush := func() bool {
		if len(u.msgs) == 0 {
			return true
		}
		if holdBack {
			held = append(held, u)
		} else if !send(u) {
			return false
		}
		u = unit{}
		return true
	}
	defer func() {
		for i, h := range held {
			if !send(h) {
				// Never queued: the watermark must not pass them.
				for _, rest := range held[i:] {
					fs.dropped.Add(int64(len(rest.msgs)))
				}
				return
			}
		}
	}()
	var batchBytes int64
	return r.retry(func() error {
		st, err := r.src.List(r.ctx, fs.plan.Source, connector.ListOptions{MinUID: last + 1}, func(ms []connector.Message) error {
			for _, m := range ms {
				last = m.UID
				fs.maxUID = m.UID
				fs.res.Listed++
				fs.res.ListedBytes += m.Size
				if !r.wanted(m) {
					fs.c.skipped.Add(1)
					r.opts.Stats.Skipped(1)
					continue
				}
				if rec, ok := fs.settled[m.UID]; ok && fs.mode == modeDelta && rec.State != store.StateIntent {
					// Settled by an earlier pass above the watermark.
					fs.c.present.Add(1)
					r.opts.Stats.Present(1)
					continue
				}
				if fs.mode == modeDelta {
					// Above the watermark and unknown: new since the
					// last pass, so not on the destination.
					cl.force(m.Identity)
				} else if !cl.claim(m.Identity) {
					if rec, ok := fs.settled[m.UID]; ok && r.rec != nil && rec.State != store.StateCopied {
						r.rec.add(r.record(fs, m, store.StatePresent, connector.AppendResult{}, ""))
					}
					fs.c.present.Add(1)
					r.opts.Stats.Present(1)
					continue
				}
				fs.res.ToCopy++
				fs.res.ToCopyBytes += m.Size
				if r.opts.DryRun {
					continue
				}
				if u.fs == nil {
					u.fs = fs
				}
				u.msgs = append(u.msgs, m)
				batchBytes += m.Size
				if len(u.msgs) >= r.opts.FetchBatch || batchBytes >= r.opts.FetchBatchBytes {
					batchBytes = 0
					if !flush() {
						return r.ctx.Err()
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if fs.listed.UIDValidity == 0 {
			fs.listed = st // the first listing's view; a retry lists only the rest
		}
		if !flush() {
			return r.ctx.Err()
		}
		fs.complete = true
		return nil
	})
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
// indexing the destination folder the first time it is needed.
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
	led := r.ledgers[key]
	r.mu.Unlock()
	if led != nil {
		return led, nil
	}
	lock.Lock()
	defer lock.Unlock()
	r.mu.Lock()
	led = r.ledgers[key]
	r.mu.Unlock()
	if led != nil {
		return led, nil
	}
	dest := fs.plan.Dest
	if fs.plan.Create {
		if r.opts.DryRun {
			fs.res.Created = true
			led = newLedger(dest)
			r.mu.Lock()
			r.ledgers[key] = led
			r.mu.Unlock()
			return led, nil
		}
		err := r.retry(func() error {
			var err error
			dest, err = r.dst.CreateFolder(r.ctx, fs.plan.Dest.Path, fs.plan.Dest.Role)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		fs.res.Created = true
	}
	led = newLedger(dest)
	// A delta pass does not read the destination's messages: opening the
	// folder (MinUID beyond any UID) yields its flags and UIDNEXT only.
	minUID := uint32(0)
	if fs.mode == modeDelta {
		minUID = math.MaxUint32
	}
	err := r.retry(func() error {
		clear(led.have)
		st, err := r.dst.List(r.ctx, dest, connector.ListOptions{ForAppend: true, MinUID: minUID}, func(ms []connector.Message) error {
			for _, m := range ms {
				led.have[m.Identity]++
			}
			return nil
		})
		led.startUIDNext, led.uidValidity, led.acceptAny, led.permanent = st.UIDNext, st.UIDValidity, st.AcceptAnyKeyword, st.PermanentFlags
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	r.mu.Lock()
	r.ledgers[key] = led
	r.mu.Unlock()
	return led, nil
}

// fetcher streams units from the source into the spool.
func (r *run) fetcher() {
	for u := range r.units {
		if r.ctx.Err() != nil {
			u.fs.dropped.Add(int64(len(u.msgs)))
			u.fs.open.Add(-len(u.msgs))
			continue
		}
		if !r.gov.acquire(r.ctx) {
			u.fs.dropped.Add(int64(len(u.msgs)))
			u.fs.open.Add(-len(u.msgs))
			continue
		}
		r.fetchUnit(u)
		r.gov.release()
	}
}

func (r *run) fetchUnit(u unit) {
	fs := u.fs
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
			fs.dropped.Add(int64(len(u.msgs)))
			fs.open.Add(-len(u.msgs))
			return
		}
	}
	left := make(map[uint32]connector.Message, len(u.msgs))
	for _, m := range u.msgs {
		left[m.UID] = m
	}
	b := r.opts.Backoff
	for attempt := 1; len(left) > 0; attempt++ {
		todo := make([]connector.Message, 0, len(left))
		for _, m := range u.msgs {
			if _, ok := left[m.UID]; ok {
				todo = append(todo, m)
			}
		}
		err := r.src.Fetch(r.ctx, fs.plan.Source, todo, func(body connector.Body, ierr error) error {
			m, ok := left[body.Message.UID]
			if !ok {
				return nil
			}
			if ierr != nil {
				delete(left, m.UID)
				r.fail(fs, m, ierr)
				r.unclaim(fs, m)
				fs.open.Done()
				return nil
			}
			buf, err := r.sp.Read(r.ctx, body.Reader, body.Size)
			if err != nil {
				return &connector.Error{Kind: connector.KindTransient, Op: fmt.Sprintf("read UID %d", m.UID), Err: err}
			}
			delete(left, m.UID)
			// The literal's own length is authoritative: RFC822.SIZE is
			// advisory on some servers.
			m.Size = body.Size
			r.inflight.Add(1)
			select {
			case r.appends <- &item{fs: fs, msg: m, buf: buf}:
				return nil
			case <-r.ctx.Done():
				buf.Release()
				r.inflight.Done()
				fs.dropped.Add(1)
				fs.open.Done()
				return r.ctx.Err()
			}
		})
		if err == nil || r.ctx.Err() != nil {
			break
		}
		k := connector.KindOf(err)
		if k.Fatal() {
			r.stop(fmt.Errorf("source: %w", err))
			break
		}
		if attempt >= b.MaxAttempts() {
			for _, m := range u.msgs {
				if _, ok := left[m.UID]; ok {
					r.fail(fs, m, err)
					r.unclaim(fs, m)
					fs.open.Done()
				}
			}
			return
		}
		if pacer.Sleep(r.ctx, b.Delay(attempt, 0)) != nil {
			break
		}
	}
	// Cancelled: whatever is left will not be copied in this run.
	fs.dropped.Add(int64(len(left)))
	fs.open.Add(-len(left))
}

func (r *run) unclaim(fs *folderState, m connector.Message) { fs.led.unclaim(m.Identity) }

// appender writes spooled messages to the destination, leaving their
// answers to the waiters so that writes pipeline.
func (r *run) appender() {
	for it := range r.appends {
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
		req := connector.AppendRequest{
			Flags:        mail.CopyableFlags(it.msg.Flags, led.acceptAny, led.permanent),
			InternalDate: it.msg.InternalDate,
			Size:         it.buf.Size(),
			Body:         it.buf.Open(),
			Retry:        it.attempt > 0,
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
		if r.rec != nil {
			r.rec.add(r.record(fs, it.msg, store.StateCopied, res, ""))
		}
		fs.led.confirm(it.msg.Identity)
		fs.c.copied.Add(1)
		fs.c.copiedBytes.Add(it.msg.Size)
		r.opts.Stats.Copied(it.msg.Size)
		r.finish(it)
	case r.ctx.Err() != nil && !connector.IsUncertain(err):
		r.drop(it)
	case connector.IsUncertain(err):
		// Never write again before knowing: the reconciler looks. The
		// queue never blocks, because the reconciler waits for this very
		// goroutine to release other appends' locks.
		r.opts.Stats.Uncertain()
		it.lostAt = time.Now()
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
		case (k == connector.KindTransient || k == connector.KindUnknown) && it.attempt+1 < r.opts.Backoff.MaxAttempts():
			r.again(it)
		default:
			r.fail(fs, it.msg, err)
			r.unclaim(fs, it.msg)
			r.finish(it)
		}
	}
}

// again re-queues an item after a backoff, without blocking the caller.
func (r *run) again(it *item) {
	r.opts.Stats.Retried()
	it.attempt++
	d := r.opts.Backoff.Delay(it.attempt, 0)
	go func() {
		if pacer.Sleep(r.ctx, d) != nil {
			r.drop(it)
			return
		}
		select {
		case r.appends <- it:
		case <-r.ctx.Done():
			r.drop(it)
		}
	}()
}

func (r *run) finish(it *item) {
	it.buf.Release()
	it.fs.open.Done()
	r.inflight.Done()
}

// drop abandons an item because the run is stopping; it is neither
// copied nor failed, and the next run picks it up.
func (r *run) drop(it *item) {
	it.fs.dropped.Add(1)
	r.finish(it)
}

// reconciler resolves appends whose answer was lost. With every other
// append to that folder settled (write lock), it counts the identity on
// the destination among messages that arrived during this run; more
// copies than this run confirmed means the lost append did land.
func (r *run) reconciler() {
	for {
		it := r.uncertain.pop()
		if it == nil {
			return
		}
		if r.ctx.Err() != nil {
			r.drop(it)
			continue
		}
		// The server may still be storing what it received before the
		// connection dropped (its process finishes the command, then
		// notices the drop), so look only once that has had time.
		if d := time.Until(it.lostAt.Add(r.opts.SettleDelay)); d > 0 {
			if pacer.Sleep(r.ctx, d) != nil {
				r.drop(it)
				continue
			}
		}
		led := it.fs.led
		led.appends.Lock()
		var tail map[mail.Identity]int
		err := r.retry(func() error {
			tail = make(map[mail.Identity]int)
			_, err := r.dst.List(r.ctx, led.dest, connector.ListOptions{MinUID: led.startUIDNext, ForAppend: true}, func(ms []connector.Message) error {
				for _, m := range ms {
					tail[m.Identity]++
				}
				return nil
			})
			return err
		})
		landed := false
		if err == nil {
			led.mu.Lock()
			if tail[it.msg.Identity] > led.confirmed[it.msg.Identity] {
				led.confirmed[it.msg.Identity]++
				landed = true
			}
			led.mu.Unlock()
		}
		led.appends.Unlock()
		switch {
		case err != nil && r.ctx.Err() != nil:
			r.drop(it)
		case err != nil:
			r.fail(it.fs, it.msg, fmt.Errorf("could not check whether the message was stored after the connection dropped: %w", err))
			r.finish(it)
		case landed:
			if r.rec != nil {
				r.rec.add(r.record(it.fs, it.msg, store.StateCopied, connector.AppendResult{}, ""))
			}
			it.fs.c.copied.Add(1)
			it.fs.c.copiedBytes.Add(it.msg.Size)
			r.opts.Stats.Copied(it.msg.Size)
			r.finish(it)
		case it.attempt+1 < r.opts.Backoff.MaxAttempts():
			r.again(it)
		default:
			r.fail(it.fs, it.msg, errors.New("the destination kept dropping the connection while storing this message"))
			r.unclaim(it.fs, it.msg)
			r.finish(it)
		}
	}
}

// queue is an unbounded FIFO of items; pop blocks until an item arrives
// or the queue is closed and empty (then it returns nil).
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []*item
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(it *item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) pop() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return nil
	}
	it := q.items[0]
	q.items = q.items[1:]
	return it
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (r *run) record(fs *folderState, m connector.Message, state string, res connector.AppendResult, reason string) store.MessageRecord {
	rec := store.MessageRecord{
		SrcPath: fs.plan.Source.Path.String(), SrcUIDValidity: fs.status.UIDValidity, SrcUID: m.UID,
		Identity: m.Identity.String(), State: state, DstPath: fs.plan.Dest.Path.String(),
		DstUIDValidity: res.UIDValidity, DstUID: res.UID, Reason: reason,
	}
	if state == store.StateCopied && fs.led != nil {
		rec.Flags = flagKey(mail.CopyableFlags(m.Flags, fs.led.acceptAny, fs.led.permanent))
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

// chooseMode decides, from the state of earlier passes and the STATUS
// just read, how much of a folder this pass must look at.
func (r *run) chooseMode(fs *folderState) error {
	fs.mode = modeFull
	fs.status = r.statuses[fs.plan.Source.Path.Key()]
	if r.opts.State == nil || r.opts.DryRun {
		return nil
	}
	path := fs.plan.Source.Path.String()
	known, ok, err := r.opts.State.Folder(r.ctx, r.opts.Pair, path)
	if err != nil || !ok {
		return err
	}
	fs.known = known
	if fs.status.UIDValidity == 0 {
		return nil // no STATUS: be thorough
	}
	if known.SrcUIDValidity != fs.status.UIDValidity {
		// The server renumbered the folder (RFC 3501 2.3.1.1): old UIDs
		// mean nothing. Forget them and rescan by identity.
		return r.opts.State.ForgetFolder(r.ctx, r.opts.Pair, path)
	}
	if r.opts.FullRescan {
		return nil
	}
	fs.settled, err = r.opts.State.Unsettled(r.ctx, r.opts.Pair, path, known.SrcUIDValidity, known.Watermark)
	if err != nil {
		return err
	}
	for _, rec := range fs.settled {
		if rec.State == store.StateIntent || rec.State == store.StateFailed {
			// Interrupted mid-APPEND, or failed before: reconcile by
			// identity, which also tries failed messages again.
			return nil
		}
	}
	// Without CONDSTORE a flag change leaves STATUS as it was, so only
	// HIGHESTMODSEQ can vouch for a folder being untouched.
	if len(fs.settled) == 0 && fs.status.UIDNext == known.UIDNext && fs.status.Messages == known.Messages &&
		fs.status.HighestModSeq == known.HighestModSeq && known.HighestModSeq != 0 {
		fs.mode = modeUnchanged
		return nil
	}
	fs.mode = modeDelta
	return nil
}

// saveFolder moves the watermark once every message of a folder is
// settled, so the next pass starts above it.
func (r *run) saveFolder(fs *folderState) {
	if r.opts.State == nil || r.opts.DryRun || fs.mode == modeUnchanged || !fs.complete || fs.dropped.Load() > 0 ||
		fs.listed.UIDValidity != fs.status.UIDValidity {
		// Unfinished, or renumbered while we listed: leave the
		// watermark, the next pass reconciles by identity.
		return
	}
	if err := r.rec.flush(); err != nil {
		r.stop(err)
		return
	}
	st := store.FolderState{
		SrcPath: fs.plan.Source.Path.String(), SrcUIDValidity: fs.status.UIDValidity, DstPath: fs.plan.Dest.Path.String(),
		Watermark: max(fs.maxUID, fs.known.Watermark), UIDNext: fs.listed.UIDNext, Messages: fs.listed.Messages,
		HighestModSeq: fs.listed.HighestModSeq,
		Copied:        fs.known.Copied + fs.c.copied.Load(), Present: fs.known.Present + fs.c.present.Load(),
		Failed: fs.known.Failed + fs.c.failed.Load(),
	}
	if err := r.opts.State.SaveFolder(context.Background(), r.opts.Pair, st); err != nil {
		r.stop(err)
	}
}

// readStatuses asks the source for every folder's STATUS in one
// pipelined batch.
func (r *run) readStatuses(plans []FolderPlan) error {
	r.statuses = make(map[string]connector.FolderStatus, len(plans))
	folders := make([]connector.Folder, len(plans))
	for i, p := range plans {
		folders[i] = p.Source
	}
	sts, errs := r.src.Statuses(r.ctx, folders)
	for i, p := range plans {
		switch err := errs[i]; {
		case err == nil:
			r.statuses[p.Source.Path.Key()] = sts[i]
			r.opts.Stats.AddTotal(int64(sts[i].Messages), sts[i].Size)
		case connector.KindOf(err).Fatal():
			return fmt.Errorf("source: %w", err)
		}
	}
	return nil
}
