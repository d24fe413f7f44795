package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
)

// In Chromium: the admin, logged in by link, clicks "Ask users for their
// passwords" on a project whose Microsoft 365 destination has its users
// sign in; the user opens the emailed link in another browser, clicks
// "Sign in with Microsoft", consents at the Graph test server's
// authorization endpoint (a real redirect to another origin, which the
// page's CSP must allow) and comes back to their page, which shows the
// sign-in done and no code in the address; they save the source
// password; the admin's row no longer says "Waiting for end user".
// Screenshots: signin-*.png.
func TestBrowserEndUserSignInWithMicrosoft(t *testing.T) {
	e, gs, pp := signInEnv(t, false)
	shots := testenv.ArtifactsDir(t, "portal")
	// The test server's certificate is its own; only this test's
	// browsers accept it.
	trust := chromedp.Flag("ignore-certificate-errors", true)
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// The admin asks the user from the mailboxes page.
	admin := testenv.StartBrowser(t, trust)
	run(admin, "login page", chromedp.Navigate(e.base+"/login"), chromedp.SendKeys(css("#email"), "admin@example.com"),
		chromedp.Click(css("#agree")), chromedp.Click(css("#send-link")), chromedp.WaitVisible(css("#sent-title")))
	link := linkRe.FindString(e.lastMail("admin@example.com").text)
	run(admin, "verify", chromedp.Navigate(link), chromedp.Click(css("#login-button")), chromedp.WaitVisible(css("#start-new")))
	// The wizard offers the users' sign-in for a Microsoft 365 side.
	run(admin, "wizard", chromedp.Navigate(e.base+"/migrations/new"), chromedp.Click(css("#preset-m365")), chromedp.WaitVisible(css("#dst_auth-signin")),
		chromedp.Click(css("#dst_auth-signin")))
	testenv.Screenshot(t, admin, shots, "signin-00-wizard")
	run(admin, "mailboxes", chromedp.Navigate(e.base+pp+"/mailboxes"), chromedp.WaitVisible(css("#ask-passwords")))
	run(admin, "ask", chromedp.Click(css("#ask-passwords")), chromedp.WaitVisible(css("#notice")))
	if !strings.Contains(text(admin, "#mailbox-list"), "Waiting for end user") {
		t.Fatalf("the admin's row: %q", text(admin, "#mailbox-list"))
	}
	testenv.Screenshot(t, admin, shots, "signin-01-admin-waiting")

	path := annLink(t, e)
	user := testenv.StartBrowser(t, trust)
	run(user, "the user's page", chromedp.Navigate(e.base+path), chromedp.WaitVisible(css("#signin-destination-button")))
	testenv.Screenshot(t, user, shots, "signin-02-user-page")

	gs.SignIn("ann@contoso.onmicrosoft.com")
	run(user, "sign in", chromedp.Click(css("#signin-destination-button")), chromedp.WaitVisible(css("#signed-in-destination")))
	loc, err := chromedp.Run(user, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "code=") || !strings.HasPrefix(loc, e.base+"/password?token=") {
		t.Errorf("after the sign-in the address is %s", loc)
	}
	testenv.Screenshot(t, user, shots, "signin-03-signed-in")

	run(user, "save the password", chromedp.SendKeys(css("#source_password"), "Src-ann-1"),
		chromedp.Click(css("#save-passwords")), chromedp.WaitVisible(css("#enduser-saved")))
	testenv.Screenshot(t, user, shots, "signin-04-saved")

	run(admin, "mailboxes again", chromedp.Navigate(e.base+pp+"/mailboxes"), chromedp.WaitVisible(css("#mailbox-list")))
	if main := text(admin, "#mailbox-list"); strings.Contains(main, "Waiting for end user") || !strings.Contains(main, "Not started") {
		t.Errorf("the admin's row still waits: %q", main)
	}
	testenv.Screenshot(t, admin, shots, "signin-05-admin-not-waiting")
	ms, err := e.svc.Mailboxes(context.Background(), ownerID(t, e, "admin@example.com"), strings.TrimPrefix(pp, "/projects/"))
	if err != nil || len(ms) != 1 || ms[0].Status != service.StatusNotStarted || !ms[0].HasPasswords {
		t.Errorf("the mailbox: %+v %v", ms, err)
	}

}
