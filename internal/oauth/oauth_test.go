package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	tenantID     = "6f1c1b4e-3a52-4c1e-9d8e-2b7f0f9d1a01"
	tenantDomain = "contoso.onmicrosoft.com"
	clientID     = "0d6c1f0a-8f3e-4d7a-9a55-3c1c7e1e2b02"
	clientSecret = "s3cr3t~Value.Of-The-Secret_0123456789"
	mailbox      = "alice@contoso.onmicrosoft.com"
)

// fakeClock is a clock tests move by hand; the server shares it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	srv   *graphserver.Server
	clock *fakeClock
}

func start(t *testing.T) *fixture {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)}
	srv := graphserver.Start(t, &graphserver.Options{Now: clock.Now})
	srv.AddTenant(tenantID, tenantDomain)
	srv.AddApp(tenantID, clientID, graphserver.RoleMailReadWrite)
	srv.AddClientSecret(clientID, clientSecret, time.Time{})
	srv.AddMailbox(tenantID, mailbox)
	return &fixture{srv: srv, clock: clock}
}

func (f *fixture) tokenURL() string { return f.srv.URL + "/{tenant}/oauth2/v2.0/token" }

func (f *fixture) config() Config {
	return Config{
		Tenant:       tenantDomain,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Scopes:       []string{ScopeGraph},
		TokenURL:     f.tokenURL(),
		HTTPClient:   HTTPClient(connector.OpenOptions{RootCAs: f.srv.CertPool}),
		Now:          f.clock.Now,
	}
}

func mustSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// graphStatus calls Graph with token and returns the HTTP status: the
// proof that a token is one the service accepts.
func (f *fixture) graphStatus(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.GraphURL()+"/users/"+mailbox+"/mailFolders/inbox", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestClientSecretTokenWorksForGraph(t *testing.T) {
	f := start(t)
	for _, tenant := range []string{tenantID, tenantDomain} {
		cfg := f.config()
		cfg.Tenant = tenant
		s := mustSource(t, cfg)
		tok, err := s.Token(context.Background())
		if err != nil {
			t.Fatalf("tenant %s: %v", tenant, err)
		}
		if st := f.graphStatus(t, tok); st != http.StatusOK {
			t.Fatalf("tenant %s: Graph answered %d to the token", tenant, st)
		}
	}
	if n := f.srv.TokenRequests().ClientCredentials; n != 2 {
		t.Fatalf("client credentials grants = %d, want 2", n)
	}
}

// newCert makes a self-signed RSA certificate as `openssl req -x509`
// would, returned as one PEM file with its key.
func newCert(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mailferry test app"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	return cert, pemData
}

func TestCertificateAssertion(t *testing.T) {
	f := start(t)
	cert, pemData := newCert(t)
	f.srv.AddClientCertificate(clientID, cert)
	client := HTTPClient(connector.OpenOptions{RootCAs: f.srv.CertPool})

	s, err := FromCredentials(&connector.OAuth{ClientID: clientID, CertificatePEM: pemData, TokenURL: f.tokenURL()}, tenantID, []string{ScopeGraph}, client)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Now = f.clock.Now
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatalf("certificate login: %v", err)
	}
	if st := f.graphStatus(t, tok); st != http.StatusOK {
		t.Fatalf("Graph answered %d to the certificate's token", st)
	}

	// A certificate the app does not know is a login failure that says
	// where to register it.
	_, otherPEM := newCert(t)
	s2, err := FromCredentials(&connector.OAuth{ClientID: clientID, CertificatePEM: otherPEM, TokenURL: f.tokenURL()}, tenantID, []string{ScopeGraph}, client)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s2.Token(context.Background())
	if connector.KindOf(err) != connector.KindAuth {
		t.Fatalf("unknown certificate: kind %v (%v), want auth", connector.KindOf(err), err)
	}
	if !strings.Contains(connector.HintOf(err), "Certificates & secrets") {
		t.Errorf("hint %q does not say where to register the certificate", connector.HintOf(err))
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(otherPEM[40:80])) {
		t.Errorf("error shows key material: %v", err)
	}
}

func TestTokenReusedThenRefreshedBeforeExpiry(t *testing.T) {
	f := start(t)
	s := mustSource(t, f.config())
	ctx := context.Background()
	first, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server issues 3599 s tokens. Well before the margin: reused.
	f.clock.Advance(50 * time.Minute)
	again, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || f.srv.TokenRequests().ClientCredentials != 1 {
		t.Fatalf("token not reused 50 minutes in: %d grants", f.srv.TokenRequests().ClientCredentials)
	}
	// Four minutes before expiry (inside the five-minute margin): the
	// old one is still valid, but a new one is fetched.
	f.clock.Advance(5*time.Minute + 59*time.Second)
	if st := f.graphStatus(t, first); st != http.StatusOK {
		t.Fatalf("old token refused %d before its expiry; the test clock is off", st)
	}
	fresh, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == first {
		t.Fatal("token inside the refresh margin was not replaced")
	}
	if n := f.srv.TokenRequests().ClientCredentials; n != 2 {
		t.Fatalf("grants = %d, want 2", n)
	}
	if st := f.graphStatus(t, fresh); st != http.StatusOK {
		t.Fatalf("fresh token refused: %d", st)
	}
}

func TestInvalidateAfterRefusal(t *testing.T) {
	f := start(t)
	s := mustSource(t, f.config())
	ctx := context.Background()
	tok, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ExpireAccessTokens()
	if st := f.graphStatus(t, tok); st != http.StatusUnauthorized {
		t.Fatalf("expired token: Graph answered %d, want 401", st)
	}
	// A token other than the one held changes nothing.
	s.Invalidate("some-other-token")
	if again, _ := s.Token(ctx); again != tok {
		t.Fatal("invalidating another token replaced the current one")
	}
	s.Invalidate(tok)
	fresh, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == tok || f.graphStatus(t, fresh) != http.StatusOK {
		t.Fatal("no working token after Invalidate")
	}
	// Many requests refused with the same token cause one fetch.
	s.Invalidate(fresh)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Invalidate(fresh)
			if _, err := s.Token(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.srv.TokenRequests().ClientCredentials; n != 3 {
		t.Fatalf("grants = %d, want 3 (one per invalidated token)", n)
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	f := start(t)
	s := mustSource(t, f.config())
	var wg sync.WaitGroup
	toks := make([]string, 16)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if toks[i], err = s.Token(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, tok := range toks[1:] {
		if tok != toks[0] {
			t.Fatal("callers got different tokens")
		}
	}
	if n := f.srv.TokenRequests().ClientCredentials; n != 1 {
		t.Fatalf("grants = %d, want 1", n)
	}
}

func TestEndpointErrorsAreSortedAndSecretFree(t *testing.T) {
	f := start(t)
	f.srv.AddClientSecret(clientID, "expired-secret-value-XYZ", f.clock.Now().Add(-time.Hour))
	cases := []struct {
		name   string
		change func(*Config)
		kind   connector.Kind
		code   string // AADSTS code the message must show
		hint   string // part of the hint
	}{
		{"unknown tenant", func(c *Config) { c.Tenant = "nosuch.onmicrosoft.com" }, connector.KindConfig, "AADSTS90002", "tenant"},
		{"unknown app", func(c *Config) { c.ClientID = "99999999-9999-4999-8999-999999999999" }, connector.KindConfig, "AADSTS700016", "client"},
		{"wrong secret", func(c *Config) { c.ClientSecret = "wrong-secret-value-ABC" }, connector.KindAuth, "AADSTS7000215", "Value"},
		{"expired secret", func(c *Config) { c.ClientSecret = "expired-secret-value-XYZ" }, connector.KindAuth, "AADSTS7000222", "expired"},
		{"bad scope", func(c *Config) { c.Scopes = []string{"https://graph.microsoft.com/Mail.Read"} }, connector.KindConfig, "AADSTS", "scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config()
			tc.change(&cfg)
			_, err := mustSource(t, cfg).Token(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			if k := connector.KindOf(err); k != tc.kind {
				t.Errorf("kind %v, want %v (%v)", k, tc.kind, err)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Errorf("error %q does not name %s", err, tc.code)
			}
			if h := connector.HintOf(err); !strings.Contains(strings.ToLower(h), strings.ToLower(tc.hint)) {
				t.Errorf("hint %q lacks %q", h, tc.hint)
			}
			if strings.Contains(err.Error(), "Trace ID") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error keeps the trace lines: %q", err)
			}
			for _, secret := range []string{cfg.ClientSecret, clientSecret} {
				if strings.Contains(err.Error(), secret) || strings.Contains(connector.HintOf(err), secret) {
					t.Errorf("error shows the secret: %v", err)
				}
			}
		})
	}
}

func TestMicrosoftRefreshToken(t *testing.T) {
	f := start(t)
	const public = "3e5a0c7d-1b2f-4c3d-8e9f-0a1b2c3d4e05"
	f.srv.AddApp(tenantID, public)
	rt := f.srv.MintRefreshToken(public, mailbox, graphserver.ScopeIMAPAccessAsUser)
	var rotated []string
	s := mustSource(t, Config{
		Tenant:         tenantID,
		ClientID:       public,
		RefreshToken:   rt,
		Scopes:         []string{ScopeOutlookIMAPUser, ScopeOfflineAccess},
		TokenURL:       f.tokenURL(),
		HTTPClient:     HTTPClient(connector.OpenOptions{RootCAs: f.srv.CertPool}),
		Now:            f.clock.Now,
		OnRefreshToken: func(tok string) { rotated = append(rotated, tok) },
	})
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.CheckIMAPToken(mailbox, tok); err != nil {
		t.Fatalf("IMAP refuses the delegated token: %v", err)
	}
	if len(rotated) != 1 || rotated[0] == rt {
		t.Fatalf("rotated refresh tokens %d, want the new one reported once", len(rotated))
	}
	// The next refresh uses the rotated token: revoking the original
	// must not matter.
	f.srv.RevokeRefreshToken(rt)
	s.Invalidate(tok)
	if _, err := s.Token(context.Background()); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	// Revoked: a login error that says to sign in again.
	f.srv.RevokeRefreshToken(rotated[len(rotated)-1])
	s.Invalidate(s.token)
	_, err = s.Token(context.Background())
	if connector.KindOf(err) != connector.KindAuth {
		t.Fatalf("revoked refresh token: kind %v (%v), want auth", connector.KindOf(err), err)
	}
	for _, r := range append(rotated, rt) {
		if strings.Contains(err.Error(), r) {
			t.Fatal("error shows a refresh token")
		}
	}
}

func TestGoogleRefreshToken(t *testing.T) {
	f := start(t)
	const gid, gsecret = "1234567890-abc.apps.googleusercontent.com", "GOCSPX-google-secret-123"
	f.srv.AddGoogleClient(gid, gsecret)
	rt := f.srv.MintGoogleRefreshToken(gid, "bob@gmail.com", graphserver.ScopeGoogleMail)
	cfg := Config{
		Provider:     connector.OAuthGoogle,
		ClientID:     gid,
		ClientSecret: gsecret,
		RefreshToken: rt,
		TokenURL:     f.srv.GoogleTokenURL(),
		HTTPClient:   HTTPClient(connector.OpenOptions{RootCAs: f.srv.CertPool}),
		Now:          f.clock.Now,
	}
	tok, err := mustSource(t, cfg).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.CheckIMAPToken("bob@gmail.com", tok); err != nil {
		t.Fatalf("Gmail IMAP refuses the token: %v", err)
	}
	if n := f.srv.TokenRequests().Google; n != 1 {
		t.Fatalf("Google grants = %d", n)
	}

	bad := cfg
	bad.ClientSecret = "GOCSPX-wrong"
	_, err = mustSource(t, bad).Token(context.Background())
	if connector.KindOf(err) != connector.KindAuth || strings.Contains(err.Error(), "GOCSPX") {
		t.Fatalf("wrong Google secret: %v (kind %v)", err, connector.KindOf(err))
	}

	f.srv.RevokeRefreshToken(rt)
	_, err = mustSource(t, cfg).Token(context.Background())
	if connector.KindOf(err) != connector.KindAuth || !strings.Contains(connector.HintOf(err), "Gmail") {
		t.Fatalf("revoked Google token: %v, hint %q", err, connector.HintOf(err))
	}
	if strings.Contains(err.Error(), rt) {
		t.Fatal("error shows the refresh token")
	}
}

func TestTransientEndpointFailure(t *testing.T) {
	f := start(t)
	s := mustSource(t, f.config())
	f.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteMicrosoftToken, Status: 503, RetryAfter: 7 * time.Second})
	_, err := s.Token(context.Background())
	if connector.KindOf(err) != connector.KindTransient {
		t.Fatalf("503: kind %v (%v), want transient", connector.KindOf(err), err)
	}
	// graphserver sends no Retry-After on the token endpoint even when
	// the fault asks for one, so its parsing is tested in
	// TestParseRetryAfter and in the Graph connector's tests.
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Inside the margin with the endpoint down, the held token still
	// works and is handed out; once expired it is not.
	f.clock.Advance(57 * time.Minute)
	f.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteMicrosoftToken, Status: 500})
	if again, err := s.Token(context.Background()); err != nil || again != tok {
		t.Fatalf("near-expiry token not kept while the endpoint fails: %v", err)
	}
	f.clock.Advance(3 * time.Minute)
	f.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteMicrosoftToken, Status: 500})
	if _, err := s.Token(context.Background()); connector.KindOf(err) != connector.KindTransient {
		t.Fatalf("expired token with the endpoint failing: %v", err)
	}
}

func TestRequestsGoThroughDial(t *testing.T) {
	f := start(t)
	var dials atomic.Int32
	d := &net.Dialer{}
	cfg := f.config()
	cfg.HTTPClient = HTTPClient(connector.OpenOptions{
		RootCAs: f.srv.CertPool,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	})
	if _, err := mustSource(t, cfg).Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dials.Load() == 0 {
		t.Fatal("the token request did not use OpenOptions.Dial")
	}
	// A refusing policy is a clear error, not a hang.
	cfg.HTTPClient = HTTPClient(connector.OpenOptions{
		RootCAs: f.srv.CertPool,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Err: errRefusedForTest}
		},
	})
	_, err := mustSource(t, cfg).Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused by test policy") {
		t.Fatalf("refused dial: %v", err)
	}
}

const errRefusedForTest = constError("refused by test policy")

func TestConfigChecks(t *testing.T) {
	client := &http.Client{}
	_, pemData := newCert(t)
	cert, key, err := ParseCertificatePEM(pemData)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPEM := newCert(t)
	_, otherKey, _ := ParseCertificatePEM(otherPEM)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no client id", Config{Tenant: "t", ClientSecret: "x", HTTPClient: client}},
		{"no tenant", Config{ClientID: "c", ClientSecret: "x", HTTPClient: client}},
		{"tenant with a slash", Config{Tenant: "a/b", ClientID: "c", ClientSecret: "x", HTTPClient: client}},
		{"no credential", Config{Tenant: "t", ClientID: "c", HTTPClient: client}},
		{"secret and certificate", Config{Tenant: "t", ClientID: "c", ClientSecret: "x", Certificate: cert, Key: key, HTTPClient: client}},
		{"key of another certificate", Config{Tenant: "t", ClientID: "c", Certificate: cert, Key: otherKey, HTTPClient: client}},
		{"google without refresh token", Config{Provider: "google", ClientID: "c", ClientSecret: "x", HTTPClient: client}},
		{"plain http token URL", Config{Tenant: "t", ClientID: "c", ClientSecret: "x", TokenURL: "http://login.example/token", HTTPClient: client}},
		{"unknown provider", Config{Provider: "yahoo", ClientID: "c", ClientSecret: "x", HTTPClient: client}},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if connector.KindOf(err) != connector.KindConfig {
			t.Errorf("%s: %v (kind %v), want a config error", tc.name, err, connector.KindOf(err))
		}
		if err != nil && strings.Contains(err.Error(), "x\"") {
			t.Errorf("%s: error shows the secret: %v", tc.name, err)
		}
	}
	for name, data := range map[string][]byte{
		"no key":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		"encrypted": append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})...),
		"garbage":   []byte("not pem"),
	} {
		if _, _, err := ParseCertificatePEM(data); err == nil {
			t.Errorf("ParseCertificatePEM(%s) accepted it", name)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"10":                            10 * time.Second,
		"2.128":                         2128 * time.Millisecond, // Graph's documented sample
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Tue, 03 Nov 2026 09:00:30 GMT": 30 * time.Second,
		"Tue, 03 Nov 2026 08:59:00 GMT": 0,
		"999999999":                     0,
	} {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "2.128", "Wed, 21 Oct 2015 07:28:00 GMT", "", "NaN", "1e308"} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, s string) {
		if d := ParseRetryAfter(s, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v", s, d)
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, key, err := ParseCertificatePEM(data)
		if err == nil && (cert == nil || key == nil) {
			t.Fatal("nil certificate or key without an error")
		}
	})
}
