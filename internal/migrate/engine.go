package migrate

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/spool"
)

// DefaultRetryBudget is how long a pass keeps retrying a side that stopped
// answering before it gives up on what is left (Options.RetryBudget).
const DefaultRetryBudget = layer.DefaultBudget

// UnreachableError ends a pass whose source or destination did not answer
// for longer than Options.RetryBudget. Every message not copied is then
// reported with it.
type UnreachableError = layer.UnreachableError

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
	// timeouts, BYE, [UNAVAILABLE], throttling, a server's Retry-After);
	// Backoff.Attempts is how often one operation is tried while its
	// side otherwise works.
	Backoff pacer.Backoff
	// RetryBudget is how long a side may fail without a single success
	// (an outage) before the pass gives up on it (default
	// DefaultRetryBudget, 5 minutes). Until then every operation waits and
	// retries; after it, the pass ends and every message not copied is
	// reported as failed with the reason, folder and ID.
	RetryBudget time.Duration
	SpoolDir    string
	SpoolMemory int64 // bytes of message bodies held in memory (default 16 MiB)
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
	// else. Needs State and a destination that can delete.
	DeleteMissing bool

	// Stats, when set, receives live counters (for progress display).
	Stats *accounting.Stats
	// OnEvent, when set, is called for folder and failure events. It is
	// called from several goroutines, one call at a time.
	OnEvent func(Event)

	// inspect, set only by this package's tests, is given the run once
	// its folders are planned.
	inspect func(*run)
}

// Event is a notable moment of a run, for --json output and logs.
type Event struct {
	Type    string        `json:"type"` // folder_start, folder_done, failure
	Folder  *FolderResult `json:"folder,omitempty"`
	Failure *Failure      `json:"failure,omitempty"`
}

func (o *Options) defaults(src, dst connector.Features) {
	if o.Streams <= 0 {
		o.Streams = min(max(src.MaxConnections, 1), max(dst.MaxConnections, 1))
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
		// Twice WireBytes: what awaits its answer plus as much again
		// fetched and waiting for its turn. 32 MiB bought no speed at
		// 100k messages and added to the peak memory (issue 14).
		o.SpoolMemory = 16 << 20
	}
	if o.Stats == nil {
		o.Stats = accounting.New()
	}
}

// run is one pass over a mailbox pair. Its parts live in files by
// concern: plan.go (which folder goes where), pass.go (per-folder state
// across passes: modes, cursors, counts), list.go (listing a folder and
// deciding what to copy), transfer.go (the fetch/append pipeline),
// resolve.go (appends whose answer was lost), flags.go (flag changes and
// deletions on copies made earlier), failures.go (what is reported).
type run struct {
	// src and dst are the connectors wrapped in the retry layer; their
	// idempotent calls retry by themselves. rawSrc and rawDst are the
	// connectors as given, for probes.
	src            connector.Source
	dst            connector.Destination
	srcF, dstF     connector.Features
	srcTry, dstTry *layer.Retrier
	outage         *layer.Outage
	opts           Options
	sp             *spool.Spool

	ctx    context.Context
	cancel context.CancelCauseFunc

	units     *unitQueue
	appends   chan *item
	answers   chan pending
	uncertain *queue
	inflight  sync.WaitGroup // spooled items not yet resolved
	finishers sync.WaitGroup // folder_done bookkeeping

	rec      *recorder
	known    map[string]knownFolder // by source path: what earlier passes left
	statuses map[string]connector.FolderStatus
	gov      *governor
	wire     *semaphore.Weighted // bytes of unanswered appends
	seed     idSeed

	mu       sync.Mutex
	failures []Failure
	folders  []*folderState
	skipped  []*FolderResult // folders not copied at all (not mail)
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

// unreachable is the error that ended the run because a side stayed
// down, nil otherwise.
func (r *run) unreachable() *UnreachableError { return r.outage.Err() }

// warmUp has the connectors open the sessions the transfer will use while
// the first folders are still being prepared. It waits for the first
// folder with work, so an unchanged mailbox costs no extra logins.
func (r *run) warmUp() {
	if r.srcF.Warm {
		r.src.(connector.Warmer).Warm(r.opts.Streams, false)
	}
	if r.dstF.Warm {
		// One session for folder work next to the first one; the rest
		// of the cap is left to append connections.
		r.dst.(connector.Warmer).Warm(2, true)
	}
}

// Run copies every selected folder from src to dst. It returns an error
// only when the whole mailbox had to stop (login, TLS, a full
// destination, or a side that never answered before any folder could be
// planned); failures of single messages, and the messages not copied
// because a side stayed unreachable past Options.RetryBudget, are in
// Result.Failures. The Result is returned in both cases.
//
// The engine knows src and dst only through the connector interfaces and
// their Features: it never looks at what an ID or a cursor holds.
func Run(ctx context.Context, src connector.Source, dst connector.Destination, opts Options) (*Result, error) {
	opts.defaults(connector.FeaturesOf(src), connector.FeaturesOf(dst))
	r := &run{opts: opts, ledgers: make(map[string]*ledger), ledgerLocks: make(map[string]*sync.Mutex),
		created: make(map[string]connector.Folder), seed: newIDSeed(),
		sp: spool.New(opts.SpoolDir, opts.SpoolMemory), wire: semaphore.NewWeighted(opts.WireBytes)}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(nil)
	r.outage = layer.NewOutage(r.cancel)
	policy := func(side string, c connector.Conn) layer.Policy {
		return layer.Policy{Side: side, Backoff: opts.Backoff, Budget: opts.RetryBudget, Outage: r.outage,
			OnRetry: opts.Stats.Retried,
			// A long wait on the server (Gmail's daily limit, a long
			// Retry-After) shows in the progress as a pause.
			OnPause: func(p accounting.Pause) { opts.Stats.SetPause(side, p) },
			Probe:   func(ctx context.Context) error { _, err := c.Folders(ctx); return err }}
	}
	r.srcTry, r.dstTry = layer.NewRetrier(policy("source", src)), layer.NewRetrier(policy("destination", dst))
	r.src, r.dst = layer.Retry(src, r.srcTry), layer.Retry(dst, r.dstTry)
	r.srcF, r.dstF = connector.FeaturesOf(r.src), connector.FeaturesOf(r.dst)

	plans, err := r.discover()
	if err != nil {
		return r.result(), err
	}
	if err := r.loadKnown(plans); err != nil {
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
	if opts.inspect != nil {
		opts.inspect(r)
	}

	n := opts.Streams
	r.gov = newGovernor(4, n, opts.PinStreams)
	go r.gov.run(r.ctx, opts.Stats, time.Second)
	// Up to a unit per stream for each folder being listed, so that
	// every fetcher reading a folder finds its next unit.
	r.units = newUnitQueue(max(n, 2))
	stopUnits := context.AfterFunc(r.ctx, r.units.stop)
	defer stopUnits()
	r.appends = make(chan *item, n*2)
	r.answers = make(chan pending, n*opts.PipelineDepth)
	r.uncertain = newQueue()

	var fetchers, appenders, waiters, reconciler sync.WaitGroup
	go func() {
		defer r.units.close()
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
	if r.unreachable() != nil && ctx.Err() == nil {
		// Not a mailbox-wide error: the pass ran as far as it could and
		// every message it could not copy is in the failures. (Stopped
		// from outside meanwhile, it was cut short: callers rely on a
		// nil error meaning that the run ended before ctx did.)
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
	folders := make([]*FolderResult, 0, len(r.folders)+len(r.skipped))
	for _, f := range r.folders {
		folders = append(folders, f.res)
	}
	folders = append(folders, r.skipped...)
	res := &Result{DryRun: r.opts.DryRun, Folders: folders, Failures: append([]Failure(nil), r.failures...), Stats: r.opts.Stats.Snapshot()}
	if u := r.unreachable(); u != nil {
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
