package service

import (
	"fmt"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// Causes of a Pause, as the worker stores them (accounting.Pause).
const (
	PauseDailyLimit = "daily-limit"
	PauseThrottled  = "throttled"
)

// Pause says that a running pass waits on its server: Gmail's daily
// limit, or a server that asked to slow down for a while. The pass is
// not stuck; it goes on at Until by itself.
type Pause struct {
	Cause string    `json:"cause"`
	Until time.Time `json:"until"`
	// ExpectedFinish is when the pass should end at its rate so far,
	// counted from Until; zero when the counts do not tell.
	ExpectedFinish time.Time `json:"expected_finish,omitzero"`
	// Message is the sentence the portal shows.
	Message string `json:"message"`
}

// pauseOf reads a running part's pause, nil when it works or is over.
func pauseOf(r store.MailboxPass, now time.Time) *Pause {
	if r.PauseUntil == 0 || r.FinishedAt != 0 {
		return nil
	}
	p := &Pause{Cause: r.PauseCause, Until: time.Unix(r.PauseUntil, 0).UTC()}
	if r.ETASeconds > 0 {
		p.ExpectedFinish = p.Until.Add(time.Duration(r.ETASeconds) * time.Second)
	}
	at := func(t time.Time) string { return t.UTC().Format("15:04") + " UTC" }
	if !sameDay(p.Until, now) {
		at = func(t time.Time) string { return t.UTC().Format("Jan 2 15:04") + " UTC" }
	}
	if p.Cause == PauseDailyLimit {
		p.Message = fmt.Sprintf("Paused: Gmail's daily limit, resumes at %s (%s)", at(p.Until), inTime(p.Until.Sub(now)))
	} else {
		p.Message = fmt.Sprintf("Throttled by the server; expected to resume at %s (%s)", at(p.Until), inTime(p.Until.Sub(now)))
	}
	if !p.ExpectedFinish.IsZero() {
		p.Message += fmt.Sprintf("; expected to finish at about %s", at(p.ExpectedFinish))
	}
	return p
}

func sameDay(a, b time.Time) bool {
	a, b = a.UTC(), b.UTC()
	return a.YearDay() == b.YearDay() && a.Year() == b.Year()
}

// inTime says how far off d is, to the minute: "in 5 h 12 min".
func inTime(d time.Duration) string {
	if d < time.Minute {
		return "in under a minute"
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("in %d min", m)
	case m == 0:
		return fmt.Sprintf("in %d h", h)
	}
	return fmt.Sprintf("in %d h %d min", h, m)
}

// livePause fills in the Solve Issue of a mailbox whose running pass is
// throttled (sustained throttling: the server asked for a long wait) with
// the expected finish, when no other failure is shown.
func (m *Mailbox) livePause() {
	if m.LastPass == nil || m.LastPass.Paused == nil || m.LastPass.Paused.Cause != PauseThrottled {
		return
	}
	if m.SolveIssue != nil && m.SolveIssue.Class != ClassThrottled {
		return
	}
	p := m.LastPass.Paused
	sol := SolveFor(ClassThrottled, "")
	sol.Explanation += fmt.Sprintf(" It is expected to resume at %s UTC", p.Until.UTC().Format("2006-01-02 15:04"))
	if !p.ExpectedFinish.IsZero() {
		sol.Explanation += fmt.Sprintf(" and to finish at about %s UTC", p.ExpectedFinish.UTC().Format("2006-01-02 15:04"))
	}
	sol.Explanation += "."
	m.SolveIssue = &sol
}
