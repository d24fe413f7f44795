package web

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// An operator sees every user's projects and the load per source host,
// and can stop a pass of someone else's project, but not change it. An
// ordinary user still sees only their own: /operator and another user's
// project are 404, on the portal and on the API.
func TestPortalOperators(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	alice, bob, op := e.newBrowser(), e.newBrowser(), e.newBrowser()
	alice.login("alice@example.com")
	bob.login("bob@example.com")
	if _, err := e.svc.SetOperator(ctx, "op@example.com", true); err != nil {
		t.Fatal(err)
	}
	op.login("op@example.com")

	_, body := alice.post("/migrations/new", url.Values{"name": {"Alice's move"}, "type": {"imap"}, "host": {"Mail.Alice.example"}, "security": {"tls"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	pp := "/projects/" + id
	alice.post(pp+"/mailboxes", url.Values{"source_email": {"a@old.example"}, "source_password": {"Secret-a"}, "destination_email": {"a@new.example"}, "destination_password": {"Secret-b"}})
	alice.post(pp+"/trial", nil)
	pass := e.newestPass(t, id)

	// Bob: neither the operator page nor Alice's project exist for him.
	if code, body := bob.get("/operator"); code != 404 || strings.Contains(body, "All migrations") {
		t.Errorf("/operator as an ordinary user: %d", code)
	}
	if _, body := bob.get("/migrations"); strings.Contains(body, "operator-link") {
		t.Error("an ordinary user's menu links to the operator page")
	}
	for _, p := range []string{pp, pp + "/migrate", pp + "/status.json"} {
		if code, _ := bob.get(p); code != 404 {
			t.Errorf("GET %s as an ordinary user: %d", p, code)
		}
	}
	bob.get("/migrations")
	if code, _ := bob.post(pp+"/passes/"+pass+"/stop", nil); code != 404 {
		t.Errorf("stop as an ordinary user: %d", code)
	}
	bobToken := e.token(t, "bob@example.com")
	if code, _ := e.apiCall(t, bobToken, "GET", "/api/projects/"+id, "", nil); code != 404 {
		t.Errorf("API GET of another user's project: %d", code)
	}
	if code, _ := e.apiCall(t, bobToken, "POST", "/api/projects/"+id+"/passes/"+pass+"/stop", "", nil); code != 404 {
		t.Errorf("API stop of another user's pass: %d", code)
	}

	// The operator: every project with its owner, the source host's load.
	code, body := op.get("/operator")
	if code != 200 {
		t.Fatalf("/operator as an operator: %d\n%s", code, body)
	}
	for _, want := range []string{`id="operator-link"`, `data-project="` + id + `"`, "Alice&#39;s move", "alice@example.com", `data-host="mail.alice.example"`, "1 Queued"} {
		if !strings.Contains(body, want) {
			t.Errorf("operator page lacks %q", want)
		}
	}
	if strings.Contains(body, "Secret-a") || strings.Contains(body, "Secret-b") {
		t.Error("the operator page shows a password")
	}
	hosts, err := e.svc.HostLoads(ctx, ownerID(t, e, "op@example.com"))
	if err != nil || len(hosts) != 1 || hosts[0].Host != "mail.alice.example" || hosts[0].Queued != 1 || hosts[0].Projects != 1 {
		t.Errorf("host load = %+v, %v; want mail.alice.example with 1 queued", hosts, err)
	}
	if _, err := e.svc.HostLoads(ctx, ownerID(t, e, "bob@example.com")); err == nil {
		t.Error("an ordinary user got the host load")
	}
	code, body = op.get(pp + "/migrate")
	if code != 200 || !strings.Contains(body, `id="operator-view"`) || !strings.Contains(body, "alice@example.com") {
		t.Errorf("the operator's view of Alice's project: %d, banner missing", code)
	}
	// The operator's own list is theirs alone.
	if _, body := op.get("/migrations"); strings.Contains(body, "Alice&#39;s move") {
		t.Error("My Migrations of the operator lists Alice's project")
	}
	// Changing is refused, with a message that says why; nothing changed.
	op.get(pp)
	for _, p := range []string{pp + "/delete", pp + "/servers", pp + "/finish", pp + "/passes"} {
		form := url.Values{"confirm": {"delete"}, "kind": {"full"}, "name": {"Taken over"}, "type": {"imap"}, "host": {"x.example"}, "security": {"tls"}}
		code, body := op.post(p, form)
		if code < 400 || code == 404 {
			t.Errorf("POST %s as an operator: %d, want a refusal", p, code)
		}
		if !strings.Contains(body, "only the owner of this migration can change it") && !strings.Contains(body, "Only the owner of this migration can change it") {
			t.Errorf("POST %s as an operator: the page does not say only the owner can change it", p)
		}
	}
	// Stopping works.
	if code, _ := op.post(pp+"/passes/"+pass+"/stop", nil); code != 200 {
		t.Errorf("stop as an operator: %d", code)
	}
	p, err := e.svc.Pass(ctx, ownerID(t, e, "alice@example.com"), id, pass)
	if err != nil || p.State == "running" {
		t.Errorf("after the operator's stop the pass is %q (%v)", p.State, err)
	}
	pr, err := e.svc.Project(ctx, ownerID(t, e, "alice@example.com"), id)
	if err != nil || pr.Name != "Alice's move" || pr.Source.Host != "Mail.Alice.example" || pr.OwnerEmail != "" {
		t.Errorf("the operator changed the project: %+v %v", pr, err)
	}
	// The API tells an operator's token the same.
	opToken := e.token(t, "op@example.com")
	if code, body := e.apiCall(t, opToken, "GET", "/api/projects/"+id, "", nil); code != 200 || !strings.Contains(body, `"owner_email": "alice@example.com"`) {
		t.Errorf("API GET as an operator: %d %s", code, body)
	}
	if code, _ := e.apiCall(t, opToken, "DELETE", "/api/projects/"+id, "", nil); code != 409 {
		t.Errorf("API DELETE as an operator: %d, want 409", code)
	}
	// Demoted, the operator is an ordinary user again.
	if _, err := e.svc.SetOperator(ctx, "op@example.com", false); err != nil {
		t.Fatal(err)
	}
	if code, _ := op.get("/operator"); code != 404 {
		t.Errorf("/operator after demotion: %d", code)
	}
	if code, _ := op.get(pp); code != 404 {
		t.Errorf("Alice's project after demotion: %d", code)
	}
}
