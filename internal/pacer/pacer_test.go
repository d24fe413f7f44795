package pacer

import (
	"context"
	"testing"
	"time"
)

func TestDelayGrowsAndIsCapped(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Attempts: 10}
	for attempt := 1; attempt <= 8; attempt++ {
		d := b.Delay(attempt, 0)
		base := b.Min << (attempt - 1)
		if base > b.Max {
			base = b.Max
		}
		if d < base/2 || d > base {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", attempt, d, base/2, base)
		}
	}
	if d := b.Delay(1, 5*time.Second); d != 5*time.Second {
		t.Errorf("a server hint longer than the backoff must win, got %v", d)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err == nil {
		t.Fatal("Sleep must return the context's error when cancelled")
	}
}
