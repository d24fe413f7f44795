package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/testenv"
)

// waitText reloads path until the element's text contains want.
func (tb *tab) waitText(path, sel, want string, d time.Duration) string {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	for {
		tb.open(path)
		got := tb.text(sel)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s %s: %q, want it to contain %q", path, sel, got, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestPortalProofOfMigration runs Verify migration from the portal after
// a migration and Migrate new items (which the Migrate page suggests),
// shows the project's verdict and a mailbox's per-folder table; after a
// message is deleted on the new service, Verify migration from the
// Finish page finds it missing and Finish warns not to cancel the old
// service.
func TestPortalProofOfMigration(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	users := []string{"ann", "ben"}
	for i, u := range users {
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
		seedUser(t, src, u, 0, 6+i*4)
	}
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1")
	tb := newTab(t, p.url, pw)
	defer tb.checkConsole()
	tb.login(p, "owner@example.com", 1)

	tb.submit("#start-new")
	tb.typeIn("#name", "Proof of migration")
	tb.do(chromedp.Click(chromedp.CSS("#security-none")))
	tb.typeIn("#host", "127.0.0.1")
	tb.typeIn("#port", fmt.Sprint(src.Port))
	tb.do(chromedp.Click(chromedp.CSS("#allow_plaintext")))
	tb.submit("#create-project")
	m := regexp.MustCompile(`/projects/([0-9a-f]+)/mailboxes`).FindStringSubmatch(tb.location())
	if m == nil {
		t.Fatalf("after creating the project: %s", tb.location())
	}
	pp := "/projects/" + m[1]
	fillRow := func(row, user string) {
		tb.typeIn("#r"+row+"-source_email", user+"@old.example")
		tb.typeIn("#r"+row+"-source_login", user)
		tb.typeIn("#r"+row+"-source_password", pw)
		tb.typeIn("#r"+row+"-destination_email", user+"@new.example")
		tb.typeIn("#r"+row+"-destination_login", user)
		tb.typeIn("#r"+row+"-destination_password", pw)
	}
	fillRow("0", "ann")
	tb.do(chromedp.Click(chromedp.CSS("#add-row")))
	fillRow("n1", "ben")
	tb.submit("#save-mailboxes")
	ids := tb.mailboxIDs()
	ann := ids["ann@old.example"]
	if ann == "" {
		t.Fatalf("mailboxes listed: %v", ids)
	}

	tb.submit("#to-trial")
	tb.submit("#start-trial")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	tb.submit("#to-migrate")
	tb.submit("#start-migration")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	seedUser(t, src, "ann", 100, 2)
	tb.submit("#migrate-new")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	// After Migrate new items the page suggests Verify migration.
	tb.waitVisible("#suggest-proof", 5*time.Second)
	if s := tb.text("#suggest-proof"); !strings.Contains(s, "Verify migration") {
		t.Errorf("suggestion: %q", s)
	}
	tb.shot("60-migrate-suggests-verify")

	// Verify migration: every message is on the new service.
	tb.submit("#verify-migration")
	if n := tb.text("#notice"); !strings.Contains(n, "Verify migration has started") {
		t.Errorf("after starting: %q", n)
	}
	want := "All 18 messages of 2 mailboxes are on the new service."
	tb.waitText(pp+"/proof", "#proof-verdict", want, time.Minute)
	if s := tb.text(`#proof-table tr[data-mailbox="` + ann + `"]`); !strings.Contains(s, "Exact") || !strings.Contains(s, "PDF") {
		t.Errorf("ann's row: %q", s)
	}
	tb.shot("61-proof-exact")
	tb.open(pp + "/mailboxes/" + ann + "/proof")
	if v := tb.text("#mailbox-verdict"); !strings.HasPrefix(v, "EXACT: all 8 messages") {
		t.Errorf("ann's verdict: %q", v)
	}
	if sha := tb.text("#proof-sha"); len(sha) != 64 {
		t.Errorf("the report's SHA-256: %q", sha)
	}
	tb.shot("62-proof-mailbox-exact")
	tb.open(pp + "/finish")
	if v := tb.text("#proof-verdict"); !strings.Contains(v, want) || tb.shown("#proof-warning") {
		t.Errorf("Finish after an exact proof: verdict %q, warning shown %v", v, tb.shown("#proof-warning"))
	}

	// A message lost on the new service: Verify migration from Finish
	// finds it, and Finish warns.
	dst.Doveadm(t, "expunge", "-u", "ann", "mailbox", "INBOX", "uid", "1")
	tb.submit("#verify-migration")
	tb.waitText(pp+"/proof", "#proof-verdict", "Not proven: 1 mailbox not exact (ann@old.example).", time.Minute)
	tb.open(pp + "/finish")
	w := tb.text("#proof-warning")
	if !strings.Contains(w, "Do not cancel the old service yet") || !strings.Contains(w, "1 message is missing") {
		t.Errorf("Finish warning: %q", w)
	}
	tb.shot("63-finish-warns")
	tb.open(pp + "/mailboxes/" + ann + "/proof")
	if v := tb.text("#mailbox-verdict"); !strings.Contains(v, "NOT EXACT") || !strings.Contains(v, "1 missing") {
		t.Errorf("ann's verdict after the deletion: %q", v)
	}
	if d := tb.text("#proof-differences"); !strings.Contains(d, "missing") || !strings.Contains(d, "INBOX") {
		t.Errorf("differences: %q", d)
	}
	tb.shot("64-proof-mailbox-missing")

	// Migrate new items after the proof: Finish says the proof is older.
	tb.open(pp + "/migrate")
	tb.submit("#migrate-new")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	tb.open(pp + "/finish")
	if w := tb.text("#proof-warning"); !strings.Contains(w, "verified before their last copying pass") {
		t.Errorf("Finish warning after a later pass: %q", w)
	}
}
