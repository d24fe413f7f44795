package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPortalTwoThousandMailboxes: a 2,000-mailbox project (imported by
// CSV through the API of `mailferry serve`) in Chromium: the mailboxes
// page shows 50 of 2,000 with pages, search narrows it, two ticked rows
// get a trial by the bulk action, the trial page's live polling shows
// both failing (the source port is closed), and the "Failed" count
// filters the page down to them. The migrate page pages too.
func TestPortalTwoThousandMailboxes(t *testing.T) {
	closed := listenOn(t, "127.0.0.1:0", nil)
	host, port, _ := strings.Cut(closed, ":")
	p := startPortalServer(t, "imaps://127.0.0.1:1")
	token, _ := p.userAdd(t, "--email", "admin@big.example")
	var proj struct{ ID string }
	if code := api(t, p.url, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{"name": "Big office move",
		"destination_preset": "test-destination", "source": map[string]any{"host": host, "port": atoi(port), "security": "tls"}}), &proj); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	var csv strings.Builder
	csv.WriteString("Source Email,Source Password,Destination Email,Destination Password\r\n")
	for i := range 2000 {
		fmt.Fprintf(&csv, "u%04d@old.example,%s,u%04d@new.example,%s\r\n", i, pw, i, pw)
	}
	var added []mailbox
	if code := api(t, p.url, token, "POST", "/api/projects/"+proj.ID+"/mailboxes/import", "text/csv", []byte(csv.String()), &added); code != 201 || len(added) != 2000 {
		t.Fatalf("import 2000 mailboxes: %d, %d added", code, len(added))
	}

	tb := newTab(t, p.url, pw)
	tb.login(p, "admin@big.example", 1)
	pp := "/projects/" + proj.ID
	tb.open(pp + "/mailboxes")
	if got := tb.text("#list-range"); got != "Showing 1–50 of 2000 mailboxes" {
		t.Errorf("range = %q", got)
	}
	if n := tb.count("#mailbox-list tbody tr"); n != 50 {
		t.Errorf("%d rows on page 1, want 50", n)
	}
	if h, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[int](`document.documentElement.scrollHeight`)); h > 12000 {
		t.Errorf("the page of 50 mailboxes is %d px long", h)
	}
	tb.shot("many-mailboxes-page1")
	tb.topShot("many-mailboxes-page1-top")
	tb.submit("#page-next")
	if got := tb.text("#list-range"); got != "Showing 51–100 of 2000 mailboxes" {
		t.Errorf("page 2 range = %q", got)
	}
	tb.typeIn("#q", "u19")
	tb.submit("#apply-filter")
	if got := tb.text("#list-range"); got != "Showing 1–50 of 100 matching mailboxes" {
		t.Errorf("search range = %q", got)
	}
	tb.shot("many-mailboxes-search")

	// Tick two rows; a bulk trial for them.
	ids := tb.mailboxIDs()
	a, b := ids["u1900@old.example"], ids["u1901@old.example"]
	if a == "" || b == "" {
		t.Fatalf("rows u1900/u1901 not on the page: %v", len(ids))
	}
	tb.do(chromedp.Click(chromedp.CSS("#sel-"+a)), chromedp.Click(chromedp.CSS("#sel-"+b)),
		chromedp.SetValue(chromedp.CSS("#bulk-action"), "trial"))
	tb.submit("#bulk-apply")
	if !strings.Contains(tb.text("#notice"), "The trial has started for 2 mailboxes") {
		t.Errorf("notice = %q", tb.text("#notice"))
	}
	// The live page follows the two rows to Failed without a reload.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		fa, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#trial-table [data-status="failed"]').length`))
		if fa == 2 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := strings.Join(strings.Fields(tb.text(`a[data-filter="failed"]`)), " "); got != "Failed 2" {
		t.Errorf("Failed count = %q", got)
	}
	tb.shot("many-mailboxes-trial-live")
	tb.submit(`a[data-filter="failed"]`)
	if n := tb.count("#trial-table tbody tr"); n != 2 || tb.text("#list-range") != "Showing 1–2 of 2 matching mailboxes" {
		t.Errorf("Failed filter: %d rows, %q", n, tb.text("#list-range"))
	}
	tb.shot("many-mailboxes-failed-filter")
	tb.topShot("many-mailboxes-trial-top")
	tb.open(pp + "/migrate?page=40")
	if got := tb.text("#list-range"); got != "Showing 1951–2000 of 2000 mailboxes" {
		t.Errorf("migrate page 40 = %q", got)
	}
	tb.shot("many-mailboxes-migrate-page40")
	tb.checkConsole()
}
