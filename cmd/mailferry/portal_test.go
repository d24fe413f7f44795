package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/testenv"
)

// portalServer is a `mailferry serve` whose portal mails login links to
// an in-process SMTP server.
type portalServer struct {
	*server
	bin, dataDir string
	env          []string
	smtp         *testenv.SMTPServer
}

func buildMailferry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startPortalServer(t *testing.T, destination string, extra ...string) *portalServer {
	t.Helper()
	p := &portalServer{bin: buildMailferry(t), dataDir: t.TempDir(), smtp: testenv.StartSMTP(t)}
	p.env = append(os.Environ(), "MAILFERRY_DATA_DIR="+p.dataDir)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--base-url", base,
		"--preset", "Test Destination=" + destination,
		"--smtp-host", p.smtp.Host, "--smtp-port", fmt.Sprint(p.smtp.Port), "--smtp-security", "none",
		"--connections", "2",
		// The test's Dovecot servers are on loopback, which portal users
		// may not reach by default (TestOutboundPolicy).
		"--allow-net", "127.0.0.0/8"}, extra...)
	p.server = &server{t: t, bin: p.bin, env: p.env, url: base, log: &syncBuffer{}, args: args}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", p.log.String())
		}
	})
	return p
}

var verifyLinkRe = regexp.MustCompile(`https?://[^\s"<>]+/login/verify\?token=[A-Za-z0-9_%-]+`)

// loginLink waits for login mail number n (1-based) to the address and
// returns the link in it. The body is quoted-printable: a long link is
// cut by soft line breaks and '=' is written =3D.
func (p *portalServer) loginLink(t *testing.T, to string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var mine []testenv.ReceivedMail
		for _, m := range p.smtp.Messages() {
			if strings.EqualFold(strings.Join(m.To, ","), to) && bytes.Contains(m.Data, []byte("login link")) {
				mine = append(mine, m)
			}
		}
		if len(mine) >= n {
			msg, err := mail.ReadMessage(bytes.NewReader(mine[n-1].Data))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatal(err)
			}
			link := verifyLinkRe.FindString(string(body))
			if link == "" || !strings.HasPrefix(link, p.url+"/login/verify?token=") {
				t.Fatalf("no login link in the mail:\n%s", body)
			}
			return link
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no login mail number %d for %s", n, to)
	return ""
}

// tab drives the portal in Chromium, checks every page it reads for
// secrets, and saves screenshots.
type tab struct {
	t       *testing.T
	ctx     context.Context
	base    string
	shots   string
	secrets []string
	mu      sync.Mutex
	console []string
}

func newTab(t *testing.T, base string, secrets ...string) *tab {
	t.Helper()
	tb := &tab{t: t, ctx: testenv.StartBrowser(t), base: base, shots: testenv.ArtifactsDir(t, "portal"), secrets: secrets}
	// Collect console errors and exceptions: a CSP violation or a broken
	// script shows up there.
	messages := chromedp.Console(tb.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Pages answered 4xx on purpose (form errors, 404) are logged
			// as failed loads; only the page's own resources matter.
			if strings.HasPrefix(m.Text, "Failed to load resource") && !strings.Contains(m.URL, "/static/") {
				continue
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				tb.mu.Lock()
				tb.console = append(tb.console, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	return tb
}

func (tb *tab) checkConsole() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		tb.t.Errorf("browser console: %s", m)
	}
}

func (tb *tab) timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(tb.ctx, d)
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v (at %s)", err, tb.location())
	}
}

// open navigates and returns the HTTP status.
func (tb *tab) open(path string) int64 {
	tb.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = tb.base + path
	}
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		tb.t.Fatalf("open %s: %v", path, err)
	}
	tb.checkPage()
	return resp.Status
}

// submit clicks a button or link that loads a page; it returns the status.
func (tb *tab) submit(sel string) int64 {
	tb.t.Helper()
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("click %s: %v (at %s)", sel, err, tb.location())
	}
	tb.checkPage()
	return resp.Status
}

func (tb *tab) location() string {
	ctx, cancel := tb.timeout(5 * time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// typeIn replaces an input's value by typing. (chromedp.Clear empties
// the value attribute only, not what was typed.)
func (tb *tab) typeIn(sel, value string) {
	tb.t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v (at %s)", sel, err, tb.location())
	}
	return s
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) waitVisible(sel string, d time.Duration) {
	tb.t.Helper()
	ctx, cancel := tb.timeout(d)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		tb.t.Fatalf("wait for %s: %v (at %s)\n%s", sel, err, tb.location(), tb.html())
	}
}

func (tb *tab) html() string {
	ctx, cancel := tb.timeout(10 * time.Second)
	defer cancel()
	h, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		tb.t.Fatalf("page HTML: %v", err)
	}
	return h
}

// checkPage fails the test if the page shows a secret.
func (tb *tab) checkPage() {
	tb.t.Helper()
	h := tb.html()
	for _, s := range tb.secrets {
		if strings.Contains(h, s) {
			tb.t.Errorf("the page %s contains a password", tb.location())
		}
	}
}

func (tb *tab) shot(name string) {
	tb.t.Helper()
	tb.checkPage()
	testenv.Screenshot(tb.t, tb.ctx, tb.shots, name)
}

// phoneShot takes a screenshot at a phone's width (375 px), then goes
// back to the desktop size.
func (tb *tab) phoneShot(name string) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile), chromedp.Reload())
	if w, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 375 {
		tb.t.Errorf("%s: the page is %d px wide at a 375 px viewport (it scrolls sideways)", name, w)
	}
	tb.shot(name)
	ctx, cancel := tb.timeout(20 * time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		tb.t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{}); err != nil {
		tb.t.Fatal(err)
	}
	tb.do(chromedp.Reload())
}

// login requests a link, reads it from the mail and logs in.
func (tb *tab) login(p *portalServer, email string, n int) {
	tb.t.Helper()
	tb.open("/login")
	tb.typeIn("#email", email)
	tb.do(chromedp.Click(chromedp.CSS("#agree")))
	tb.submit("#send-link")
	tb.open(p.loginLink(tb.t, email, n))
	tb.submit("#login-button")
	tb.waitVisible("#start-new", 10*time.Second)
}

// mailboxIDs maps each source address to its row id on the mailboxes page.
func (tb *tab) mailboxIDs() map[string]string {
	tb.t.Helper()
	ctx, cancel := tb.timeout(10 * time.Second)
	defer cancel()
	pairs, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](
		`Array.from(document.querySelectorAll('#mailbox-list tr[data-mailbox]')).map(tr => [tr.dataset.mailbox, tr.id.replace('row-', '')])`))
	if err != nil {
		tb.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pairs {
		out[p[0]] = p[1]
	}
	return out
}

func countMessages(t *testing.T, d *testenv.Dovecot, users []string) int {
	n := 0
	for _, u := range users {
		for _, msgs := range contents(t, d, u) {
			n += len(msgs)
		}
	}
	return n
}

// TestPortalSelfServiceFlow walks the seed's whole flow in a real browser
// against `mailferry serve` and two Dovecot servers: log in by emailed
// link, a new migration, mailboxes by hand and by CSV, a trial in which
// one mailbox fails and is fixed, the migration (mail checked on the
// destination), Migrate new items, and Finish.
func TestPortalSelfServiceFlow(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	users := []string{"ann", "ben", "cat", "dan", "eve"}
	for i, u := range users {
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
		seedUser(t, src, u, 0, 10+i*4)
	}
	const wrong = "Wrong-pass-1"
	agreement := filepath.Join(t.TempDir(), "agreement.txt")
	if err := os.WriteFile(agreement, []byte("Acme IT migration terms.\n\nYou may only migrate mailboxes of Acme staff."), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1", "--agreement-file", agreement)
	tb := newTab(t, p.url, pw, wrong)
	defer tb.checkConsole()

	// 1. Log in by emailed link.
	if code := tb.open("/"); code != 200 || !strings.Contains(tb.html(), "You may only migrate mailboxes of Acme staff.") {
		t.Fatalf("login page: %d, or the operator's agreement is missing", code)
	}
	tb.shot("01-login")
	tb.typeIn("#email", "owner@example.com")
	tb.do(chromedp.Click(chromedp.CSS("#agree")))
	tb.submit("#send-link")
	if h := tb.text("h1"); h != "Check your email" {
		t.Fatalf("after asking for a link: %q", h)
	}
	tb.shot("02-link-sent")
	link := p.loginLink(t, "owner@example.com", 1)
	tb.open(link)
	tb.shot("03-login-verify")
	tb.submit("#login-button")
	if !strings.Contains(tb.text("main"), "No migrations yet") {
		t.Fatal("My Migrations is not empty for a new user")
	}
	tb.shot("04-my-migrations-empty")

	// 2-3. Start a migration: source and destination, with a field error first.
	tb.submit("#start-new")
	tb.shot("05-new-migration")
	tb.typeIn("#name", "Acme move to Test Destination")
	tb.typeIn("#host", "https://mail.old.example/")
	tb.do(chromedp.Click(chromedp.CSS("#security-none")))
	if port := tb.value("#port"); port != "143" {
		t.Errorf("choosing no security should set port 143, got %q", port)
	}
	tb.typeIn("#port", fmt.Sprint(src.Port))
	tb.do(chromedp.Click(chromedp.CSS("#allow_plaintext")))
	if code := tb.submit("#create-project"); code != 400 {
		t.Errorf("a URL as server address: %d, want 400", code)
	}
	if !strings.Contains(tb.text("#host-error"), "server name only") || tb.value("#port") != fmt.Sprint(src.Port) {
		t.Error("the host error is not shown next to the field, or the values were lost")
	}
	tb.shot("06-new-migration-error")
	tb.typeIn("#host", "127.0.0.1")
	tb.submit("#create-project")
	loc := tb.location()
	m := regexp.MustCompile(`/projects/([0-9a-f]+)/mailboxes`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("after creating the project: %s", loc)
	}
	project := m[1]
	tb.shot("07-mailboxes-empty")
	tb.phoneShot("07-phone-mailboxes")

	// 4. Two mailboxes by hand: the second has a typo first.
	fillRow := func(row, user, dstEmail string) {
		tb.typeIn("#r"+row+"-source_email", user+"@old.example")
		tb.typeIn("#r"+row+"-source_login", user)
		tb.typeIn("#r"+row+"-source_password", pw)
		tb.typeIn("#r"+row+"-destination_email", dstEmail)
		tb.typeIn("#r"+row+"-destination_login", user)
		tb.typeIn("#r"+row+"-destination_password", pw)
	}
	fillRow("0", "ann", "ann@new.example")
	tb.do(chromedp.Click(chromedp.CSS("#add-row")))
	fillRow("n1", "ben", "ben@@new.example")
	if code := tb.submit("#save-mailboxes"); code != 400 {
		t.Errorf("a row with a bad address: %d, want 400", code)
	}
	if e := tb.text("#entry-rows tr:nth-child(2) .error"); !strings.Contains(e, "not a valid email address") {
		t.Errorf("row error: %q", e)
	}
	if tb.value("#r1-destination_email") != "ben@@new.example" || tb.value("#r1-source_password") != "" {
		t.Error("the rows must come back with the values typed, without passwords")
	}
	tb.shot("08-mailboxes-row-error")
	tb.typeIn("#r0-source_password", pw)
	tb.typeIn("#r0-destination_password", pw)
	tb.typeIn("#r1-source_password", pw)
	tb.typeIn("#r1-destination_password", pw)
	tb.typeIn("#r1-destination_email", "ben@new.example")
	tb.submit("#save-mailboxes")
	if n := tb.text("#notice"); !strings.Contains(n, "2 mailboxes added") {
		t.Fatalf("after saving: %q", n)
	}

	// ...and three by CSV, after a file with a mistake.
	dir := t.TempDir()
	writeCSV := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	header := "Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags\r\n"
	bad := writeCSV("bad.csv", header+"cat@old.example,cat,,cat@new.example,cat,"+pw+",\r\n")
	var good strings.Builder
	good.WriteString(header)
	for _, u := range []string{"cat", "dan", "eve"} {
		password := pw
		if u == "dan" {
			password = wrong
		}
		fmt.Fprintf(&good, "%s@old.example,%s,%s,%s@new.example,%s,%s,\r\n", u, u, password, u, u, pw)
	}
	goodPath := writeCSV("mailboxes.csv", good.String())
	tb.do(chromedp.SetUploadFiles(chromedp.CSS("#csv-file"), []string{bad}))
	if code := tb.submit("#upload-csv"); code != 400 {
		t.Errorf("a CSV with a missing password: %d", code)
	}
	if e := tb.text("#csv-problems"); !strings.Contains(e, "Source Password") {
		t.Errorf("CSV problems: %q", e)
	}
	tb.shot("09-csv-errors")
	tb.do(chromedp.SetUploadFiles(chromedp.CSS("#csv-file"), []string{goodPath}))
	tb.submit("#upload-csv")
	if n := tb.text("#notice"); !strings.Contains(n, "3 mailboxes imported") {
		t.Fatalf("after the upload: %q", n)
	}
	ids := tb.mailboxIDs()
	if len(ids) != 5 {
		t.Fatalf("mailboxes listed: %v", ids)
	}
	tb.shot("10-mailboxes")

	// 5. Trial: dan's password is wrong.
	tb.submit("#to-trial")
	tb.shot("11-trial-start")
	tb.submit("#start-trial")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	for _, u := range users {
		want := "ready"
		if u == "dan" {
			want = "failed"
		}
		tb.waitVisible(fmt.Sprintf(`#row-%s .badge[data-status=%q]`, ids[u+"@old.example"], want), 5*time.Second)
	}
	tb.shot("12-trial-result")
	dan := "#row-" + ids["dan@old.example"]
	tb.do(chromedp.Click(chromedp.CSS(dan + " details.more-bad > summary")))
	tb.waitVisible(dan+" .error-text", 5*time.Second)
	if e := tb.text(dan + " .error-text"); !strings.Contains(strings.ToLower(e), "auth") {
		t.Errorf("More info: %q", e)
	}
	tb.do(chromedp.Click(chromedp.CSS(dan + " details.more-solve > summary")))
	tb.waitVisible(dan+" .solve-steps", 5*time.Second)
	if s := tb.text(dan + " .more-solve"); !strings.Contains(s, "The password was not accepted") || !strings.Contains(s, "run the trial migration again") {
		t.Errorf("Solve Issue: %q", s)
	}
	tb.shot("13-more-info-solve-issue")

	// Fix dan's password and run the trial again for him only.
	tb.submit(dan + ` a[href*="/edit"]`)
	tb.shot("14-fix-details")
	tb.typeIn("#source_password", pw)
	tb.submit("#save-mailbox")
	tb.submit(dan + " .cell-actions form button")
	tb.waitVisible(dan+` .badge[data-status="ready"]`, time.Minute)
	tb.waitVisible(`#live[data-running="false"]`, 10*time.Second)
	tb.shot("15-trial-ready")
	tb.phoneShot("16-phone-trial")

	// 6. Migrate.
	tb.submit("#to-migrate")
	tb.shot("17-ready-to-migrate")
	tb.submit("#start-migration")
	tb.shot("18-migrating")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	for _, u := range users {
		tb.waitVisible(fmt.Sprintf(`#row-%s .badge[data-status="completed"]`, ids[u+"@old.example"]), 5*time.Second)
	}
	tb.shot("19-migrated")
	// 7. The mail arrived, exactly.
	for _, u := range users {
		sameMailbox(t, src, dst, u)
	}

	// 8. New mail for ann; Migrate new items copies only that.
	before := countMessages(t, dst, users)
	seedUser(t, src, "ann", 1000, 5)
	tb.submit("#migrate-new")
	tb.waitVisible(`#live[data-running="false"]`, time.Minute)
	tb.waitVisible(fmt.Sprintf(`#row-%s .badge[data-status="completed"]`, ids["ann@old.example"]), 5*time.Second)
	if got := countMessages(t, dst, users); got != before+5 {
		t.Errorf("Migrate new items: the destination went from %d to %d messages, want +5", before, got)
	}
	for _, u := range users {
		sameMailbox(t, src, dst, u)
	}
	if s := tb.text("#row-" + ids["ann@old.example"]); !strings.Contains(s, "5 new messages copied") {
		t.Errorf("ann's row after Migrate new items: %q", s)
	}
	tb.shot("20-migrate-new-items")

	// 8b. ann's history: both passes, the per-folder counts that the
	// worker recorded, balanced.
	tb.submit("#history-" + ids["ann@old.example"])
	if n := tb.count("article.pass-record"); n < 3 {
		t.Errorf("ann's history lists %d passes, want the trials, the migration and Migrate new items", n)
	}
	newest := tb.text("article.pass-record:first-of-type")
	if !strings.Contains(newest, "Migrate new items") || !strings.Contains(newest, "INBOX") {
		t.Errorf("the newest pass of ann's history: %q", newest)
	}
	rows, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll('article.pass-record:first-of-type .folder-stats tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))`))
	copied := 0
	for _, r := range rows {
		if len(r) != 7 {
			continue // an unchanged folder
		}
		src, cp, present, skipped, failed := atoi(r[2]), atoi(r[3]), atoi(r[4]), atoi(r[5]), atoi(r[6])
		if src != cp+present+skipped+failed {
			t.Errorf("folder %s of Migrate new items does not balance: %v", r[0], r)
		}
		copied += cp
	}
	if copied != 5 {
		t.Errorf("the folders of Migrate new items copied %d, want 5: %v", copied, rows)
	}
	tb.shot("20b-history")
	tb.open("/projects/" + project + "/migrate")

	// 9. Finish.
	tb.submit("#finish")
	tb.shot("21-finish-confirm")
	tb.submit("#finish-project")
	done := tb.text("main")
	for _, want := range []string{"Migration finished", "All stored passwords have been erased", "reconfigure", "Outlook", "Phones", "ann@old.example", "eve@new.example"} {
		if !strings.Contains(done, want) {
			t.Errorf("the completion page lacks %q", want)
		}
	}
	tb.shot("22-done")
	// The passwords are gone from the database: ask the API as the same user.
	cmd := exec.Command(p.bin, "user", "add", "--email", "owner@example.com")
	cmd.Env = p.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	var mbs []mailbox
	if code := api(t, p.url, strings.TrimSpace(string(out)), "GET", "/api/projects/"+project+"/mailboxes", "", nil, &mbs); code != 200 || len(mbs) != 5 {
		t.Fatalf("mailboxes by API: %d %d", code, len(mbs))
	}
	for _, m := range mbs {
		if m.HasPasswords {
			t.Errorf("%s still has passwords after Finish", m.SourceEmail)
		}
	}
	tb.open("/migrations")
	if !strings.Contains(tb.text("main"), "Finished") {
		t.Error("My Migrations does not show the project as finished")
	}
	tb.shot("23-my-migrations")
	tb.phoneShot("24-phone-my-migrations")
	tb.open("/projects/" + project + "/done")
	tb.phoneShot("25-phone-done")
	tb.open("/migrations/new")
	tb.phoneShot("26-phone-new-migration")
	if strings.Contains(p.log.String(), pw) || strings.Contains(p.log.String(), wrong) {
		t.Error("a password appeared in the server log")
	}
}

// client is a browser without script: a cookie jar and forms.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, c: &http.Client{Jar: jar}}
}

var csrfFieldRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) send(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfFieldRe.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp, string(b)
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	resp, body := c.send(req)
	return resp.StatusCode, body
}

func (c *client) postForm(path string, form url.Values, withCSRF bool) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if withCSRF {
		form.Set("csrf", c.csrf)
	}
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.send(req)
}

func (c *client) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	resp, body := c.postForm(path, form, true)
	return resp.StatusCode, body
}

// TestPortalSecurity checks, against the real binary, what the portal
// promises: session cookie flags, single-use login links, CSRF tokens,
// and that nobody reaches another user's project.
func TestPortalSecurity(t *testing.T) {
	// The source does not exist: the trial below only has to be started.
	p := startPortalServer(t, "imaps://127.0.0.1:1")
	owner := newClient(t, p.url)
	owner.get("/login")
	owner.post("/login", url.Values{"email": {"owner@example.com"}, "agree": {"yes"}})
	link := p.loginLink(t, "owner@example.com", 1)
	token, _ := url.Parse(link)
	if code, body := owner.get(strings.TrimPrefix(link, p.url)); code != 200 || !strings.Contains(body, "login-button") {
		t.Fatalf("verify page: %d", code)
	}
	// Logging in sets the session cookie with its flags (no redirect followed).
	owner.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := owner.postForm("/login/verify", url.Values{"token": {token.Query().Get("token")}}, true)
	owner.c.CheckRedirect = nil
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "mailferry_session" {
			session = c
		}
	}
	raw := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode ||
		session.Path != "/" || session.Secure {
		t.Fatalf("login answer %d, Set-Cookie %q", resp.StatusCode, raw)
	}
	if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Lax") {
		t.Errorf("Set-Cookie %q lacks HttpOnly or SameSite=Lax", raw)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	// The link works once.
	again := newClient(t, p.url)
	if code, body := again.get(strings.TrimPrefix(link, p.url)); code != http.StatusGone || !strings.Contains(body, "no longer works") {
		t.Errorf("used link opened again: %d", code)
	}
	again.get("/login")
	if resp, body := again.postForm("/login/verify", url.Values{"token": {token.Query().Get("token")}}, true); resp.StatusCode != http.StatusGone ||
		strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ""), "mailferry_session") || !strings.Contains(body, "new login link") {
		t.Errorf("used link posted again: %d", resp.StatusCode)
	}

	// The owner creates a project with a mailbox and starts a trial.
	if code, body := owner.get("/migrations"); code != 200 || !strings.Contains(body, "My Migrations") {
		t.Fatalf("My Migrations after login: %d", code)
	}
	code, body := owner.post("/migrations/new", url.Values{"name": {"Owner's move"}, "type": {"imap"}, "host": {"127.0.0.1"},
		"security": {"tls"}, "port": {"1"}, "preset": {"test-destination"}})
	m := regexp.MustCompile(`/projects/([0-9a-f]{24})/`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("create project: %d", code)
	}
	pp := "/projects/" + m[1]
	owner.post(pp+"/mailboxes", url.Values{"source_email": {"a@old.example"}, "source_password": {pw}, "destination_email": {"a@new.example"}, "destination_password": {pw}})
	_, body = owner.get(pp + "/mailboxes")
	mb := regexp.MustCompile(`id="row-([0-9a-f]{24})"`).FindStringSubmatch(body)[1]
	owner.post(pp+"/trial", nil)
	var list []struct{ ID string }
	cmd := exec.Command(p.bin, "user", "add", "--email", "owner@example.com")
	cmd.Env = p.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if code := api(t, p.url, strings.TrimSpace(string(out)), "GET", "/api"+pp+"/passes", "", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("passes: %d %v", code, list)
	}
	passID := list[0].ID

	// A POST without the CSRF token, or with a wrong one, changes nothing.
	for _, tok := range []string{"", "forged"} {
		form := url.Values{"csrf": {tok}, "name": {"x"}, "type": {"imap"}, "host": {"h.example"}, "preset": {"test-destination"}}
		if resp, body := owner.postForm("/migrations/new", form, false); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form has expired") {
			t.Errorf("POST with csrf %q: %d", tok, resp.StatusCode)
		}
		if resp, _ := owner.postForm(pp+"/finish", url.Values{"csrf": {tok}}, false); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finish with csrf %q: %d", tok, resp.StatusCode)
		}
	}

	// Another user: 404 for every page, 404 or 403 for every form.
	intruder := newClient(t, p.url)
	intruder.get("/login")
	intruder.post("/login", url.Values{"email": {"intruder@example.com"}, "agree": {"yes"}})
	il, _ := url.Parse(p.loginLink(t, "intruder@example.com", 1))
	intruder.get(il.RequestURI())
	if code, body := intruder.post("/login/verify", url.Values{"token": {il.Query().Get("token")}}); code != 200 || !strings.Contains(body, "My Migrations") {
		t.Fatalf("intruder login: %d", code)
	}
	if _, body := intruder.get("/migrations"); strings.Contains(body, m[1]) || strings.Contains(body, "Owner&#39;s move") {
		t.Error("another user's project is listed in My Migrations")
	}
	for _, path := range []string{pp, pp + "/mailboxes", pp + "/mailboxes/" + mb + "/edit", pp + "/trial", pp + "/migrate", pp + "/finish",
		pp + "/done", pp + "/report.csv", pp + "/status.json"} {
		if code, body := intruder.get(path); code != 404 || strings.Contains(body, "Owner&#39;s move") || strings.Contains(body, "a@old.example") {
			t.Errorf("GET %s as another user: %d", path, code)
		}
	}
	intruder.get("/migrations")
	for _, path := range []string{pp + "/mailboxes", pp + "/mailboxes/import", pp + "/mailboxes/" + mb, pp + "/mailboxes/" + mb + "/delete",
		pp + "/trial", pp + "/passes", pp + "/passes/" + passID + "/stop", pp + "/finish"} {
		form := url.Values{"kind": {"full"}, "source_email": {"x@y.example"}, "source_password": {"p"}, "destination_email": {"x@y.example"}, "destination_password": {"p"}}
		if code, _ := intruder.post(path, form); code != 404 && code != 403 {
			t.Errorf("POST %s as another user: %d", path, code)
		}
	}
	if _, body := owner.get(pp + "/mailboxes"); !strings.Contains(body, "a@old.example") || strings.Contains(body, "x@y.example") {
		t.Error("the owner's project was changed by another user")
	}

	// In a browser, another user's project is a friendly 404 page.
	tb := newTab(t, p.url, pw)
	defer tb.checkConsole()
	tb.login(p, "intruder@example.com", 2)
	if code := tb.open(pp + "/trial"); code != 404 || !strings.Contains(tb.text("h1"), "We could not find that page") {
		t.Errorf("another user's trial page in the browser: %d", code)
	}
	tb.shot("30-not-found")
	// A logged-out browser is sent to the login page.
	tb.submit("#logout")
	if !strings.Contains(tb.text("#notice"), "logged out") {
		t.Error("no confirmation of the logout")
	}
	tb.open(pp + "/trial")
	if !strings.HasSuffix(strings.SplitN(tb.location(), "?", 2)[0], "/login") {
		t.Errorf("after logout: %s", tb.location())
	}
}
