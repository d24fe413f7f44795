package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The Exchange admin (impersonation) login on the servers form, in
// Chromium against mailferry serve: it shows only while Exchange is the
// chosen source type, with or without JavaScript; values left in it for
// another type are ignored; and on an existing Exchange project's
// Servers step it can be added, shown (the login, never the password)
// and changed while keeping the stored password.
func TestPortalExchangeAdminFields(t *testing.T) {
	const adminPW = "Ews-Admin-Secret-1"
	p := startPortalServer(t, "imaps://127.0.0.1:1", "--preset", "New Exchange=ews://exchange.new.example")
	token, _ := p.userAdd(t, "--email", "owner@example.com")
	tb := newTab(t, p.url, adminPW)
	defer tb.checkConsole()
	tb.login(p, "owner@example.com", 1)
	click := func(sel string) { tb.t.Helper(); tb.do(chromedp.Click(chromedp.CSS(sel))) }

	tb.submit("#start-new")
	if tb.shown("#source-admin-field") {
		t.Error("the Exchange admin fields show for an IMAP source")
	}
	for _, typ := range []string{"exchange", "pop3", "gmail", "imap"} {
		click("#type-" + typ)
		if got := tb.shown("#source-admin-field"); got != (typ == "exchange") {
			t.Errorf("source type %s: Exchange admin fields shown = %v", typ, got)
		}
	}
	// The destination's: only for an Exchange preset.
	click(`input[name="preset"]:not([data-type="exchange"])`)
	if tb.shown("#destination-admin-field") {
		t.Error("the Exchange admin fields show for an IMAP destination")
	}
	click(`input[name="preset"][data-type="exchange"]`)
	if !tb.shown("#destination-admin-field") {
		t.Error("the Exchange admin fields do not show for an Exchange destination")
	}
	click(`input[name="preset"]:not([data-type="exchange"])`)
	// Without JavaScript the fields still follow the choice (CSS only).
	ctx, cancel := tb.timeout(10 * time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	cancel()
	tb.open("/migrations/new")
	if tb.shown("#source-admin-field") {
		t.Error("without JavaScript: the Exchange admin fields show for an IMAP source")
	}
	click("#type-exchange")
	if !tb.shown("#source-admin-field") {
		t.Error("without JavaScript: the Exchange admin fields do not show for Exchange")
	}
	tb.shot("ews-01-new-exchange-no-js")
	ctx, cancel = tb.timeout(10 * time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}
	cancel()

	// An IMAP project with a login left in the hidden fields: ignored.
	tb.open("/migrations/new")
	tb.typeIn("#name", "From IMAP")
	tb.typeIn("#host", "mail.old.example")
	click(`input[name="preset"]:not([data-type="exchange"])`)
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#source_admin").value = "OLD\\stale"; document.querySelector("#source_admin_password").value = "x"`))
	if code := tb.submit("#create-project"); code != 200 || !strings.Contains(tb.location(), "/mailboxes") {
		t.Fatalf("an IMAP project with the hidden admin fields filled: %d at %s: %q", code, tb.location(), tb.text("main"))
	}
	imapProject := regexp.MustCompile(`/projects/([0-9a-f]+)/`).FindStringSubmatch(tb.location())[1]
	var got struct {
		SourceAdmin *struct {
			Kind, Login string
			HasSecret   bool `json:"has_secret"`
		} `json:"source_admin"`
	}
	if code := api(t, p.url, token, "GET", "/api/projects/"+imapProject, "", nil, &got); code != 200 || got.SourceAdmin != nil {
		t.Errorf("the IMAP project: %d, admin %+v", code, got.SourceAdmin)
	}
	tb.open("/projects/" + imapProject + "/servers")
	if tb.shown("#source-admin-field") {
		t.Error("the Servers step of an IMAP project shows the Exchange admin fields")
	}

	// An Exchange project without an admin; then the Servers step adds one.
	tb.open("/migrations/new")
	click("#type-exchange")
	tb.typeIn("#name", "From Exchange")
	tb.typeIn("#host", "https://mail.old.example/owa")
	click(`input[name="preset"]:not([data-type="exchange"])`)
	tb.submit("#create-project")
	m := regexp.MustCompile(`/projects/([0-9a-f]+)/mailboxes`).FindStringSubmatch(tb.location())
	if m == nil {
		t.Fatalf("after creating the Exchange project: %s %q", tb.location(), tb.text("main"))
	}
	pp := "/projects/" + m[1]
	tb.open(pp + "/servers")
	if !tb.shown("#source-admin-field") || tb.value("#source_admin") != "" {
		t.Fatalf("the Servers step of an Exchange project: admin fields shown %v, login %q", tb.shown("#source-admin-field"), tb.value("#source_admin"))
	}
	// A login without its password is refused next to the field.
	tb.typeIn("#source_admin", `OLD\migrator`)
	if code := tb.submit("#save-servers"); code != 400 || !strings.Contains(tb.text("#source-admin-field"), "password") {
		t.Errorf("an admin login without its password: %d %q", code, tb.text("#source-admin-field"))
	}
	tb.typeIn("#source_admin_password", adminPW)
	tb.submit("#save-servers")
	if n := tb.text("#notice"); !strings.Contains(n, "The server settings are saved") {
		t.Fatalf("after adding the admin: %q", tb.text("main"))
	}
	if code := api(t, p.url, token, "GET", "/api/"+pp[1:], "", nil, &got); code != 200 || got.SourceAdmin == nil ||
		got.SourceAdmin.Kind != "ews-impersonation" || got.SourceAdmin.Login != `OLD\migrator` || !got.SourceAdmin.HasSecret {
		t.Fatalf("after adding the admin: %d %+v", code, got.SourceAdmin)
	}
	// Shown again: the login, never the password; a new login with the
	// password left empty keeps the stored password.
	tb.open(pp + "/servers")
	if tb.value("#source_admin") != `OLD\migrator` || tb.value("#source_admin_password") != "" {
		t.Errorf("the stored admin on the Servers step: login %q", tb.value("#source_admin"))
	}
	if ph, _ := tb.attr("#source_admin_password", "placeholder"); !strings.Contains(ph, "stored") {
		t.Errorf("the password field does not say one is stored: %q", ph)
	}
	tb.shot("ews-02-servers-admin-stored")
	tb.typeIn("#source_admin", "migrator@old.example")
	tb.submit("#save-servers")
	if code := api(t, p.url, token, "GET", "/api/"+pp[1:], "", nil, &got); code != 200 || got.SourceAdmin == nil ||
		got.SourceAdmin.Login != "migrator@old.example" || !got.SourceAdmin.HasSecret {
		t.Errorf("after changing the login: %d %+v", code, got.SourceAdmin)
	}
}
