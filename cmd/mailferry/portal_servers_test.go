package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shown reports whether the element is rendered (not display:none, not
// inside a hidden parent).
func (tb *tab) shown(sel string) bool {
	tb.t.Helper()
	ctx, cancel := tb.timeout(10 * time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(function(){var e=document.querySelector(`+jsString(sel)+`);return !!e && e.getClientRects().length > 0;})()`))
	if err != nil {
		tb.t.Fatalf("is %s shown: %v", sel, err)
	}
	return v
}

func jsString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// In a real browser: security "none" reads "No encryption" on the form and
// on the project, the invalid-certificate option is hidden without TLS
// (and the plaintext one without "No encryption"), the source server of a
// project can be corrected after creation from the project's page, and a
// project can be deleted after a confirmation.
func TestPortalServersEditAndDelete(t *testing.T) {
	p := startPortalServer(t, "imaps://127.0.0.1:1")
	tb := newTab(t, p.url)
	defer tb.checkConsole()
	tb.login(p, "owner@example.com", 1)

	tb.submit("#start-new")
	if l := tb.text(`label[for="security-none"] .choice-title`); l != "No encryption" {
		t.Errorf(`security "none" reads %q`, l)
	}
	if !tb.shown("#insecure-field") || tb.shown("#plaintext-field") {
		t.Error("with SSL/TLS: the certificate option must show, the plaintext one not")
	}
	tb.do(chromedp.Click(chromedp.CSS("#insecure")))
	tb.do(chromedp.Click(chromedp.CSS("#security-none")))
	if tb.shown("#insecure-field") || !tb.shown("#plaintext-field") {
		t.Error("with no encryption: the certificate option must hide, the plaintext one show")
	}
	tb.shot("40-new-no-encryption")
	tb.do(chromedp.Click(chromedp.CSS("#security-starttls")))
	if !tb.shown("#insecure-field") {
		t.Error("with STARTTLS the certificate option must show again")
	}
	tb.do(chromedp.Click(chromedp.CSS("#security-none")), chromedp.Click(chromedp.CSS("#allow_plaintext")))
	tb.typeIn("#name", "Acme move")
	tb.typeIn("#host", "mail.old.exmaple")
	tb.submit("#create-project")
	m := regexp.MustCompile(`/projects/([0-9a-f]+)/mailboxes`).FindStringSubmatch(tb.location())
	if m == nil {
		t.Fatalf("after creating: %s", tb.location())
	}
	pp := "/projects/" + m[1]
	if head := tb.text(".project-head"); !strings.Contains(head, "No encryption") || !strings.Contains(head, "mail.old.exmaple") {
		t.Errorf("project head: %q", head)
	}

	// Correct the server from the project's page (Solve Issue: "save the
	// corrected address").
	tb.submit("#edit-servers-link")
	if !strings.HasSuffix(tb.location(), pp+"/servers") || tb.value("#host") != "mail.old.exmaple" {
		t.Fatalf("servers page: %s, host %q", tb.location(), tb.value("#host"))
	}
	if tb.shown("#insecure-field") {
		t.Error("the certificate option shows on a project without encryption")
	}
	if !strings.Contains(tb.text("#destination-fixed"), "Test Destination") {
		t.Error("the destination is not shown")
	}
	tb.shot("41-servers")
	tb.typeIn("#host", "mail.old.example")
	tb.do(chromedp.Click(chromedp.CSS("#security-tls")))
	if tb.value("#port") != "993" {
		t.Errorf("the port did not follow the security: %q", tb.value("#port"))
	}
	tb.submit("#save-servers")
	if n := tb.text("#notice"); !strings.Contains(n, "The server settings are saved") {
		t.Errorf("after saving: %q", n)
	}
	if head := tb.text(".project-head"); !strings.Contains(head, "mail.old.example") || !strings.Contains(head, "993") || !strings.Contains(head, "SSL/TLS") {
		t.Errorf("project head after saving: %q", head)
	}
	tb.shot("42-servers-saved")
	// The wizard's first step leads back there.
	tb.open(pp + "/mailboxes")
	if href, ok := tb.attr(".steps li:first-child a", "href"); !ok || href != pp+"/servers" {
		t.Errorf("step 1 links to %q", href)
	}

	// Delete, from My Migrations, after a confirmation.
	tb.open("/migrations")
	tb.submit(`li[data-project="` + m[1] + `"] .card-delete`)
	if h := tb.text("#delete-title"); !strings.Contains(h, "Delete this migration project?") {
		t.Fatalf("confirmation: %q", h)
	}
	tb.shot("43-delete-confirm")
	tb.submit("#confirm-delete")
	if n := tb.text("#notice"); !strings.Contains(n, "was deleted") || strings.Contains(tb.text("main"), "Acme move") {
		t.Errorf("after deleting: %q", tb.text("main"))
	}
	tb.shot("44-deleted")
	if code := tb.open(pp + "/mailboxes"); code != 404 {
		t.Errorf("the deleted project opens: %d", code)
	}
}

// attr returns an attribute of the first element matching sel.
func (tb *tab) attr(sel, name string) (string, bool) {
	tb.t.Helper()
	ctx, cancel := tb.timeout(10 * time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var e=document.querySelector(`+jsString(sel)+`);return e ? (e.getAttribute(`+jsString(name)+`)||"") : "\u0000";})()`))
	if err != nil || v == "\x00" {
		return "", false
	}
	return v, true
}
