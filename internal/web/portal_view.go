package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/service"
)

// templateFuncs are the helpers the page templates use.
var templateFuncs = template.FuncMap{
	"bytes":    humanBytes,
	"percent":  percent,
	"eta":      humanETA,
	"duration": humanDuration,
	"rate":     func(r float64) string { return fmt.Sprintf("%.1f messages/s", r) },
	"when":     func(t time.Time) string { return t.Format("2 Jan 2006, 15:04") },
	"badge":    badgeClass,
	"busy":     busy,
	"plural":   plural,
	"add":      func(a, b int) int { return a + b },
	"security": securityLabel,
	"processed": func(p *service.MailboxPass) int64 {
		return min(p.Copied+p.Present+p.Skipped+p.Failed, p.TotalMsgs)
	},
	"kindName": kindName,
	"rowPercent": func(p *service.MailboxPass) int {
		// A finished pass is complete even when a delta pass skipped
		// unchanged folders without counting them.
		if p.Status == service.StatusCompleted || p.Status == service.StatusCompletedWithErrors {
			return 100
		}
		return percent(min(p.Copied+p.Present+p.Skipped+p.Failed, p.TotalMsgs), p.TotalMsgs)
	},
	"int": func(n int64) int { return int(n) },
	// entry gives an entry row and whether the page is shown again
	// after an error (then the password fields say so).
	// app is a side's Microsoft 365 app registration fields: prefix
	// "src" or "dst", the side's name, its values, the form's errors and
	// whether the fields start hidden (the script shows them when
	// Microsoft 365 is chosen).
	"app": func(prefix, side string, a appForm, errs map[string]string, hidden bool) any {
		return struct {
			Prefix, Side string
			App          appForm
			Errors       map[string]string
			Hidden       bool
		}{prefix, side, a, errs, hidden}
	},
	"presetType": func(ps []service.Preset, id string) string {
		for _, p := range ps {
			if p.ID == id {
				return p.Type
			}
		}
		return ""
	},
	"entry": func(r entryRow, again bool) any {
		return struct {
			Row   entryRow
			Again bool
		}{r, again}
	},
	"folders": func(plan []service.PlanRow) int { return len(plan) },
	"planMsgs": func(plan []service.PlanRow) (n int64) {
		for _, r := range plan {
			n += r.Messages
		}
		return n
	},
	"planBytes": func(plan []service.PlanRow) (n int64) {
		for _, r := range plan {
			n += r.Bytes
		}
		return n
	},
	"sourceTypeName": func(t string) string {
		for _, s := range sourceTypes {
			if s.Value == t {
				return s.Label
			}
		}
		return strings.ToUpper(t)
	},
	"hasStatus": func(counts map[service.Status]int, names ...string) bool {
		for _, n := range names {
			if counts[service.Status(n)] > 0 {
				return true
			}
		}
		return false
	},
	"count":       func(counts map[service.Status]int, name string) int { return counts[service.Status(name)] },
	"str":         func(st service.Status) string { return string(st) },
	"waiting":     waitingHint,
	"statuses":    func() []service.Status { return statusOrder },
	"sortChoices": func() []struct{ Value, Label string } { return sortChoices },
	"bulkActions": func() []struct{ Value, Label string } { return bulkActions },
}

func humanBytes(n int64) string { return accounting.HumanBytes(n) }

func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(100, done*100/total))
}

func humanETA(sec int64) string {
	switch {
	case sec <= 0:
		return ""
	case sec < 60:
		return "less than a minute left"
	case sec < 3600:
		return fmt.Sprintf("about %d min left", (sec+59)/60)
	default:
		return fmt.Sprintf("about %d h %02d min left", sec/3600, (sec%3600)/60)
	}
}

func humanDuration(sec float64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d < time.Second:
		return "under a second"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
}

// badgeClass is the CSS class of a status badge's colour.
func badgeClass(st service.Status) string {
	switch st {
	case service.StatusReady, service.StatusCompleted:
		return "ok"
	case service.StatusFailed:
		return "bad"
	case service.StatusCompletedWithErrors, service.StatusStopped:
		return "warn"
	case service.StatusQueued, service.StatusVerifying, service.StatusMigrating:
		return "busy"
	}
	return "idle"
}

func securityLabel(sec string) string {
	for _, c := range securityChoices {
		if c.Value == sec {
			return c.Label
		}
	}
	return sec
}

func kindName(k service.PassKind) string {
	switch k {
	case service.PassVerify:
		return "Verify credentials"
	case service.PassTrial:
		return "Trial migration"
	case service.PassPreStage:
		return "Pre-stage migration"
	case service.PassFull:
		return "Full migration"
	case service.PassDelta:
		return "Migrate new items"
	case service.PassRetryErrors:
		return "Retry failed items"
	case service.PassProof:
		return "Verify migration"
	}
	return string(k)
}
