package service_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/jobs"
	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	delegatedApp = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f" // public client, no application permissions
	signInURI    = "https://mailferry.example/password/microsoft/callback"
)

// An end user of a project whose Microsoft 365 source is of kind
// m365-delegated signs in through their link: the authorize URL carries
// PKCE and the state, not the client secret; a callback with another
// browser's nonce, a second use of a state, and a declined consent are
// refused without storing anything (the declined one keeps the link
// usable); the good callback stores the user's refresh token sealed for
// that mailbox only, uses the link up and ends "Waiting for end user";
// then a trial pass logs in to Graph with that token (refresh grant at
// the operator's token endpoint) and reads the user's own mailbox.
func TestEndUserSignInWithMicrosoft(t *testing.T) {
	ctx := context.Background()
	gs := graphserver.Start(t, nil)
	gs.AddTenant(m365Tenant, m365Domain)
	gs.AddApp(m365Tenant, delegatedApp)
	gs.AddRedirectURI(delegatedApp, signInURI)
	gs.AddApp(m365Tenant, m365App, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	gs.AddClientSecret(m365App, m365Secret, time.Time{})
	ann, bob := "ann@"+m365Domain, "bob@"+m365Domain
	gs.AddMailbox(m365Tenant, ann)
	gs.AddMailbox(m365Tenant, bob)
	gs.AddMailbox(m365Tenant, "ann.new@"+m365Domain)
	for _, subj := range []string{"One", "Two", "Three"} {
		gs.SeedMessage(ann, "Inbox", graphserver.Seed{MIME: []byte("From: x@example.com\r\nTo: " + ann + "\r\nSubject: " + subj +
			"\r\nMessage-ID: <" + subj + "@example.com>\r\nDate: Mon, 4 Sep 2017 10:00:00 +0000\r\n\r\nHello.\r\n")})
	}

	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, box, []service.Preset{
		{ID: "m365", Name: "Microsoft 365", Endpoint: service.Endpoint{Type: service.TypeM365, Host: "graph.microsoft.com", Port: 443, Security: "tls"}}})
	svc.SetMicrosoftIdentity(service.MicrosoftIdentity{AuthorizeURL: gs.AuthorizeURL("{tenant}"), TokenURL: gs.TokenURL("{tenant}"), HTTPClient: gs.Client()})
	r := &jobs.Runner{Service: svc, State: st, Log: slog.New(slog.DiscardHandler), Name: "w1", Holder: "w1", Connections: 2,
		OpenHook: func(o *connector.OpenOptions) {
			o.ServiceURL = gs.URL
			o.RootCAs = gs.CertPool
			if o.Credentials.OAuth != nil && o.Credentials.OAuth.TokenURL == "" {
				// The app's side; the signed-in side brings the
				// operator's token URL itself.
				o.Credentials.OAuth.TokenURL = gs.TokenURL("{tenant}")
			}
		}}
	q, err := jobs.Open(ctx, st, r, jobs.Config{MaxWorkers: 2, Work: true, RescueAfter: time.Hour, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetQueue(q)
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = q.Stop(ctx)
	})
	o, err := svc.EnsureOwner(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}

	p, err := svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "Users sign in", DestinationPreset: "m365",
		Source:           service.Endpoint{Type: service.TypeM365},
		SourceAdmin:      &service.AdminCredentials{Kind: service.KindM365Delegated, Tenant: m365Tenant, ClientID: delegatedApp},
		DestinationAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: m365App, ClientSecret: m365Secret}})
	if err != nil {
		t.Fatal(err)
	}
	if p.SourceAdmin == nil || p.SourceAdmin.Kind != service.KindM365Delegated || p.SourceAdmin.HasSecret {
		t.Fatalf("source credentials %+v; want m365-delegated without a secret", p.SourceAdmin)
	}
	ms, err := svc.AddMailboxes(ctx, o.ID, p.ID, []service.MailboxInput{{SourceEmail: ann, DestEmail: "ann.new@" + m365Domain},
		{SourceEmail: bob, DestEmail: "bob.new@" + m365Domain}})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].HasPasswords {
		t.Fatal("a signed-out mailbox counts as having its credentials")
	}
	links, err := svc.AskForPasswords(ctx, o.ID, p.ID, nil)
	if err != nil || len(links) != 2 {
		t.Fatalf("ask: %d links, %v", len(links), err)
	}
	link := links[0].Token
	if links[0].SourceEmail != ann {
		link = links[1].Token
	}
	req, err := svc.PasswordRequest(ctx, link)
	if err != nil || !req.SourceSignIn || req.SourceSignedIn || !req.DestApp || req.NeedsPasswords() {
		t.Fatalf("the page: %+v %v; want a Microsoft sign-in for the source and no password", req, err)
	}
	if _, err := svc.BeginSignIn(ctx, link, service.SideDestination, signInURI); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("a sign-in for the app's side: %v", err)
	}

	noFollow := *gs.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	authorize := func(start service.SignInStart) url.Values {
		t.Helper()
		resp, err := noFollow.Get(start.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(u.String(), signInURI+"?") {
			t.Fatalf("authorize: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return u.Query()
	}
	begin := func() service.SignInStart {
		t.Helper()
		start, err := svc.BeginSignIn(ctx, link, service.SideSource, signInURI)
		if err != nil {
			t.Fatal(err)
		}
		return start
	}

	// Declined at Microsoft: nothing stored, the link still works.
	gs.SignIn("")
	start := begin()
	au, _ := url.Parse(start.URL)
	if aq := au.Query(); aq.Get("code_challenge_method") != "S256" || aq.Get("code_challenge") == "" || aq.Get("state") == "" ||
		aq.Get("login_hint") != ann || strings.Contains(aq.Get("scope"), ".default") || !strings.Contains(aq.Get("scope"), "offline_access") ||
		aq.Has("client_secret") {
		t.Errorf("authorize URL %s", start.URL)
	}
	cb := authorize(start)
	res, err := svc.FinishSignIn(ctx, service.SignInCallback{State: cb.Get("state"), Error: cb.Get("error"), Nonce: start.Nonce, RedirectURL: signInURI})
	if !errors.Is(err, service.ErrSignInCancelled) || res.Token != link {
		t.Errorf("declined: %v (back to the link: %v)", err, res.Token == link)
	}

	// Another browser's nonce: refused, and the state is used up.
	gs.SignIn(ann)
	start = begin()
	cb = authorize(start)
	if _, err := svc.FinishSignIn(ctx, service.SignInCallback{State: cb.Get("state"), Code: cb.Get("code"), Nonce: begin().Nonce,
		RedirectURL: signInURI}); !errors.Is(err, service.ErrSignInState) {
		t.Errorf("another nonce: %v", err)
	}
	if _, err := svc.FinishSignIn(ctx, service.SignInCallback{State: cb.Get("state"), Code: cb.Get("code"), Nonce: start.Nonce,
		RedirectURL: signInURI}); !errors.Is(err, service.ErrSignInState) {
		t.Errorf("the state again after a refused callback: %v", err)
	}
	if got := gs.TokenRequests().AuthorizationCode; got != 0 {
		t.Errorf("%d codes redeemed by refused callbacks", got)
	}
	if m, _ := svc.Mailbox(ctx, o.ID, p.ID, ms[0].ID); m.HasPasswords || m.Status != service.StatusWaitingForUser {
		t.Fatalf("after refused callbacks: %s, has credentials %v", m.Status, m.HasPasswords)
	}

	// The good callback.
	start = begin()
	cb = authorize(start)
	res, err = svc.FinishSignIn(ctx, service.SignInCallback{State: cb.Get("state"), Code: cb.Get("code"), Nonce: start.Nonce, RedirectURL: signInURI})
	if err != nil || !res.Complete || res.Side != service.SideSource {
		t.Fatalf("sign-in: %+v %v", res, err)
	}
	if _, err := svc.FinishSignIn(ctx, service.SignInCallback{State: cb.Get("state"), Code: cb.Get("code"), Nonce: start.Nonce,
		RedirectURL: signInURI}); !errors.Is(err, service.ErrSignInState) {
		t.Errorf("the same callback twice: %v", err)
	}
	if _, err := svc.PasswordRequest(ctx, link); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("the link after the sign-in: %v; want it used up", err)
	}
	var annSecret, bobSecret string
	if err := st.DB().QueryRow(`SELECT source_secret FROM mailboxes WHERE source_email = ?`, ann).Scan(&annSecret); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().QueryRow(`SELECT source_secret FROM mailboxes WHERE source_email = ?`, bob).Scan(&bobSecret); err != nil {
		t.Fatal(err)
	}
	if annSecret == "" || strings.Contains(annSecret, "0.MF") || bobSecret != "" {
		t.Errorf("stored secrets: ann %q, bob %q; want ann's sealed, bob's none", annSecret, bobSecret)
	}
	m, err := svc.Mailbox(ctx, o.ID, p.ID, ms[0].ID)
	if err != nil || m.Status != service.StatusNotStarted || !m.HasPasswords {
		t.Fatalf("ann after signing in: %s, has credentials %v, %v", m.Status, m.HasPasswords, err)
	}

	// A trial logs in as ann with her refresh token.
	before := gs.TokenRequests().Refresh
	pass, err := svc.StartPass(ctx, o.ID, p.ID, service.PassInput{Kind: service.PassTrial, MailboxIDs: []string{ms[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for pass.State != "completed" && pass.State != "stopped" {
		if time.Now().After(deadline) {
			t.Fatalf("trial not over after a minute: %+v", pass)
		}
		time.Sleep(50 * time.Millisecond)
		if pass, err = svc.Pass(ctx, o.ID, p.ID, pass.ID); err != nil {
			t.Fatal(err)
		}
	}
	m, err = svc.Mailbox(ctx, o.ID, p.ID, ms[0].ID)
	if err != nil || m.Status != service.StatusReady {
		t.Fatalf("trial: %s (%s) %v", m.Status, m.MoreInfo, err)
	}
	if m.LastPass == nil || m.LastPass.TotalMsgs != 3 {
		t.Errorf("trial counted %+v; want ann's 3 messages", m.LastPass)
	}
	if gs.TokenRequests().Refresh <= before {
		t.Error("the trial did not refresh ann's token at the operator's token endpoint")
	}
	// Microsoft rotates refresh tokens: the newest is kept, sealed.
	rotated := annSecret
	for deadline := time.Now().Add(10 * time.Second); rotated == annSecret && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := st.DB().QueryRow(`SELECT source_secret FROM mailboxes WHERE source_email = ?`, ann).Scan(&rotated); err != nil {
			t.Fatal(err)
		}
	}
	if rotated == annSecret || rotated == "" || strings.Contains(rotated, "0.MF") {
		t.Errorf("after the trial the stored token is %q; want the rotated one, sealed", rotated)
	}
	// A corrected address drops the old user's sign-in; a corrected
	// other side keeps it.
	if m, err = svc.UpdateMailbox(ctx, o.ID, p.ID, ms[0].ID, service.MailboxInput{DestEmail: "ann.smith@" + m365Domain}); err != nil {
		t.Fatal(err)
	}
	if m, _ = svc.Mailbox(ctx, o.ID, p.ID, ms[0].ID); !m.HasPasswords {
		t.Error("correcting the destination dropped the source's sign-in")
	}
	if _, err = svc.UpdateMailbox(ctx, o.ID, p.ID, ms[0].ID, service.MailboxInput{SourceEmail: "ann.smith@" + m365Domain}); err != nil {
		t.Fatal(err)
	}
	if m, _ = svc.Mailbox(ctx, o.ID, p.ID, ms[0].ID); m.HasPasswords {
		t.Error("a new source address kept the old user's sign-in")
	}
}

// The m365-delegated kind is taken on a Microsoft 365 side only, needs
// the tenant and client id but no secret, and an update keeps it (an
// update without the kind stays delegated; switching to the app
// registration is refused, since the rows hold users' sign-ins).
func TestDelegatedCredentialsKind(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, box, []service.Preset{
		{ID: "m365", Name: "Microsoft 365", Endpoint: service.Endpoint{Type: service.TypeM365, Host: "graph.microsoft.com", Port: 443, Security: "tls"}},
		{ID: "imap", Name: "IMAP", Endpoint: service.Endpoint{Type: "imap", Host: "imap.new.example", Port: 993, Security: "tls"}}})
	o, _ := svc.EnsureOwner(ctx, "admin@example.com")
	field := func(err error) string {
		var ie *service.InputError
		if errors.As(err, &ie) {
			return ie.Field
		}
		return "not an input error: " + fmt.Sprint(err)
	}
	delegated := func() *service.AdminCredentials {
		return &service.AdminCredentials{Kind: service.KindM365Delegated, Tenant: m365Tenant, ClientID: delegatedApp}
	}
	if _, err := svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "x", DestinationPreset: "m365", Source: service.Endpoint{Host: "mail.old.example"},
		SourceAdmin: delegated(), DestinationAdmin: delegated()}); field(err) != "source_admin" {
		t.Errorf("delegated credentials for an IMAP source: %v", err)
	}
	bad := delegated()
	bad.ClientID = "not-a-guid"
	if _, err := svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "x", DestinationPreset: "m365", Source: service.Endpoint{Host: "mail.old.example"},
		DestinationAdmin: bad}); field(err) != "destination_admin.client_id" {
		t.Errorf("a bad client id: %v", err)
	}
	p, err := svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "x", DestinationPreset: "m365", Source: service.Endpoint{Host: "mail.old.example"},
		DestinationAdmin: delegated()})
	if err != nil || p.DestinationAdmin.Kind != service.KindM365Delegated {
		t.Fatalf("create: %+v %v", p.DestinationAdmin, err)
	}
	p, err = svc.UpdateProject(ctx, o.ID, p.ID, service.ProjectUpdate{DestinationAdmin: &service.AdminCredentials{Tenant: m365Tenant, ClientID: delegatedApp,
		ClientSecret: "now-confidential"}})
	if err != nil || p.DestinationAdmin.Kind != service.KindM365Delegated || !p.DestinationAdmin.HasSecret {
		t.Fatalf("update with a secret: %+v %v", p.DestinationAdmin, err)
	}
	if _, err := svc.UpdateProject(ctx, o.ID, p.ID, service.ProjectUpdate{DestinationAdmin: &service.AdminCredentials{Kind: "m365-app",
		Tenant: m365Tenant, ClientID: m365App, ClientSecret: m365Secret}}); field(err) != "destination_admin.kind" {
		t.Errorf("switching to the app registration: %v", err)
	}
	// Rows take addresses only on the delegated side, and start without
	// credentials there.
	if _, err := svc.AddMailboxes(ctx, o.ID, p.ID, []service.MailboxInput{{SourceEmail: "ann@old.example", SourcePassword: "pw",
		DestEmail: "ann@" + m365Domain, DestPassword: "pw"}}); field(err) != "destination_password" {
		t.Errorf("a password on the delegated side: %v", err)
	}
	ms, err := svc.AddMailboxes(ctx, o.ID, p.ID, []service.MailboxInput{{SourceEmail: "ann@old.example", SourcePassword: "pw", DestEmail: "ann@" + m365Domain}})
	if err != nil || ms[0].HasPasswords {
		t.Fatalf("add: %+v %v; want a row waiting for its user's sign-in", ms, err)
	}
	// The user's password form is refused until they signed in.
	links, err := svc.AskForPasswords(ctx, o.ID, p.ID, nil)
	if err != nil || len(links) != 1 {
		t.Fatalf("ask: %v", err)
	}
	bads, err := svc.SubmitEndUserPasswords(ctx, links[0].Token, "192.0.2.1", "pw", "")
	if err != nil || len(bads) != 1 || bads[0].Field != "destination_signin" {
		t.Errorf("passwords before signing in: %v %v", bads, err)
	}
	if _, err := svc.PasswordRequest(ctx, links[0].Token); err != nil {
		t.Errorf("the link after a refused form: %v", err)
	}
}
