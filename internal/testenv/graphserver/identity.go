package graphserver

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Resources (token audiences) the token endpoint issues tokens for.
const (
	ResourceGraph   = "https://graph.microsoft.com"
	ResourceOutlook = "https://outlook.office365.com"
	resourceGoogle  = "google"
)

// Application roles (application permissions) the Graph server and the
// IMAP verifier enforce. The names are those of the permissions reference
// and each API page's permission table.
const (
	RoleMailReadBasic       = "Mail.ReadBasic.All"
	RoleMailRead            = "Mail.Read"
	RoleMailReadWrite       = "Mail.ReadWrite"
	RoleMailAdvancedWrite   = "Mail-Advanced.ReadWrite.All" // beta importMime
	RoleUserReadAll         = "User.Read.All"
	RoleUserReadBasicAll    = "User.ReadBasic.All"
	RoleIMAPAccessAsApp     = "IMAP.AccessAsApp" // resource https://outlook.office365.com
	ScopeIMAPAccessAsUser   = "https://outlook.office.com/IMAP.AccessAsUser.All"
	ScopeGoogleMail         = "https://mail.google.com/"
	scopeGraphDefault       = ResourceGraph + "/.default"
	scopeOutlookDefault     = ResourceOutlook + "/.default"
	clientAssertionTypeJWT  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	wwwAuthenticate         = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`
	graphResourceAppOutlook = "outlook"
)

// Route names of the token endpoints, for RequestCount and InjectFault.
const (
	RouteMicrosoftToken = "POST /{tenant}/oauth2/v2.0/token"
	RouteGoogleToken    = "POST /token"
)

// outlookRoles are the application roles that belong to the Exchange Online
// resource (https://outlook.office365.com) rather than to Graph.
var outlookRoles = map[string]bool{"IMAP.AccessAsApp": true, "POP.AccessAsApp": true, "SMTP.SendAsApp": true, "full_access_as_app": true}

type tenant struct {
	id, domain string
	importMime bool
}

type app struct {
	clientID string
	tenant   *tenant
	secrets  map[string]time.Time // value -> expiry (zero: never)
	certs    []*x509.Certificate
	roles    map[string]bool
	imap     map[string]bool // mailboxes (lowercase UPN) with Exchange mailbox permission
}

type accessToken struct {
	value    string
	tenant   *tenant
	app      *app
	user     string // delegated: lowercase UPN; app-only: ""
	resource string
	roles    map[string]bool // app-only
	scopes   map[string]bool // delegated (short names: Mail.ReadWrite, IMAP.AccessAsUser.All)
	expires  time.Time
	revoked  bool
}

type refreshGrant struct {
	value   string
	tenant  *tenant
	app     *app
	google  *googleClient
	user    string
	scopes  []string
	revoked bool
}

type googleClient struct{ id, secret string }

type identityState struct {
	tenants  map[string]*tenant
	apps     map[string]*app
	tokens   map[string]*accessToken
	refresh  map[string]*refreshGrant
	google   map[string]*googleClient
	requests TokenRequests
	// The authorization code grant (authorize.go).
	redirects map[*app]map[string]bool
	codes     map[string]*authCode
	signedIn  string
}

func (st *identityState) init() {
	st.tenants = map[string]*tenant{}
	st.apps = map[string]*app{}
	st.tokens = map[string]*accessToken{}
	st.refresh = map[string]*refreshGrant{}
	st.google = map[string]*googleClient{}
}

// TokenRequests counts token-endpoint requests by outcome.
type TokenRequests struct {
	ClientCredentials int // Microsoft client_credentials grants issued
	Refresh           int // Microsoft refresh_token grants issued
	Google            int // Google refresh_token grants issued
	AuthorizationCode int // Microsoft authorization codes redeemed
	Failed            int // requests answered with an OAuth error
}

// TokenRequests returns the token-endpoint counters.
func (s *Server) TokenRequests() TokenRequests {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id.requests
}

// AddTenant registers a tenant by its id (a GUID in real life) and its
// domain (contoso.onmicrosoft.com); either may be used in token URLs.
func (s *Server) AddTenant(id, domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &tenant{id: id, domain: domain}
	s.id.tenants[strings.ToLower(id)] = t
	if domain != "" {
		s.id.tenants[strings.ToLower(domain)] = t
	}
}

// SetImportMime turns the beta importMime action on or off for a tenant
// (off by default), so that tests exercise both the importMime path and
// the JSON fallback.
func (s *Server) SetImportMime(tenantID string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustTenant(tenantID).importMime = enabled
}

func (s *Server) mustTenant(id string) *tenant {
	t := s.id.tenants[strings.ToLower(id)]
	if t == nil {
		panic(fmt.Sprintf("graphserver: unknown tenant %q (AddTenant first)", id))
	}
	return t
}

func (s *Server) mustApp(clientID string) *app {
	a := s.id.apps[clientID]
	if a == nil {
		panic(fmt.Sprintf("graphserver: unknown app %q (AddApp first)", clientID))
	}
	return a
}

// AddApp registers an app (client id) in a tenant with granted application
// roles (RoleMailReadWrite, RoleIMAPAccessAsApp, ...), as after admin
// consent.
func (s *Server) AddApp(tenantID, clientID string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &app{clientID: clientID, tenant: s.mustTenant(tenantID), secrets: map[string]time.Time{}, roles: map[string]bool{}, imap: map[string]bool{}}
	for _, r := range roles {
		a.roles[r] = true
	}
	s.id.apps[clientID] = a
}

// SetAppRoles replaces an app's granted roles. Tokens already issued keep
// the roles they were issued with, as real tokens do.
func (s *Server) SetAppRoles(clientID string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(clientID)
	a.roles = map[string]bool{}
	for _, r := range roles {
		a.roles[r] = true
	}
}

// AddClientSecret adds a client secret; expires zero means it never does.
func (s *Server) AddClientSecret(clientID, secret string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustApp(clientID).secrets[secret] = expires
}

// AddClientCertificate registers a certificate whose key signs the app's
// client assertions.
func (s *Server) AddClientCertificate(clientID string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(clientID)
	a.certs = append(a.certs, cert)
}

// GrantIMAPMailbox gives an app the Exchange mailbox permission an app-only
// IMAP login needs besides IMAP.AccessAsApp (Add-MailboxPermission).
func (s *Server) GrantIMAPMailbox(clientID, upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustApp(clientID).imap[strings.ToLower(upn)] = true
}

// MintRefreshToken issues a Microsoft delegated refresh token for user, as
// if the user had consented to scopes (full scope strings, e.g.
// ScopeIMAPAccessAsUser or "https://graph.microsoft.com/Mail.ReadWrite").
func (s *Server) MintRefreshToken(clientID, user string, scopes ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(clientID)
	g := &refreshGrant{value: "0.MF" + newID(24), tenant: a.tenant, app: a, user: strings.ToLower(user), scopes: scopes}
	s.id.refresh[g.value] = g
	return g.value
}

// AddGoogleClient registers a Google OAuth client.
func (s *Server) AddGoogleClient(clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id.google[clientID] = &googleClient{id: clientID, secret: secret}
}

// MintGoogleRefreshToken issues a Google refresh token for user and scopes
// (e.g. ScopeGoogleMail).
func (s *Server) MintGoogleRefreshToken(clientID, user string, scopes ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.id.google[clientID]
	if c == nil {
		panic(fmt.Sprintf("graphserver: unknown Google client %q", clientID))
	}
	g := &refreshGrant{value: "1//" + newID(24), google: c, user: strings.ToLower(user), scopes: scopes}
	s.id.refresh[g.value] = g
	return g.value
}

// ExpireAccessTokens makes every access token issued so far expired.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, t := range s.id.tokens {
		t.expires = past
	}
}

// RevokeAccessToken makes one access token invalid.
func (s *Server) RevokeAccessToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.id.tokens[token]; t != nil {
		t.revoked = true
	}
}

// RevokeRefreshToken makes a refresh token invalid (invalid_grant).
func (s *Server) RevokeRefreshToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.id.refresh[token]; g != nil {
		g.revoked = true
	}
}

// IssuedAccessTokens is the number of access tokens issued so far.
func (s *Server) IssuedAccessTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.id.tokens)
}

// oauthError is the identity platform's error body (reference-error-codes).
type oauthError struct {
	status int
	err    string
	code   int // AADSTS number; 0 for Google errors
	desc   string
}

func aadErr(status int, errCode string, code int, format string, args ...any) *oauthError {
	return &oauthError{status: status, err: errCode, code: code, desc: fmt.Sprintf(format, args...)}
}

func (s *Server) writeOAuthError(w http.ResponseWriter, e *oauthError) {
	s.mu.Lock()
	s.id.requests.Failed++
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	if e.status == http.StatusUnauthorized && e.code == 0 {
		h.Set("WWW-Authenticate", `Basic realm="https://accounts.google.com/"`)
	}
	w.WriteHeader(e.status)
	var body any
	if e.code == 0 {
		body = map[string]any{"error": e.err, "error_description": e.desc}
	} else {
		now := s.now().UTC().Format("2006-01-02 15:04:05Z")
		trace, corr := newRequestID(), newRequestID()
		body = obj{
			{"error", e.err},
			{"error_description", fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", e.code, e.desc, trace, corr, now)},
			{"error_codes", []int{e.code}},
			{"timestamp", now},
			{"trace_id", trace},
			{"correlation_id", corr},
			{"error_uri", fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", e.code)},
		}
	}
	b, _ := json.Marshal(body)
	_, _ = w.Write(b)
}

func writeTokenJSON(w http.ResponseWriter, body obj) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	b, _ := json.Marshal(body)
	_, _ = w.Write(b)
}

// parseTokenForm checks method and content type and parses the form, as
// the token endpoint requires application/x-www-form-urlencoded POSTs.
func (s *Server) parseTokenForm(r *http.Request, google bool) (url.Values, *oauthError) {
	missing := func(p string) *oauthError {
		if google {
			return &oauthError{status: 400, err: "invalid_request", desc: "Missing required parameter: " + p}
		}
		return aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: '%s'.", p)
	}
	if r.Method != http.MethodPost {
		if google {
			return nil, &oauthError{status: 405, err: "invalid_request", desc: "Method not allowed: " + r.Method}
		}
		return nil, aadErr(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil, missing("grant_type")
	}
	body, gerr := readBody(r, 1<<20)
	if gerr != nil {
		return nil, aadErr(400, "invalid_request", 90014, "The request body is too large.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, aadErr(400, "invalid_request", 90014, "The request body is malformed: %v", err)
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, aadErr(400, "invalid_request", 90015, "The parameter '%s' is duplicated.", k)
		}
	}
	if form.Get("grant_type") == "" {
		return nil, missing("grant_type")
	}
	return form, nil
}

// clientAuth returns client_id and client_secret from HTTP Basic (RFC 6749
// section 2.3.1, form-urlencoded inside Basic) or from the form.
func clientAuth(r *http.Request, form url.Values) (id, secret string, basic bool) {
	if u, p, ok := r.BasicAuth(); ok {
		uid, err1 := url.QueryUnescape(u)
		pw, err2 := url.QueryUnescape(p)
		if err1 == nil && err2 == nil {
			return uid, pw, true
		}
		return u, p, true
	}
	return form.Get("client_id"), form.Get("client_secret"), false
}

func (s *Server) serveMicrosoftToken(w http.ResponseWriter, r *http.Request) {
	if gerr := s.countAndFault(RouteMicrosoftToken); gerr != nil {
		s.writeOAuthError(w, aadErr(gerr.Status, "temporarily_unavailable", 50000, "%s", gerr.Message))
		return
	}
	tenantSeg := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	form, oerr := s.parseTokenForm(r, false)
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	resp, oerr := s.microsoftGrant(r, tenantSeg, form)
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	writeTokenJSON(w, resp)
}

func (s *Server) microsoftGrant(r *http.Request, tenantSeg string, form url.Values) (obj, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	t := s.id.tenants[strings.ToLower(tenantSeg)]
	if t == nil {
		return nil, aadErr(400, "invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenantSeg)
	}
	clientID, secret, _ := clientAuth(r, form)
	if clientID == "" {
		return nil, aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	a := s.id.apps[clientID]
	if a == nil || a.tenant != t {
		return nil, aadErr(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenantSeg)
	}
	grant := form.Get("grant_type")
	switch grant {
	case "client_credentials":
		scope := form.Get("scope")
		if scope == "" {
			return nil, aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		}
		var resource string
		switch scope {
		case scopeGraphDefault:
			resource = ResourceGraph
		case scopeOutlookDefault:
			resource = ResourceOutlook
		default:
			if strings.Contains(scope, " ") || !strings.HasSuffix(scope, "/.default") {
				return nil, aadErr(400, "invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
			}
			return nil, aadErr(400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)
		}
		if oerr := s.authenticateClient(a, tenantSeg, secret, form, now, true); oerr != nil {
			return nil, oerr
		}
		tok := &accessToken{value: newTokenValue(), tenant: t, app: a, resource: resource, roles: map[string]bool{}, expires: now.Add(s.opts.TokenLifetime)}
		for role := range a.roles {
			if outlookRoles[role] == (resource == ResourceOutlook) {
				tok.roles[role] = true
			}
		}
		s.id.tokens[tok.value] = tok
		s.id.requests.ClientCredentials++
		secs := int(s.opts.TokenLifetime / time.Second)
		return obj{{"token_type", "Bearer"}, {"expires_in", secs}, {"ext_expires_in", secs}, {"access_token", tok.value}}, nil
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			return nil, aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
		}
		if len(a.secrets) > 0 || len(a.certs) > 0 {
			if oerr := s.authenticateClient(a, tenantSeg, secret, form, now, true); oerr != nil {
				return nil, oerr
			}
		}
		g := s.id.refresh[rt]
		switch {
		case g == nil || g.app == nil:
			return nil, aadErr(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
		case g.revoked:
			return nil, aadErr(400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.")
		case g.app != a:
			return nil, aadErr(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
		}
		scopes, resource, oerr := requestedScopes(form.Get("scope"), g.scopes)
		if oerr != nil {
			return nil, oerr
		}
		tok := &accessToken{value: newTokenValue(), tenant: t, app: a, user: g.user, resource: resource, scopes: map[string]bool{}, expires: now.Add(s.opts.TokenLifetime)}
		for _, sc := range scopes {
			tok.scopes[shortScope(sc)] = true
		}
		s.id.tokens[tok.value] = tok
		ng := &refreshGrant{value: "0.MF" + newID(24), tenant: t, app: a, user: g.user, scopes: g.scopes}
		s.id.refresh[ng.value] = ng
		s.id.requests.Refresh++
		secs := int(s.opts.TokenLifetime / time.Second)
		return obj{{"token_type", "Bearer"}, {"scope", strings.Join(scopes, " ")}, {"expires_in", secs}, {"ext_expires_in", secs}, {"access_token", tok.value}, {"refresh_token", ng.value}}, nil
	case "authorization_code":
		return s.redeemCode(t, a, tenantSeg, secret, form, now)
	default:
		return nil, aadErr(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'.", grant)
	}
}

// requestedScopes checks a refresh request's scope parameter against the
// consented scopes. Without a scope parameter the consented scopes are
// used (see LIMITS.md). OIDC scopes are not resources and are skipped.
func requestedScopes(param string, granted []string) ([]string, string, *oauthError) {
	want := strings.Fields(param)
	if len(want) == 0 {
		want = granted
	}
	has := map[string]bool{}
	for _, g := range granted {
		has[strings.ToLower(g)] = true
	}
	// "<resource>/.default" asks for every permission consented to for
	// that resource (scopes-oidc, "The .default scope").
	var expanded []string
	for _, sc := range want {
		if !strings.HasSuffix(strings.ToLower(sc), "/.default") {
			expanded = append(expanded, sc)
			continue
		}
		n := len(expanded)
		for _, g := range granted {
			switch strings.ToLower(g) {
			case "offline_access", "openid", "profile", "email":
				continue
			}
			if scopeResource(g) == scopeResource(sc) {
				expanded = append(expanded, g)
			}
		}
		if len(expanded) == n {
			return nil, "", aadErr(400, "invalid_grant", 65001, "The user or administrator has not consented to use the application with the requested scope '%s'. Send an interactive authorization request for this user and resource.", sc)
		}
	}
	want = expanded
	var out []string
	resource := ""
	for _, sc := range want {
		switch strings.ToLower(sc) {
		case "offline_access", "openid", "profile", "email":
			continue
		}
		if !has[strings.ToLower(sc)] {
			return nil, "", aadErr(400, "invalid_grant", 65001, "The user or administrator has not consented to use the application with the requested scope '%s'. Send an interactive authorization request for this user and resource.", sc)
		}
		res := scopeResource(sc)
		if resource != "" && res != resource {
			return nil, "", aadErr(400, "invalid_request", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", param)
		}
		resource = res
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, "", aadErr(400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", param)
	}
	return out, resource, nil
}

func scopeResource(scope string) string {
	l := strings.ToLower(scope)
	switch {
	case strings.HasPrefix(l, "https://outlook.office.com/"), strings.HasPrefix(l, "https://outlook.office365.com/"):
		return ResourceOutlook
	default:
		return ResourceGraph
	}
}

// shortScope strips the resource from a scope: Mail.ReadWrite.
func shortScope(scope string) string {
	if i := strings.LastIndex(scope, "/"); i >= 0 {
		return scope[i+1:]
	}
	return scope
}

func newTokenValue() string {
	// Opaque to clients, as the platform documents; the eyJ prefix only
	// makes it look like what clients see in practice.
	return "eyJ0eXAiOiJKV1QifQ." + newID(32)
}

// authenticateClient checks a client secret or a certificate assertion.
func (s *Server) authenticateClient(a *app, tenantSeg, secret string, form url.Values, now time.Time, required bool) *oauthError {
	assertion := form.Get("client_assertion")
	switch {
	case assertion != "":
		if at := form.Get("client_assertion_type"); at != clientAssertionTypeJWT {
			return aadErr(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion_type' with the value '%s'.", clientAssertionTypeJWT)
		}
		aud := []string{s.URL + "/" + tenantSeg + "/oauth2/v2.0/token", s.TokenURL(a.tenant.id)}
		if a.tenant.domain != "" {
			aud = append(aud, s.TokenURL(a.tenant.domain))
		}
		err := verifyClientAssertion(assertion, a.clientID, aud, a.certs, now)
		var ae *assertionError
		if errors.As(err, &ae) {
			return aadErr(401, "invalid_client", ae.code, "%s", ae.msg)
		} else if err != nil {
			return aadErr(401, "invalid_client", 50013, "Assertion is invalid: %v", err)
		}
		return nil
	case secret != "":
		exp, ok := a.secrets[secret]
		if !ok {
			return aadErr(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", a.clientID)
		}
		if !exp.IsZero() && !now.Before(exp) {
			return aadErr(401, "invalid_client", 7000222, "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app.", a.clientID)
		}
		return nil
	case required:
		return aadErr(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	return nil
}

func (s *Server) serveGoogleToken(w http.ResponseWriter, r *http.Request) {
	if gerr := s.countAndFault(RouteGoogleToken); gerr != nil {
		s.writeOAuthError(w, &oauthError{status: gerr.Status, err: "internal_failure", desc: gerr.Message})
		return
	}
	form, oerr := s.parseTokenForm(r, true)
	if oerr != nil {
		oerr.code = 0
		s.writeOAuthError(w, oerr)
		return
	}
	resp, oerr := s.googleGrant(r, form)
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	writeTokenJSON(w, resp)
}

func (s *Server) googleGrant(r *http.Request, form url.Values) (obj, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := form.Get("grant_type"); g != "refresh_token" {
		return nil, &oauthError{status: 400, err: "unsupported_grant_type", desc: "Invalid grant_type: " + g}
	}
	id, secret, _ := clientAuth(r, form)
	c := s.id.google[id]
	if c == nil {
		return nil, &oauthError{status: 401, err: "invalid_client", desc: "The OAuth client was not found."}
	}
	if secret != c.secret {
		return nil, &oauthError{status: 401, err: "invalid_client", desc: "Unauthorized"}
	}
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, &oauthError{status: 400, err: "invalid_request", desc: "Missing required parameter: refresh_token"}
	}
	g := s.id.refresh[rt]
	if g == nil || g.revoked || g.google != c {
		return nil, &oauthError{status: 400, err: "invalid_grant", desc: "Token has been expired or revoked."}
	}
	tok := &accessToken{value: "ya29." + newID(32), user: g.user, resource: resourceGoogle, scopes: map[string]bool{}, expires: s.now().Add(s.opts.TokenLifetime)}
	for _, sc := range g.scopes {
		tok.scopes[sc] = true
	}
	s.id.tokens[tok.value] = tok
	s.id.requests.Google++
	return obj{{"access_token", tok.value}, {"expires_in", int(s.opts.TokenLifetime / time.Second)}, {"scope", strings.Join(g.scopes, " ")}, {"token_type", "Bearer"}}, nil
}

// IMAPAuthError is why CheckIMAPToken refused a token. Status and Scope
// are what an XOAUTH2 server puts into its JSON error challenge.
type IMAPAuthError struct {
	Status string // "401" (invalid or expired) or "400"
	Scope  string // the scope that would have worked
	Reason string
}

func (e *IMAPAuthError) Error() string { return "imap token refused: " + e.Reason }

// ChallengeStatus and ChallengeScope let xoauth2imap build its error
// challenge without importing this package.
func (e *IMAPAuthError) ChallengeStatus() string { return e.Status }

// ChallengeScope is the scope for the XOAUTH2 error challenge.
func (e *IMAPAuthError) ChallengeScope() string { return e.Scope }

// CheckIMAPToken verifies an access token presented in an IMAP XOAUTH2
// login for user: a Microsoft app-only token for
// https://outlook.office365.com with IMAP.AccessAsApp and the mailbox
// permission (GrantIMAPMailbox), a Microsoft delegated token with
// IMAP.AccessAsUser.All for that user, or a Google token with
// https://mail.google.com/ for that user. It satisfies xoauth2imap's
// verifier signature.
func (s *Server) CheckIMAPToken(user, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	user = strings.ToLower(user)
	t := s.id.tokens[token]
	switch {
	case t == nil:
		return &IMAPAuthError{Status: "401", Scope: ScopeGoogleMail, Reason: "unknown token"}
	case t.revoked:
		return &IMAPAuthError{Status: "401", Scope: scopeOf(t), Reason: "token revoked"}
	case !s.now().Before(t.expires):
		return &IMAPAuthError{Status: "401", Scope: scopeOf(t), Reason: "token expired"}
	}
	switch t.resource {
	case resourceGoogle:
		if !t.scopes[ScopeGoogleMail] {
			return &IMAPAuthError{Status: "400", Scope: ScopeGoogleMail, Reason: "token lacks scope " + ScopeGoogleMail}
		}
		if t.user != user {
			return &IMAPAuthError{Status: "400", Scope: ScopeGoogleMail, Reason: "token was issued for another user"}
		}
		return nil
	case ResourceOutlook:
		if t.user != "" {
			if !t.scopes["IMAP.AccessAsUser.All"] {
				return &IMAPAuthError{Status: "400", Scope: ScopeIMAPAccessAsUser, Reason: "token lacks IMAP.AccessAsUser.All"}
			}
			if t.user != user {
				return &IMAPAuthError{Status: "400", Scope: ScopeIMAPAccessAsUser, Reason: "token was issued for another user"}
			}
			return nil
		}
		if !t.roles[RoleIMAPAccessAsApp] {
			return &IMAPAuthError{Status: "400", Scope: scopeOutlookDefault, Reason: "app token lacks the IMAP.AccessAsApp role"}
		}
		if !t.app.imap[user] {
			return &IMAPAuthError{Status: "400", Scope: scopeOutlookDefault, Reason: "app has no mailbox permission on " + user}
		}
		return nil
	default:
		return &IMAPAuthError{Status: "400", Scope: scopeOutlookDefault, Reason: "token audience is " + t.resource + ", not " + ResourceOutlook}
	}
}

func scopeOf(t *accessToken) string {
	if t.resource == resourceGoogle {
		return ScopeGoogleMail
	}
	return scopeOutlookDefault
}

// principal is the caller of a Graph request.
type principal struct {
	tok *accessToken
}

func (p principal) delegated() bool { return p.tok.user != "" }

// has reports whether the caller holds any of perms: application roles for
// app-only tokens, delegated scopes (role name without ".All") otherwise.
func (p principal) has(perms ...string) bool {
	for _, perm := range perms {
		if p.delegated() {
			if p.tok.scopes[strings.TrimSuffix(perm, ".All")] {
				return true
			}
		} else if p.tok.roles[perm] {
			return true
		}
	}
	return false
}

// authenticate checks the bearer token of a Graph request.
func (s *Server) authenticate(r *http.Request) (principal, *graphError) {
	unauth := func(msg string) *graphError {
		e := newError(http.StatusUnauthorized, "InvalidAuthenticationToken", "%s", msg)
		e.Header = http.Header{"Www-Authenticate": {wwwAuthenticate}}
		return e
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, unauth("Access token is empty.")
	}
	scheme, tokStr, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tokStr == "" {
		return principal{}, unauth("Access token is empty.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.id.tokens[tokStr]
	switch {
	case t == nil:
		return principal{}, unauth("IDX14100: JWT is not well formed, there are no dots (.).")
	case t.resource != ResourceGraph:
		return principal{}, unauth("Access token validation failure. Invalid audience.")
	case t.revoked || !s.now().Before(t.expires):
		return principal{}, unauth("Lifetime validation failed, the token is expired.")
	}
	return principal{tok: t}, nil
}

// sortedKeys is used for stable output in tests and errors.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var b64url = base64.RawURLEncoding
