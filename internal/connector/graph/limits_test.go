package graph

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// In every window, never more than the budget; and not much less over a
// long run (the bucket does not waste the budget).
func TestBucketKeepsEveryWindowUnderBudget(t *testing.T) {
	for _, tc := range []struct {
		budget, largest float64
		window          time.Duration
		maxReq          int
	}{
		{10000, 20, 10 * time.Minute, 20},          // Graph's request budget, batches of up to 20
		{150e6, 4 << 20, 5 * time.Minute, 4 << 20}, // upload bytes
		{1e6, 4 << 20, time.Minute, 300_000},       // shrunk for tests
	} {
		clock := newFakeClock()
		b := newBucket(clock, tc.budget, tc.window, tc.largest)
		type use struct {
			at time.Time
			n  float64
		}
		var uses []use
		start := clock.Now()
		total := 0.0
		r := rand.New(rand.NewPCG(1, 2))
		for total < 5*tc.budget {
			n := float64(1 + r.IntN(tc.maxReq))
			if err := b.take(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			uses = append(uses, use{clock.Now(), n})
			total += n
		}
		j, sum := 0, 0.0
		for i := range uses {
			sum += uses[i].n
			for uses[i].at.Sub(uses[j].at) >= tc.window {
				sum -= uses[j].n
				j++
			}
			if sum > tc.budget {
				t.Fatalf("budget %v: %v used within one window", tc.budget, sum)
			}
		}
		elapsed := clock.Now().Sub(start)
		ideal := time.Duration((total - b.burst) / b.rate * float64(time.Second))
		if elapsed > ideal*13/10+tc.window {
			t.Errorf("budget %v: %v for %v, ideal about %v", tc.budget, elapsed, total, ideal)
		}
	}
}

func TestBucketWaitCanBeCancelled(t *testing.T) {
	clock := newFakeClock()
	b := newBucket(clock, 100, time.Minute, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 10 {
		b.take(context.Background(), 1)
	}
	if err := b.take(ctx, 50); err == nil {
		t.Fatal("a cancelled wait returned no error")
	}
	// The cancelled take gave its tokens back.
	if b.tokens < 0 {
		t.Fatalf("tokens %v after a cancelled take", b.tokens)
	}
}
