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

	// Backoff paces retries after transient errors (dropped connections,
	// timeouts, BYE, [UNAVAILABLE], throttling); Backoff.Attempts is how
	// often one operation is tried while its side otherwise works.
	Backoff pacer.Backoff
	// RetryBudget is how long a side may fail without a single success
	// (an outage) before the pass gives up on it (default
	// DefaultRetryBudget, 5 minutes). Until then every operation waits and
	// retries; after it, the pass ends and every message not copied is
	// reported as failed with the reason, folder and UID.
	RetryBudget time.Duration
	SpoolDir    string
	SpoolMemory int64 // bytes of message bodies held in memory (default 32 MiB)
	LogSubjects bool  // put subjects of failed messages in the report

	// State, when set, remembers passes: interrupted ones resume without
	// duplicates, later ones copy only what is new, and every folder
	// keeps the destination its first pass decided. Pair identifies the
	// mailbox pair in it.
	State State
	Pair  string
	// FullRescan ignores what State knows of the messages and checks
	// every message by identity against the destination. The recorded
	// folder plan still applies.
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
	if o.RetryBudget <= 0 {
		o.RetryBudget = DefaultRetryBudget
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
	plan FolderPlan
	res  *FolderResult
	led  *ledger
	c    counters
	open sync.WaitGroup // listing plus each unresolved message

	status   connector.FolderStatus // source STATUS before the pass; fixed from then on
	listed   connector.FolderStatus // source status as listed; read after the folder is done
	known    store.FolderState      // what the state said before this pass
	mode     folderMode
	settled  map[uint32]store.MessageRecord // entries above the watermark
	maxUID   uint32                         // highest source UID listed
	complete bool                           // listed in full without error

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

type unit struct {
	fs   *folderState
	msgs []connector.Message
}

type item struct {
	fs      *folderState
	msg     connector.Message
	buf     *spool.Buffer
	attempt int   // sends so far, minus one
	tries   tries // for the retry policy
	lostAt  time.Time
	lostErr error // the error that left its APPEND's outcome unknown
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

	srcHealth, dstHealth *health
	unreachable          atomic.Pointer[UnreachableError]

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
	folders  []*folderState
	ledgers  map[string]*ledger
	// ledgerLocks serialise creating a destination folder's ledger.
	ledgerLocks map[string]*sync.Mutex
	// created holds the destination folders this run created, so that a
	// second source folder mapping to one of them (after its ledger was
	// freed) neither creates nor reports it again.
	created map[string]connector.Folder
	eventMu sync.Mutex
	warm    sync.Once
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
// only when the whole mailbox had to stop (login, TLS, a full
// destination, or a side that never answered before any folder could be
// planned); failures of single messages, and the messages not copied
// because a side stayed unreachable past Options.RetryBudget, are in
// Result.Failures. The Result is returned in both cases.
func Run(ctx context.Context, src connector.Source, dst connector.Destination, opts Options) (*Result, error) {
	opts.defaults(src, dst)
	r := &run{src: src, dst: dst, opts: opts, ledgers: make(map[string]*ledger), ledgerLocks: make(map[string]*sync.Mutex),
		created: make(map[string]connector.Folder),
		sp:      spool.New(opts.SpoolDir, opts.SpoolMemory), wire: semaphore.NewWeighted(opts.WireBytes)}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(nil)
	probe := func(c connector.Conn) func(context.Context) error {
		return func(ctx context.Context) error { _, err := c.Folders(ctx); return err }
	}
	r.srcHealth, r.dstHealth = newHealth("source", probe(src)), newHealth("destination", probe(dst))

	plans, err := r.discover()
	if err != nil {
		return r.result(), err
	}
	if err := r.readStatuses(plans); err != nil {
		return r.result(), err
	}
	if err := r.chooseModes(plans); err != nil {
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
		r.plan()
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
	if r.unreachable.Load() != nil {
		// Not a mailbox-wide error: the pass ran as far as it could and
		// every message it could not copy is in the failures.
		return res, nil
	}
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
	folders := make([]*FolderResult, 0, len(r.folders))
	for _, f := range r.folders {
		folders = append(folders, f.res)
	}
	res := &Result{DryRun: r.opts.DryRun, Folders: folders, Failures: append([]Failure(nil), r.failures...), Stats: r.opts.Stats.Snapshot()}
	if u := r.unreachable.Load(); u != nil {
		res.Unreachable = u.Error()
	}
	return res
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
	f := Failure{Folder: fs.res.Source, UID: m.UID, Size: m.Size, Messages: 1}
	describe(&f, err)
	if r.opts.LogSubjects {
		f.Subject = m.Headers.Subject
	}
	fs.c.failed.Add(1)
	r.opts.Stats.Failed(m.Size)
	if r.rec != nil && m.UID != 0 {
		r.rec.add(r.record(fs, m, store.StateFailed, connector.AppendResult{}, f.Reason))
	}
	r.addFailure(f)
}

// failFolder records n messages of a folder that will not be copied and
// that have no UIDs to name: the folder could not be listed.
func (r *run) failFolder(fs *folderState, n int64, err error) {
	f := Failure{Folder: fs.res.Source, Messages: n}
	if fs.estimate > 0 {
		f.Size = fs.estimateBytes * n / fs.estimate
	}
	describe(&f, err)
	if !isUnreachable(err) {
		f.Reason = "the folder could not be copied: " + f.Reason
	}
	if fs.status.UIDValidity == 0 && n == 0 {
		f.Reason += " (how many messages it holds is not known: the server did not report its STATUS)"
	}
	fs.c.failed.Add(n)
	r.opts.Stats.FailedMany(n, f.Size)
	r.addFailure(f)
}

// failNone records a failure that left no message uncopied (flag changes
// that could not be carried over), so that the user sees it.
func (r *run) failNone(fs *folderState, err error) {
	f := Failure{Folder: fs.res.Source}
	describe(&f, err)
	r.addFailure(f)
}

func describe(f *Failure, err error) {
	f.Reason, f.Hint, f.Kind = reason(err), connector.HintOf(err), connector.KindOf(err).String()
	if isUnreachable(err) {
		var u *UnreachableError
		errors.As(err, &u)
		f.Reason, f.Hint = "not copied: "+u.Error(), unreachableHint
	}
}

func (r *run) addFailure(f Failure) {
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

// leave gives up on a message because the run is stopping. It is counted
// as left (the next pass takes it up), or, when the run ended because a
// side stayed unreachable, as failed with that reason.
func (r *run) leave(fs *folderState, m connector.Message) {
	if fs.led != nil {
		fs.led.unclaim(m)
	}
	if u := r.unreachable.Load(); u != nil {
		r.fail(fs, m, u)
		return
	}
	fs.c.left.Add(1)
	r.opts.Stats.Left(1)
}

// leaveUnlisted accounts for the messages of a folder that were never
// listed, because the run stopped (or a side became unreachable) first.
func (r *run) leaveUnlisted(fs *folderState) {
	n := r.unlisted(fs)
	if u := r.unreachable.Load(); u != nil {
		if n > 0 || fs.status.UIDValidity == 0 { // nothing to say of a folder known to hold nothing more
			r.failFolder(fs, n, u)
		}
		return
	}
	fs.c.left.Add(n)
	r.opts.Stats.Left(n)
}

// unlisted is how many messages of fs were never listed, by the estimate
// from its STATUS.
func (r *run) unlisted(fs *folderState) int64 {
	if fs.complete {
		return 0
	}
	n := max(0, fs.estimate-fs.res.Listed)
	fs.unlisted = n
	return n
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
func (r *run) plan() {
	next := make(chan int)
	var wg sync.WaitGroup
	// Planners hold a source session while listing and block when the
	// fetchers are busy; at least one session must stay free for the
	// fetchers, or neither side could move.
	planners := max(1, min(plannerCount, r.src.Features().MaxConnections-1, len(r.folders)))
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
	} else if err := r.reconcileOld(fs); err != nil && r.ctx.Err() == nil {
		r.failNone(fs, fmt.Errorf("flag changes could not be carried over to the copies made earlier: %w", err))
	}
	fs.open.Done()
	r.finishers.Add(1)
	go r.finishFolder(fs)
}

func (r *run) finishFolder(fs *folderState) {
	defer r.finishers.Done()
	fs.open.Wait()
	r.releaseLedger(fs)
	fs.c.into(fs.res)
	fs.res.Messages = fs.res.Listed + fs.unlisted
	switch {
	case fs.mode == modeUnchanged:
		fs.res.Earlier = int64(fs.status.Messages)
	case fs.mode == modeDelta && fs.listed.UIDValidity != 0:
		fs.res.Earlier = max(0, int64(fs.listed.Messages)-fs.res.Messages)
	case fs.mode == modeDelta:
		fs.res.Earlier = max(0, int64(fs.status.Messages)-fs.res.Messages)
	}
	r.fixTotal(fs)
	r.saveFolder(fs)
	r.opts.Stats.FolderDone()
	r.emit(Event{Type: "folder_done", Folder: fs.res})
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
	var batchBytes int64
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
			// Never queued: the watermark must not pass them.
			for _, m := range u.msgs {
				r.leave(fs, m)
			}
			fs.open.Add(-len(u.msgs))
			return false
		}
	}
	flush := func() bool {
		if len(u.msgs) == 0 {
			return true
		}
		ok := true
		if holdBack {
			held = append(held, u)
		} else {
			ok = send(u)
		}
		u, batchBytes = unit{}, 0
		return ok
	}
	queue := func(m connector.Message) bool {
		fs.res.ToCopy++
		fs.res.ToCopyBytes += m.Size
		if r.opts.DryRun {
			return true
		}
		u.fs = fs
		u.msgs = append(u.msgs, m)
		batchBytes += m.Size
		if len(u.msgs) >= r.opts.FetchBatch || batchBytes >= r.opts.FetchBatchBytes {
			return flush()
		}
		return true
	}
	present := func(m connector.Message) {
		if rec, ok := fs.settled[m.UID]; ok && r.rec != nil && rec.State != store.StateCopied {
			r.rec.add(r.record(fs, m, store.StatePresent, connector.AppendResult{}, ""))
		}
		fs.c.present.Add(1)
		r.opts.Stats.Present(1)
	}
	var t tries
	listErr := r.retry(r.srcHealth, &t, func() error {
		st, err := r.src.List(r.ctx, fs.plan.Source, connector.ListOptions{MinUID: last + 1}, func(ms []connector.Message) error {
			t.reset() // the listing moves on: only failures in a row count
			r.srcHealth.ok()
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
					cl.force(m)
				} else if there, deferred := cl.claim(m); there {
					present(m)
					continue
				} else if deferred {
					continue
				}
				if !queue(m) {
					return r.ctx.Err()
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if fs.listed.UIDValidity == 0 {
			fs.listed = st // the first listing's view; a retry lists only the rest
		}
		return nil
	})
	// The messages whose pairing waited for the whole folder are settled
	// whatever the listing's outcome: what was listed is known.
	there, rest := cl.resolve()
	for _, m := range there {
		present(m)
	}
	for _, m := range rest {
		queue(m)
	}
	flush()
	for _, h := range held {
		send(h)
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
		err := r.retry(r.dstHealth, nil, func() error {
			var err error
			dest, err = r.dst.CreateFolder(r.ctx, fs.plan.Dest.Path, fs.plan.Dest.Role)
			return err
		})
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
	} else {
		// A delta pass does not read the destination's messages: opening
		// the folder (MinUID beyond any UID) yields its flags and UIDNEXT
		// only.
		minUID := uint32(0)
		if !fs.indexDest {
			minUID = math.MaxUint32
		}
		err := r.retry(r.dstHealth, nil, func() error {
			led.reset()
			st, err := r.dst.List(r.ctx, dest, connector.ListOptions{ForAppend: true, MinUID: minUID}, func(ms []connector.Message) error {
				for _, m := range ms {
					led.index(m)
				}
				return nil
			})
			led.startUIDNext, led.uidValidity, led.acceptAny, led.permanent = st.UIDNext, st.UIDValidity, st.AcceptAnyKeyword, st.PermanentFlags
			return err
		})
		if err != nil {
			return nil, destErr(err)
		}
	}
	led.refs = 1
	r.mu.Lock()
	r.ledgers[key] = led
	r.mu.Unlock()
	return led, nil
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

// fetcher streams units from the source into the spool.
func (r *run) fetcher() {
	for u := range r.units {
		if r.ctx.Err() != nil || !r.gov.acquire(r.ctx) {
			for _, m := range u.msgs {
				r.leave(u.fs, m)
			}
			u.fs.open.Add(-len(u.msgs))
			continue
		}
		r.fetchUnit(u)
		r.gov.release()
	}
}

func (r *run) fetchUnit(u unit) {
	fs := u.fs
	left := make(map[uint32]connector.Message, len(u.msgs))
	for _, m := range u.msgs {
		left[m.UID] = m
	}
	// Whatever is left at the end will not be copied in this run.
	defer func() {
		for _, m := range u.msgs {
			if _, ok := left[m.UID]; ok {
				r.leave(fs, m)
				fs.open.Done()
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
	var t tries
	for len(left) > 0 {
		todo := make([]connector.Message, 0, len(left))
		for _, m := range u.msgs {
			if _, ok := left[m.UID]; ok {
				todo = append(todo, m)
			}
		}
		progressed := false
		err := r.src.Fetch(r.ctx, fs.plan.Source, todo, func(body connector.Body, ierr error) error {
			m, ok := left[body.Message.UID]
			if !ok {
				return nil
			}
			if ierr != nil {
				if k := connector.KindOf(ierr); k == connector.KindTransient {
					// The connection, not the message: retry it.
					return ierr
				}
				delete(left, m.UID)
				r.fail(fs, m, ierr)
				r.unclaim(fs, m)
				fs.open.Done()
				return nil
			}
			buf, err := r.sp.Read(r.ctx, body.Reader, body.Size)
			if err != nil {
				// A body cut off mid-stream is the connection's fault:
				// the message is fetched again.
				return &connector.Error{Kind: connector.KindTransient, Op: fmt.Sprintf("read UID %d", m.UID), Err: err}
			}
			delete(left, m.UID)
			progressed = true
			r.srcHealth.ok()
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
				r.leave(fs, m)
				fs.open.Done()
				return r.ctx.Err()
			}
		})
		if err == nil {
			r.srcHealth.ok()
			break
		}
		if r.ctx.Err() != nil {
			return
		}
		if connector.KindOf(err).Fatal() {
			r.stop(fmt.Errorf("source: %w", err))
			return
		}
		if progressed {
			t.reset()
		}
		wait, final := r.next(r.srcHealth, &t, err)
		if final != nil {
			if isUnreachable(final) {
				return // the deferred leave reports them
			}
			for _, m := range u.msgs {
				if _, ok := left[m.UID]; ok {
					delete(left, m.UID)
					r.fail(fs, m, final)
					r.unclaim(fs, m)
					fs.open.Done()
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
		r.dstHealth.ok()
		if r.rec != nil {
			r.rec.add(r.record(fs, it.msg, store.StateCopied, res, ""))
		}
		fs.led.confirm(it.msg)
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
		wait, ferr := r.next(r.dstHealth, &it.tries, err)
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

// drop abandons an item because the run is stopping (see leave).
func (r *run) drop(it *item) {
	r.leave(it.fs, it.msg)
	r.finish(it)
}

// reconciler resolves appends whose answer was lost. With every other
// append to that folder settled (write lock), it looks among the messages
// that arrived during this run for a copy with the item's identity and
// date that no acknowledged append accounts for (ledger.landed).
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
		var tail []connector.Message
		err := r.retry(r.dstHealth, nil, func() error {
			tail = tail[:0]
			_, err := r.dst.List(r.ctx, led.dest, connector.ListOptions{MinUID: led.startUIDNext, ForAppend: true}, func(ms []connector.Message) error {
				tail = append(tail, ms...)
				return nil
			})
			return err
		})
		landed := err == nil && led.landed(it.msg, tail)
		led.appends.Unlock()
		switch {
		case err != nil && (r.ctx.Err() != nil || isUnreachable(err)):
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
		default:
			r.again(it, it.lostErr, func(err error) error {
				return fmt.Errorf("the destination kept dropping the connection while storing this message: %w", err)
			})
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
		r.folders[i] = &folderState{plan: p, res: res}
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
			// UIDs above the watermark: at most UIDNEXT-1-watermark
			// messages, fewer if some were expunged.
			fs.estimate = int64(st.Messages)
			if st.UIDNext > 0 {
				fs.estimate = min(fs.estimate, max(0, int64(st.UIDNext)-1-int64(fs.known.Watermark)))
			}
		default:
			fs.estimate = int64(st.Messages)
		}
		if st.Messages > 0 {
			fs.estimateBytes = st.Size * fs.estimate / int64(st.Messages)
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
		fs.known = store.FolderState{}
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
	if r.opts.State == nil || r.opts.DryRun || fs.mode == modeUnchanged || !fs.complete || fs.c.left.Load() > 0 ||
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
// pipelined batch, and again for those a dropped connection left without
// an answer. A folder without STATUS is listed in full.
func (r *run) readStatuses(plans []FolderPlan) error {
	r.statuses = make(map[string]connector.FolderStatus, len(plans))
	todo := make([]int, len(plans))
	for i := range plans {
		todo[i] = i
	}
	var t tries
	for len(todo) > 0 {
		folders := make([]connector.Folder, len(todo))
		for j, i := range todo {
			folders[j] = plans[i].Source
		}
		sts, errs := r.src.Statuses(r.ctx, folders)
		var again []int
		var last error
		for j, i := range todo {
			switch err := errs[j]; {
			case err == nil:
				r.statuses[plans[i].Source.Path.Key()] = sts[j]
			case connector.KindOf(err).Fatal():
				return fmt.Errorf("source: %w", err)
			case connector.KindOf(err) == connector.KindTransient:
				again, last = append(again, i), err
			}
		}
		if len(again) == 0 {
			r.srcHealth.ok()
			return nil
		}
		if len(again) < len(todo) {
			r.srcHealth.ok()
			t.reset()
		}
		wait, final := r.next(r.srcHealth, &t, last)
		if final != nil {
			if isUnreachable(final) || r.ctx.Err() != nil {
				return final
			}
			return nil
		}
		r.opts.Stats.Retried()
		if err := pacer.Sleep(r.ctx, wait); err != nil {
			if u := r.unreachable.Load(); u != nil {
				return u
			}
			return err
		}
		todo = again
	}
	return nil
}
