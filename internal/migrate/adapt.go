package migrate

import (
	"context"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
)

// governor decides how many fetch streams run at once, between 1 and the
// connectors' cap. It starts low and adds a stream while throughput keeps
// growing (additive increase), and halves on signs of throttling: retried
// transfers or appends whose answer was lost, which is how providers
// usually push back (a dropped connection, [UNAVAILABLE], [LIMIT]).
// Idle streams hold no connection, so fewer streams also means fewer
// connections to the provider. See docs/PERFORMANCE.md.
type governor struct {
	mu      sync.Mutex
	cond    *sync.Cond
	limit   int // streams allowed now
	active  int // streams working now
	max     int
	pinned  bool
	history []step
}

// step is one adjustment, kept for tests and the closing summary.
type step struct {
	At     time.Duration
	Limit  int
	Reason string
}

func newGovernor(start, max int, pinned bool) *governor {
	g := &governor{limit: min(max, start), max: max, pinned: pinned}
	if pinned {
		g.limit = max
	}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// acquire blocks until the stream may work or ctx ends.
func (g *governor) acquire(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.active >= g.limit {
		if ctx.Err() != nil {
			return false
		}
		g.cond.Wait()
	}
	g.active++
	return true
}

func (g *governor) release() {
	g.mu.Lock()
	g.active--
	g.cond.Signal()
	g.mu.Unlock()
}

func (g *governor) set(limit int, at time.Duration, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	limit = max(1, min(g.max, limit))
	if limit == g.limit {
		return
	}
	g.limit = limit
	g.history = append(g.history, step{At: at, Limit: limit, Reason: reason})
	g.cond.Broadcast()
}

func (g *governor) current() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit
}

// run adjusts the limit every interval from the accounting counters.
func (g *governor) run(ctx context.Context, stats *accounting.Stats, interval time.Duration) {
	if g.pinned || g.max <= 1 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	start := time.Now()
	prev := stats.Snapshot()
	var prevRate float64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := stats.Snapshot()
		done := float64((cur.Copied + cur.Present + cur.Failed) - (prev.Copied + prev.Present + prev.Failed))
		bytes := float64(cur.CopiedBytes - prev.CopiedBytes)
		// A blend of messages and bytes: small-message folders are bound
		// by round trips, large-message ones by bandwidth.
		rate := done + bytes/(64<<10)
		pushback := (cur.Retried - prev.Retried) + (cur.Uncertain - prev.Uncertain)
		limit := g.current()
		at := time.Since(start)
		switch {
		case pushback > 0:
			g.set(limit/2, at, "server pushed back")
		case done == 0 && bytes == 0:
			// Nothing moved (listing, or the run is ending): hold.
		case rate > prevRate*1.05:
			g.set(limit+1, at, "throughput grew")
		case rate < prevRate*0.8 && limit > 1:
			g.set(limit-1, at, "throughput fell")
		}
		prev, prevRate = cur, rate
	}
}
