package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv"
)

// appendRaw appends one message to a user's INBOX.
func appendRaw(t *testing.T, d *testenv.Dovecot, user string, raw []byte) {
	t.Helper()
	c := d.Dial(t, user, pw)
	cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// The subjects of failed items, in Chromium against a real mailferry
// serve and Dovecot: the option is off by default and explained; with it
// off, a message the destination refuses is listed without its subject
// (page and CSV); turned on, the next pass records it and the history,
// its CSV and the migrate page show it; turned off again, it is hidden
// once more.
func TestPortalFailedItemSubjects(t *testing.T) {
	const subject = "Q3 salary review"
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{MaxMailSize: 1 << 20})
	src.AddUser(t, "ann", pw)
	dst.AddUser(t, "ann", pw)
	seedUser(t, src, "ann", 0, 2)
	appendRaw(t, src, "ann", append([]byte("Message-ID: <big@x>\r\nFrom: a@x\r\nSubject: "+subject+"\r\n\r\n"),
		bytes.Repeat([]byte("0123456789abcdef\r\n"), (2<<20)/18)...))
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1")
	token, _ := p.userAdd(t, "--email", "admin@acme.example")
	var proj struct{ ID string }
	if code := api(t, p.url, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{"name": "Acme office move",
		"destination_preset": "test-destination", "source": map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true}}), &proj); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	pp := "/projects/" + proj.ID
	var ms []struct{ ID string }
	if code := api(t, p.url, token, "POST", "/api/"+pp[1:]+"/mailboxes", "application/json", jsonBody(map[string]string{"source_email": "ann@old.example",
		"source_login": "ann", "source_password": pw, "destination_email": "ann@new.example", "destination_login": "ann", "destination_password": pw}), &ms); code != 201 {
		t.Fatalf("add mailbox: %d", code)
	}
	hp := pp + "/mailboxes/" + ms[0].ID + "/history"
	pass := func(kind string) {
		t.Helper()
		var ps struct{ ID string }
		if code := api(t, p.url, token, "POST", "/api/"+pp[1:]+"/passes", "application/json", jsonBody(map[string]any{"kind": kind}), &ps); code != 201 {
			t.Fatalf("start %s pass: %d", kind, code)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var st struct{ State string }
			api(t, p.url, token, "GET", fmt.Sprintf("/api/%s/passes/%s", pp[1:], ps.ID), "", nil, &st)
			if st.State == "completed" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s pass still %q", kind, st.State)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	tb := newTab(t, p.url, pw)
	defer tb.checkConsole()
	tb.login(p, "admin@acme.example", 1)
	fetchCSV := func() [][]string {
		t.Helper()
		ctx, cancel := tb.timeout(20 * time.Second)
		defer cancel()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(`+jsString(hp+".csv")+`).then(r => r.text())`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
		if err != nil || len(recs) == 0 || recs[0][20] != "Subject" {
			t.Fatalf("history.csv: %v\n%s", err, raw)
		}
		return recs
	}
	// subjects returns the Subject column of the CSV's failed items.
	subjects := func() []string {
		t.Helper()
		var out []string
		for _, r := range fetchCSV()[1:] {
			if r[0] == "failed item" {
				out = append(out, r[20])
			}
		}
		return out
	}
	openFailures := func() {
		t.Helper()
		tb.open(hp)
		tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("#history details").forEach(d => d.open = true)`))
	}

	tb.open(pp + "/options")
	if v, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`document.querySelector("#log_subjects").checked`)); v {
		t.Error("subjects are logged by default")
	}
	if h := tb.text("#log_subjects-help"); !strings.Contains(h, "Off by default") || !strings.Contains(h, "private") {
		t.Errorf("the option is not explained: %q", h)
	}
	tb.shot("subjects-01-options-off")

	// Off: the refused message is listed, without its subject.
	pass("full")
	openFailures()
	if h := tb.text("#history"); !strings.Contains(h, "could not be copied") || strings.Contains(h, subject) || !strings.Contains(h, "Subjects are not shown") {
		t.Errorf("history with subjects off: %q", h)
	}
	if tb.shown(".failed-subject") {
		t.Error("a subject column is shown while the option is off")
	}
	if got := subjects(); len(got) != 1 || got[0] != "" {
		t.Errorf("CSV subjects with the option off: %q", got)
	}
	tb.shot("subjects-02-history-off")

	// On: the next pass records the subject; history, CSV and the
	// migrate page show it.
	tb.open(pp + "/options")
	tb.do(chromedp.Click(chromedp.CSS("#log_subjects")))
	tb.submit("#save-options")
	if v, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`document.querySelector("#log_subjects").checked`)); !v || !strings.Contains(tb.text("main"), "The options are saved") {
		t.Fatalf("the option did not stay on: %q", tb.text("main"))
	}
	tb.shot("subjects-03-options-on")
	pass("retry-errors")
	openFailures()
	if got := tb.text(".failed-subject"); got != subject {
		t.Errorf("the newest pass's failed item shows subject %q, want %q", got, subject)
	}
	if got := subjects(); len(got) != 2 || got[0] != subject || got[1] != "" {
		t.Errorf("CSV subjects with the option on (newest first; the first pass recorded none): %q", got)
	}
	tb.shot("subjects-04-history-on")
	tb.open(pp + "/migrate")
	if !strings.Contains(tb.html(), subject) {
		t.Error("the migrate page's failed items do not show the subject")
	}

	// Off again: what was recorded is hidden everywhere.
	tb.open(pp + "/options")
	tb.do(chromedp.Click(chromedp.CSS("#log_subjects")))
	tb.submit("#save-options")
	openFailures()
	if strings.Contains(tb.html(), subject) {
		t.Error("the history shows a subject after the option was turned off")
	}
	if got := subjects(); len(got) != 2 || got[0] != "" {
		t.Errorf("CSV subjects after turning the option off: %q", got)
	}
	tb.open(pp + "/migrate")
	if strings.Contains(tb.html(), subject) {
		t.Error("the migrate page shows a subject after the option was turned off")
	}
	var fs []struct{ Subject string }
	if code := api(t, p.url, token, "GET", "/api/"+pp[1:]+"/mailboxes/"+ms[0].ID+"/failures", "", nil, &fs); code != 200 || len(fs) == 0 || fs[0].Subject != "" {
		t.Errorf("API failures after turning the option off: %d %+v", code, fs)
	}
}
