package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/store"
)

func newService(t *testing.T, st *store.Store) *Service {
	t.Helper()
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return New(st, box, []Preset{{ID: "dest", Name: "Dest", Endpoint: Endpoint{Type: "imap", Host: "imap.new.example", Port: 993, Security: "tls"}}})
}

// Leases give a mailbox to one worker at a time and hand it over only
// after the holder stopped renewing.
func TestLeases(t *testing.T) { eachEngine(t, testLeases) }

func testLeases(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	ok, err := s.AcquireLease(ctx, "mailbox:1", "a", 200*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	if ok, _ := s.AcquireLease(ctx, "mailbox:1", "b", time.Second); ok {
		t.Fatal("a second holder got a live lease")
	}
	if ok, _ := s.AcquireLease(ctx, "mailbox:1", "a", 200*time.Millisecond); !ok {
		t.Fatal("the holder could not renew")
	}
	time.Sleep(250 * time.Millisecond)
	if ok, _ := s.AcquireLease(ctx, "mailbox:1", "b", time.Second); !ok {
		t.Fatal("an expired lease was not handed over")
	}
	if err := s.ReleaseLease(ctx, "mailbox:1", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireLease(ctx, "mailbox:1", "c", time.Second); ok {
		t.Fatal("a release by a former holder freed someone else's lease")
	}
}

// Projects, mailboxes and their passwords: ownership, validation,
// duplicates, sealing, and erasure on Finish.
func TestProjectsAndMailboxes(t *testing.T) { eachEngine(t, testProjectsAndMailboxes) }

func testProjectsAndMailboxes(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "Alice@Example.com")
	bob, _ := s.EnsureOwner(ctx, "bob@example.com")
	if again, _ := s.EnsureOwner(ctx, "alice@example.com"); again.ID != alice.ID {
		t.Fatal("the same email must be the same owner")
	}
	if _, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "x", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "nope"}); err == nil {
		t.Error("an unknown preset must be refused")
	}
	var m365Err *InputError
	if _, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "x", Source: Endpoint{Type: "m365", Host: "h"}, DestinationPreset: "dest"}); !errors.As(err, &m365Err) ||
		m365Err.Field != "source_admin" || !strings.Contains(err.Error(), "app registration") {
		t.Errorf("Microsoft 365 without its app registration: %v", err)
	}
	// POP3 sources default to 995 with TLS and 110 without.
	for sec, port := range map[string]int{"tls": 995, "starttls": 110} {
		p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "pop " + sec, Source: Endpoint{Type: "pop3", Host: "pop.old.example", Security: sec}, DestinationPreset: "dest"})
		if err != nil || p.Source.Port != port || p.Source.Type != "pop3" {
			t.Fatalf("POP3 %s source: %+v %v; want port %d", sec, p.Source, err, port)
		}
		if want := map[string]string{"tls": "pop3s", "starttls": "pop3+starttls"}[sec] + "://pop.old.example:" + strconv.Itoa(port); p.Source.URL() != want {
			t.Errorf("URL() = %q, want %q", p.Source.URL(), want)
		}
		if err := s.DeleteProject(ctx, alice.ID, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "Acme", Source: Endpoint{Host: "mail.old.example", Security: "starttls"}, DestinationPreset: "dest"})
	if err != nil || p.Source.Port != 143 {
		t.Fatalf("create: %v, port %d (STARTTLS defaults to 143)", err, p.Source.Port)
	}
	if _, err := s.Project(ctx, bob.ID, p.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another owner must get not found, got %v", err)
	}
	in := MailboxInput{SourceEmail: "a@old.example", SourcePassword: "S3cret-one", DestEmail: "a@new.example", DestPassword: "S3cret-two"}
	ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{in})
	if err != nil || len(ms) != 1 || ms[0].SourceLogin != "a@old.example" {
		t.Fatalf("add: %v %+v", err, ms)
	}
	if _, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{in}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate pair: %v", err)
	}
	if _, err := s.AddMailboxes(ctx, bob.ID, p.ID, []MailboxInput{in}); !errors.Is(err, ErrNotFound) {
		t.Errorf("adding to another owner's project: %v", err)
	}
	var sealed string
	if err := st.DB().QueryRow(`SELECT source_secret FROM mailboxes WHERE id = $1`, ms[0].ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if sealed == "" || strings.Contains(sealed, "S3cret") {
		t.Fatalf("password stored in clear: %q", sealed)
	}
	pass, _ := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassFull})
	_ = pass // no queue configured: refused
	w, err := s.LoadWork(ctx, "missing", ms[0].ID)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadWork of a missing pass: %v %+v", err, w)
	}
	// The worker sees the passwords; the API never does.
	s.SetQueue(nopQueue{})
	ps, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	w, err = s.LoadWork(ctx, ps.ID, ms[0].ID)
	if err != nil || w.SourcePassword != "S3cret-one" || w.DestPassword != "S3cret-two" {
		t.Fatalf("LoadWork: %v", err)
	}
	if err := s.FinishMailboxPass(ctx, ps.ID, ms[0].ID, Outcome{Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	// A second pass within the same second is the mailbox's last pass.
	ps2, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassVerify})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Mailbox(ctx, alice.ID, p.ID, ms[0].ID); m.LastPass == nil || m.LastPass.PassID != ps2.ID {
		t.Fatalf("last pass is not the one started last: %+v", m.LastPass)
	}
	if err := s.FinishMailboxPass(ctx, ps2.ID, ms[0].ID, Outcome{Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishProject(ctx, alice.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().QueryRow(`SELECT source_secret || dest_secret FROM mailboxes WHERE id = $1`, ms[0].ID).Scan(&sealed); err != nil || sealed != "" {
		t.Errorf("Finish left passwords: %q %v", sealed, err)
	}
	if _, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassDelta}); err == nil {
		t.Error("a finished project must be read-only")
	}
}

type nopQueue struct{}

func (nopQueue) Enqueue(_ context.Context, _ *store.Tx, refs []store.JobRef) ([]int64, error) {
	ids := make([]int64, len(refs))
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return ids, nil
}
func (nopQueue) Cancel(context.Context, int64) error { return nil }

func TestLoginLinks(t *testing.T) { eachEngine(t, testLoginLinks) }

func testLoginLinks(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	tok, err := s.RequestLogin(ctx, "new.user@example.com", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.ConsumeLogin(ctx, tok)
	if err != nil || sess.Owner.Email != "new.user@example.com" || sess.CSRF == "" {
		t.Fatalf("consume: %v %+v", err, sess)
	}
	if _, err := s.ConsumeLogin(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Error("a login link must work only once")
	}
	got, err := s.SessionByID(ctx, sess.ID)
	if err != nil || got.Owner.ID != sess.Owner.ID || got.CSRF != sess.CSRF {
		t.Fatalf("session: %v", err)
	}
	var stored string
	_ = st.DB().QueryRow(`SELECT token_hash FROM login_tokens`).Scan(&stored)
	if stored == tok || strings.Contains(stored, tok) {
		t.Error("the login token is stored in clear")
	}
	if err := s.Logout(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByID(ctx, sess.ID); !errors.Is(err, ErrNotFound) {
		t.Error("logout must end the session")
	}
	// Expired links do not work.
	tok, _ = s.RequestLogin(ctx, "late@example.com", "10.0.0.2")
	_, _ = st.DB().Exec(`UPDATE login_tokens SET expires_at = 1`)
	if _, err := s.ConsumeLogin(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Error("an expired link must not log in")
	}
	// Rate limits per address (TestLoginLinkFloodDoesNotLockOutTheOwner)
	// and per IP.
	for i := 0; i < 20; i++ {
		_, _ = s.RequestLogin(ctx, fmt.Sprintf("u%d@example.com", i), "10.9.9.9")
	}
	if _, err := s.RequestLogin(ctx, "another@example.com", "10.9.9.9"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("too many links from one IP: %v", err)
	}
}

// Anyone can ask for login links to anyone's address. A flood of them
// must not lock the owner out: when the limit refuses a request, the
// newest link already sent still works, and a new one can be had once
// the links counted have expired (15 minutes), not after an hour.
func TestLoginLinkFloodDoesNotLockOutTheOwner(t *testing.T) {
	eachEngine(t, testLoginLinkFloodDoesNotLockOutTheOwner)
}

func testLoginLinkFloodDoesNotLockOutTheOwner(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	var newest string
	sent := 0
	for i := 0; ; i++ {
		tok, err := s.RequestLogin(ctx, "owner@example.com", fmt.Sprintf("10.2.0.%d", i))
		if errors.Is(err, ErrRateLimited) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		newest, sent = tok, sent+1
		if i > 50 {
			t.Fatal("no limit on links for one address")
		}
	}
	if sent < 2 || sent > 5 {
		t.Errorf("%d links for one address before the limit", sent)
	}
	// The owner's newest link still logs in, limit or not.
	if sess, err := s.ConsumeLogin(ctx, newest); err != nil || sess.Owner.Email != "owner@example.com" {
		t.Fatalf("the newest link no longer works during a flood: %v", err)
	}
	// 16 minutes later every counted link has expired, and the owner can
	// ask for a new one.
	if _, err := st.DB().Exec(`UPDATE login_requests SET at = at - 960`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`UPDATE login_tokens SET expires_at = expires_at - 960`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.RequestLogin(ctx, "owner@example.com", "10.2.1.1")
	if err != nil {
		t.Fatalf("16 minutes after a flood the owner still cannot get a link: %v", err)
	}
	if _, err := s.ConsumeLogin(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

// An Exchange source is given by its Outlook on the web address and kept
// as host and port (EWS at the default path, TLS); an admin login
// (impersonation) is accepted for Exchange only, lets mailbox rows of
// that side go without passwords, and is what a worker gets for them,
// with the row's email as the mailbox to act on. The admin password is
// never in what the API returns. Deleting a project removes its admin
// logins with it.
func TestExchangeSourceAndAdminLogin(t *testing.T) { eachEngine(t, testExchangeSourceAndAdminLogin) }

func testExchangeSourceAndAdminLogin(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	o, _ := s.EnsureOwner(ctx, "o@example.com")
	if _, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "x", Source: Endpoint{Host: "imap.old.example"}, DestinationPreset: "dest",
		SourceAdmin: &AdminCredentials{Login: "admin", Password: "pw"}}); err == nil || !strings.Contains(err.Error(), "Exchange") {
		t.Errorf("an admin login for an IMAP source: %v", err)
	}
	if _, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "x", Source: Endpoint{Type: "exchange", Host: "https://mail.old.example/owa"}, DestinationPreset: "dest",
		SourceAdmin: &AdminCredentials{Login: "admin"}}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("an admin login without password: %v", err)
	}
	p, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "x", Source: Endpoint{Type: "exchange", Host: "https://Mail.Old.Example/owa/#path=/mail"},
		DestinationPreset: "dest", SourceAdmin: &AdminCredentials{Login: `OLD\\migrator`, Password: "admin pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.Host != "mail.old.example" || p.Source.Port != 443 || p.Source.URL() != "ews://mail.old.example:443" || p.SourceAdmin == nil ||
		*p.SourceAdmin != (AdminInfo{Kind: "ews-impersonation", Login: `OLD\\migrator`, HasSecret: true}) {
		t.Errorf("Exchange source: %+v, URL %s, admin %+v", p.Source, p.Source.URL(), p.SourceAdmin)
	}
	got, err := s.Project(ctx, o.ID, p.ID)
	if err != nil || got.SourceAdmin == nil || got.SourceAdmin.Login != `OLD\\migrator` || got.SourceAdmin.Kind != "ews-impersonation" || !got.SourceAdmin.HasSecret {
		t.Fatalf("stored project: %+v %v", got, err)
	}
	if b, _ := json.Marshal(got); strings.Contains(string(b), "admin pw") || !strings.Contains(string(b), `"source_admin":{"kind":"ews-impersonation","login":"OLD\\\\migrator","has_secret":true}`) {
		t.Fatalf("the admin password is in the project's JSON: %s", b)
	}
	ms, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "Ann@old.example", DestEmail: "ann@new.example", DestPassword: "dst pw"}})
	if err != nil || len(ms) != 1 || !ms[0].HasPasswords {
		t.Fatalf("a row without a source password: %+v %v", ms, err)
	}
	if _, err := s.AddMailboxes(ctx, o.ID, p.ID, []MailboxInput{{SourceEmail: "ben@old.example", DestEmail: "ben@new.example"}}); err == nil {
		t.Error("a row without the destination password (no destination admin) was accepted")
	}
	if n, err := s.UnreadableSecrets(ctx); n != 0 || err != nil {
		t.Errorf("UnreadableSecrets counts an admin row: %d %v", n, err)
	}
	s.SetQueue(nopQueue{})
	pass, err := s.StartPass(ctx, o.ID, p.ID, PassInput{Kind: PassTrial})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.LoadWork(ctx, pass.ID, ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.SourceLogin != `OLD\\migrator` || w.SourcePassword != "admin pw" || w.SourceMailbox != "ann@old.example" ||
		w.DestLogin != "ann@new.example" || w.DestPassword != "dst pw" || w.DestMailbox != "" {
		t.Errorf("work: source %q/%q as %q, destination %q/%q as %q", w.SourceLogin, w.SourcePassword, w.SourceMailbox, w.DestLogin, w.DestPassword, w.DestMailbox)
	}
	gone, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "y", Source: Endpoint{Type: "exchange", Host: "mail.old.example"},
		DestinationPreset: "dest", SourceAdmin: &AdminCredentials{Login: "admin2", Password: "pw2"}})
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := st.Credentials(ctx, gone.ID); err != nil || len(cs) != 1 || cs[0].Kind != "ews-impersonation" || cs[0].Login != "admin2" ||
		cs[0].Secret == "" || strings.Contains(cs[0].Secret, "pw2") {
		t.Fatalf("the admin login was not stored sealed in project_credentials: %+v %v", cs, err)
	}
	// A new login without a password keeps the stored password; an
	// app registration's fields are refused for an Exchange side.
	if _, err := s.UpdateProject(ctx, o.ID, gone.ID, ProjectUpdate{SourceAdmin: &AdminCredentials{Login: "admin3"}}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.admin(ctx, gone.ID, SideSource); err != nil || a.Kind != kindEWS || a.Login != "admin3" || a.Password != "pw2" {
		t.Errorf("after changing the login: %v %v", a, err)
	}
	var ie *InputError
	if _, err := s.UpdateProject(ctx, o.ID, gone.ID, ProjectUpdate{SourceAdmin: &AdminCredentials{Tenant: "contoso.onmicrosoft.com", ClientID: "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", ClientSecret: "x"}}); !errors.As(err, &ie) || ie.Field != "source_admin.tenant" {
		t.Errorf("an app registration for an Exchange side: %v", err)
	}
	if err := s.DeleteProject(ctx, o.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if cs, err := st.Credentials(ctx, gone.ID); err != nil || len(cs) != 0 {
		t.Errorf("the admin login outlived its project: %+v (%v)", cs, err)
	}
}
