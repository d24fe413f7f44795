package graphserver_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// The authorization code grant with PKCE as x/oauth2 drives it: the
// authorize endpoint sends the signed-in user's code and the state to
// the registered redirect URI; the code is redeemed once, only with its
// verifier and redirect URI, for a delegated IMAP token and a refresh
// token that refreshes. An unregistered redirect URI gets a page, not a
// redirect; a user who is not signed in declines.
func TestAuthorizationCodeWithPKCE(t *testing.T) {
	e := setup(t, nil)
	const redirect = "https://mailferry.example/oauth/callback"
	e.srv.AddRedirectURI(clientID, redirect)
	e.srv.SignIn(alice)
	noFollow := *e.hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg := oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: e.srv.AuthorizeURL(tenantID), TokenURL: e.srv.TokenURL(tenantID), AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{graphserver.ScopeIMAPAccessAsUser, "offline_access"}}
	authorize := func(cfg oauth2.Config, state string, opts ...oauth2.AuthCodeOption) url.Values {
		t.Helper()
		resp, err := noFollow.Get(cfg.AuthCodeURL(state, opts...))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %d, want a redirect", resp.StatusCode)
		}
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || u.Scheme+"://"+u.Host+u.Path != redirect {
			t.Fatalf("redirected to %q", resp.Header.Get("Location"))
		}
		return u.Query()
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.hc)
	verifier := oauth2.GenerateVerifier()
	q := authorize(cfg, "state-1", oauth2.S256ChallengeOption(verifier))
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("callback query %v", q)
	}
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption("wrong-"+verifier)); !aadCode(err, "AADSTS501481") {
		t.Errorf("a wrong verifier: %v", err)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if err := e.srv.CheckIMAPToken(alice, tok.AccessToken); err != nil {
		t.Errorf("the delegated token does not open alice's IMAP: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); !aadCode(err, "AADSTS54005") {
		t.Errorf("redeeming twice: %v", err)
	}
	if got := e.srv.TokenRequests().AuthorizationCode; got != 1 {
		t.Errorf("AuthorizationCode = %d, want 1", got)
	}
	// The refresh token works like a minted one.
	fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if err := e.srv.CheckIMAPToken(alice, fresh.AccessToken); err != nil || fresh.AccessToken == tok.AccessToken {
		t.Errorf("the refreshed token: %v", err)
	}

	// An unregistered redirect URI: a page, never a redirect.
	other := cfg
	other.RedirectURL = "https://evil.example/cb"
	resp, err := noFollow.Get(other.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("unregistered redirect URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Signed out: declined, with the state.
	e.srv.SignIn("")
	q = authorize(cfg, "state-2")
	if q.Get("error") != "access_denied" || q.Get("state") != "state-2" || q.Get("code") != "" {
		t.Errorf("signed out: %v", q)
	}
}

func aadCode(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && strings.Contains(re.ErrorDescription, code)
}

// A delegated refresh asking for "https://graph.microsoft.com/.default"
// gets every Graph permission the user consented to (scopes-oidc, "The
// .default scope"), which is how the Graph connector refreshes: the token
// reads the user's own mail and nobody else's. Without consent to any
// Graph permission, .default is refused.
func TestRefreshWithDefaultScope(t *testing.T) {
	e := setup(t, nil)
	rt := e.srv.MintRefreshToken(clientID, alice, "https://graph.microsoft.com/Mail.Read", "offline_access")
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.hc)
	refresh := func(rt string) (*oauth2.Token, error) {
		cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: e.srv.TokenURL(tenantID), AuthStyle: oauth2.AuthStyleInParams,
			Scopes:         []string{"https://graph.microsoft.com/.default", "offline_access"},
			EndpointParams: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}}
		return cc.Token(ctx)
	}
	tok, err := refresh(rt)
	if err != nil {
		t.Fatalf("refresh with .default: %v", err)
	}
	if resp, body := e.doToken(t, tok.AccessToken, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil); resp.StatusCode != 200 {
		t.Errorf("alice's folders with her .default token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.doToken(t, tok.AccessToken, "GET", "/v1.0/users/"+bob+"/mailFolders", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob's folders with alice's token: %d, want 403", resp.StatusCode)
	}
	imapOnly := e.srv.MintRefreshToken(clientID, alice, graphserver.ScopeIMAPAccessAsUser, "offline_access")
	if _, err := refresh(imapOnly); !aadCode(err, "AADSTS65001") {
		t.Errorf(".default without a consented Graph permission: %v", err)
	}
}
