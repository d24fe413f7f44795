package migrate

import (
	"context"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// State is the durable memory of earlier passes; *store.Store implements
// it. Without one (Options.State nil) every pass indexes the destination
// and relies on identity alone, which is still duplicate-free but reads
// more. IDs and cursors are the connectors' own, opaque here and there.
type State interface {
	Folder(ctx context.Context, pair, srcPath string) (store.FolderState, bool, error)
	SaveFolder(ctx context.Context, pair string, f store.FolderState) error
	ForgetFolder(ctx context.Context, pair, srcPath string) error
	Record(ctx context.Context, pair string, recs []store.MessageRecord) error
	// Lookup returns the entries of these source IDs, by ID.
	Lookup(ctx context.Context, pair, srcPath string, ids []string) (map[string]store.MessageRecord, error)
	// Unsettled counts the folder's intents and failures.
	Unsettled(ctx context.Context, pair, srcPath string) (int64, error)
	// Records and Copied stream the folder's entries (all, or those of
	// copies); fn must not call the State.
	Records(ctx context.Context, pair, srcPath string, fn func(store.MessageRecord) error) error
	Copied(ctx context.Context, pair, srcPath string, fn func(store.MessageRecord) error) error
	SetFlags(ctx context.Context, pair, srcPath string, flags map[string]string) error
	Forget(ctx context.Context, pair, srcPath string, ids []string) error
	// FolderPlans returns the folder plan earlier passes recorded, by
	// source path; SaveFolderPlans records new or replaced ones. A pass
	// records its plan before it copies anything and follows the record
	// on every later pass (see PlanFolders).
	FolderPlans(ctx context.Context, pair string) (map[string]store.FolderPlan, error)
	SaveFolderPlans(ctx context.Context, pair string, plans []store.FolderPlan) error
}

var _ State = (*store.Store)(nil)

// recorder writes message results in batches from one goroutine (group
// commit): many results, one transaction.
type recorder struct {
	st   State
	pair string
	ch   chan recReq
	done chan struct{}
}

type recReq struct {
	rec   *store.MessageRecord
	flush chan error
}

func newRecorder(st State, pair string) *recorder {
	r := &recorder{st: st, pair: pair, ch: make(chan recReq, 1024), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *recorder) loop() {
	defer close(r.done)
	var batch []store.MessageRecord
	var waiters []chan error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	write := func() {
		// A background context: results of a cancelled run must still
		// be written, or the next run would reconcile them needlessly.
		err := r.st.Record(context.Background(), r.pair, batch)
		batch = batch[:0]
		for _, w := range waiters {
			w <- err
		}
		waiters = waiters[:0]
	}
	for {
		select {
		case req, ok := <-r.ch:
			if !ok {
				write()
				return
			}
			if req.rec != nil {
				batch = append(batch, *req.rec)
			}
			if req.flush != nil {
				waiters = append(waiters, req.flush)
				write()
			} else if len(batch) >= 512 {
				write()
			}
		case <-tick.C:
			if len(batch) > 0 {
				write()
			}
		}
	}
}

func (r *recorder) add(rec store.MessageRecord) { r.ch <- recReq{rec: &rec} }

// flush returns once everything added before it is committed.
func (r *recorder) flush() error {
	if r == nil {
		return nil
	}
	ch := make(chan error, 1)
	r.ch <- recReq{flush: ch}
	return <-ch
}

func (r *recorder) close() {
	close(r.ch)
	<-r.done
}
