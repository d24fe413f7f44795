package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/testenv"
)

// The pass options in the portal against a real mailferry serve and
// Dovecot: project options with a refused bad rule, one mailbox's own
// exclude rule, the folder plan preview before the pass, a pass that
// leaves the folder out and shows it as skipped, and serve --max-passes
// refusing a second migration pass.
func TestPortalPassOptions(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ann", pw)
	dst.AddUser(t, "ann", pw)
	seedUser(t, src, "ann", 0, 6) // 3 in INBOX, 3 in Projects
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1", "--max-passes", "1")
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
	mb := ms[0].ID

	tb := newTab(t, p.url, pw)
	defer tb.checkConsole()
	tb.login(p, "admin@acme.example", 1)
	tb.open(pp + "/mailboxes")
	tb.submit("#options-link")
	if !strings.Contains(tb.text("#max-passes"), "at most 1 migration passes") {
		t.Errorf("the operator's --max-passes is not shown: %q", tb.text("main"))
	}
	// A bad rule is refused with the reason; nothing is kept.
	tb.typeIn("#exclude", "(Trash")
	if code := tb.submit("#save-options"); code != 400 || !strings.Contains(tb.text("#page-error"), "not a valid regular expression") {
		t.Errorf("a bad exclude rule: %d %q", code, tb.text("main"))
	}
	tb.shot("options-01-bad-rule")
	tb.typeIn("#exclude", "")
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#since").value = "2019-01-01"`))
	tb.typeIn("#mappings", `FolderMapping="^Archive->Old/Archive"`)
	tb.submit("#save-options")
	if !strings.Contains(tb.text("main"), "The options are saved") || tb.value("#since") != "2019-01-01" || tb.value("#mappings") != "^Archive->Old/Archive" {
		t.Errorf("saved project options: since %q mappings %q; %q", tb.value("#since"), tb.value("#mappings"), tb.text("main"))
	}
	tb.shot("options-02-project")

	// Ann's own exclude rule, then the preview.
	tb.open(pp + "/mailboxes/" + mb + "/options")
	tb.typeIn("#exclude", "Projects$")
	tb.submit("#save-mailbox-options")
	if !strings.Contains(tb.text("main"), "The options of this mailbox are saved") || !strings.Contains(tb.text("#project-values"), "2019-01-01") {
		t.Errorf("mailbox options: %q", tb.text("main"))
	}
	tb.submit("#preview-plan")
	tb.waitVisible("#plan-preview", 30*time.Second)
	plan := tb.text("#plan-preview")
	excluded := tb.text(`#plan-preview tr[data-action="excluded"]`)
	if !strings.Contains(excluded, "Projects") || !strings.Contains(plan, "INBOX") || strings.Contains(tb.text(`#plan-preview tr[data-action="copy"]`), "Projects") {
		t.Errorf("the preview: %q (excluded: %q)", plan, excluded)
	}
	tb.shot("options-03-mailbox-preview")
	if n := countMessages(t, dst, []string{"ann"}); n != 0 {
		t.Errorf("the preview copied %d messages", n)
	}

	// The API shows the same options and plan.
	var mo struct {
		Own, Effective struct {
			Exclude, Mappings []string
			Since             string
		}
	}
	if code := api(t, p.url, token, "GET", "/api/"+pp[1:]+"/mailboxes/"+mb+"/options", "", nil, &mo); code != 200 ||
		fmt.Sprint(mo.Effective.Exclude) != "[Projects$]" || mo.Effective.Since != "2019-01-01" || len(mo.Own.Mappings) != 0 {
		t.Errorf("API mailbox options: %d %+v", code, mo)
	}
	var pv struct {
		Folders []struct{ Source, Action string }
	}
	if code := api(t, p.url, token, "POST", "/api/"+pp[1:]+"/mailboxes/"+mb+"/preview", "", nil, &pv); code != 200 ||
		!strings.Contains(fmt.Sprint(pv.Folders), "Projects excluded") {
		t.Errorf("API preview: %d %+v", code, pv)
	}

	// The pass leaves Projects out and counts it as skipped.
	var pass struct{ ID string }
	if code := api(t, p.url, token, "POST", "/api/"+pp[1:]+"/passes", "application/json", jsonBody(map[string]any{"kind": "full"}), &pass); code != 201 {
		t.Fatalf("start pass: %d", code)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct{ State string }
		api(t, p.url, token, "GET", fmt.Sprintf("/api/%s/passes/%s", pp[1:], pass.ID), "", nil, &st)
		if st.State == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pass still %q", st.State)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if n := countMessages(t, dst, []string{"ann"}); n != 3 {
		t.Errorf("the destination holds %d messages, want INBOX's 3", n)
	}
	tb.open(pp + "/mailboxes/" + mb + "/history")
	if h := tb.text("main"); !strings.Contains(h, "left out by a folder rule") {
		t.Errorf("the history does not show the excluded folder: %q", h)
	}
	tb.shot("options-04-history-excluded")

	// --max-passes 1: a second migration pass is refused with the reason.
	var refusal map[string]any
	if code := api(t, p.url, token, "POST", "/api/"+pp[1:]+"/passes", "application/json", jsonBody(map[string]any{"kind": "delta"}), &refusal); code != 400 ||
		!strings.Contains(fmt.Sprint(refusal), "--max-passes") {
		t.Errorf("a second migration pass: %d %v", code, refusal)
	}
}
