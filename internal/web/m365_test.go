package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

const (
	m365Tenant = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
	m365App    = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
	m365Secret = "m365~Web.Secret-0123456789"
)

func newM365PortalEnv(t *testing.T) *portalEnv {
	return newPortalEnvPresets(t, nil,
		service.Preset{ID: "new-mail", Name: "New Mail", Endpoint: service.Endpoint{Type: "imap", Host: "imap.new.example", Port: 993, Security: "tls"}},
		service.Preset{ID: "m365", Name: "Microsoft 365", Endpoint: service.Endpoint{Type: service.TypeM365, Host: "graph.microsoft.com", Port: 443, Security: "tls"}})
}

// The API takes a Microsoft 365 side's app credentials once, stores the
// client secret sealed and never returns it: not when creating, reading,
// listing or updating the project, nor in the mailboxes; rows need only
// an address on that side (API and CSV), and a password there or a
// missing one on the other side is a clear 400. Finishing the project
// erases the secret.
func TestAPIM365CredentialsNeverReturned(t *testing.T) {
	e := newM365PortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	tok := e.token(t, "owner@example.com")
	call := func(method, path, contentType string, body *strings.Reader) (int, string) {
		t.Helper()
		var code int
		var out string
		if body == nil {
			code, out = e.apiCall(t, tok, method, path, contentType, nil)
		} else {
			code, out = e.apiCall(t, tok, method, path, contentType, body)
		}
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(out)) == nil {
			out = buf.String()
		}
		return code, out
	}
	noSecret := func(what, body string) {
		t.Helper()
		if strings.Contains(body, m365Secret) || strings.Contains(body, "client_secret") {
			t.Errorf("%s: the answer shows the client secret: %s", what, body)
		}
	}

	// Missing credentials, and credentials for a side that is not Microsoft 365.
	code, body := call("POST", "/api/projects", "application/json",
		strings.NewReader(`{"name": "M", "source": {"host": "mail.old.example"}, "destination_preset": "m365"}`))
	if code != 400 || !strings.Contains(body, `"field":"destination_admin"`) || !strings.Contains(body, "app registration") {
		t.Errorf("no app credentials for a Microsoft 365 destination: %d %s", code, body)
	}
	code, body = call("POST", "/api/projects", "application/json",
		strings.NewReader(`{"name": "M", "source": {"host": "mail.old.example"}, "destination_preset": "new-mail",
			"destination_admin": {"tenant": "`+m365Tenant+`", "client_id": "`+m365App+`", "client_secret": "`+m365Secret+`"}}`))
	noSecret("credentials for an IMAP destination", body)
	if code != 400 || !strings.Contains(body, `"field":"destination_admin"`) {
		t.Errorf("app credentials for an IMAP destination: %d %s", code, body)
	}

	code, body = call("POST", "/api/projects", "application/json",
		strings.NewReader(`{"name": "To Microsoft 365", "source": {"host": "mail.old.example"}, "destination_preset": "m365",
			"destination_admin": {"tenant": "`+m365Tenant+`", "client_id": "`+m365App+`", "client_secret": "`+m365Secret+`"}}`))
	noSecret("create", body)
	var p service.Project
	if err := json.Unmarshal([]byte(body), &p); code != 201 && code != 200 || err != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if a := p.DestinationAdmin; a == nil || a.Tenant != m365Tenant || a.ClientID != m365App || !a.HasSecret || p.SourceAdmin != nil {
		t.Errorf("created project's app credentials: %+v / %+v", p.DestinationAdmin, p.SourceAdmin)
	}
	pp := "/api/projects/" + p.ID
	for _, path := range []string{pp, "/api/projects"} {
		code, body := call("GET", path, "", nil)
		noSecret("GET "+path, body)
		if code != 200 || !strings.Contains(body, `"has_secret":true`) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	var sealed string
	if err := e.db.QueryRow(`SELECT secret FROM project_credentials WHERE project_id = ?`, p.ID).Scan(&sealed); err != nil || sealed == "" ||
		strings.Contains(sealed, m365Secret) {
		t.Errorf("stored secret %q (%v): must be sealed", sealed, err)
	}

	// Rows: the destination needs the address only; a password there is
	// refused, and the source still needs its own.
	code, body = call("POST", pp+"/mailboxes", "application/json", strings.NewReader(
		`{"source_email": "ann@old.example", "source_password": "Src-1", "destination_email": "ann@contoso.com", "destination_password": "x"}`))
	if code != 400 || !strings.Contains(body, `"field":"destination_password"`) || !strings.Contains(body, "leave the password empty") {
		t.Errorf("a destination password for Microsoft 365: %d %s", code, body)
	}
	code, body = call("POST", pp+"/mailboxes", "application/json", strings.NewReader(
		`{"source_email": "ann@old.example", "destination_email": "ann@contoso.com"}`))
	if code != 400 || !strings.Contains(body, `"field":"source_password"`) {
		t.Errorf("no source password: %d %s", code, body)
	}
	code, body = call("POST", pp+"/mailboxes", "application/json", strings.NewReader(
		`{"source_email": "ann@old.example", "source_password": "Src-1", "destination_email": "ann@contoso.com"}`))
	noSecret("add mailbox", body)
	if code != 201 && code != 200 || !strings.Contains(body, `"has_passwords":true`) {
		t.Errorf("a row with only an address on the Microsoft 365 side: %d %s", code, body)
	}
	code, body = call("POST", pp+"/mailboxes/import", "text/csv", strings.NewReader(
		"Source Email,Source Password,Destination Email\nben@old.example,Src-2,ben@contoso.com\ncat@old.example,,cat@contoso.com\n"))
	if code != 400 || !strings.Contains(body, `"row":3`) || !strings.Contains(body, "the password is missing") {
		t.Errorf("CSV with a source password missing: %d %s", code, body)
	}
	code, body = call("POST", pp+"/mailboxes/import", "text/csv", strings.NewReader(
		"Source Email,Source Password,Destination Email,Destination Password\nben@old.example,Src-2,ben@contoso.com,oops\n"))
	if code != 400 || !strings.Contains(body, "leave the password empty") || strings.Contains(body, "oops") {
		t.Errorf("CSV with a Microsoft 365 password: %d %s", code, body)
	}
	code, body = call("POST", pp+"/mailboxes/import", "text/csv", strings.NewReader(
		"Source Email,Source Password,Destination Email\nben@old.example,Src-2,ben@contoso.com\n"))
	if code != 201 && code != 200 {
		t.Errorf("CSV without the Microsoft 365 password column: %d %s", code, body)
	}
	code, body = call("GET", pp+"/mailboxes", "", nil)
	noSecret("mailboxes", body)
	if code != 200 || strings.Count(body, `"has_passwords":true`) != 2 {
		t.Errorf("mailboxes: %d %s", code, body)
	}

	// A new client secret; an empty one keeps the stored one.
	code, body = call("PATCH", pp, "application/json", strings.NewReader(
		`{"destination_admin": {"tenant": "contoso.onmicrosoft.com", "client_id": "`+m365App+`"}}`))
	noSecret("PATCH", body)
	if code != 200 || !strings.Contains(body, `"tenant":"contoso.onmicrosoft.com"`) || !strings.Contains(body, `"has_secret":true`) {
		t.Errorf("PATCH the tenant: %d %s", code, body)
	}

	// The portal's pages show the tenant and client id, never the secret.
	for _, path := range []string{"/projects/" + p.ID + "/servers", "/projects/" + p.ID + "/mailboxes"} {
		code, body := b.get(path)
		if code != 200 || strings.Contains(body, m365Secret) {
			t.Errorf("portal %s: %d, or it shows the secret", path, code)
		}
	}

	if _, err := e.svc.FinishProject(context.Background(), ownerID(t, e, "owner@example.com"), p.ID); err != nil {
		t.Fatal(err)
	}
	code, body = call("GET", pp, "", nil)
	if code != 200 || !strings.Contains(body, `"has_secret":false`) {
		t.Errorf("after finishing: %d %s", code, body)
	}
	if err := e.db.QueryRow(`SELECT secret FROM project_credentials WHERE project_id = ?`, p.ID).Scan(&sealed); err != nil || sealed != "" {
		t.Errorf("after finishing, the stored secret is %q (%v); want it erased", sealed, err)
	}
}

// The portal's wizard creates a project with the Microsoft 365 preset:
// the app registration's fields are taken once, a missing secret is shown
// next to its field with the other values kept (the secret never), and
// the mailboxes page then asks for addresses only on that side.
func TestPortalM365Preset(t *testing.T) {
	e := newM365PortalEnv(t)
	b := e.newBrowser()
	b.login("owner@example.com")
	code, body := b.get("/migrations/new")
	if code != 200 || !strings.Contains(body, `id="type-m365" name="type" value="m365">`) || !strings.Contains(body, `id="dst_client_secret"`) ||
		!strings.Contains(body, `id="type-gmail" name="type" value="gmail">`) {
		t.Fatalf("new migration page: %d (Microsoft 365 and Gmail must be offered as sources, with app fields for the destination)", code)
	}
	// Gmail needs no server fields: the form's host and port are ignored.
	code, body = b.post("/migrations/new", url.Values{"name": {"From Gmail"}, "type": {"gmail"}, "host": {""}, "port": {""}, "preset": {"new-mail"}})
	if code != 200 || projectRe.FindStringSubmatch(body) == nil || !strings.Contains(body, "imap.gmail.com") {
		t.Errorf("create a Gmail project: %d", code)
	}
	form := url.Values{"name": {"Acme to 365"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"}, "port": {"993"},
		"preset": {"m365"}, "dst_tenant": {m365Tenant}, "dst_client_id": {m365App}}
	code, body = b.post("/migrations/new", form)
	if code != 400 || !strings.Contains(body, "client secret") || !strings.Contains(body, `value="`+m365App+`"`) {
		t.Errorf("missing secret: %d", code)
	}
	form.Set("dst_client_secret", m365Secret)
	code, body = b.post("/migrations/new", form)
	m := projectRe.FindStringSubmatch(body)
	if code != 200 || m == nil || strings.Contains(body, m365Secret) {
		t.Fatalf("create: %d", code)
	}
	if !strings.Contains(body, `id="m365-rows"`) || !strings.Contains(body, "no-destination-password") {
		t.Error("the mailboxes page does not say that Microsoft 365 rows need addresses only")
	}
	code, body = b.post("/projects/"+m[1]+"/mailboxes", url.Values{"source_email": {"ann@old.example"}, "source_login": {""},
		"source_password": {"Src-ann-1"}, "destination_email": {"ann@contoso.com"}, "destination_login": {""}, "destination_password": {""}})
	if code != 200 || !strings.Contains(body, "1 mailbox added") {
		t.Errorf("add a row with only the Microsoft 365 address: %d", code)
	}
	p, err := e.svc.Project(context.Background(), ownerID(t, e, "owner@example.com"), m[1])
	if err != nil || p.DestinationAdmin == nil || p.DestinationAdmin.ClientID != m365App {
		t.Errorf("project: %+v %v", p.DestinationAdmin, err)
	}
	// Editing the row: no login or password on the Microsoft 365 side,
	// and a corrected address is taken as it is.
	mbs, err := e.svc.Mailboxes(context.Background(), ownerID(t, e, "owner@example.com"), m[1])
	if err != nil || len(mbs) != 1 {
		t.Fatalf("mailboxes: %v %d", err, len(mbs))
	}
	mp := "/projects/" + m[1] + "/mailboxes/" + mbs[0].ID
	code, body = b.get(mp + "/edit")
	if code != 200 || !strings.Contains(body, `id="destination-m365"`) || strings.Contains(body, `id="destination_password"`) ||
		!strings.Contains(body, `id="source_password"`) {
		t.Fatalf("edit page: %d", code)
	}
	code, _ = b.post(mp, url.Values{"next": {"mailboxes"}, "source_email": {"ann@old.example"}, "source_login": {"ann@old.example"},
		"source_password": {""}, "destination_email": {"ann.smith@contoso.com"}})
	if code != 200 {
		t.Errorf("save the corrected Microsoft 365 address: %d", code)
	}
	if got, _ := e.svc.Mailboxes(context.Background(), ownerID(t, e, "owner@example.com"), m[1]); len(got) != 1 ||
		got[0].DestEmail != "ann.smith@contoso.com" || got[0].DestLogin != "ann.smith@contoso.com" || !got[0].HasPasswords {
		t.Errorf("after editing: %+v", got)
	}
}
