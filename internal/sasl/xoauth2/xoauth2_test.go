package xoauth2

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
	"github.com/mailferry/mailferry/internal/testenv/xoauth2imap"
)

// The vector of Google's and Microsoft's pages.
func TestInitialResponseVector(t *testing.T) {
	mech, ir, err := NewClient("user", "mF_9.B5f-4.1JqM").Start()
	if err != nil {
		t.Fatal(err)
	}
	if mech != "XOAUTH2" {
		t.Fatalf("mechanism %q", mech)
	}
	const want = "dXNlcj11c2VyAWF1dGg9QmVhcmVyIG1GXzkuQjVmLTQuMUpxTQEB"
	if got := base64.StdEncoding.EncodeToString(ir); got != want {
		t.Fatalf("initial response %s, want %s", got, want)
	}
	if u, tok, err := xoauth2imap.ParseResponse(ir); err != nil || u != "user" || tok != "mF_9.B5f-4.1JqM" {
		t.Fatalf("the test server reads it as %q %q %v", u, tok, err)
	}
}

func TestStartRefusesBrokenFraming(t *testing.T) {
	for _, c := range []*Client{
		NewClient("", "tok"), NewClient("user", ""),
		NewClient("us\x01er", "tok"), NewClient("user", "to\x01k"), NewClient("user", "tok\r\n"),
	} {
		if _, _, err := c.Start(); err == nil {
			t.Errorf("Start(%q, %q) accepted it", c.user, c.token)
		}
	}
	if _, err := NewClient("user", "tok").Next([]byte("{}")); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
		t.Errorf("Next before Start: %v", err)
	}
}

func TestChallengeDecodedAndAnsweredEmpty(t *testing.T) {
	// Google's sample challenge.
	ch, err := base64.StdEncoding.DecodeString("eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Next(ch)
	if err != nil || resp == nil || len(resp) != 0 {
		t.Fatalf("Next answered %q, %v; want an empty response", resp, err)
	}
	f := c.Failure()
	if f == nil || f.Status != "401" || f.Schemes != "bearer mac" || f.Scope != "https://mail.google.com/" {
		t.Fatalf("decoded %+v", f)
	}
	if msg := f.Error(); !strings.Contains(msg, "401") || !strings.Contains(msg, "https://mail.google.com/") || !strings.Contains(msg, "expired") {
		t.Errorf("message %q", msg)
	}
	// A second challenge is not part of the mechanism.
	if _, err := c.Next(ch); err == nil {
		t.Error("second challenge accepted")
	}
	// Not JSON: kept, bounded, as text.
	c2 := NewClient("u", "t")
	c2.Start()
	c2.Next([]byte(strings.Repeat("x", 500)))
	if f := c2.Failure(); f == nil || f.Raw == "" || len(f.Raw) > 210 {
		t.Fatalf("non-JSON challenge: %+v", f)
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add([]byte(`{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}`))
	f.Add([]byte(`{"status":400}`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl := ParseChallenge(b)
		if fl == nil {
			t.Fatal("nil failure")
		}
		_ = fl.Error()
	})
}

// env is a token endpoint and an XOAUTH2 IMAP server that checks its
// tokens.
type env struct {
	graph *graphserver.Server
	imap  *xoauth2imap.Server
}

const (
	tenant   = "9b0c5d3e-7f21-4a6b-8c9d-0e1f2a3b4c5d"
	appID    = "7c2d8e4f-1a3b-4c5d-9e6f-7a8b9c0d1e2f"
	secret   = "app~secret~value~0987654321"
	mailUser = "carol@fabrikam.onmicrosoft.com"
)

func startEnv(t *testing.T) *env {
	t.Helper()
	g := graphserver.Start(t, nil)
	g.AddTenant(tenant, "fabrikam.onmicrosoft.com")
	g.AddApp(tenant, appID, graphserver.RoleIMAPAccessAsApp)
	g.AddClientSecret(appID, secret, time.Time{})
	g.AddMailbox(tenant, mailUser)
	s := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: g.CheckIMAPToken, Scope: oauth.ScopeOutlook})
	s.AddUser(mailUser)
	return &env{graph: g, imap: s}
}

func (e *env) appSource(t *testing.T) *oauth.Source {
	t.Helper()
	src, err := oauth.New(oauth.Config{
		Tenant:       tenant,
		ClientID:     appID,
		ClientSecret: secret,
		Scopes:       []string{oauth.ScopeOutlook},
		TokenURL:     e.graph.URL + "/{tenant}/oauth2/v2.0/token",
		HTTPClient:   oauth.HTTPClient(connector.OpenOptions{RootCAs: e.graph.CertPool}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func (e *env) dial(t *testing.T) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(e.imap.Addr, &imapclient.Options{TLSConfig: e.imap.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// imapRefused says whether go-imap's error is the server's NO.
func imapRefused(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo
}

func TestLoginAppOnlyMicrosoft365(t *testing.T) {
	e := startEnv(t)
	e.graph.GrantIMAPMailbox(appID, mailUser)
	src := e.appSource(t)
	c := e.dial(t)
	if err := Login(context.Background(), mailUser, src, c.Authenticate, imapRefused); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after login: %v", err)
	}
	st := e.imap.Stats()
	if st.Logins != 1 || st.Refused != 0 || st.Malformed != 0 {
		t.Fatalf("server saw %+v", st)
	}
}

// A token refused by the server (expired or revoked after it was
// fetched) is replaced once, and the error challenge is answered as the
// mechanism requires.
func TestLoginRefreshesARefusedToken(t *testing.T) {
	e := startEnv(t)
	e.graph.GrantIMAPMailbox(appID, mailUser)
	src := e.appSource(t)
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.graph.ExpireAccessTokens()
	c := e.dial(t)
	if err := Login(context.Background(), mailUser, src, c.Authenticate, imapRefused); err != nil {
		t.Fatalf("login with a refreshed token: %v", err)
	}
	st := e.imap.Stats()
	if st.Refused != 1 || st.Logins != 1 {
		t.Fatalf("server saw %+v, want one refusal then one login", st)
	}
	if src.Fetches() != 2 {
		t.Fatalf("tokens fetched %d, want 2", src.Fetches())
	}
	// go-imap writes the empty response as "="; the server must take it
	// as empty (it counts anything else).
	if st.NonEmptyAfter != 0 {
		t.Errorf("the error challenge was answered with a non-empty response (%d)", st.NonEmptyAfter)
	}
}

func TestLoginRefusedForGood(t *testing.T) {
	e := startEnv(t) // no GrantIMAPMailbox: every token is refused
	src := e.appSource(t)
	c := e.dial(t)
	err := Login(context.Background(), mailUser, src, c.Authenticate, imapRefused)
	if connector.KindOf(err) != connector.KindAuth {
		t.Fatalf("kind %v (%v), want auth", connector.KindOf(err), err)
	}
	if !strings.Contains(err.Error(), "refused the OAuth token (status 4") || !strings.Contains(err.Error(), oauth.ScopeOutlook) {
		t.Errorf("error %q does not carry the decoded challenge", err)
	}
	if st := e.imap.Stats(); st.Refused != 2 || src.Fetches() != 2 {
		t.Fatalf("server %+v, fetches %d: want two tries with two tokens", st, src.Fetches())
	}
	if !strings.Contains(connector.HintOf(err), "Add-MailboxPermission") {
		t.Errorf("hint %q", connector.HintOf(err))
	}
	tok, _ := src.Token(context.Background())
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), secret) {
		t.Fatal("error shows the token or secret")
	}
}

func TestLoginGmailRefreshToken(t *testing.T) {
	e := startEnv(t)
	const gid, gsecret, user = "42-abc.apps.googleusercontent.com", "GOCSPX-xyz", "dave@gmail.com"
	e.graph.AddGoogleClient(gid, gsecret)
	rt := e.graph.MintGoogleRefreshToken(gid, user, graphserver.ScopeGoogleMail)
	e.imap.AddUser(user)
	src, err := oauth.FromCredentials(&connector.OAuth{
		Provider: connector.OAuthGoogle, ClientID: gid, ClientSecret: gsecret, RefreshToken: rt, TokenURL: e.graph.GoogleTokenURL(),
	}, "", nil, oauth.HTTPClient(connector.OpenOptions{RootCAs: e.graph.CertPool}))
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t)
	if err := Login(context.Background(), user, src, c.Authenticate, imapRefused); err != nil {
		t.Fatalf("Gmail login: %v", err)
	}
}

// A failure to get a token is not a refused login: it keeps its kind.
func TestLoginTokenFailureKeepsItsKind(t *testing.T) {
	e := startEnv(t)
	src, err := oauth.New(oauth.Config{
		Tenant: tenant, ClientID: appID, ClientSecret: "wrong-secret-1234", Scopes: []string{oauth.ScopeOutlook},
		TokenURL:   e.graph.URL + "/{tenant}/oauth2/v2.0/token",
		HTTPClient: oauth.HTTPClient(connector.OpenOptions{RootCAs: e.graph.CertPool}),
	})
	if err != nil {
		t.Fatal(err)
	}
	called := false
	err = Login(context.Background(), mailUser, src, func(sasl.Client) error { called = true; return nil }, nil)
	if connector.KindOf(err) != connector.KindAuth || !strings.Contains(err.Error(), "AADSTS7000215") || called {
		t.Fatalf("err %v, authenticate called %v", err, called)
	}
}
