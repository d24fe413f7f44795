package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

// apiCall sends an API request with a bearer token and returns the status
// and the body.
func (e *portalEnv) apiCall(t *testing.T, token, method, path, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *portalEnv) token(t *testing.T, email string) string {
	t.Helper()
	tok, err := e.svc.IssueToken(context.Background(), ownerID(t, e, email))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The page an emailed login link opens names the account it logs in to,
// so that someone who opens a forwarded link sees that it is not theirs
// before pressing the button.
func TestVerifyPageNamesTheAccount(t *testing.T) {
	e := newPortalEnv(t)
	owner := e.newBrowser()
	owner.get("/login")
	owner.post("/login", url.Values{"email": {"owner@example.com"}, "agree": {"yes"}})
	link := linkRe.FindString(e.lastMail("owner@example.com").text)
	// Someone else, already logged in to their own account, opens it.
	other := e.newBrowser()
	other.login("someone@example.com")
	code, body := other.get(strings.TrimPrefix(link, e.base))
	if code != 200 || !strings.Contains(body, `<strong id="verify-account">owner@example.com</strong>`) ||
		!strings.Contains(body, "Log in as owner@example.com") || !strings.Contains(body, "Not your address?") {
		t.Fatalf("verify page: %d\n%s", code, body)
	}
	if !strings.Contains(body, "<title>Log in as owner@example.com · Mailferry</title>") {
		t.Error("the title does not name the account")
	}
}

// Bodies over their limit are answered 413 "too large: the limit is N",
// in the API and in the portal, and change nothing; before, a JSON body
// was cut at the limit and read as "not valid JSON", and a portal upload
// was "This form has expired".
func TestBodyOverLimitIsTooLarge(t *testing.T) {
	e := newPortalEnv(t)
	tok := e.token(t, "owner@example.com")
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	code, body := e.apiCall(t, tok, "POST", "/api/projects", "application/json", strings.NewReader(big))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large: the limit is 1 MiB") || strings.Contains(body, "JSON") {
		t.Errorf("big JSON project: %d %s", code, body)
	}
	code, body = e.apiCall(t, tok, "POST", "/api/projects", "application/json",
		strings.NewReader(`{"name":"Acme","source":{"host":"mail.old.example"},"destination_preset":"new-mail"}`))
	var p service.Project
	if code != 201 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	pp := "/api/projects/" + p.ID
	for _, r := range []struct{ method, path, ctype, body string }{
		{"POST", pp + "/mailboxes", "application/json", `[` + strings.Repeat(`{"source_email":"a@b.example"},`, 40000) + `{}]`},
		{"POST", pp + "/mailboxes/import", "text/csv", "Source Email,Source Password,Destination Email,Destination Password\r\n" +
			strings.Repeat("someone@old.example,pw,someone@new.example,pw\r\n", 30000)},
		{"PATCH", pp, "application/json", `{"name":"` + strings.Repeat("y", 2<<20) + `"}`},
		{"POST", pp + "/passes", "application/json", `{"kind":"` + strings.Repeat("z", 2<<20) + `"}`},
	} {
		code, body := e.apiCall(t, tok, r.method, r.path, r.ctype, strings.NewReader(r.body))
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large: the limit is 1 MiB") {
			t.Errorf("%s %s (%d bytes): %d %.200s", r.method, r.path, len(r.body), code, body)
		}
	}
	if ms, _ := e.svc.Mailboxes(context.Background(), ownerID(t, e, "owner@example.com"), p.ID); len(ms) != 0 {
		t.Errorf("%d mailboxes were added", len(ms))
	}

	// The portal: a file over the limit, and a form too large to read.
	b := e.newBrowser()
	b.login("owner@example.com")
	for _, size := range []int{1<<20 + 1000, 3 << 20} {
		csv := "Source Email,Source Password,Destination Email,Destination Password\r\n" +
			strings.Repeat("x", size)
		code, body := b.upload("/projects/"+p.ID+"/mailboxes/import", "big.csv", csv)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large: the limit is 1 MiB") ||
			strings.Contains(body, "has expired") {
			t.Errorf("portal upload of %d bytes: %d", size, code)
		}
	}
}

// Email-field errors in the portal say what is wrong without quoting what
// was typed (a password typed into the wrong field would show up again).
func TestPortalEmailErrorsDoNotEchoTheValue(t *testing.T) {
	e := newPortalEnv(t)
	const typed = "Hunter2-typed-by-mistake"
	b := e.newBrowser()
	b.get("/login")
	code, body := b.post("/login", url.Values{"email": {typed}, "agree": {"yes"}})
	if code != 400 || !strings.Contains(body, "not a valid email address") {
		t.Fatalf("login with a bad address: %d", code)
	}
	for _, msg := range errorTexts(body) {
		if strings.Contains(msg, typed) {
			t.Errorf("login error echoes the value: %s", msg)
		}
	}
	b.login("owner@example.com")
	_, body = b.post("/migrations/new", url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"},
		"port": {"993"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	code, body = b.post("/projects/"+id+"/mailboxes", url.Values{"source_email": {typed}, "source_password": {"p"},
		"destination_email": {typed + "@"}, "destination_password": {"p"}})
	if code != 400 || len(errorTexts(body)) < 2 {
		t.Fatalf("mailbox row: %d", code)
	}
	for _, msg := range errorTexts(body) {
		if strings.Contains(msg, typed) {
			t.Errorf("row error echoes the value: %s", msg)
		}
	}
}

var errorTextRe = regexp.MustCompile(`(?s)<(?:p|div) class="(?:error|alert alert-bad)"[^>]*>(.*?)</(?:p|div)>`)

func errorTexts(body string) []string {
	var out []string
	for _, m := range errorTextRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// After creation, a project's source server can be corrected in the
// portal (Solve Issue says "save the corrected address"): step 1 links
// to it, the form comes filled in, errors stay next to their field, and
// the change is stored. "No encryption" is what security "none" reads,
// and the invalid-certificate option is hidden without TLS.
func TestPortalEditServers(t *testing.T) {
	e := newPortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	_, body := b.post("/migrations/new", url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"mail.old.exmaple"}, "security": {"tls"},
		"port": {"993"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	pp := "/projects/" + id
	if !strings.Contains(body, `href="`+pp+`/servers"`) {
		t.Error("the mailboxes page does not link to the servers")
	}
	code, body := b.get(pp + "/servers")
	if code != 200 || !strings.Contains(body, `value="mail.old.exmaple"`) || !strings.Contains(body, `action="`+pp+`/servers"`) ||
		!strings.Contains(body, `id="save-servers"`) || !strings.Contains(body, "New Mail") {
		t.Fatalf("servers page: %d\n%s", code, body)
	}
	checkLabels(t, "servers", body)
	if !strings.Contains(body, "No encryption") || strings.Contains(body, `choice-title">None<`) {
		t.Error(`security "none" must read "No encryption"`)
	}
	code, body = b.post(pp+"/servers", url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"https://mail.old.example/"}, "security": {"tls"}, "port": {"993"}})
	if code != 400 || !strings.Contains(body, `id="host-error"`) || !strings.Contains(body, `value="https://mail.old.example/"`) {
		t.Errorf("bad host: %d", code)
	}
	code, body = b.post(pp+"/servers", url.Values{"name": {"Acme move"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"none"},
		"port": {"143"}, "allow_plaintext": {"yes"}, "insecure": {"yes"}})
	if code != 200 || !strings.Contains(body, "The server settings are saved") {
		t.Fatalf("save: %d\n%s", code, body)
	}
	p, err := e.svc.Project(context.Background(), ownerID(t, e, "owner@example.com"), id)
	if err != nil || p.Name != "Acme move" || p.Source.Host != "mail.old.example" || p.Source.Security != "none" || p.Source.Port != 143 ||
		!p.Source.AllowPlaintext || p.Source.Insecure {
		t.Fatalf("stored: %v %+v", err, p)
	}
	if !strings.Contains(body, "No encryption") {
		t.Error(`the project head must say "No encryption"`)
	}
	_, body = b.get(pp + "/servers")
	if !regexp.MustCompile(`<div class="field field-check" id="insecure-field" hidden>`).MatchString(body) {
		t.Error("the invalid-certificate option is shown without TLS")
	}
	// Another user cannot see or change it.
	intruder := e.newBrowser()
	intruder.login("intruder@example.com")
	if code, _ := intruder.get(pp + "/servers"); code != 404 {
		t.Errorf("another user's servers page: %d", code)
	}
	if code, _ := intruder.post(pp+"/servers", url.Values{"name": {"x"}, "type": {"imap"}, "host": {"evil.example"}, "security": {"tls"}}); code != 404 {
		t.Errorf("another user's save: %d", code)
	}

	// The API too.
	tok := e.token(t, "owner@example.com")
	code, body = e.apiCall(t, tok, "PATCH", "/api"+pp, "application/json", strings.NewReader(`{"source":{"host":"imap.old.example","security":"tls"}}`))
	if code != 200 || !strings.Contains(body, `"host": "imap.old.example"`) || !strings.Contains(body, `"port": 993`) {
		t.Errorf("PATCH: %d %s", code, body)
	}
	if code, body := e.apiCall(t, tok, "PATCH", "/api"+pp, "application/json", strings.NewReader(`{"source":{"security":"none","allow_plaintext":false}}`)); code != 400 ||
		!strings.Contains(body, `"field": "source.allow_plaintext"`) {
		t.Errorf("PATCH to none without allow_plaintext: %d %s", code, body)
	}
	if code, _ := e.apiCall(t, e.token(t, "intruder@example.com"), "PATCH", "/api"+pp, "application/json", strings.NewReader(`{"name":"x"}`)); code != 404 {
		t.Errorf("PATCH by another user: %d", code)
	}
}

// A project can be deleted from the portal after a confirmation, by its
// owner only, and not while a pass runs; its stored passwords go with it.
func TestPortalDeleteProject(t *testing.T) {
	e := newPortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	_, body := b.post("/migrations/new", url.Values{"name": {"Acme"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"},
		"port": {"993"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	pp := "/projects/" + id
	b.post(pp+"/mailboxes", url.Values{"source_email": {"a@old.example"}, "source_password": {"Secret-1"},
		"destination_email": {"a@new.example"}, "destination_password": {"Secret-2"}})
	_, body = b.get("/migrations")
	if !strings.Contains(body, `href="`+pp+`/delete"`) {
		t.Error("My Migrations has no way to delete a project")
	}
	// A running pass blocks the deletion.
	b.post(pp+"/trial", nil)
	if code, body := b.post(pp+"/delete", url.Values{"confirm": {"delete"}}); code != 409 || !strings.Contains(body, "stop it first") {
		t.Errorf("delete during a pass: %d", code)
	}
	passID := e.newestPass(t, id)
	b.post(pp+"/passes/"+passID+"/stop", nil) // queued only: stopped at once
	if code, body := b.get(pp + "/delete"); code != 200 || !strings.Contains(body, "Delete this migration project?") || !strings.Contains(body, `id="confirm-delete"`) {
		t.Fatalf("confirmation page: %d\n%s", code, body)
	}
	intruder := e.newBrowser()
	intruder.login("intruder@example.com")
	if code, _ := intruder.post(pp+"/delete", url.Values{"confirm": {"delete"}}); code != 404 {
		t.Errorf("another user's delete: %d", code)
	}
	if code, _ := b.post(pp+"/delete", nil); code != 400 {
		t.Errorf("delete without confirming: %d", code)
	}
	code, body := b.post(pp+"/delete", url.Values{"confirm": {"delete"}})
	if code != 200 || !strings.Contains(body, "The migration project was deleted") || strings.Contains(body, `data-project="`+id+`"`) {
		t.Fatalf("delete: %d\n%s", code, body)
	}
	if code, _ := b.get(pp + "/mailboxes"); code != 404 {
		t.Errorf("the deleted project still opens: %d", code)
	}
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM mailboxes WHERE project_id = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d mailboxes (with their passwords) left: %v", n, err)
	}

	// The API: DELETE, 404 for others and afterwards.
	tok := e.token(t, "owner@example.com")
	code, body = e.apiCall(t, tok, "POST", "/api/projects", "application/json",
		strings.NewReader(`{"name":"Two","source":{"host":"mail.old.example"},"destination_preset":"new-mail"}`))
	var p service.Project
	if code != 201 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := e.apiCall(t, e.token(t, "intruder@example.com"), "DELETE", "/api/projects/"+p.ID, "", nil); code != 404 {
		t.Errorf("DELETE by another user: %d", code)
	}
	if code, _ := e.apiCall(t, tok, "DELETE", "/api/projects/"+p.ID, "", nil); code != 204 {
		t.Errorf("DELETE: %d", code)
	}
	if code, _ := e.apiCall(t, tok, "GET", "/api/projects/"+p.ID, "", nil); code != 404 {
		t.Errorf("GET after DELETE: %d", code)
	}
}
