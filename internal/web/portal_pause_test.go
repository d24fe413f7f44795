package web

import (
	"context"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// A running mailbox that waits on Gmail's daily limit, or on a server
// that throttles it, says so in the migrate page's live row and in
// status.json (with until when); the throttled one also shows the
// "throttled" Solve Issue with its expected finish. Once the worker's
// progress carries no pause, neither does the row.
func TestPortalShowsPauses(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	id := e.manyMailboxes(t, "owner@example.com", 2)
	owner := ownerID(t, e, "owner@example.com")
	page, err := e.svc.MailboxPage(ctx, owner, id, service.MailboxQuery{})
	must(t, err)
	gmail, thr := page.Mailboxes[0].ID, page.Mailboxes[1].ID
	p, err := e.svc.StartPass(ctx, owner, id, service.PassInput{Kind: service.PassFull})
	must(t, err)
	now := time.Now().UTC()
	reset := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 5, 0, 0, time.UTC)
	for mb, pr := range map[string]service.Progress{
		gmail: {TotalMsgs: 40, Copied: 10, PauseCause: service.PauseDailyLimit, PauseUntil: reset},
		thr:   {TotalMsgs: 40, Copied: 10, ETA: 30 * time.Minute, PauseCause: service.PauseThrottled, PauseUntil: now.Add(10 * time.Minute)},
	} {
		must(t, e.svc.BeginMailboxPass(ctx, p.ID, mb, service.StatusMigrating, "test-worker"))
		must(t, e.svc.UpdateProgress(ctx, p.ID, mb, pr))
	}

	b := e.newBrowser()
	b.login("owner@example.com")
	var st statusBody
	getJSON(t, b, "/projects/"+id+"/status.json?view=migrate", &st)
	byID := map[string]mailboxStatus{}
	for _, m := range st.Mailboxes {
		byID[m.ID] = m
	}
	g := byID[gmail]
	if g.LastPass == nil || g.LastPass.Paused == nil || g.LastPass.Paused.Cause != service.PauseDailyLimit || !g.LastPass.Paused.Until.Equal(reset) ||
		!strings.HasPrefix(g.LastPass.Paused.Message, "Paused: Gmail's daily limit, resumes at ") {
		t.Fatalf("status.json, Gmail's daily limit: %+v", g.LastPass)
	}
	if row := html.UnescapeString(string(st.Regions["row-"+gmail].HTML)); !strings.Contains(row, g.LastPass.Paused.Message) {
		t.Errorf("the live row lacks %q:\n%s", g.LastPass.Paused.Message, row)
	}
	h := byID[thr]
	if h.LastPass == nil || h.LastPass.Paused == nil || h.LastPass.Paused.Cause != service.PauseThrottled ||
		!strings.HasPrefix(h.LastPass.Paused.Message, "Throttled by the server; expected to resume at ") ||
		!strings.Contains(h.LastPass.Paused.Message, "expected to finish at about ") {
		t.Fatalf("status.json, throttled: %+v", h.LastPass)
	}
	finish := now.Add(40 * time.Minute).Format("2006-01-02 15:04")
	if h.SolveIssue == nil || h.SolveIssue.Class != service.ClassThrottled || !strings.Contains(h.SolveIssue.Explanation, finish) {
		t.Errorf("throttled Solve Issue: %+v, want the expected finish %s", h.SolveIssue, finish)
	}
	if row := html.UnescapeString(string(st.Regions["row-"+thr].HTML)); !strings.Contains(row, h.LastPass.Paused.Message) {
		t.Errorf("the live row lacks %q:\n%s", h.LastPass.Paused.Message, row)
	}

	// Work resumed: the next progress has no pause.
	must(t, e.svc.UpdateProgress(ctx, p.ID, gmail, service.Progress{TotalMsgs: 40, Copied: 11}))
	_, body := b.get("/projects/" + id + "/migrate")
	if strings.Contains(html.UnescapeString(body), "Gmail's daily limit") {
		t.Error("the pause still shows after work resumed")
	}
}
