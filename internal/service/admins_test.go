package service

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/store"
)

// A Microsoft 365 side's app credentials on both engines: stored sealed
// with the project, shown without the secret, opened for the worker, not
// taken for unreadable passwords at start-up, replaced by PATCH (an empty
// secret keeps the stored one), erased when the project finishes and
// removed with it.
func TestAdminCredentials(t *testing.T) { eachEngine(t, testAdminCredentials) }

func testAdminCredentials(t *testing.T, st *store.Store) {
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, box, []Preset{{ID: "m365", Name: "Microsoft 365", Endpoint: Endpoint{Type: TypeM365, Host: m365Host, Port: 443, Security: "tls"}}})
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	o, err := s.EnsureOwner(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	const tenant, client, secret = "contoso.onmicrosoft.com", "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", "Svc~Secret-42"
	in := ProjectInput{Name: "From 365 to 365", Source: Endpoint{Type: TypeM365}, DestinationPreset: "m365",
		SourceAdmin:      &AdminCredentials{Tenant: tenant, ClientID: client, ClientSecret: secret},
		DestinationAdmin: &AdminCredentials{Tenant: tenant, ClientID: client}}
	var ie *InputError
	if _, err := s.CreateProject(ctx, o.ID, in); !errors.As(err, &ie) || ie.Field != "destination_admin.client_secret" {
		t.Fatalf("no destination secret: %v", err)
	}
	in.DestinationAdmin.ClientSecret = secret + "-dst"
	in.DestinationAdmin.ClientID = "not a guid"
	if _, err := s.CreateProject(ctx, o.ID, in); !errors.As(err, &ie) || ie.Field != "destination_admin.client_id" || strings.Contains(err.Error(), secret) {
		t.Fatalf("a bad client id: %v", err)
	}
	in.DestinationAdmin.ClientID = client
	p, err := s.CreateProject(ctx, o.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.Host != m365Host || p.Source.Port != 443 {
		t.Errorf("a Microsoft 365 source: %+v", p.Source)
	}
	got, err := s.Project(ctx, o.ID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), secret) || got.SourceAdmin == nil || got.DestinationAdmin == nil || !got.SourceAdmin.HasSecret ||
		got.SourceAdmin.ClientID != client || got.SourceAdmin.Tenant != tenant {
		t.Fatalf("project as read: %s", b)
	}
	if _, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "a@contoso.com", DestEmail: "a@fabrikam.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "b@contoso.com", SourceLogin: "b", DestEmail: "b@fabrikam.com"}}); !errors.As(err, &ie) || ie.Field != "source_login" {
		t.Errorf("a login on a Microsoft 365 side: %v", err)
	}
	if n, err := s.UnreadableSecrets(ctx); err != nil || n != 0 {
		t.Errorf("UnreadableSecrets = %d, %v; rows using the app credentials have no password to read", n, err)
	}
	a, err := s.admin(ctx, p.ID, SideDestination)
	if err != nil || a.ClientSecret != secret+"-dst" {
		t.Fatalf("destination credentials opened: %v %v", a, err)
	}
	// A new secret for the source; the destination keeps its own.
	if _, err := s.UpdateProject(ctx, o.ID, p.ID, ProjectUpdate{SourceAdmin: &AdminCredentials{Tenant: tenant, ClientID: client, ClientSecret: "New~Secret"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProject(ctx, o.ID, p.ID, ProjectUpdate{DestinationAdmin: &AdminCredentials{Tenant: "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f", ClientID: client}}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.admin(ctx, p.ID, SideSource); err != nil || a.ClientSecret != "New~Secret" {
		t.Errorf("source after PATCH: %v %v", a, err)
	}
	if a, err := s.admin(ctx, p.ID, SideDestination); err != nil || a.ClientSecret != secret+"-dst" || a.Tenant != "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f" {
		t.Errorf("destination after a PATCH without a secret: %v %v", a, err)
	}
	if _, err := s.FinishProject(ctx, o.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Project(ctx, o.ID, p.ID); got.SourceAdmin == nil || got.SourceAdmin.HasSecret {
		t.Errorf("after finishing: %+v", got.SourceAdmin)
	}
	if _, err := s.admin(ctx, p.ID, SideSource); !errors.Is(err, ErrSecretKey) {
		t.Errorf("opening an erased secret: %v", err)
	}
	if err := s.DeleteProject(ctx, o.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if cs, err := st.Credentials(ctx, p.ID); err != nil || len(cs) != 0 {
		t.Errorf("credentials left after deleting the project: %v %v", cs, err)
	}
}

// A Gmail source is IMAP at imap.gmail.com with implicit TLS, whatever
// the input says about the server, and logs in with each mailbox's (app)
// password: it takes no app credentials.
func TestGmailSource(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := newService(t, st)
	ctx := context.Background()
	o, err := s.EnsureOwner(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	in := ProjectInput{Name: "From Gmail", Source: Endpoint{Type: TypeGmail, Host: "ignored.example", Port: 143, Security: "none"}, DestinationPreset: "dest"}
	p, err := s.CreateProject(ctx, o.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Source.URL(); got != "imaps://imap.gmail.com:993" {
		t.Errorf("Gmail source address %q, want imaps://imap.gmail.com:993", got)
	}
	in.SourceAdmin = &AdminCredentials{Tenant: "contoso.onmicrosoft.com", ClientID: "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", ClientSecret: "x"}
	var ie *InputError
	if _, err := s.CreateProject(ctx, o.ID, in); !errors.As(err, &ie) || ie.Field != "source_admin" {
		t.Errorf("app credentials for a Gmail source: %v", err)
	}
	if _, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "a@gmail.com", DestEmail: "a@new.example", DestPassword: "p"}}); !errors.As(err, &ie) || ie.Field != "source_password" {
		t.Errorf("a Gmail row without its app password: %v", err)
	}
}

// An end user asked for passwords of a pair whose destination is
// Microsoft 365 gives only the source's: the destination keeps using the
// project's app registration.
func TestEndUserPasswordsWithM365Destination(t *testing.T) {
	eachEngine(t, testEndUserPasswordsWithM365Destination)
}

func testEndUserPasswordsWithM365Destination(t *testing.T, st *store.Store) {
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, box, []Preset{{ID: "m365", Name: "Microsoft 365", Endpoint: Endpoint{Type: TypeM365, Host: m365Host, Port: 443, Security: "tls"}}})
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	o, err := s.EnsureOwner(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "To 365", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "m365",
		DestinationAdmin: &AdminCredentials{Tenant: "contoso.onmicrosoft.com", ClientID: "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", ClientSecret: "Svc~Secret-42"}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "ann@old.example", DestEmail: "ann@contoso.com", AskUser: true}})
	if err != nil {
		t.Fatal(err)
	}
	links, err := s.AskForPasswords(ctx, o.ID, p.ID, nil)
	if err != nil || len(links) != 1 {
		t.Fatalf("ask for passwords: %v %d", err, len(links))
	}
	req, err := s.PasswordRequest(ctx, links[0].Token)
	if err != nil || !req.DestApp || req.SourceApp {
		t.Fatalf("the link's page: %+v %v; want only the source's password asked", req, err)
	}
	if bad, err := s.SubmitEndUserPasswords(ctx, links[0].Token, "192.0.2.1", "Ann-Old-1", ""); err != nil || len(bad) != 0 {
		t.Fatalf("submit the source password only: %v %v", bad, err)
	}
	all, err := st.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.MailboxID == ms[0].ID && (x.Dest != adminMarker || x.Source == "" || x.Source == adminMarker) {
			t.Errorf("stored secrets: source %q, destination %q; want a sealed source password and the app marker", x.Source, x.Dest)
		}
	}
}
