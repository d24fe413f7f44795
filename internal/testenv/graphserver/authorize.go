package graphserver

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The authorization code grant with PKCE (v2-oauth2-auth-code-flow on
// learn.microsoft.com; RFC 6749 §4.1, RFC 7636), for delegated consent:
// GET /{tenant}/oauth2/v2.0/authorize sends the browser back to the
// registered redirect URI with a code (and the state) or an error, and
// the token endpoint redeems the code once for an access token and, when
// offline_access was asked for, a refresh token. There is no sign-in
// page: the test says who is signed in (SignIn); nobody signed in is
// answered as a user who declined (access_denied, AADSTS65004).

// RouteMicrosoftAuthorize names the authorization endpoint for
// RequestCount.
const RouteMicrosoftAuthorize = "GET /{tenant}/oauth2/v2.0/authorize"

// authCodeLifetime: codes are short-lived (the page says about ten
// minutes).
const authCodeLifetime = 10 * time.Minute

type authCode struct {
	value     string
	tenant    *tenant
	app       *app
	user      string
	scopes    []string
	redirect  string
	challenge string
	expires   time.Time
	redeemed  bool
}

// AddRedirectURI registers a redirect URI of an app (Authentication,
// Web platform). The authorization endpoint sends codes only to these,
// compared exactly.
func (s *Server) AddRedirectURI(clientID, uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(clientID)
	if s.id.redirects == nil {
		s.id.redirects = map[*app]map[string]bool{}
	}
	if s.id.redirects[a] == nil {
		s.id.redirects[a] = map[string]bool{}
	}
	s.id.redirects[a][uri] = true
}

// SignIn says which user (UPN) the browser is signed in as and consents
// at the authorization endpoint; "" signs out, after which consent is
// declined.
func (s *Server) SignIn(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id.signedIn = strings.ToLower(upn)
}

// AuthorizeURL is the authorization endpoint of a tenant.
func (s *Server) AuthorizeURL(tenant string) string {
	return s.URL + "/" + tenant + "/oauth2/v2.0/authorize"
}

// serveMicrosoftAuthorize answers the browser. Errors before the
// redirect URI is known to be the app's are shown as a page (the
// platform never redirects to an unregistered URI); later ones go back
// to the redirect URI with error and error_description.
func (s *Server) serveMicrosoftAuthorize(w http.ResponseWriter, r *http.Request) {
	s.countAndFault(RouteMicrosoftAuthorize)
	page := func(code int, msg string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("AADSTS" + strconv.Itoa(code) + ": " + msg))
	}
	if r.Method != http.MethodGet {
		page(900561, "The endpoint only accepts GET requests.")
		return
	}
	q := r.URL.Query()
	tenantSeg := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/authorize")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.id.tenants[strings.ToLower(tenantSeg)]
	if t == nil {
		page(90002, "Tenant '"+tenantSeg+"' not found.")
		return
	}
	a := s.id.apps[q.Get("client_id")]
	if a == nil || a.tenant != t {
		page(700016, "Application with identifier '"+q.Get("client_id")+"' was not found in the directory '"+tenantSeg+"'.")
		return
	}
	redirect := q.Get("redirect_uri")
	if !s.id.redirects[a][redirect] {
		page(50011, "The redirect URI '"+redirect+"' specified in the request does not match the redirect URIs configured for the application '"+a.clientID+"'.")
		return
	}
	back := func(v url.Values) {
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		http.Redirect(w, r, redirect+"?"+v.Encode(), http.StatusFound)
	}
	fail := func(errCode string, code int, msg string) {
		back(url.Values{"error": {errCode}, "error_description": {"AADSTS" + strconv.Itoa(code) + ": " + msg}})
	}
	if rt := q.Get("response_type"); rt != "code" {
		fail("unsupported_response_type", 700054, "response_type '"+rt+"' is not enabled for the application.")
		return
	}
	if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
		fail("invalid_request", 501491, "Invalid code_challenge_method: only S256 is accepted here.")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		fail("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	if s.id.signedIn == "" {
		fail("access_denied", 65004, "User declined to consent to access the app.")
		return
	}
	c := &authCode{value: "0.AX" + newID(32), tenant: t, app: a, user: s.id.signedIn, scopes: scopes, redirect: redirect,
		challenge: q.Get("code_challenge"), expires: s.now().Add(authCodeLifetime)}
	if s.id.codes == nil {
		s.id.codes = map[string]*authCode{}
	}
	s.id.codes[c.value] = c
	back(url.Values{"code": {c.value}})
}

// redeemCode is the authorization_code grant of the token endpoint; the
// caller holds s.mu and has checked the tenant and the app.
func (s *Server) redeemCode(t *tenant, a *app, tenantSeg, secret string, form url.Values, now time.Time) (obj, *oauthError) {
	if len(a.secrets) > 0 || len(a.certs) > 0 {
		if oerr := s.authenticateClient(a, tenantSeg, secret, form, now, true); oerr != nil {
			return nil, oerr
		}
	}
	c := s.id.codes[form.Get("code")]
	switch {
	case form.Get("code") == "":
		return nil, aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
	case c == nil || c.app != a:
		return nil, aadErr(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	case c.redeemed:
		return nil, aadErr(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case now.After(c.expires):
		return nil, aadErr(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	case form.Get("redirect_uri") != c.redirect:
		return nil, aadErr(400, "invalid_grant", 50148, "The redirect_uri used in the authorization request does not match the one in the token request.")
	}
	if c.challenge != "" {
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			return nil, aadErr(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
		}
	}
	c.redeemed = true
	scopes, resource, oerr := requestedScopes("", c.scopes)
	if oerr != nil {
		return nil, oerr
	}
	tok := &accessToken{value: newTokenValue(), tenant: t, app: a, user: c.user, resource: resource, scopes: map[string]bool{}, expires: now.Add(s.opts.TokenLifetime)}
	for _, sc := range scopes {
		tok.scopes[shortScope(sc)] = true
	}
	s.id.tokens[tok.value] = tok
	s.id.requests.AuthorizationCode++
	secs := int(s.opts.TokenLifetime / time.Second)
	resp := obj{{"token_type", "Bearer"}, {"scope", strings.Join(scopes, " ")}, {"expires_in", secs}, {"ext_expires_in", secs}, {"access_token", tok.value}}
	for _, sc := range c.scopes {
		if strings.EqualFold(sc, "offline_access") {
			g := &refreshGrant{value: "0.MF" + newID(24), tenant: t, app: a, user: c.user, scopes: scopes}
			s.id.refresh[g.value] = g
			resp = append(resp, kv{"refresh_token", g.value})
		}
	}
	return resp, nil
}
