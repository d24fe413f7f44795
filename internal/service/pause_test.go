package service

import (
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// A stored pause reads as the portal's sentence: Gmail's daily limit with
// the resume time and how far off it is; throttling with the resume time,
// the expected finish from the rate so far, and the "throttled" Solve
// Issue naming it. A finished part shows no pause.
func TestPauseMessages(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 53, 0, 0, time.UTC)
	daily := pauseOf(store.MailboxPass{PauseCause: PauseDailyLimit, PauseUntil: time.Date(2026, 12, 3, 0, 5, 0, 0, time.UTC).Unix()}, now)
	if want := "Paused: Gmail's daily limit, resumes at Dec 3 00:05 UTC (in 5 h 12 min)"; daily == nil || daily.Message != want {
		t.Fatalf("daily limit: %+v, want %q", daily, want)
	}
	thr := store.MailboxPass{PauseCause: PauseThrottled, PauseUntil: now.Add(10 * time.Minute).Unix(), ETASeconds: 3600}
	p := pauseOf(thr, now)
	if want := "Throttled by the server; expected to resume at 19:03 UTC (in 10 min); expected to finish at about 20:03 UTC"; p == nil || p.Message != want {
		t.Fatalf("throttled: %+v, want %q", p, want)
	}
	if !p.ExpectedFinish.Equal(now.Add(70 * time.Minute)) {
		t.Errorf("expected finish %v", p.ExpectedFinish)
	}
	m := Mailbox{LastPass: &MailboxPass{Paused: p}}
	m.livePause()
	if m.SolveIssue == nil || m.SolveIssue.Class != ClassThrottled || !strings.Contains(m.SolveIssue.Explanation, "finish at about 2026-12-02 20:03 UTC") {
		t.Fatalf("Solve Issue while throttled: %+v", m.SolveIssue)
	}
	thr.FinishedAt = now.Unix()
	if p := pauseOf(thr, now); p != nil {
		t.Errorf("a finished part shows a pause: %+v", p)
	}
}
