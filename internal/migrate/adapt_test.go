package migrate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
)

func TestGovernorBoundsStreams(t *testing.T) {
	g := newGovernor(2, 6, false)
	var active, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !g.acquire(context.Background()) {
				return
			}
			n := active.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			active.Add(-1)
			g.release()
		}()
	}
	wg.Wait()
	if peak.Load() > 2 {
		t.Errorf("%d streams ran at once with a limit of 2", peak.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.set(1, 0, "test")
	_ = g.acquire(ctx)
	done := make(chan bool)
	go func() { done <- g.acquire(ctx) }()
	cancel()
	if <-done {
		t.Error("acquire must give up when the context ends")
	}
}

// The governor ramps up while throughput grows and halves when the
// server pushes back.
func TestGovernorAdapts(t *testing.T) {
	stats := accounting.New()
	g := newGovernor(2, 8, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.run(ctx, stats, 10*time.Millisecond)
	// Growing throughput: each tick copies more than the last.
	for i := 1; i <= 30 && g.current() < 6; i++ {
		for j := 0; j < i*10; j++ {
			stats.Copied(1000)
		}
		time.Sleep(12 * time.Millisecond)
	}
	if g.current() < 4 {
		t.Fatalf("limit %d after growing throughput, want it raised", g.current())
	}
	before := g.current()
	for i := 0; i < 20; i++ {
		stats.Retried()
		stats.Copied(1000)
	}
	deadline := time.Now().Add(time.Second)
	for g.current() >= before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g.current() > before/2+1 {
		t.Errorf("limit %d after pushback from %d, want about half", g.current(), before)
	}
	if pinned := newGovernor(2, 5, true); pinned.current() != 5 {
		t.Errorf("a pinned governor must use the cap, got %d", pinned.current())
	}
}
