package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const signInApp = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"

// signInEnv is the portal with a Microsoft 365 preset whose users sign in
// with Microsoft at the Graph test server, and a project moving IMAP
// mailboxes there: source passwords from the users, destination by
// sign-in. With ask, the admin has asked ann (one row) already.
func signInEnv(t *testing.T, ask bool) (e *portalEnv, gs *graphserver.Server, projectPath string) {
	t.Helper()
	e = newM365PortalEnv(t)
	gs = graphserver.Start(t, nil)
	gs.AddTenant(m365Tenant, "contoso.onmicrosoft.com")
	gs.AddApp(m365Tenant, signInApp)
	gs.AddRedirectURI(signInApp, e.base+"/password/microsoft/callback")
	gs.AddMailbox(m365Tenant, "ann@contoso.onmicrosoft.com")
	e.svc.SetMicrosoftIdentity(service.MicrosoftIdentity{AuthorizeURL: gs.AuthorizeURL("{tenant}"), TokenURL: gs.TokenURL("{tenant}"), HTTPClient: gs.Client()})

	admin := e.newBrowser()
	admin.login("admin@example.com")
	code, body := admin.get("/migrations/new")
	if code != 200 || !strings.Contains(body, `id="dst_auth-signin" name="dst_auth" value="signin"`) ||
		!strings.Contains(body, e.base+"/password/microsoft/callback") {
		t.Fatalf("the wizard does not offer the users' sign-in with its redirect URI: %d", code)
	}
	code, body = admin.post("/migrations/new", url.Values{"name": {"Into 365"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"},
		"port": {"993"}, "preset": {"m365"}, "dst_auth": {"signin"}, "dst_tenant": {m365Tenant}, "dst_client_id": {signInApp}})
	m := projectRe.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("create without a client secret: %d", code)
	}
	projectPath = "/projects/" + m[1]
	if code, body = admin.post(projectPath+"/mailboxes", url.Values{"ask_users": {"yes"}, "source_email": {"ann@old.example"},
		"destination_email": {"ann@contoso.onmicrosoft.com"}}); code != 200 {
		t.Fatalf("add ann: %d %s", code, body)
	}
	if !ask {
		return e, gs, projectPath
	}
	if code, body = admin.post(projectPath+"/ask-passwords", nil); code != 200 || !strings.Contains(body, "Waiting for end user") {
		t.Fatalf("ask: %d", code)
	}
	return e, gs, projectPath
}

// userBrowser is a browser that also reaches the Graph test server.
func userBrowser(e *portalEnv, gs *graphserver.Server) *browser {
	b := e.newBrowser()
	b.c.Transport = gs.Client().Transport
	return b
}

func annLink(t *testing.T, e *portalEnv) string {
	t.Helper()
	mails := e.mailsTo("ann@old.example")
	link := passwordLinkRe.FindString(mails[len(mails)-1].text)
	if link == "" {
		t.Fatal("no link in ann's mail")
	}
	u, _ := url.Parse(link)
	return u.RequestURI()
}

// The end user's page of a project whose Microsoft 365 destination has
// its users sign in: a "Sign in with Microsoft" button instead of that
// password, a page whose CSP lets the form go to the identity platform;
// the sign-in goes there with PKCE and comes back through the callback,
// which redirects at once to the page (no code in the final address),
// now showing the sign-in done; the source password then completes the
// mailbox, which leaves "Waiting for end user". The nonce cookie is
// HttpOnly, SameSite=Lax and limited to the sign-in's path.
func TestPortalEndUserSignInWithMicrosoft(t *testing.T) {
	e, gs, pp := signInEnv(t, true)
	ann := userBrowser(e, gs)
	path := annLink(t, e)
	resp, page := ann.do(mustReq("GET", e.base+path))
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signin-destination-button"`) || !strings.Contains(page, `id="source_password"`) ||
		strings.Contains(page, `id="destination_password"`) {
		t.Fatalf("the end user's page: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+gs.URL+";") {
		t.Errorf("CSP %q does not let the sign-in form go to %s", csp, gs.URL)
	}
	token := strings.TrimPrefix(path, "/password?token=")
	token, _ = url.QueryUnescape(token)

	// Saving the password before signing in is refused, and says why.
	code, body := ann.post("/password", url.Values{"token": {token}, "source_password": {"Src-ann-1"}})
	if code != 400 || !strings.Contains(body, `id="signin-destination-error"`) {
		t.Fatalf("the password before the sign-in: %d", code)
	}

	// The start: a redirect to the authorization endpoint, and the cookie.
	noFollow := *ann.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"csrf": {ann.csrf}, "token": {token}, "side": {"destination"}}
	req, _ := http.NewRequest("POST", e.base+"/password/microsoft", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, gs.AuthorizeURL(m365Tenant)+"?") || !strings.Contains(loc, "code_challenge=") {
		t.Fatalf("start: %d to %q", resp.StatusCode, loc)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == signInCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/password/microsoft" || cookie.Value == "" {
		t.Fatalf("nonce cookie %+v", cookie)
	}
	// Without the CSRF token nothing starts.
	if code, _ := ann.post("/password/microsoft", url.Values{"csrf": {"forged"}, "token": {token}, "side": {"destination"}}); code != http.StatusForbidden {
		t.Errorf("a start without the CSRF token: %d", code)
	}

	// Consent at the test server, back through the callback.
	gs.SignIn("ann@contoso.onmicrosoft.com")
	var codes []string
	ann.c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if c := req.URL.Query().Get("code"); c != "" {
			codes = append(codes, c)
		}
		return nil
	}
	resp, page = ann.do(mustReq("GET", loc))
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/password" || strings.Contains(resp.Request.URL.RawQuery, "code=") ||
		!strings.Contains(page, `id="signed-in-destination"`) {
		t.Fatalf("after the sign-in: %d at %s\n%s", resp.StatusCode, resp.Request.URL.Path, page)
	}
	owner := ownerID(t, e, "admin@example.com")
	ms, err := e.svc.Mailboxes(context.Background(), owner, strings.TrimPrefix(pp, "/projects/"))
	if err != nil || len(ms) != 1 || ms[0].Status != service.StatusWaitingForUser || ms[0].HasPasswords {
		t.Fatalf("after the sign-in only: %+v %v; want still waiting for the source password", ms, err)
	}
	var dst string
	if err := e.db.QueryRow(`SELECT dest_secret FROM mailboxes WHERE id = ?`, ms[0].ID).Scan(&dst); err != nil || dst == "" || strings.Contains(dst, "0.MF") {
		t.Fatalf("stored destination secret %q %v; want the refresh token sealed", dst, err)
	}

	code, body = ann.post("/password", url.Values{"token": {token}, "source_password": {"Src-ann-1"}})
	if code != 200 || !strings.Contains(body, "Your passwords are saved") {
		t.Fatalf("the source password: %d\n%s", code, body)
	}
	ms, _ = e.svc.Mailboxes(context.Background(), owner, strings.TrimPrefix(pp, "/projects/"))
	if ms[0].Status != service.StatusNotStarted || !ms[0].HasPasswords {
		t.Errorf("after both: %s, has credentials %v", ms[0].Status, ms[0].HasPasswords)
	}
	if code, _ := ann.get(path); code != http.StatusGone {
		t.Errorf("the link after use: %d", code)
	}
	// Nothing secret reached the log: not the code, not the link.
	logs := e.logs.String()
	if len(codes) != 1 || !strings.Contains(logs, "/password/microsoft/callback") {
		t.Fatalf("codes seen %d; the log:\n%s", len(codes), logs)
	}
	for _, secret := range []string{codes[0], token, url.QueryEscape(token), "0.MF"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs)
		}
	}
}

// The sign-in's error pages: a user who declines at Microsoft gets a
// page saying so with a way back to their (still working) page; a
// callback in a browser that did not start the sign-in (another nonce
// cookie, or none) gets a page saying to start from the link, and its
// state is used up; a callback with an unknown state gets that page too.
func TestPortalSignInErrors(t *testing.T) {
	e, gs, _ := signInEnv(t, true)
	ann := userBrowser(e, gs)
	path := annLink(t, e)
	ann.get(path)
	token, _ := url.QueryUnescape(strings.TrimPrefix(path, "/password?token="))
	start := func(b *browser) string {
		t.Helper()
		noFollow := *b.c
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		form := url.Values{"csrf": {b.csrf}, "token": {token}, "side": {"destination"}}
		req, _ := http.NewRequest("POST", e.base+"/password/microsoft", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}

	gs.SignIn("")
	resp, page := ann.do(mustReq("GET", start(ann)))
	if resp.StatusCode != 200 || !strings.Contains(page, "You cancelled the sign-in") || !strings.Contains(page, `id="signin-back" href="/password?token=`) {
		t.Fatalf("declined: %d\n%s", resp.StatusCode, page)
	}
	if code, _ := ann.get(path); code != 200 {
		t.Errorf("the link after a declined sign-in: %d; want it still working", code)
	}

	// Another browser brings ann's callback back.
	gs.SignIn("ann@contoso.onmicrosoft.com")
	loc := start(ann)
	noFollow := *ann.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "/password/microsoft/callback?") {
		t.Fatalf("authorize sent the browser to %q", callback)
	}
	mallory := userBrowser(e, gs)
	resp, page = mallory.do(mustReq("GET", callback))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "This sign-in cannot be finished") {
		t.Fatalf("another browser's callback: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "code=") || strings.Contains(page, token) {
		t.Error("the error page shows the code or the link")
	}
	// The state is used up: ann's own browser cannot finish it now.
	resp, page = ann.do(mustReq("GET", callback))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "This sign-in cannot be finished") {
		t.Errorf("the callback after another browser's try: %d", resp.StatusCode)
	}
	if code, page := ann.get("/password/microsoft/callback?state=forged&code=x"); code != http.StatusBadRequest || !strings.Contains(page, "This sign-in cannot be finished") {
		t.Errorf("an unknown state: %d", code)
	}
	if n := gs.TokenRequests().AuthorizationCode; n != 0 {
		t.Errorf("%d codes redeemed by refused callbacks", n)
	}

	// A code Microsoft does not redeem: a page saying so, a way back,
	// and a log line with the endpoint's error code only.
	u, _ := url.Parse(start(ann))
	const forged = "0.AXforged-code-0123456789"
	resp, page = ann.do(mustReq("GET", e.base+"/password/microsoft/callback?code="+forged+"&state="+url.QueryEscape(u.Query().Get("state"))))
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "Microsoft did not accept the sign-in") || !strings.Contains(page, `id="signin-back"`) {
		t.Fatalf("a refused code: %d\n%s", resp.StatusCode, page)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "invalid_grant") || strings.Contains(logs, forged) || strings.Contains(page, forged) {
		t.Errorf("a refused code: the log must name the error, never the code:\n%s", logs)
	}
}
