package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/store"
)

// The source server can be corrected after the project was created (what
// Solve Issue asks for), field by field, by its owner only, not while a
// pass runs and not once finished.
func TestUpdateProjectSource(t *testing.T) { eachEngine(t, testUpdateProjectSource) }

func testUpdateProjectSource(t *testing.T, st *store.Store) {
	s := newService(t, st)
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	bob, _ := s.EnsureOwner(ctx, "bob@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Acme", Source: Endpoint{Host: "mail.old.exmaple"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	host := "mail.old.example"
	got, err := s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Host: &host}})
	if err != nil || got.Source.Host != host || got.Source.Port != 993 || got.Source.Security != "tls" || got.Name != "Acme" {
		t.Fatalf("corrected host: %v %+v", err, got)
	}
	// Another security moves a default port along; an explicit port stays.
	sec := "starttls"
	if got, err = s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Security: &sec}}); err != nil || got.Source.Port != 143 {
		t.Fatalf("security: %v, port %d", err, got.Source.Port)
	}
	port, name := 1143, "Acme move"
	if got, err = s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Name: &name, Source: &EndpointUpdate{Port: &port}}); err != nil ||
		got.Source.Port != 1143 || got.Name != "Acme move" {
		t.Fatalf("port and name: %v %+v", err, got)
	}
	if again, _ := s.Project(ctx, alice.ID, p.ID); again.Source.Host != host || again.Source.Port != 1143 || again.Source.Security != "starttls" {
		t.Errorf("not stored: %+v", again.Source)
	}
	// Validated like a new project.
	bad := "https://mail.old.example/"
	var ie *InputError
	if _, err := s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Host: &bad}}); !errors.As(err, &ie) || ie.Field != "source.host" {
		t.Errorf("a URL as host: %v", err)
	}
	none := "none"
	if _, err := s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Security: &none}}); !errors.As(err, &ie) ||
		ie.Field != "source.allow_plaintext" {
		t.Errorf("no encryption without allow_plaintext: %v", err)
	}
	if _, err := s.UpdateProject(ctx, bob.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Host: &host}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("another owner: %v", err)
	}
	// Not while a pass works on a mailbox.
	ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{{SourceEmail: "a@old.example", SourcePassword: "p1", DestEmail: "a@new.example", DestPassword: "p2"}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Host: &host}}); !errors.Is(err, ErrConflict) {
		t.Errorf("during a pass: %v", err)
	}
	if err := s.FinishMailboxPass(ctx, ps.ID, ms[0].ID, Outcome{Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishProject(ctx, alice.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProject(ctx, alice.ID, p.ID, ProjectUpdate{Source: &EndpointUpdate{Host: &host}}); err == nil {
		t.Error("a finished project must be read-only")
	}
}

// Deleting a project removes it with its mailboxes, their sealed
// passwords, passes, history and failures; only its owner can, and not
// while a pass runs.
func TestDeleteProject(t *testing.T) { eachEngine(t, testDeleteProject) }

func testDeleteProject(t *testing.T, st *store.Store) {
	s := newService(t, st)
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	bob, _ := s.EnsureOwner(ctx, "bob@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Acme", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Other", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	in := []MailboxInput{{SourceEmail: "a@old.example", SourcePassword: "Secret-1", DestEmail: "a@new.example", DestPassword: "Secret-2"}}
	ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMailboxes(ctx, alice.ID, keep.ID, in); err != nil {
		t.Fatal(err)
	}
	ps, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassFull})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProject(ctx, alice.ID, p.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("delete during a pass: %v", err)
	}
	if err := s.FinishMailboxPass(ctx, ps.ID, ms[0].ID, Outcome{Status: StatusCompletedWithErrors,
		Failures: []FailedItem{{Folder: "INBOX", UID: 7, Size: 9, Kind: "item", Reason: "too big", Subject: "private"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProject(ctx, bob.ID, p.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete by another owner: %v", err)
	}
	if err := s.DeleteProject(ctx, alice.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Project(ctx, alice.ID, p.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the project is still there: %v", err)
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM mailboxes WHERE project_id = '` + p.ID + `'`,
		`SELECT COUNT(*) FROM passes WHERE project_id = '` + p.ID + `'`,
		`SELECT COUNT(*) FROM mailbox_passes WHERE mailbox_id = '` + ms[0].ID + `'`,
		`SELECT COUNT(*) FROM mailbox_events WHERE mailbox_id = '` + ms[0].ID + `'`,
		`SELECT COUNT(*) FROM failed_items WHERE mailbox_id = '` + ms[0].ID + `'`,
	} {
		var n int
		if err := st.DB().QueryRow(q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", q, n, err)
		}
	}
	if other, err := s.Mailboxes(ctx, alice.ID, keep.ID); err != nil || len(other) != 1 || !other[0].HasPasswords {
		t.Errorf("the other project was touched: %v %+v", err, other)
	}
	if err := s.DeleteProject(ctx, alice.ID, p.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
}

// A server whose secret key changed cannot open the stored passwords:
// LoadWork says so with ErrSecretKey (which the worker turns into a
// failed mailbox at once, not River retries), and UnreadableSecrets
// counts the mailboxes affected for the start-up warning.
func TestSecretKeyChanged(t *testing.T) { eachEngine(t, testSecretKeyChanged) }

func testSecretKeyChanged(t *testing.T, st *store.Store) {
	s := newService(t, st)
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Acme", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{{SourceEmail: "a@old.example", SourcePassword: "Secret-1",
		DestEmail: "a@new.example", DestPassword: "Secret-2"}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.UnreadableSecrets(ctx); err != nil || n != 0 {
		t.Errorf("with the right key: %d unreadable (%v)", n, err)
	}
	other := make([]byte, 32)
	other[0] = 1
	box, err := secrets.NewBox(other)
	if err != nil {
		t.Fatal(err)
	}
	rekeyed := New(st, box, s.Presets())
	rekeyed.SetQueue(nopQueue{})
	_, err = rekeyed.LoadWork(ctx, ps.ID, ms[0].ID)
	if !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), "secret key changed") || !strings.Contains(err.Error(), "re-enter the passwords") {
		t.Fatalf("LoadWork with another key: %v", err)
	}
	if strings.Contains(err.Error(), "Secret-") {
		t.Fatal("the error shows a password")
	}
	if n, err := rekeyed.UnreadableSecrets(ctx); err != nil || n != 1 {
		t.Errorf("with another key: %d unreadable (%v)", n, err)
	}
	sol := Solve(ClassSecretKey)
	if !strings.Contains(sol.Explanation, "secret key changed") || !strings.Contains(strings.Join(sol.Steps, " "), "Re-enter the passwords") {
		t.Errorf("Solve Issue: %+v", sol)
	}
	// Re-entered passwords work with the new key.
	if _, err := rekeyed.UpdateMailbox(ctx, alice.ID, p.ID, ms[0].ID, MailboxInput{SourcePassword: "New-1", DestPassword: "New-2"}); err == nil {
		t.Error("a mailbox in a running pass was changed")
	}
	if err := rekeyed.FinishMailboxPass(ctx, ps.ID, ms[0].ID, Outcome{Status: StatusFailed, Class: ClassSecretKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := rekeyed.UpdateMailbox(ctx, alice.ID, p.ID, ms[0].ID, MailboxInput{SourcePassword: "New-1", DestPassword: "New-2"}); err != nil {
		t.Fatal(err)
	}
	ps2, err := rekeyed.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	if w, err := rekeyed.LoadWork(ctx, ps2.ID, ms[0].ID); err != nil || w.SourcePassword != "New-1" {
		t.Errorf("after re-entering: %v", err)
	}
}

// Errors about an email field say what is wrong without quoting what was
// typed: it may be a password typed into the wrong field.
func TestEmailErrorsDoNotEchoTheValue(t *testing.T) { eachEngine(t, testEmailErrorsDoNotEchoTheValue) }

func testEmailErrorsDoNotEchoTheValue(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	const typed = "Hunter2-not-an-address"
	if _, err := s.EnsureOwner(ctx, typed); err == nil || strings.Contains(err.Error(), typed) {
		t.Errorf("EnsureOwner: %v", err)
	}
	if _, err := s.RequestLogin(ctx, typed, "10.0.0.1"); err == nil || strings.Contains(err.Error(), typed) {
		t.Errorf("RequestLogin: %v", err)
	}
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Acme", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []MailboxInput{
		{SourceEmail: typed, SourcePassword: "p", DestEmail: "a@new.example", DestPassword: "p"},
		{SourceEmail: "a@old.example", SourcePassword: "p", DestEmail: typed + "@", DestPassword: "p"},
	} {
		_, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{in})
		if err == nil || strings.Contains(err.Error(), typed) || !strings.Contains(err.Error(), "not a valid email address") {
			t.Errorf("AddMailboxes: %v", err)
		}
		for _, ie := range ValidateMailbox(in) {
			if strings.Contains(ie.Message, typed) {
				t.Errorf("ValidateMailbox: %s", ie.Message)
			}
		}
	}
}

// IPv6 addresses are accepted as the source server (with or without
// brackets), and no encryption needs the explicit plaintext opt-in; the
// invalid-certificate option means nothing without TLS and is dropped.
func TestProjectSourceValidation(t *testing.T) { eachEngine(t, testProjectSourceValidation) }

func testProjectSourceValidation(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	for in, want := range map[string]string{"[2001:db8::25]": "2001:db8::25", "2001:db8::25": "2001:db8::25", "192.0.2.25": "192.0.2.25"} {
		p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "v6", Source: Endpoint{Host: in}, DestinationPreset: "dest"})
		if err != nil || p.Source.Host != want {
			t.Errorf("host %q: %v %q", in, err, p.Source.Host)
		}
	}
	var ie *InputError
	if _, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "x", Source: Endpoint{Host: "h.example", Security: "none"}, DestinationPreset: "dest"}); !errors.As(err, &ie) ||
		ie.Field != "source.allow_plaintext" {
		t.Errorf("none without allow_plaintext: %v", err)
	}
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "x", Source: Endpoint{Host: "h.example", Security: "none", AllowPlaintext: true, Insecure: true},
		DestinationPreset: "dest"})
	if err != nil || p.Source.Insecure || p.Source.Port != 143 {
		t.Errorf("none: %v %+v", err, p.Source)
	}
}
