package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

// The operator's API: an operator's token lists every project with its
// owner, reads the load per source host and stops another user's pass.
// An ordinary user's token gets 404 with the body a project or pass that
// does not exist gets, so it learns nothing about others' projects.
func TestAPIOperators(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	if _, err := e.svc.SetOperator(ctx, "op@example.com", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.EnsureOwner(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.EnsureOwner(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	alice := ownerID(t, e, "alice@example.com")
	p, err := e.svc.CreateProject(ctx, alice, service.ProjectInput{Name: "Alice's move", Source: service.Endpoint{Host: "Mail.Alice.example", Security: "tls"},
		DestinationPreset: "new-mail"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMailboxes(ctx, alice, p.ID, []service.MailboxInput{{SourceEmail: "a@old.example", SourcePassword: "Secret-a",
		DestEmail: "a@new.example", DestPassword: "Secret-b"}}); err != nil {
		t.Fatal(err)
	}
	pass, err := e.svc.StartPass(ctx, alice, p.ID, service.PassInput{Kind: service.PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	stop := "/api/projects/" + p.ID + "/passes/" + pass.ID + "/stop"

	// Bob: the operator routes and Alice's pass answer as what is not there.
	bob := e.token(t, "bob@example.com")
	_, missing := e.apiCall(t, bob, "GET", "/api/projects/no-such-project", "", nil)
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/operator/projects"}, {"GET", "/api/operator/hosts"}, {"POST", stop},
		{"POST", "/api/projects/no-such-project/passes/no-such-pass/stop"}, {"POST", "/api/projects/" + p.ID + "/passes/no-such-pass/stop"},
	} {
		code, body := e.apiCall(t, bob, c.method, c.path, "", nil)
		if code != 404 || body != missing {
			t.Errorf("%s %s as an ordinary user: %d %s; want 404 %s", c.method, c.path, code, body, missing)
		}
	}
	if st, _ := e.svc.Pass(ctx, alice, p.ID, pass.ID); st.State != "running" {
		t.Fatalf("an ordinary user's stop changed the pass to %q", st.State)
	}
	if code, _ := e.apiCall(t, "", "GET", "/api/operator/projects", "", nil); code != 401 {
		t.Errorf("operator projects without a token: %d, want 401", code)
	}

	op := e.token(t, "op@example.com")
	code, body := e.apiCall(t, op, "GET", "/api/operator/projects", "", nil)
	var ps []service.ProjectSummary
	if err := json.Unmarshal([]byte(body), &ps); code != 200 || err != nil {
		t.Fatalf("operator projects: %d %v\n%s", code, err, body)
	}
	if len(ps) != 1 || ps[0].ID != p.ID || ps[0].OwnerEmail != "alice@example.com" || ps[0].SourceHost != "Mail.Alice.example" ||
		ps[0].Mailboxes[service.StatusQueued] != 1 {
		t.Errorf("operator projects = %+v; want Alice's project with its owner and 1 queued mailbox", ps)
	}
	if strings.Contains(body, "Secret-") {
		t.Error("the operator's project list holds a password")
	}
	code, body = e.apiCall(t, op, "GET", "/api/operator/hosts", "", nil)
	var hl hostLoads
	if err := json.Unmarshal([]byte(body), &hl); code != 200 || err != nil {
		t.Fatalf("operator hosts: %d %v\n%s", code, err, body)
	}
	if len(hl.Hosts) != 1 || hl.Hosts[0].Host != "mail.alice.example" || hl.Hosts[0].Queued != 1 || hl.Hosts[0].Projects != 1 {
		t.Errorf("operator hosts = %+v; want mail.alice.example with 1 queued", hl)
	}
	if code, body := e.apiCall(t, op, "POST", stop, "", nil); code != 200 || strings.Contains(body, `"state": "running"`) {
		t.Errorf("stop as an operator: %d %s", code, body)
	}
	if st, err := e.svc.Pass(ctx, alice, p.ID, pass.ID); err != nil || st.State == "running" {
		t.Errorf("after the operator's stop the pass is %q (%v)", st.State, err)
	}

	// Demoted, the operator's token is an ordinary user's again.
	if _, err := e.svc.SetOperator(ctx, "op@example.com", false); err != nil {
		t.Fatal(err)
	}
	if code, body := e.apiCall(t, op, "GET", "/api/operator/projects", "", nil); code != 404 || body != missing {
		t.Errorf("operator projects after demotion: %d %s", code, body)
	}
}
