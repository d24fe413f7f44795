package web

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/jobs"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
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

// In Chromium, with a real queue and worker: a project moving Microsoft
// 365 mailboxes whose users sign in (source, kind m365-delegated) into a
// Microsoft 365 destination reached with an app registration. The admin
// asks the user; the user's page has only "Sign in with Microsoft"; after
// the consent the thank-you page shows; the admin's trial then logs in to
// Graph as the user with their refresh token and the row becomes "Ready
// for migration". Screenshots: signin-trial-*.png.
func TestBrowserSignInThenTrial(t *testing.T) {
	const (
		appClient = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
		appSecret = "m365~Web.Secret-0123456789"
		ann       = "ann@contoso.onmicrosoft.com"
	)
	e := newM365PortalEnv(t)
	gs := graphserver.Start(t, nil)
	gs.AddTenant(m365Tenant, "contoso.onmicrosoft.com")
	gs.AddApp(m365Tenant, signInApp)
	gs.AddRedirectURI(signInApp, e.base+"/password/microsoft/callback")
	gs.AddApp(m365Tenant, appClient, graphserver.RoleMailReadWrite)
	gs.AddClientSecret(appClient, appSecret, time.Time{})
	gs.AddMailbox(m365Tenant, ann)
	gs.AddMailbox(m365Tenant, "ann.new@contoso.onmicrosoft.com")
	gs.SeedMessage(ann, "Inbox", graphserver.Seed{MIME: []byte("From: x@example.com\r\nTo: " + ann +
		"\r\nSubject: Hello\r\nMessage-ID: <hello@example.com>\r\nDate: Mon, 4 Sep 2017 10:00:00 +0000\r\n\r\nHello.\r\n")})
	e.svc.SetMicrosoftIdentity(service.MicrosoftIdentity{AuthorizeURL: gs.AuthorizeURL("{tenant}"), TokenURL: gs.TokenURL("{tenant}"), HTTPClient: gs.Client()})
	r := &jobs.Runner{Service: e.svc, State: e.st, Log: slog.New(slog.DiscardHandler), Name: "w1", Holder: "w1", Connections: 2,
		OpenHook: func(o *connector.OpenOptions) {
			o.ServiceURL = gs.URL
			o.RootCAs = gs.CertPool
			if o.Credentials.OAuth != nil && o.Credentials.OAuth.TokenURL == "" {
				o.Credentials.OAuth.TokenURL = gs.TokenURL("{tenant}")
			}
		}}
	q, err := jobs.Open(context.Background(), e.st, r, jobs.Config{MaxWorkers: 2, Work: true, RescueAfter: time.Hour, DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetQueue(q)
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = q.Stop(ctx)
	})
	owner, err := e.svc.EnsureOwner(context.Background(), "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.CreateProject(context.Background(), owner.ID, service.ProjectInput{Name: "From 365, users sign in", DestinationPreset: "m365",
		Source:           service.Endpoint{Type: service.TypeM365},
		SourceAdmin:      &service.AdminCredentials{Kind: service.KindM365Delegated, Tenant: m365Tenant, ClientID: signInApp},
		DestinationAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: appClient, ClientSecret: appSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMailboxes(context.Background(), owner.ID, p.ID, []service.MailboxInput{{SourceEmail: ann, DestEmail: "ann.new@contoso.onmicrosoft.com"}}); err != nil {
		t.Fatal(err)
	}
	pp := "/projects/" + p.ID
	shots := testenv.ArtifactsDir(t, "portal")
	trust := chromedp.Flag("ignore-certificate-errors", true)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
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

	admin := testenv.StartBrowser(t, trust)
	run(admin, "login page", chromedp.Navigate(e.base+"/login"), chromedp.SendKeys(css("#email"), "admin@example.com"),
		chromedp.Click(css("#agree")), chromedp.Click(css("#send-link")), chromedp.WaitVisible(css("#sent-title")))
	run(admin, "verify", chromedp.Navigate(linkRe.FindString(e.lastMail("admin@example.com").text)), chromedp.Click(css("#login-button")),
		chromedp.WaitVisible(css("#start-new")))
	run(admin, "ask", chromedp.Navigate(e.base+pp+"/mailboxes"), chromedp.Click(css("#ask-passwords")), chromedp.WaitVisible(css("#notice")))

	mails := e.mailsTo(ann)
	if len(mails) != 1 {
		t.Fatalf("%d mails to ann", len(mails))
	}
	user := testenv.StartBrowser(t, trust)
	run(user, "the user's page", chromedp.Navigate(passwordLinkRe.FindString(mails[0].text)), chromedp.WaitVisible(css("#signin-source-button")))
	if h := text(user, "h1"); h != "Sign in for the move of your email" {
		t.Errorf("the page's heading: %q", h)
	}
	if strings.Contains(text(user, "main"), "Password of") {
		t.Error("the page asks for a password although both sides are Microsoft 365")
	}
	testenv.Screenshot(t, user, shots, "signin-trial-01-user-page")
	gs.SignIn(ann)
	run(user, "sign in", chromedp.Click(css("#signin-source-button")), chromedp.WaitVisible(css("#enduser-saved")))
	if !strings.Contains(text(user, "#enduser-saved"), "Your sign-in with Microsoft is saved") {
		t.Errorf("thank-you page: %q", text(user, "main"))
	}
	testenv.Screenshot(t, user, shots, "signin-trial-02-done")

	run(admin, "trial", chromedp.Navigate(e.base+pp+"/trial"), chromedp.Click(css("#start-trial")), chromedp.WaitVisible(css("#trial-table")))
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(text(admin, "#trial-table"), "Ready for migration") {
		time.Sleep(300 * time.Millisecond)
	}
	if tt := text(admin, "#trial-table"); !strings.Contains(tt, "Ready for migration") {
		t.Errorf("the trial with ann's sign-in: %q", tt)
	}
	testenv.Screenshot(t, admin, shots, "signin-trial-03-ready")
	if gs.TokenRequests().Refresh == 0 {
		t.Error("the trial did not use ann's refresh token")
	}
}
