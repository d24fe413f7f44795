package graphserver_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// postForm posts a token request and returns status and decoded body.
func postForm(t *testing.T, e *env, tokenURL string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := e.hc.PostForm(tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, m
}

// The documented success response (v2-oauth2-client-creds-grant-flow):
// token_type Bearer, expires_in, access_token; plus ext_expires_in.
func TestClientCredentialsSecretGivesDocumentedResponse(t *testing.T) {
	e := setup(t, nil)
	status, m := postForm(t, e, e.srv.TokenURL(domain), url.Values{"client_id": {clientID}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default"}, "grant_type": {"client_credentials"}})
	if status != 200 || m["token_type"] != "Bearer" || m["expires_in"] != float64(3599) || m["ext_expires_in"] != float64(3599) || m["access_token"] == "" {
		t.Fatalf("status %d body %v", status, m)
	}
	// The token from setup (x/oauth2) and this one: two grants.
	if got := e.srv.TokenRequests().ClientCredentials; got != 2 {
		t.Fatalf("ClientCredentials = %d, want 2", got)
	}
	// HTTP Basic client authentication (RFC 6749 section 2.3.1) works too.
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: e.srv.TokenURL(tenantID),
		Scopes: []string{"https://outlook.office365.com/.default"}, AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cfg.Token(context.WithValue(context.Background(), oauth2.HTTPClient, e.hc)); err != nil {
		t.Fatalf("Basic auth: %v", err)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := setup(t, nil)
	e.srv.AddApp(tenantID, "expired-app", graphserver.RoleMailRead)
	e.srv.AddClientSecret("expired-app", "old", time.Now().Add(-time.Hour))
	base := func() url.Values {
		return url.Values{"client_id": {clientID}, "client_secret": {secret}, "scope": {"https://graph.microsoft.com/.default"}, "grant_type": {"client_credentials"}}
	}
	with := func(k, v string) url.Values {
		f := base()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	cases := []struct {
		name   string
		tenant string
		form   url.Values
		status int
		err    string
		code   float64
	}{
		{"wrong secret", tenantID, with("client_secret", "nope"), 401, "invalid_client", 7000215},
		{"unknown app", tenantID, with("client_id", "00000000-0000-0000-0000-000000000000"), 400, "unauthorized_client", 700016},
		{"unknown tenant", "fabrikam.onmicrosoft.com", base(), 400, "invalid_request", 90002},
		{"scope of two resources", tenantID, with("scope", "https://graph.microsoft.com/.default https://outlook.office365.com/.default"), 400, "invalid_scope", 1002012},
		{"scope without .default", tenantID, with("scope", "https://graph.microsoft.com/Mail.Read"), 400, "invalid_scope", 1002012},
		{"other resource", tenantID, with("scope", "https://foo.microsoft.com/.default"), 400, "invalid_scope", 70011},
		{"no scope", tenantID, with("scope", ""), 400, "invalid_request", 900144},
		{"no grant_type", tenantID, with("grant_type", ""), 400, "invalid_request", 900144},
		{"unsupported grant", tenantID, with("grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"no credential", tenantID, with("client_secret", ""), 401, "invalid_client", 7000218},
		{"expired secret", tenantID, url.Values{"client_id": {"expired-app"}, "client_secret": {"old"}, "scope": {"https://graph.microsoft.com/.default"}, "grant_type": {"client_credentials"}}, 401, "invalid_client", 7000222},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := postForm(t, e, e.srv.TokenURL(tc.tenant), tc.form)
			desc, _ := m["error_description"].(string)
			codes, _ := m["error_codes"].([]any)
			if status != tc.status || m["error"] != tc.err || len(codes) != 1 || codes[0] != tc.code ||
				!strings.HasPrefix(desc, "AADSTS") || m["trace_id"] == nil || m["correlation_id"] == nil {
				t.Fatalf("got %d %v", status, m)
			}
		})
	}
	if n := e.srv.TokenRequests().Failed; n != len(cases) {
		t.Fatalf("Failed = %d, want %d", n, len(cases))
	}
	// A JSON body is not a form: the endpoint reports the missing grant_type.
	resp, body := e.do(t, "POST", "/"+tenantID+"/oauth2/v2.0/token", "application/json", []byte(`{"grant_type":"client_credentials"}`))
	if resp.StatusCode != 400 || !strings.Contains(string(body), "AADSTS900144") {
		t.Fatalf("JSON body: %d %s", resp.StatusCode, body)
	}
}

// newAppCert makes an RSA key and a self-signed certificate for it, as an
// app registration's uploaded certificate.
func newAppCert(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailferry test app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// signAssertion builds a client assertion as certificate-credentials
// documents it; mod may change header and claims before signing.
func signAssertion(t *testing.T, key *rsa.PrivateKey, cert *x509.Certificate, alg, aud string, mod func(h, c map[string]any)) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if alg == "PS256" {
		s := sha256.Sum256(cert.Raw)
		h["x5t#S256"] = base64.RawURLEncoding.EncodeToString(s[:])
	} else {
		s := sha1.Sum(cert.Raw)
		h["x5t"] = base64.RawURLEncoding.EncodeToString(s[:])
	}
	now := time.Now()
	c := map[string]any{"aud": aud, "iss": clientID, "sub": clientID, "jti": "22b3bb26-e046-42df-9c96-65dbd72c1c81",
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	if mod != nil {
		mod(h, c)
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	signing := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	digest := sha256.Sum256([]byte(signing))
	var sig []byte
	var err error
	if alg == "PS256" {
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], nil)
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestClientAssertionIsVerified(t *testing.T) {
	e := setup(t, nil)
	key, cert := newAppCert(t)
	e.srv.AddClientCertificate(clientID, cert)
	otherKey, otherCert := newAppCert(t)
	aud := e.srv.TokenURL(tenantID)
	form := func(assertion string) url.Values {
		return url.Values{"client_id": {clientID}, "scope": {"https://graph.microsoft.com/.default"}, "grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	}
	for _, alg := range []string{"RS256", "PS256"} {
		status, m := postForm(t, e, aud, form(signAssertion(t, key, cert, alg, aud, nil)))
		if status != 200 || m["access_token"] == nil {
			t.Fatalf("%s assertion: %d %v", alg, status, m)
		}
	}
	tampered := signAssertion(t, key, cert, "RS256", aud, nil)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	cases := []struct {
		name      string
		assertion string
		code      float64
	}{
		{"wrong audience", signAssertion(t, key, cert, "RS256", "https://login.microsoftonline.com/common/oauth2/v2.0/token", nil), 700212},
		{"expired", signAssertion(t, key, cert, "RS256", aud, func(h, c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), 700024},
		{"unregistered certificate", signAssertion(t, otherKey, otherCert, "RS256", aud, nil), 700027},
		{"bad signature", tampered, 700027},
		{"issuer is not the client", signAssertion(t, key, cert, "RS256", aud, func(h, c map[string]any) { c["iss"] = "someone" }), 700021},
		{"not a JWT", "abc.def", 50027},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := postForm(t, e, aud, form(tc.assertion))
			codes, _ := m["error_codes"].([]any)
			if status != 401 || m["error"] != "invalid_client" || len(codes) != 1 || codes[0] != tc.code {
				t.Fatalf("got %d %v", status, m)
			}
		})
	}
}

func TestRefreshTokenGrants(t *testing.T) {
	e := setup(t, nil)
	// A public client (no secret): delegated refresh for IMAP.
	e.srv.AddApp(tenantID, "public-app")
	rt := e.srv.MintRefreshToken("public-app", alice, graphserver.ScopeIMAPAccessAsUser, "offline_access")
	cfg := oauth2.Config{ClientID: "public-app", Endpoint: oauth2.Endpoint{TokenURL: e.srv.TokenURL(tenantID), AuthStyle: oauth2.AuthStyleInParams},
		Scopes: []string{graphserver.ScopeIMAPAccessAsUser, "offline_access"}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.hc)
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == rt || tok.Expiry.IsZero() {
		t.Fatalf("want a rotated refresh token and an expiry: %+v", tok)
	}
	if err := e.srv.CheckIMAPToken(alice, tok.AccessToken); err != nil {
		t.Fatalf("IMAP check for alice: %v", err)
	}
	var ie *graphserver.IMAPAuthError
	if err := e.srv.CheckIMAPToken(bob, tok.AccessToken); !errors.As(err, &ie) || ie.Status != "400" {
		t.Fatalf("IMAP check for bob must fail with 400, got %v", err)
	}
	// An outlook token is not a Graph token.
	resp, body := e.doToken(t, tok.AccessToken, "GET", "/v1.0/me/mailFolders", "", nil)
	wantError(t, resp, body, 401, "InvalidAuthenticationToken")

	e.srv.RevokeRefreshToken(tok.RefreshToken)
	status, m := postForm(t, e, e.srv.TokenURL(tenantID), url.Values{"client_id": {"public-app"}, "grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("revoked: %d %v", status, m)
	}
	// Scopes beyond the consent are refused.
	status, m = postForm(t, e, e.srv.TokenURL(tenantID), url.Values{"client_id": {"public-app"}, "grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"https://graph.microsoft.com/Mail.ReadWrite"}})
	if status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("unconsented scope: %d %v", status, m)
	}
	if n := e.srv.TokenRequests().Refresh; n != 1 {
		t.Fatalf("Refresh = %d, want 1", n)
	}
}

func TestGoogleRefreshToken(t *testing.T) {
	e := setup(t, nil)
	e.srv.AddGoogleClient("123.apps.googleusercontent.com", "gsecret")
	rt := e.srv.MintGoogleRefreshToken("123.apps.googleusercontent.com", "carol@gmail.com", graphserver.ScopeGoogleMail)
	status, m := postForm(t, e, e.srv.GoogleTokenURL(), url.Values{"client_id": {"123.apps.googleusercontent.com"}, "client_secret": {"gsecret"},
		"refresh_token": {rt}, "grant_type": {"refresh_token"}})
	if status != 200 || m["token_type"] != "Bearer" || m["scope"] != graphserver.ScopeGoogleMail || m["expires_in"] == nil {
		t.Fatalf("%d %v", status, m)
	}
	if err := e.srv.CheckIMAPToken("carol@gmail.com", m["access_token"].(string)); err != nil {
		t.Fatal(err)
	}
	status, m = postForm(t, e, e.srv.GoogleTokenURL(), url.Values{"client_id": {"123.apps.googleusercontent.com"}, "client_secret": {"bad"}, "refresh_token": {rt}, "grant_type": {"refresh_token"}})
	if status != 401 || m["error"] != "invalid_client" {
		t.Fatalf("bad secret: %d %v", status, m)
	}
	e.srv.RevokeRefreshToken(rt)
	status, m = postForm(t, e, e.srv.GoogleTokenURL(), url.Values{"client_id": {"123.apps.googleusercontent.com"}, "client_secret": {"gsecret"}, "refresh_token": {rt}, "grant_type": {"refresh_token"}})
	if status != 400 || m["error"] != "invalid_grant" || m["error_description"] != "Token has been expired or revoked." {
		t.Fatalf("revoked: %d %v", status, m)
	}
}

func TestAppOnlyIMAPTokenNeedsRoleAndMailboxPermission(t *testing.T) {
	e := setup(t, nil, graphserver.RoleMailReadWrite, graphserver.RoleIMAPAccessAsApp)
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: e.srv.TokenURL(tenantID),
		Scopes: []string{"https://outlook.office365.com/.default"}, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cfg.Token(context.WithValue(context.Background(), oauth2.HTTPClient, e.hc))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.CheckIMAPToken(alice, tok.AccessToken); err == nil {
		t.Fatal("IMAP login without Add-MailboxPermission must fail")
	}
	e.srv.GrantIMAPMailbox(clientID, alice)
	if err := e.srv.CheckIMAPToken(alice, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	// The Graph token of the same app does not work for IMAP.
	if err := e.srv.CheckIMAPToken(alice, e.token); err == nil {
		t.Fatal("a Graph token must not log in to IMAP")
	}
	e.srv.ExpireAccessTokens()
	var ie *graphserver.IMAPAuthError
	if err := e.srv.CheckIMAPToken(alice, tok.AccessToken); !errors.As(err, &ie) || ie.Status != "401" {
		t.Fatalf("expired: %v", err)
	}
}

func TestGraphRejectsMissingExpiredAndForeignTokens(t *testing.T) {
	c := newClock()
	e := setup(t, &graphserver.Options{Now: c.Now, TokenLifetime: 2 * time.Second})
	resp, body := e.doToken(t, "", "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	wantError(t, resp, body, 401, "InvalidAuthenticationToken")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("401 without a Bearer WWW-Authenticate: %q", resp.Header.Get("WWW-Authenticate"))
	}
	resp, body = e.doToken(t, "not-a-token", "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	wantError(t, resp, body, 401, "InvalidAuthenticationToken")
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	mustStatus(t, resp, body, 200)
	c.Advance(3 * time.Second)
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	if err := wantError(t, resp, body, 401, "InvalidAuthenticationToken"); !strings.Contains(err["message"].(string), "expired") {
		t.Fatalf("message should say expired: %v", err)
	}
}

func TestMissingRoleIsErrorAccessDenied(t *testing.T) {
	e := setup(t, nil, graphserver.RoleMailRead)
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	mustStatus(t, resp, body, 200)
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"X"}`))
	wantError(t, resp, body, 403, "ErrorAccessDenied")
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice, "", nil)
	wantError(t, resp, body, 403, "Authorization_RequestDenied")
	// Roles granted later need a new token, as with real tokens.
	e.srv.SetAppRoles(clientID, graphserver.RoleMailReadWrite)
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"X"}`))
	wantError(t, resp, body, 403, "ErrorAccessDenied")
	e.token = e.graphToken(t)
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"X"}`))
	mustStatus(t, resp, body, 201)
}
