package web

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The migrate page offers a pre-stage pass older than 30/60/90 days or a
// date; it starts a pre-stage pass with that cutoff.
func TestPortalPreStage(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	id := e.manyMailboxes(t, "owner@example.com", 2)
	owner := ownerID(t, e, "owner@example.com")
	if _, err := e.db.Exec(`UPDATE mailboxes SET status = 'ready' WHERE project_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	b := e.newBrowser()
	b.login("owner@example.com")
	pp := "/projects/" + id
	_, body := b.get(pp + "/migrate")
	if !strings.Contains(body, `id="prestage-form"`) {
		t.Fatal("no pre-stage form on the migrate page")
	}
	checkLabels(t, "migrate", body)
	if code, body := b.post(pp+"/passes", url.Values{"kind": {"pre-stage"}, "cutoff": {"date"}, "cutoff_date": {"2024-13-01"}}); code != 400 ||
		!strings.Contains(body, "a date like 2024-01-31") {
		t.Errorf("a bad date: %d", code)
	}
	if code, body := b.post(pp+"/passes", url.Values{"kind": {"pre-stage"}, "cutoff": {"60"}}); code != 200 || !strings.Contains(body, "pre-stage migration has started") {
		t.Fatalf("pre-stage: %d", code)
	}
	ps, err := e.svc.Passes(ctx, owner, id)
	must(t, err)
	if len(ps) != 1 || ps[0].Kind != "pre-stage" {
		t.Fatalf("passes: %+v", ps)
	}
	if d := time.Since(ps[0].Cutoff); d < 59*24*time.Hour || d > 61*24*time.Hour {
		t.Errorf("cutoff %v is not 60 days ago", ps[0].Cutoff)
	}
}
