package service_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/jobs"
	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	m365Tenant   = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
	m365Domain   = "contoso.onmicrosoft.com"
	m365App      = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d" // Mail.ReadWrite
	m365ReadApp  = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0" // Mail.Read only
	m365Secret   = "m365~Svc.Secret-0123456789"
	m365Password = "Dovecot-Secret-1"
)

// m365Env is a service with a Microsoft 365 preset and an IMAP preset,
// its queue and one worker, a Dovecot source and destination and the
// Graph test server with its token endpoint.
type m365Env struct {
	t        *testing.T
	svc      *service.Service
	gs       *graphserver.Server
	src, dst *testenv.Dovecot
	owner    string
}

func newM365Env(t *testing.T) *m365Env {
	t.Helper()
	e := &m365Env{t: t}
	e.src = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.gs = graphserver.Start(t, nil)
	e.gs.AddTenant(m365Tenant, m365Domain)
	e.gs.SetImportMime(m365Tenant, true)
	e.gs.AddApp(m365Tenant, m365App, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.gs.AddClientSecret(m365App, m365Secret, time.Time{})
	e.gs.AddApp(m365Tenant, m365ReadApp, graphserver.RoleMailRead)
	e.gs.AddClientSecret(m365ReadApp, m365Secret, time.Time{})

	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.svc = service.New(st, box, []service.Preset{
		{ID: "m365", Name: "Microsoft 365", Endpoint: service.Endpoint{Type: service.TypeM365, Host: "graph.microsoft.com", Port: 443, Security: "tls"}},
		{ID: "imap", Name: "IMAP", Endpoint: service.Endpoint{Type: "imap", Host: e.dst.Host, Port: e.dst.Port, Security: "none", AllowPlaintext: true}},
	})
	r := &jobs.Runner{Service: e.svc, State: st, Log: slog.New(slog.DiscardHandler), Name: "w1", Holder: "w1", Connections: 2,
		OpenHook: func(o *connector.OpenOptions) {
			// The Graph test server stands in for graph.microsoft.com
			// and login.microsoftonline.com.
			o.ServiceURL = e.gs.URL
			o.RootCAs = e.gs.CertPool
			if o.Credentials.OAuth != nil {
				o.Credentials.OAuth.TokenURL = e.gs.TokenURL("{tenant}")
			}
		}}
	q, err := jobs.Open(context.Background(), st, r, jobs.Config{MaxWorkers: 4, Work: true, RescueAfter: time.Hour, DataDir: dir})
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
	o, err := e.svc.EnsureOwner(context.Background(), "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.owner = o.ID
	return e
}

// pass runs a pass over the project's mailboxes and returns the mailboxes
// by source address once it is over.
func (e *m365Env) pass(projectID string, kind service.PassKind) map[string]service.Mailbox {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.svc.StartPass(ctx, e.owner, projectID, service.PassInput{Kind: kind})
	if err != nil {
		e.t.Fatalf("start %s pass: %v", kind, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err = e.svc.Pass(ctx, e.owner, projectID, p.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		if p.State == "completed" || p.State == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s pass not over after 2 minutes: %+v", kind, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ms, err := e.svc.Mailboxes(ctx, e.owner, projectID)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]service.Mailbox{}
	for _, m := range ms {
		out[m.SourceEmail] = m
	}
	return out
}

// balanced checks a copying pass's counts: every source message is
// copied, already present, skipped or failed.
func balanced(t *testing.T, who string, lp *service.MailboxPass, wantCopied int64) {
	t.Helper()
	if lp == nil {
		t.Fatalf("%s: no pass recorded", who)
	}
	if lp.TotalMsgs != lp.Copied+lp.Present+lp.Skipped+lp.Failed {
		t.Errorf("%s: %d source messages but %d copied + %d present + %d skipped + %d failed", who, lp.TotalMsgs, lp.Copied, lp.Present, lp.Skipped, lp.Failed)
	}
	if lp.Copied != wantCopied || lp.Failed != 0 {
		t.Errorf("%s: copied %d, failed %d; want %d copied, none failed", who, lp.Copied, lp.Failed, wantCopied)
	}
}

// An IMAP source (a real Dovecot) into a Microsoft 365 preset with the
// project's app registration: rows carry addresses only on the Microsoft
// 365 side; the trial checks the token, the permission and that each
// mailbox exists, each failure with its own Solve Issue; the migration
// copies everything, with balanced counts, and a second pass copies
// nothing again. Then Microsoft 365 as a source (an app with Mail.Read)
// back into IMAP.
func TestM365TrialAndMigration(t *testing.T) {
	e := newM365Env(t)
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol"} {
		e.src.AddUser(t, u, m365Password)
	}
	testenv.SeedMailbox(t, e.src, "alice", m365Password, 0, 6, 0)
	const alice = "alice@" + m365Domain
	e.gs.AddMailbox(m365Tenant, alice)
	e.gs.AddUserWithoutMailbox(m365Tenant, "carol@"+m365Domain) // licensed without Exchange Online

	p, err := e.svc.CreateProject(ctx, e.owner, service.ProjectInput{Name: "To Microsoft 365", DestinationPreset: "m365",
		Source:           service.Endpoint{Host: e.src.Host, Port: e.src.Port, Security: "none", AllowPlaintext: true},
		DestinationAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: m365App, ClientSecret: m365Secret}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(p); strings.Contains(string(b), m365Secret) || p.DestinationAdmin == nil || !p.DestinationAdmin.HasSecret {
		t.Fatalf("created project as the API shows it: %s", b)
	}
	var rows []service.MailboxInput
	for _, u := range []string{"alice", "bob", "carol"} {
		rows = append(rows, service.MailboxInput{SourceEmail: u + "@old.example", SourceLogin: u, SourcePassword: m365Password,
			DestEmail: u + "@" + m365Domain})
	}
	if _, err := e.svc.AddMailboxes(ctx, e.owner, p.ID, rows); err != nil {
		t.Fatalf("rows with only an address on the Microsoft 365 side: %v", err)
	}

	ms := e.pass(p.ID, service.PassTrial)
	if m := ms["alice@old.example"]; m.Status != service.StatusReady {
		t.Errorf("alice after the trial: %s (%s)", m.Status, m.MoreInfo)
	}
	for _, u := range []string{"bob", "carol"} { // no such user; a user without a mailbox
		m := ms[u+"@old.example"]
		if m.Status != service.StatusFailed || m.SolveIssue == nil || m.SolveIssue.Class != service.ClassMailboxMissing {
			t.Errorf("%s after the trial: %s, %+v (%s); want Failed, %s", u, m.Status, m.SolveIssue, m.MoreInfo, service.ClassMailboxMissing)
		}
	}
	if n := len(e.gs.AllMessages(alice)); n != 0 {
		t.Fatalf("the trial wrote %d messages", n)
	}

	ms = e.pass(p.ID, service.PassFull)
	m := ms["alice@old.example"]
	if m.Status != service.StatusCompleted {
		t.Fatalf("alice after the migration: %s (%s)", m.Status, m.MoreInfo)
	}
	balanced(t, "alice, full pass", m.LastPass, 6)
	if n := len(e.gs.Messages(alice, "Inbox")); n != 3 {
		t.Errorf("Microsoft 365 Inbox holds %d messages, want 3", n)
	}
	if n := len(e.gs.AllMessages(alice)); n != 6 {
		t.Errorf("Microsoft 365 holds %d messages, want 6", n)
	}
	for _, x := range e.gs.AllMessages(alice) {
		if x.IsDraft {
			t.Errorf("%q was stored as a draft", x.Subject)
		}
	}
	ms = e.pass(p.ID, service.PassDelta)
	m = ms["alice@old.example"]
	balanced(t, "alice, delta pass", m.LastPass, 0)
	if n := len(e.gs.AllMessages(alice)); n != 6 {
		t.Errorf("after the delta pass Microsoft 365 holds %d messages, want 6 (no duplicates)", n)
	}

	// The same mailbox with an app that may only read: the trial fails
	// with the permission class on the destination, naming the grant.
	ro, err := e.svc.CreateProject(ctx, e.owner, service.ProjectInput{Name: "Read-only app", DestinationPreset: "m365",
		Source:           service.Endpoint{Host: e.src.Host, Port: e.src.Port, Security: "none", AllowPlaintext: true},
		DestinationAdmin: &service.AdminCredentials{Tenant: m365Domain, ClientID: m365ReadApp, ClientSecret: m365Secret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMailboxes(ctx, e.owner, ro.ID, rows[:1]); err != nil {
		t.Fatal(err)
	}
	m = e.pass(ro.ID, service.PassTrial)["alice@old.example"]
	if m.Status != service.StatusFailed || m.SolveIssue == nil || m.SolveIssue.Class != service.ClassPermission ||
		!strings.Contains(strings.Join(m.SolveIssue.Steps, " "), "Mail.ReadWrite") {
		t.Errorf("trial with a read-only app: %s, %+v (%s); want Failed, permission, naming Mail.ReadWrite", m.Status, m.SolveIssue, m.MoreInfo)
	}
	if strings.Contains(m.MoreInfo, m365Secret) {
		t.Error("More info shows the client secret")
	}

	// A wrong client secret is an authentication failure.
	bad, err := e.svc.CreateProject(ctx, e.owner, service.ProjectInput{Name: "Wrong secret", DestinationPreset: "m365",
		Source:           service.Endpoint{Host: e.src.Host, Port: e.src.Port, Security: "none", AllowPlaintext: true},
		DestinationAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: m365App, ClientSecret: "not-the-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMailboxes(ctx, e.owner, bad.ID, rows[:1]); err != nil {
		t.Fatal(err)
	}
	m = e.pass(bad.ID, service.PassTrial)["alice@old.example"]
	if m.Status != service.StatusFailed || m.SolveIssue == nil || m.SolveIssue.Class != service.ClassAuth {
		t.Errorf("trial with a wrong secret: %s, %+v (%s); want Failed, %s", m.Status, m.SolveIssue, m.MoreInfo, service.ClassAuth)
	}

	// Microsoft 365 as the source, read with Mail.Read, into IMAP.
	e.dst.AddUser(t, "alice", m365Password)
	back, err := e.svc.CreateProject(ctx, e.owner, service.ProjectInput{Name: "From Microsoft 365", DestinationPreset: "imap",
		Source:      service.Endpoint{Type: service.TypeM365},
		SourceAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: m365ReadApp, ClientSecret: m365Secret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMailboxes(ctx, e.owner, back.ID, []service.MailboxInput{{SourceEmail: alice, DestEmail: "alice@new.example",
		DestLogin: "alice", DestPassword: m365Password}}); err != nil {
		t.Fatal(err)
	}
	if m = e.pass(back.ID, service.PassTrial)[alice]; m.Status != service.StatusReady {
		t.Fatalf("trial from Microsoft 365: %s (%s)", m.Status, m.MoreInfo)
	}
	m = e.pass(back.ID, service.PassFull)[alice]
	if m.Status != service.StatusCompleted {
		t.Fatalf("migration from Microsoft 365: %s (%s)", m.Status, m.MoreInfo)
	}
	balanced(t, "from Microsoft 365", m.LastPass, 6)
	got := 0
	for _, msgs := range testenv.Fingerprint(t, e.dst, "alice", m365Password) {
		got += len(msgs)
	}
	if got != 6 {
		t.Errorf("the IMAP destination holds %d messages, want 6", got)
	}
}
