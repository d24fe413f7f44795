package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// In Chromium, against `mailferry serve` with a Microsoft 365 preset
// from the presets file: the wizard shows the app registration's fields
// when that preset is chosen (and the source's when Microsoft 365 is the
// source type, instead of the server fields), creates the project with
// them, never shows the secret again, and the mailboxes page takes a row
// with only an address on the Microsoft 365 side.
func TestPortalM365Preset(t *testing.T) {
	const (
		tenant = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
		client = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
		secret = "m365~Portal.Secret-0123456789"
	)
	presets := filepath.Join(t.TempDir(), "presets.json")
	if err := os.WriteFile(presets, []byte(`{"presets": [{"id": "m365", "name": "Microsoft 365", "type": "m365"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPortalServer(t, "imaps://imap.new.example", "--presets", presets)
	tb := newTab(t, p.url, secret, pw)
	defer tb.checkConsole()
	tb.login(p, "owner@example.com", 1)
	tb.submit("#start-new")

	// The app fields appear with their choices only.
	if !tb.hidden("#dst-app") || !tb.hidden("#src-app") {
		t.Error("the app registration fields are shown before Microsoft 365 is chosen")
	}
	tb.do(chromedp.Click(chromedp.CSS("#type-m365")))
	if !tb.hidden("#server-fields") || tb.hidden("#src-app") {
		t.Error("choosing Microsoft 365 as the source must hide the server fields and show its app registration")
	}
	tb.do(chromedp.Click(chromedp.CSS("#type-imap")))
	tb.do(chromedp.Click(chromedp.CSS("#preset-m365")))
	if tb.hidden("#dst-app") || tb.hidden("#server-fields") {
		t.Error("choosing the Microsoft 365 preset must show its app registration, and the IMAP source its server")
	}
	tb.typeIn("#name", "Acme to Microsoft 365")
	tb.typeIn("#host", "mail.old.example")
	tb.typeIn("#dst_tenant", tenant)
	tb.typeIn("#dst_client_id", client)
	tb.typeIn("#dst_client_secret", secret)
	tb.shot("m365-01-new-migration")
	tb.submit("#create-project")
	m := regexp.MustCompile(`/projects/([0-9a-f]+)/mailboxes`).FindStringSubmatch(tb.location())
	if m == nil {
		t.Fatalf("after creating the project: %s", tb.location())
	}
	if !strings.Contains(tb.text("#m365-rows"), "enter only the email address") || !tb.hidden("#r0-destination_password") {
		t.Error("the mailboxes page must say that Microsoft 365 rows need the address only, and hide that password")
	}
	tb.typeIn("#r0-source_email", "ann@old.example")
	tb.typeIn("#r0-source_password", pw)
	tb.typeIn("#r0-destination_email", "ann@contoso.com")
	tb.submit("#save-mailboxes")
	if !strings.Contains(tb.text("main"), "1 mailbox added") {
		t.Errorf("adding a row with only the Microsoft 365 address: %s", tb.text("main"))
	}
	tb.shot("m365-02-mailboxes")

	// The servers page shows the tenant and client id, not the secret.
	tb.open("/projects/" + m[1] + "/servers")
	if tb.value("#dst_tenant") != tenant || tb.value("#dst_client_id") != client || tb.value("#dst_client_secret") != "" {
		t.Error("the servers page must show the tenant and client id and leave the secret empty")
	}
	tb.shot("m365-03-servers")
}

// hidden reports whether the element is not displayed.
func (tb *tab) hidden(sel string) bool {
	tb.t.Helper()
	return !tb.shown(sel)
}
