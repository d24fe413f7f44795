package oauth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailferry/mailferry/internal/connector"
)

// Scopes of the tokens connectors ask for.
const (
	// ScopeGraph is Microsoft Graph with the application permissions
	// granted to the app (client credentials).
	ScopeGraph = "https://graph.microsoft.com/.default"
	// ScopeOutlook is Exchange Online (IMAP, POP) with the app's
	// application permissions, IMAP.AccessAsApp.
	ScopeOutlook = "https://outlook.office365.com/.default"
	// ScopeOutlookIMAPUser is delegated IMAP access as the signed-in
	// user; with a refresh token also ask for ScopeOfflineAccess.
	ScopeOutlookIMAPUser = "https://outlook.office.com/IMAP.AccessAsUser.All"
	// ScopeOfflineAccess asks Microsoft for a new refresh token along
	// with the access token.
	ScopeOfflineAccess = "offline_access"
	// ScopeGoogleMail is full IMAP access to a Gmail mailbox.
	ScopeGoogleMail = "https://mail.google.com/"
)

// Default token endpoints. MicrosoftTokenURL's "{tenant}" is replaced by
// the tenant id or domain.
const (
	MicrosoftTokenURL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
	GoogleTokenURL    = "https://oauth2.googleapis.com/token"
)

// DefaultRefreshMargin is how long before its expiry a token is replaced:
// a request started with a token that has a minute left may still be
// queued behind throttling when it expires.
const DefaultRefreshMargin = 5 * time.Minute

// Config says how to get tokens. Exactly one of ClientSecret,
// Certificate or RefreshToken (which may come with a ClientSecret for a
// confidential client) selects the grant.
type Config struct {
	// Provider is connector.OAuthMicrosoft (default) or OAuthGoogle.
	Provider string
	// Tenant is the Microsoft tenant id or verified domain; required
	// for Microsoft.
	Tenant   string
	ClientID string
	// ClientSecret is the secret's value.
	ClientSecret string
	// Certificate and Key sign a client assertion instead of a secret
	// (Microsoft only).
	Certificate *x509.Certificate
	Key         *rsa.PrivateKey
	// RefreshToken selects the refresh-token grant (delegated access).
	RefreshToken string
	// Scopes are asked for in every request (Google refresh requests
	// send none, as Google's page shows).
	Scopes []string
	// TokenURL replaces the provider's endpoint; "{tenant}" is replaced.
	TokenURL string
	// HTTPClient makes the requests; it carries the outbound policy's
	// dialer. Required.
	HTTPClient *http.Client
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// RefreshMargin: a token is replaced this long before it expires.
	// Default DefaultRefreshMargin.
	RefreshMargin time.Duration
	// OnRefreshToken, if set, is called with each new refresh token the
	// endpoint returns (Microsoft rotates them), so that the caller can
	// keep the newest. It must not block.
	OnRefreshToken func(token string)
}

// String hides the secrets.
func (c Config) String() string {
	return fmt.Sprintf("oauth.Config{provider %q tenant %q client %q scopes %q}", c.provider(), c.Tenant, c.ClientID, c.Scopes)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

func (c Config) provider() string {
	if c.Provider == "" {
		return connector.OAuthMicrosoft
	}
	return c.Provider
}

// Source hands out access tokens, fetching one when there is none, when
// the one held expires within the refresh margin, or after a server
// refused it (Invalidate). It is safe for concurrent use; one fetch runs
// at a time and the others wait for its result.
type Source struct {
	cfg      Config
	tokenURL string
	grant    string // for messages: "client secret", "certificate", "refresh token"

	fetching chan struct{} // one slot: who holds it fetches

	mu      sync.Mutex
	token   string
	expiry  time.Time
	stale   bool   // refused by a server: fetch a new one
	refresh string // the newest refresh token
	fetches int
}

// New checks cfg and returns a Source. Nothing is fetched yet.
func New(cfg Config) (*Source, error) {
	op := "set up OAuth"
	bad := func(msg, hint string) (*Source, error) {
		return nil, connector.Errorf(connector.KindConfig, hint, errors.New(msg), "%s", op)
	}
	if cfg.HTTPClient == nil {
		return bad("no HTTP client", "")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefreshMargin == 0 {
		cfg.RefreshMargin = DefaultRefreshMargin
	}
	if cfg.ClientID == "" {
		return bad("no client id", "give the application (client) id of the app registration")
	}
	s := &Source{cfg: cfg, fetching: make(chan struct{}, 1), refresh: cfg.RefreshToken}
	switch cfg.provider() {
	case connector.OAuthMicrosoft:
		if cfg.Tenant == "" {
			return bad("no tenant", "give the Microsoft Entra tenant id or one of its domains (e.g. contoso.onmicrosoft.com)")
		}
		if strings.ContainsAny(cfg.Tenant, "/?#@ ") {
			return bad(fmt.Sprintf("tenant %q is neither an id nor a domain", cfg.Tenant), "give the tenant id (a GUID) or a domain such as contoso.onmicrosoft.com")
		}
		s.tokenURL = MicrosoftTokenURL
	case connector.OAuthGoogle:
		s.tokenURL = GoogleTokenURL
		if cfg.RefreshToken == "" {
			return bad("Google needs a refresh token", "authorise Mailferry's Google OAuth client for the mailbox and give the refresh token")
		}
		if cfg.Certificate != nil {
			return bad("certificates are for Microsoft apps only", "")
		}
	default:
		return bad(fmt.Sprintf("unknown OAuth provider %q", cfg.Provider), `use "microsoft" or "google"`)
	}
	if cfg.TokenURL != "" {
		s.tokenURL = cfg.TokenURL
	}
	s.tokenURL = strings.ReplaceAll(s.tokenURL, "{tenant}", url.PathEscape(cfg.Tenant))
	if u, err := url.Parse(s.tokenURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return bad(fmt.Sprintf("token URL %q is not an https URL", s.tokenURL), "")
	}
	switch {
	case cfg.RefreshToken != "":
		s.grant = "refresh token"
		if cfg.Certificate != nil {
			return bad("a refresh token with a certificate is not supported", "give the client secret, or none for a public client")
		}
	case cfg.Certificate != nil:
		s.grant = "certificate"
		if cfg.Key == nil {
			return bad("a certificate without its private key", "give the certificate and its RSA private key in one PEM file")
		}
		if cfg.ClientSecret != "" {
			return bad("both a client secret and a certificate", "give one of them")
		}
		if _, ok := cfg.Certificate.PublicKey.(*rsa.PublicKey); !ok || !cfg.Key.PublicKey.Equal(cfg.Certificate.PublicKey) {
			return bad("the private key does not belong to the certificate", "give the certificate registered with the app and its own RSA private key")
		}
	case cfg.ClientSecret != "":
		s.grant = "client secret"
	default:
		return bad("no client secret, certificate or refresh token", "give the app's client secret or certificate (app-only access), or a user's refresh token")
	}
	return s, nil
}

// Token returns a valid access token.
func (s *Source) Token(ctx context.Context) (string, error) {
	select {
	case s.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", connector.Errorf(connector.KindTransient, "", ctx.Err(), "get an OAuth token")
	}
	defer func() { <-s.fetching }()

	s.mu.Lock()
	now := s.cfg.Now()
	if s.token != "" && !s.stale && now.Add(s.cfg.RefreshMargin).Before(s.expiry) {
		tok := s.token
		s.mu.Unlock()
		return tok, nil
	}
	old, oldExpiry, oldStale := s.token, s.expiry, s.stale
	refresh := s.refresh
	s.mu.Unlock()

	tok, expiry, newRefresh, err := s.fetch(ctx, refresh)
	if err != nil {
		// A token that is merely near its end still works: use it
		// and try again next time.
		if old != "" && !oldStale && s.cfg.Now().Before(oldExpiry) {
			return old, nil
		}
		return "", err
	}
	s.mu.Lock()
	s.token, s.expiry, s.stale = tok, expiry, false
	s.fetches++
	rotated := newRefresh != "" && newRefresh != s.refresh
	if rotated {
		s.refresh = newRefresh
	}
	s.mu.Unlock()
	if rotated && s.cfg.OnRefreshToken != nil {
		s.cfg.OnRefreshToken(newRefresh)
	}
	return tok, nil
}

// Invalidate says that a server refused token (HTTP 401, IMAP
// AUTHENTICATIONFAILED): the next Token fetches a new one. A token other
// than the one held (already replaced) changes nothing, so that several
// requests refused at once cause one fetch.
func (s *Source) Invalidate(token string) {
	s.mu.Lock()
	if token != "" && token == s.token {
		s.stale = true
	}
	s.mu.Unlock()
}

// Fetches is the number of tokens fetched so far.
func (s *Source) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// fetch asks the token endpoint once. expiry is measured from before the
// request, so that it errs on the early side.
func (s *Source) fetch(ctx context.Context, refresh string) (token string, expiry time.Time, newRefresh string, err error) {
	start := s.cfg.Now()
	cc := &clientcredentials.Config{
		ClientID:     s.cfg.ClientID,
		ClientSecret: s.cfg.ClientSecret,
		TokenURL:     s.tokenURL,
		// Both providers document the credentials in the form body;
		// auto-detection would send a refused request first.
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: url.Values{},
	}
	if !(s.cfg.provider() == connector.OAuthGoogle) {
		cc.Scopes = s.cfg.Scopes
	}
	switch s.grant {
	case "refresh token":
		// RFC 6749 §6. clientcredentials lets grant_type be replaced,
		// and unlike oauth2.Config's refresher it sends the scope,
		// which Microsoft's v2 endpoint documents as required.
		cc.EndpointParams.Set("grant_type", "refresh_token")
		cc.EndpointParams.Set("refresh_token", refresh)
	case "certificate":
		assertion, err := clientAssertion(s.cfg.ClientID, s.tokenURL, s.cfg.Certificate, s.cfg.Key, start)
		if err != nil {
			return "", time.Time{}, "", connector.Errorf(connector.KindConfig, "", err, "sign a client assertion for app %s", s.cfg.ClientID)
		}
		cc.EndpointParams.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		cc.EndpointParams.Set("client_assertion", assertion)
	}
	t, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient))
	if err != nil {
		return "", time.Time{}, "", s.classify(err)
	}
	if !strings.EqualFold(t.TokenType, "bearer") && t.TokenType != "" {
		return "", time.Time{}, "", s.errorf(connector.KindConfig, "", fmt.Errorf("token type %q, not Bearer", t.TokenType))
	}
	lifetime := expiresIn(t)
	if lifetime <= 0 {
		// No expires_in: assume the shortest lifetime Microsoft
		// issues (an hour is the documented default; 60-90 minutes
		// in practice) minus the margin, so that it is renewed soon.
		lifetime = time.Hour
	}
	return t.AccessToken, start.Add(lifetime), t.RefreshToken, nil
}

func (s *Source) op() string {
	host := s.tokenURL
	if u, err := url.Parse(s.tokenURL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("get an OAuth token for app %s (%s) from %s", s.cfg.ClientID, s.grant, host)
}

func (s *Source) errorf(kind connector.Kind, hint string, err error) *connector.Error {
	return &connector.Error{Kind: kind, Op: s.op(), Hint: hint, Err: err}
}

// expiresIn reads the token's expires_in (RFC 6749 §5.1). clientcredentials
// keeps it only among the raw fields, and its Expiry is on the real clock.
func expiresIn(t *oauth2.Token) time.Duration {
	switch v := t.Extra("expires_in").(type) {
	case float64:
		return time.Duration(v * float64(time.Second))
	case string: // some endpoints send the number as a string
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	if !t.Expiry.IsZero() {
		return time.Until(t.Expiry)
	}
	return 0
}
