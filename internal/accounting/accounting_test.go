package accounting

import (
	"testing"
	"time"
)

func TestSnapshot(t *testing.T) {
	s := New()
	s.start = time.Now().Add(-10 * time.Second)
	s.AddTotal(100, 1000)
	for i := 0; i < 20; i++ {
		s.Copied(10)
	}
	s.Present(5)
	s.Skipped(3)
	s.Failed(7)
	s.SetFolder("INBOX")
	snap := s.Snapshot()
	if snap.Done() != 29 || snap.Copied != 20 || snap.CopiedBytes != 200 || snap.FailedBytes != 7 || snap.Folder != "INBOX" {
		t.Fatalf("counters wrong: %+v", snap)
	}
	if snap.MsgsPerSec < 1.9 || snap.MsgsPerSec > 2.1 {
		t.Errorf("rate %v, want about 2 msgs/s", snap.MsgsPerSec)
	}
	// 29 done in 10 s, 71 left: about 24.5 s.
	if snap.ETA < 23*time.Second || snap.ETA > 26*time.Second {
		t.Errorf("ETA %v, want about 24s", snap.ETA)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_500_000: "1.5 MB", 40 << 20: "41.9 MB", 3e12: "3.0 TB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
