package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
)

// fakeQueue stands in for River: passes are queued, and the test plays
// the worker through the service's worker methods.
type fakeQueue struct {
	mu        sync.Mutex
	next      int64
	cancelled []int64
}

func (q *fakeQueue) Enqueue(ctx context.Context, _ *store.Tx, refs []store.JobRef) ([]int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]int64, len(refs))
	for i := range refs {
		q.next++
		ids[i] = q.next
	}
	return ids, nil
}

func (q *fakeQueue) Cancel(ctx context.Context, jobID int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cancelled = append(q.cancelled, jobID)
	return nil
}

type sentMail struct{ to, subject, text string }

// portalEnv is the portal over a real service on SQLite.
type portalEnv struct {
	t    testing.TB
	svc  *service.Service
	db   *sql.DB
	base string
	mu   sync.Mutex
	mail []sentMail
	// logs is everything the server logged (text handler, debug level).
	logs logBuffer
	// st and dir are the store and its data directory (a test may run
	// a real queue on them instead of the fake one).
	st  *store.Store
	dir string
}

// logBuffer collects the server's log for tests that check what it says
// (and never says: secrets).
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newPortalEnv(t testing.TB) *portalEnv {
	t.Helper()
	return newPortalEnvWith(t, nil)
}

// newPortalEnvWith lets configure change the portal's settings first.
func newPortalEnvWith(t testing.TB, configure func(*PortalConfig)) *portalEnv {
	t.Helper()
	return newPortalEnvPresets(t, configure, service.Preset{ID: "new-mail", Name: "New Mail", Endpoint: service.Endpoint{Type: "imap", Host: "imap.new.example", Port: 993, Security: "tls"}})
}

// newPortalEnvPresets is newPortalEnvWith with these destination presets.
func newPortalEnvPresets(t testing.TB, configure func(*PortalConfig), presets ...service.Preset) *portalEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, box, presets)
	svc.SetQueue(&fakeQueue{})
	e := &portalEnv{t: t, svc: svc, db: st.DB(), st: st, dir: dir}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + ln.Addr().String()
	s := New(svc, slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	cfg := PortalConfig{BaseURL: e.base, Agreement: "Custom agreement, first paragraph.\n\nSecond paragraph.",
		SendMail: func(ctx context.Context, to, subject, text string) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.mail = append(e.mail, sentMail{to, subject, text})
			return nil
		}}
	if configure != nil {
		configure(&cfg)
	}
	s.SetPortal(cfg)
	srv := httptest.NewUnstartedServer(s)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

func (e *portalEnv) lastMail(to string) sentMail {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.mail) - 1; i >= 0; i-- {
		if e.mail[i].to == to {
			return e.mail[i]
		}
	}
	e.t.Fatalf("no mail to %s", to)
	return sentMail{}
}

// browser is an HTTP client with cookies, like a browser without script.
type browser struct {
	t    testing.TB
	env  *portalEnv
	c    *http.Client
	csrf string // the session's token, read from the last page
}

func (e *portalEnv) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, env: e, c: &http.Client{Jar: jar}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRe.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp, string(body)
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.env.base+path, nil)
	resp, body := b.do(req)
	return resp.StatusCode, body
}

// post sends a form with the current CSRF token unless form has one.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.env.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := b.do(req)
	return resp.StatusCode, body
}

func (b *browser) upload(path, name, content string) (int, string) {
	b.t.Helper()
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", b.csrf)
	fw, _ := mw.CreateFormFile("csv", name)
	_, _ = io.WriteString(fw, content)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", b.env.base+path, strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, body := b.do(req)
	return resp.StatusCode, body
}

var linkRe = regexp.MustCompile(`http://\S+/login/verify\?token=[A-Za-z0-9_%-]+`)

// login goes through the emailed-link flow and ends on My Migrations.
func (b *browser) login(email string) {
	b.t.Helper()
	if code, _ := b.get("/login"); code != 200 {
		b.t.Fatalf("login page: %d", code)
	}
	code, body := b.post("/login", url.Values{"email": {email}, "agree": {"yes"}})
	if code != 200 || !strings.Contains(body, "Check your email") {
		b.t.Fatalf("request link: %d %s", code, body)
	}
	link := linkRe.FindString(b.env.lastMail(email).text)
	if link == "" {
		b.t.Fatal("no link in the login mail")
	}
	req, _ := http.NewRequest("GET", link, nil)
	resp, body := b.do(req)
	if resp.StatusCode != 200 || !strings.Contains(body, `id="login-button">Log in as `+email+`</button>`) {
		b.t.Fatalf("verify page: %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(link)
	code, body = b.post("/login/verify", url.Values{"token": {u.Query().Get("token")}})
	if code != 200 || !strings.Contains(body, "My Migrations") {
		b.t.Fatalf("log in: %d %s", code, body)
	}
}

func TestPortalLoginByLink(t *testing.T) {
	e := newPortalEnv(t)
	b := e.newBrowser()
	resp, body := b.do(mustReq("GET", e.base+"/login"))
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("security headers: %v", h)
	}
	if !strings.Contains(body, "Custom agreement, first paragraph.") || !strings.Contains(body, `<label for="agree">`) {
		t.Error("the operator's agreement text or the checkbox label is missing")
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") || strings.Contains(body, ` style="`) {
		t.Error("inline script or style in the page")
	}

	// Field errors.
	if code, body := b.post("/login", url.Values{"email": {"owner@example.com"}}); code != 400 || !strings.Contains(body, "Tick the box") {
		t.Errorf("no agreement: %d", code)
	}
	if code, body := b.post("/login", url.Values{"email": {"not-an-address"}, "agree": {"yes"}}); code != 400 || !strings.Contains(body, "is not a valid email address") {
		t.Errorf("bad address: %d", code)
	}
	// Too many links for one address: a message that does not depend on
	// whether the address is known, and that says the links already sent
	// still work (TestLoginLinkFloodDoesNotLockOutTheOwner).
	rl := e.newBrowser()
	rl.get("/login")
	for i := range 4 {
		code, body := rl.post("/login", url.Values{"email": {"busy@example.com"}, "agree": {"yes"}})
		if want := 200; i == 3 {
			if code != 429 || !strings.Contains(body, "Use the newest one in that mailbox") || !strings.Contains(body, "still works") ||
				!strings.Contains(body, "another one in 15 minutes") {
				t.Errorf("request %d: %d, want 429 saying the newest link works:\n%s", i+1, code, body)
			}
		} else if code != want {
			t.Errorf("request %d: %d", i+1, code)
		}
	}
	// The answer does not tell known from unknown addresses.
	b.login("owner@example.com")
	b.post("/logout", nil)
	anon := e.newBrowser()
	anon.get("/login")
	_, known := anon.post("/login", url.Values{"email": {"owner@example.com"}, "agree": {"yes"}})
	_, unknown := anon.post("/login", url.Values{"email": {"nobody@example.com"}, "agree": {"yes"}})
	if strings.ReplaceAll(known, "owner@example.com", "X") != strings.ReplaceAll(unknown, "nobody@example.com", "X") {
		t.Error("the answer differs for a known and an unknown address")
	}
	// A login form without the pre-session cookie's token is refused.
	if code, _ := e.newBrowser().post("/login", url.Values{"email": {"owner@example.com"}, "agree": {"yes"}, "csrf": {"forged-token-forged-token-forged-token"}}); code != 403 {
		t.Errorf("login POST without the pre-session cookie: %d", code)
	}

	// The cookie's flags, from the raw answer.
	c := e.newBrowser()
	c.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.get("/login")
	c.post("/login", url.Values{"email": {"flags@example.com"}, "agree": {"yes"}})
	link := linkRe.FindString(e.lastMail("flags@example.com").text)
	u, _ := url.Parse(link)
	token := u.Query().Get("token")
	form := url.Values{"token": {token}, "csrf": {c.csrf}}
	req := mustReq("POST", e.base+"/login/verify")
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, _ = c.do(req)
	setCookie := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if resp.StatusCode != 303 || !strings.Contains(setCookie, "mailferry_session=") || !strings.Contains(setCookie, "HttpOnly") ||
		!strings.Contains(setCookie, "SameSite=Lax") || !strings.Contains(setCookie, "Path=/") || !strings.Contains(setCookie, "Secure") {
		t.Errorf("verify: %d, Set-Cookie %q", resp.StatusCode, setCookie)
	}
	// Used once: the link and the form no longer work.
	if code, body := c.get("/login/verify?token=" + url.QueryEscape(token)); code != 410 || !strings.Contains(body, "no longer works") {
		t.Errorf("used link GET: %d", code)
	}
	if code, _ := c.post("/login/verify", url.Values{"token": {token}}); code != 410 {
		t.Errorf("used link POST: %d", code)
	}
	// Pages need a session; status.json answers 401.
	if code, body := e.newBrowser().get("/migrations"); code != 200 || !strings.Contains(body, "Send me a login link") {
		t.Errorf("anonymous /migrations should land on the login page: %d", code)
	}
	if code, _ := e.newBrowser().get("/projects/x/status.json"); code != 401 {
		t.Errorf("anonymous status.json: %d", code)
	}
}

func mustReq(method, u string) *http.Request {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		panic(err)
	}
	return req
}

var projectRe = regexp.MustCompile(`/projects/([0-9a-f]{24})/`)

// The whole wizard without a browser: every page renders, errors are
// shown inline, passwords never come back, the live endpoint works.
func TestPortalWizard(t *testing.T) {
	e := newPortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	ctx := context.Background()

	if code, body := b.get("/migrations"); code != 200 || !strings.Contains(body, "No migrations yet") {
		t.Fatalf("empty My Migrations: %d", code)
	}
	if code, body := b.get("/migrations/new"); code != 200 || strings.Contains(body, "Coming soon") || !strings.Contains(body, `id="type-m365" name="type" value="m365">`) ||
		!strings.Contains(body, `id="type-exchange" name="type" value="exchange">`) || !strings.Contains(body, "Exchange (OWA address)") ||
		!strings.Contains(body, `id="type-pop3" name="type" value="pop3">`) || !strings.Contains(body, `data-pop3-port="995"`) {
		t.Fatalf("new migration page: %d (POP3, Exchange (OWA address) and Microsoft 365 must be offered, POP3 with ports 995/110)", code)
	}
	// A CSRF-less POST is refused, and so is a wrong token.
	good := url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"}, "port": {"993"}, "preset": {"new-mail"}}
	for _, tok := range []string{"", "wrong"} {
		f := url.Values{"csrf": {tok}}
		for k, v := range good {
			f[k] = v
		}
		if code, body := b.post("/migrations/new", f); code != 403 || !strings.Contains(body, "This form has expired") {
			t.Errorf("POST with csrf %q: %d", tok, code)
		}
	}
	// Field errors are shown next to the field, with the values kept.
	bad := url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"https://mail.old.example/"}, "security": {"none"}, "port": {"14x"}, "preset": {"new-mail"}}
	code, body := b.post("/migrations/new", bad)
	if code != 400 || !strings.Contains(body, "Enter the port as a number") || !strings.Contains(body, "Tick this box to accept") ||
		!strings.Contains(body, `value="https://mail.old.example/"`) {
		t.Errorf("field errors: %d", code)
	}
	bad.Set("port", "143")
	bad.Set("allow_plaintext", "yes")
	if code, body := b.post("/migrations/new", bad); code != 400 || !strings.Contains(body, `id="host-error"`) || !strings.Contains(body, "server name only") {
		t.Errorf("host error: %d", code)
	}
	code, body = b.post("/migrations/new", good)
	m := projectRe.FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(body, "Your migration project is created") {
		t.Fatalf("create: %d", code)
	}
	id := m[1]
	pp := "/projects/" + id

	// Rows: one is wrong; nothing is added, the error is on its row and
	// no password comes back.
	code, body = b.post(pp+"/mailboxes", url.Values{
		"source_email": {"ann@old.example", "ben@old.example"}, "source_login": {"", "ben"}, "source_password": {"Secret-ann-1", "Secret-ben-1"},
		"destination_email": {"ann@new.example", "ben@@new"}, "destination_login": {"", ""}, "destination_password": {"Secret-ann-2", ""},
	})
	if code != 400 || !strings.Contains(body, "is not a valid email address") || !strings.Contains(body, "enter the password of the destination mailbox") && !strings.Contains(body, "Enter the password of the destination mailbox") {
		t.Errorf("row errors: %d\n%s", code, body)
	}
	if strings.Contains(body, "Secret-") || !strings.Contains(body, `value="ben@@new"`) || !strings.Contains(body, `value="ben"`) {
		t.Error("the rows must come back with their values except passwords")
	}
	checkLabels(t, "mailboxes with errors", body)
	code, body = b.post(pp+"/mailboxes", url.Values{
		"source_email": {"ann@old.example", "ben@old.example", ""}, "source_login": {"", "ben", ""}, "source_password": {"Secret-ann-1", "Secret-ben-1", ""},
		"destination_email": {"ann@new.example", "ben@new.example", ""}, "destination_login": {"", "", ""}, "destination_password": {"Secret-ann-2", "Secret-ben-2", ""},
	})
	if code != 200 || !strings.Contains(body, "2 mailboxes added") {
		t.Fatalf("add: %d", code)
	}
	// The same pair again is a conflict shown on the page.
	if code, body := b.post(pp+"/mailboxes", url.Values{"source_email": {"ann@old.example"}, "source_password": {"x"}, "destination_email": {"ann@new.example"}, "destination_password": {"y"}}); code != 409 || !strings.Contains(body, "already in this project") {
		t.Errorf("duplicate: %d", code)
	}
	// CSV with problems lists them by row and column; a good one imports.
	code, body = b.upload(pp+"/mailboxes/import", "m.csv", "Source Email,Source Password,Destination Email,Destination Password\ncat@old.example,Secret-cat-1,cat@new,Secret-cat-2\n,x,dan@new.example,\n")
	if code != 400 || !strings.Contains(body, `id="csv-problems"`) || !strings.Contains(body, "Destination Email") || strings.Contains(body, "Secret-cat") {
		t.Errorf("CSV errors: %d", code)
	}
	if code, body := b.upload(pp+"/mailboxes/import", "m.csv", ""); code != 400 || !strings.Contains(body, `id="csv-error"`) {
		t.Errorf("empty CSV: %d", code)
	}
	code, body = b.upload(pp+"/mailboxes/import", "m.csv", "Source Email,Source Password,Destination Email,Destination Password\ncat@old.example,Secret-cat-1,cat@new.example,Secret-cat-2\n")
	if code != 200 || !strings.Contains(body, "1 mailbox imported") {
		t.Fatalf("CSV import: %d", code)
	}
	mbs, err := e.svc.Mailboxes(ctx, ownerID(t, e, "owner@example.com"), id)
	if err != nil || len(mbs) != 3 {
		t.Fatalf("mailboxes: %v %d", err, len(mbs))
	}
	ann, ben, cat := mbs[0], mbs[1], mbs[2]

	// Trial.
	if code, body := b.get(pp + "/trial"); code != 200 || !strings.Contains(body, `id="start-trial"`) {
		t.Fatalf("trial page: %d", code)
	}
	if code, body := b.post(pp+"/trial", nil); code != 200 || !strings.Contains(body, "The trial has started") || !strings.Contains(body, `data-running="true"`) {
		t.Fatalf("start trial: %d", code)
	}
	trial := e.newestPass(t, id)
	// Play the worker: ann ready with a warning, ben failed, cat still verifying.
	must(t, e.svc.BeginMailboxPass(ctx, trial, ann.ID, service.StatusVerifying, "test-worker"))
	must(t, e.svc.FinishMailboxPass(ctx, trial, ann.ID, service.Outcome{Status: service.StatusReady,
		Plan:    []service.PlanRow{{Source: "INBOX", Destination: "INBOX", Messages: 12, Bytes: 34000}, {Source: "Sent Items", Destination: "Sent", Messages: 3, Bytes: 900}},
		Warning: "The source mailbox holds 8.1 GB, more than 70% of the destination's capacity of 10.0 GB."}))
	must(t, e.svc.BeginMailboxPass(ctx, trial, ben.ID, service.StatusVerifying, "test-worker"))
	must(t, e.svc.FinishMailboxPass(ctx, trial, ben.ID, service.Outcome{Status: service.StatusFailed, Class: service.ClassAuth, Side: service.SideSource,
		Error: "log in to mail.old.example:993 as ben: [AUTHENTICATIONFAILED] Authentication failed."}))
	must(t, e.svc.BeginMailboxPass(ctx, trial, cat.ID, service.StatusVerifying, "test-worker"))

	var st statusBody
	getJSON(t, b, pp+"/status.json?view=trial", &st)
	if !st.Running || len(st.Mailboxes) != 3 || st.Mailboxes[1].SolveIssue == nil || st.Mailboxes[1].MoreInfo == "" ||
		st.Mailboxes[0].Warning == "" || len(st.Mailboxes[0].Plan) != 2 || st.Regions["row-"+ben.ID].HTML == "" {
		t.Errorf("status.json: %+v", st)
	}
	code, body = b.get(pp + "/trial")
	checkLabels(t, "trial", body)
	for _, want := range []string{"More info", "Solve Issue", "The password was not accepted", "AUTHENTICATIONFAILED", "more than 70%", "Checking the mailboxes", "Fix details"} {
		if !strings.Contains(body, want) {
			t.Errorf("trial page lacks %q", want)
		}
	}
	// The region hashes of the page and of status.json agree, so the
	// script replaces nothing that did not change.
	if !strings.Contains(body, `data-live-hash="`+st.Regions["row-"+ben.ID].Hash+`"`) {
		t.Error("row hash of the page and status.json differ")
	}
	must(t, e.svc.FinishMailboxPass(ctx, trial, cat.ID, service.Outcome{Status: service.StatusReady}))

	// Fix ben: the edit page shows no password; save; re-run for him.
	code, body = b.get(pp + "/mailboxes/" + ben.ID + "/edit?next=trial")
	if code != 200 || !strings.Contains(body, `value="ben"`) || strings.Contains(body, "Secret-ben") {
		t.Errorf("edit page: %d", code)
	}
	if code, body := b.post(pp+"/mailboxes/"+ben.ID, url.Values{"next": {"trial"}, "source_password": {"Secret-ben-fixed"}, "source_email": {"ben@old.example"}, "destination_email": {"ben@new.example"}}); code != 200 || !strings.Contains(body, "details are saved") {
		t.Errorf("save: %d", code)
	}
	if code, _ := b.post(pp+"/trial", url.Values{"mailbox_id": {ben.ID}}); code != 200 {
		t.Errorf("re-run one: %d", code)
	}
	p2, _ := e.svc.Pass(ctx, ownerID(t, e, "owner@example.com"), id, e.newestPass(t, id))
	if len(p2.Mailboxes) != 1 || p2.Mailboxes[0].MailboxID != ben.ID {
		t.Errorf("the re-run should cover ben only: %+v", p2.Mailboxes)
	}
	must(t, e.svc.FinishMailboxPass(ctx, p2.ID, ben.ID, service.Outcome{Status: service.StatusReady}))

	// Migrate: start, watch, stop, resume, complete.
	if code, body := b.get(pp + "/migrate"); code != 200 || !strings.Contains(body, "Ready to migrate") || !strings.Contains(body, `id="start-migration"`) {
		t.Fatalf("migrate page: %d", code)
	}
	if code, _ := b.post(pp+"/passes", url.Values{"kind": {"full"}}); code != 200 {
		t.Fatalf("start migration: %d", code)
	}
	full := e.newestPass(t, id)
	must(t, e.svc.BeginMailboxPass(ctx, full, ann.ID, service.StatusMigrating, "test-worker"))
	must(t, e.svc.UpdateProgress(ctx, full, ann.ID, service.Progress{TotalMsgs: 15, TotalBytes: 34900, Copied: 6, CopiedBytes: 12000, Folder: "Sent Items", Rate: 3.5, ETA: 90e9}))
	code, body = b.get(pp + "/migrate")
	for _, want := range []string{`<progress max="100" value="40"`, "Folder: Sent Items", "3.5 messages/s", "about 2 min left", `id="stop-pass"`, "Project total"} {
		if !strings.Contains(body, want) {
			t.Errorf("migrate page lacks %q", want)
		}
	}
	if code, _ := b.post(pp+"/passes/"+full+"/stop", nil); code != 200 {
		t.Errorf("stop: %d", code)
	}
	must(t, e.svc.FinishMailboxPass(ctx, full, ann.ID, service.Outcome{Status: service.StatusStopped}))
	if code, body := b.get(pp + "/migrate"); code != 200 || !strings.Contains(body, "The migration was stopped") || !strings.Contains(body, `id="resume"`) {
		t.Errorf("stopped page: %d", code)
	}
	b.post(pp+"/passes", url.Values{"kind": {"full"}})
	full = e.newestPass(t, id)
	// Finishing while a pass runs is refused with a message.
	if code, body := b.post(pp+"/finish", nil); code != 409 || !strings.Contains(body, "still running") {
		t.Errorf("finish while running: %d", code)
	}
	for _, mb := range mbs {
		must(t, e.svc.BeginMailboxPass(ctx, full, mb.ID, service.StatusMigrating, "test-worker"))
		o := service.Outcome{Status: service.StatusCompleted, Progress: &service.Progress{TotalMsgs: 15, Copied: 15, CopiedBytes: 34900, TotalBytes: 34900}}
		if mb.ID == cat.ID {
			o = service.Outcome{Status: service.StatusCompletedWithErrors, Progress: &service.Progress{TotalMsgs: 4, Copied: 3, Failed: 1},
				Failures: []service.FailedItem{{Folder: "INBOX", UID: 7, Size: 40 << 20, Kind: "item", Reason: "message too large for the destination"}}}
		}
		must(t, e.svc.FinishMailboxPass(ctx, full, mb.ID, o))
	}
	code, body = b.get(pp + "/migrate")
	for _, want := range []string{"Full migration complete", `id="migrate-new"`, `id="retry-errors"`, `id="finish"`, "message too large for the destination", "1 item could not be copied"} {
		if !strings.Contains(body, want) {
			t.Errorf("completed migrate page lacks %q", want)
		}
	}
	if code, body := b.get(pp + "/finish"); code != 200 || !strings.Contains(body, `id="finish-project"`) {
		t.Errorf("finish page: %d", code)
	}
	code, body = b.post(pp+"/finish", nil)
	if code != 200 || !strings.Contains(body, "Migration finished") || !strings.Contains(body, "All stored passwords have been erased") ||
		!strings.Contains(body, "reconfigure") || !strings.Contains(body, "message too large") {
		t.Errorf("done page: %d\n%s", code, body)
	}
	if got, _ := e.svc.Mailboxes(ctx, ownerID(t, e, "owner@example.com"), id); got[0].HasPasswords {
		t.Error("passwords were not erased")
	}
	// Read-only afterwards.
	if code, body := b.post(pp+"/passes", url.Values{"kind": {"delta"}}); code != 400 || !strings.Contains(body, "read-only") {
		t.Errorf("pass on a finished project: %d", code)
	}
	if code, body := b.get("/migrations"); code != 200 || !strings.Contains(body, "Finished") || !strings.Contains(body, "View summary") {
		t.Errorf("My Migrations after finish: %d", code)
	}
	if code, body := b.get(pp + "/report.csv"); code != 200 || !strings.Contains(body, "cat@old.example") || strings.Contains(body, "Secret-") {
		t.Errorf("report: %d", code)
	}
	// No page ever carried a password; every input has a label.
	for _, path := range []string{"/migrations", pp + "/mailboxes", pp + "/trial", pp + "/migrate", pp + "/done", pp + "/status.json?view=migrate",
		"/migrations/new", pp + "/mailboxes/" + ann.ID + "/edit", "/login", "/agreement"} {
		_, body := b.get(path)
		if strings.Contains(body, "Secret-") {
			t.Errorf("%s shows a password", path)
		}
		checkLabels(t, path, body)
	}
}

// newestPass returns the newest running pass of the project. Several are
// started within one second here, which the service orders by their
// creation time in nanoseconds.
func (e *portalEnv) newestPass(t *testing.T, projectID string) string {
	t.Helper()
	var id string
	if err := e.db.QueryRow(`SELECT id FROM passes WHERE project_id = $1 AND state = 'running' ORDER BY created_ns DESC LIMIT 1`, projectID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	inputRe = regexp.MustCompile(`<input\b[^>]*>`)
	idRe    = regexp.MustCompile(`\bid="([^"]+)"`)
)

// checkLabels fails when a visible input of the page has no <label for>.
func checkLabels(t *testing.T, page, body string) {
	t.Helper()
	for _, in := range inputRe.FindAllString(body, -1) {
		if strings.Contains(in, `type="hidden"`) {
			continue
		}
		m := idRe.FindStringSubmatch(in)
		if m == nil || !strings.Contains(body, `<label for="`+m[1]+`"`) {
			t.Errorf("%s: input without a label: %s", page, in)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ownerID(t *testing.T, e *portalEnv, email string) string {
	t.Helper()
	o, err := e.svc.EnsureOwner(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}

func getJSON(t *testing.T, b *browser, path string, v any) {
	t.Helper()
	code, body := b.get(path)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// Another user sees and changes nothing of the first user's project.
func TestPortalOwnership(t *testing.T) {
	e := newPortalEnv(t)
	owner, intruder := e.newBrowser(), e.newBrowser()
	owner.login("owner@example.com")
	intruder.login("intruder@example.com")
	_, body := owner.post("/migrations/new", url.Values{"name": {"Owner's move"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	pp := "/projects/" + id
	owner.post(pp+"/mailboxes", url.Values{"source_email": {"a@old.example"}, "source_password": {"Secret-a"}, "destination_email": {"a@new.example"}, "destination_password": {"Secret-b"}})
	owner.post(pp+"/trial", nil)
	mbs, _ := e.svc.Mailboxes(context.Background(), ownerID(t, e, "owner@example.com"), id)
	passes, _ := e.svc.Passes(context.Background(), ownerID(t, e, "owner@example.com"), id)
	mb, ps := mbs[0].ID, passes[0].ID

	for _, p := range []string{pp, pp + "/mailboxes", pp + "/mailboxes/" + mb + "/edit", pp + "/trial", pp + "/migrate", pp + "/finish", pp + "/done", pp + "/report.csv", pp + "/mailboxes/template.csv"} {
		if code, body := intruder.get(p); code != 404 || !strings.Contains(body, "We could not find that page") || strings.Contains(body, "Owner&#39;s move") {
			t.Errorf("GET %s as another user: %d", p, code)
		}
	}
	if code, _ := intruder.get(pp + "/status.json"); code != 404 {
		t.Errorf("status.json as another user: %d", code)
	}
	intruder.get("/migrations") // the intruder's own CSRF token
	for _, p := range []string{pp + "/mailboxes", pp + "/mailboxes/" + mb, pp + "/mailboxes/" + mb + "/delete", pp + "/trial", pp + "/passes",
		pp + "/passes/" + ps + "/stop", pp + "/finish"} {
		form := url.Values{"kind": {"full"}, "source_email": {"x@y.example"}, "source_password": {"p"}, "destination_email": {"x@y.example"}, "destination_password": {"p"}}
		if code, _ := intruder.post(p, form); code != 404 && code != 403 {
			t.Errorf("POST %s as another user: %d", p, code)
		}
	}
	if code, _ := intruder.upload(pp+"/mailboxes/import", "m.csv", "Source Email,Source Password,Destination Email,Destination Password\nx@y.example,p,x@y.example,p\n"); code != 404 {
		t.Errorf("import as another user: %d", code)
	}
	if _, body := intruder.get("/migrations"); strings.Contains(body, id) || strings.Contains(body, "Owner&#39;s move") {
		t.Error("the other user's project is listed")
	}
	// Nothing changed.
	after, _ := e.svc.Mailboxes(context.Background(), ownerID(t, e, "owner@example.com"), id)
	p, _ := e.svc.Project(context.Background(), ownerID(t, e, "owner@example.com"), id)
	if len(after) != 1 || p.State != "active" {
		t.Errorf("the intruder changed the project: %d mailboxes, %s", len(after), p.State)
	}
	// Logging out ends the session.
	owner.get("/migrations")
	if code, body := owner.post("/logout", nil); code != 200 || !strings.Contains(body, "You are logged out") {
		t.Errorf("logout: %d", code)
	}
	if code, body := owner.get(pp + "/trial"); code != 200 || !strings.Contains(body, "Send me a login link") {
		t.Errorf("after logout: %d", code)
	}
}

// The wizard offers Exchange (OWA address) as a source: the OWA address
// is taken as the server (IMAP's port and security do not apply), an
// admin account with impersonation is optional, its password never comes
// back in a page, and with it the mailbox rows need no source password.
func TestPortalExchangeSource(t *testing.T) {
	e := newPortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	form := url.Values{"name": {"From Exchange"}, "type": {"exchange"}, "host": {"https://mail.old.example/owa"}, "security": {"tls"}, "port": {"993"},
		"preset": {"new-mail"}, "source_admin": {`OLD\migrator`}, "source_admin_password": {"Admin-Secret-1"}}
	// An admin without its password is refused next to the field.
	noPW := url.Values{}
	for k, v := range form {
		noPW[k] = v
	}
	noPW.Del("source_admin_password")
	if code, body := b.post("/migrations/new", noPW); code != 400 || !strings.Contains(body, "admin account") || !strings.Contains(body, `value="OLD\migrator"`) {
		t.Errorf("admin without password: %d", code)
	}
	code, body := b.post("/migrations/new", form)
	m := projectRe.FindStringSubmatch(body)
	if code != 200 || m == nil || strings.Contains(body, "Admin-Secret-1") {
		t.Fatalf("create Exchange project: %d", code)
	}
	p, err := e.svc.Project(context.Background(), ownerID(t, e, "owner@example.com"), m[1])
	if err != nil || p.Source.Type != "exchange" || p.Source.Host != "mail.old.example" || p.Source.Port != 443 || p.SourceAdmin == nil || p.SourceAdmin.Kind != "ews-impersonation" || p.SourceAdmin.Login != `OLD\migrator` {
		t.Fatalf("stored project: %+v %v", p, err)
	}
	code, body = b.post("/projects/"+m[1]+"/mailboxes", url.Values{
		"source_email": {"ann@old.example"}, "source_login": {""}, "source_password": {""},
		"destination_email": {"ann@new.example"}, "destination_login": {""}, "destination_password": {"Secret-ann-2"},
	})
	if code != 200 || !strings.Contains(body, "1 mailbox") {
		t.Errorf("a row without the source password (admin login): %d", code)
	}
}
