package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// userAdd runs `mailferry user add` on the server's data directory and
// returns the token it printed and what it said on stderr.
func (p *portalServer) userAdd(t *testing.T, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(p.bin, append([]string{"user", "add"}, args...)...)
	cmd.Env = p.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("user add %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), stderr.String()
}

// TestPortalOperator: `mailferry user add --operator` makes an operator,
// who sees every user's migration and the load on its source server in
// Chromium, and stops another user's running trial from the browser. An
// ordinary user gets 404 for the operator page and for that project.
func TestPortalOperator(t *testing.T) {
	// A source that accepts connections and never answers: the trial
	// stays at work, holding a connection to it.
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	srcAddr := listenOn(t, "127.0.0.1:0", func(c net.Conn) {
		select {
		case <-stall:
		case <-time.After(2 * time.Minute):
		}
	})
	host, port, _ := net.SplitHostPort(srcAddr)
	p := startPortalServer(t, "imaps://127.0.0.1:1")
	aliceToken, _ := p.userAdd(t, "--email", "alice@example.com")
	if _, said := p.userAdd(t, "--email", "op@example.com", "--operator"); !strings.Contains(said, "op@example.com is an operator") {
		t.Errorf("user add --operator said %q", said)
	}
	var proj struct{ ID string }
	if code := api(t, p.url, aliceToken, "POST", "/api/projects", "application/json", jsonBody(map[string]any{"name": "Alice's office",
		"destination_preset": "test-destination", "source": map[string]any{"host": host, "port": atoi(port), "security": "tls", "insecure": true}}), &proj); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	var ms []mailbox
	if code := api(t, p.url, aliceToken, "POST", "/api/projects/"+proj.ID+"/mailboxes", "application/json", jsonBody(map[string]string{
		"source_email": "ann@old.example", "source_password": pw, "destination_email": "ann@new.example", "destination_password": pw}), &ms); code != 201 {
		t.Fatalf("add mailbox: %d", code)
	}
	var trial pass
	if code := api(t, p.url, aliceToken, "POST", "/api/projects/"+proj.ID+"/passes", "application/json", jsonBody(map[string]any{"kind": "trial"}), &trial); code != 201 {
		t.Fatalf("start trial: %d", code)
	}

	op := newTab(t, p.url, pw)
	op.login(p, "op@example.com", 1)
	op.submit("#operator-link")
	// The worker takes the host's connection slot within a moment.
	op.waitVisible(`tr[data-host="`+host+`"]`, 10*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(op.text(`tr[data-host="`+host+`"]`), "1 of") && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		op.do(chromedp.Reload())
	}
	row := op.text(`tr[data-host="` + host + `"]`)
	if !strings.Contains(row, "1 of 5") {
		t.Errorf("host load row = %q, want 1 of 5 connections in use", row)
	}
	if txt := op.text(`tr[data-project="` + proj.ID + `"]`); !strings.Contains(txt, "Alice's office") || !strings.Contains(txt, "alice@example.com") {
		t.Errorf("project row = %q", txt)
	}
	op.shot("operator-all-migrations")
	op.submit("#view-" + proj.ID)
	if !strings.Contains(op.text("#operator-view"), "alice@example.com") {
		t.Error("no banner naming the owner on the operator's view of the project")
	}
	op.shot("operator-project-view")
	op.submit(`form[action$="/passes/` + trial.ID + `/stop"] button`)
	waitPass(t, p.url, aliceToken, proj.ID, trial.ID, 30*time.Second)
	var after pass
	api(t, p.url, aliceToken, "GET", "/api/projects/"+proj.ID+"/passes/"+trial.ID, "", nil, &after)
	if after.State != "stopped" {
		t.Errorf("after the operator's Stop the trial is %q, want stopped", after.State)
	}
	op.checkConsole()

	bob := newTab(t, p.url, pw)
	bob.login(p, "bob@example.com", 1)
	if bob.shown("#operator-link") {
		t.Error("an ordinary user's menu links to the operator page")
	}
	for _, path := range []string{"/operator", "/projects/" + proj.ID} {
		if code := bob.open(path); code != 404 {
			t.Errorf("%s as an ordinary user: %d, want 404", path, code)
		}
	}
}

// count is the number of elements sel matches.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	ctx, cancel := tb.timeout(10 * time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
	if err != nil {
		tb.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// topShot saves what the window shows (not the whole page): the head of
// a long page, readable at its real size.
func (tb *tab) topShot(name string) {
	tb.t.Helper()
	tb.checkPage()
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(tb.shots, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}
