package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/internal/connector"
)

// endpointError is the error body of RFC 6749 §5.2 with the fields the
// Microsoft identity platform adds (error_codes, trace and correlation
// ids; reference-error-codes on learn.microsoft.com).
type endpointError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	CorrelationID string `json:"correlation_id"`
}

// aadsts maps Microsoft's AADSTS codes to what the user should do. The
// codes and meanings are from learn.microsoft.com/entra/identity-platform/
// reference-error-codes.
var aadsts = map[int]struct {
	kind connector.Kind
	hint string
}{
	90002:   {connector.KindConfig, "the tenant does not exist: check the tenant id or domain (Microsoft Entra admin center, Overview)"},
	900023:  {connector.KindConfig, "the tenant id or domain is malformed: use the Directory (tenant) ID GUID or a domain such as contoso.onmicrosoft.com"},
	90013:   {connector.KindConfig, "the tenant id or domain is malformed: use the Directory (tenant) ID GUID or a domain such as contoso.onmicrosoft.com"},
	700016:  {connector.KindConfig, "no app with this client id in the tenant: check the Application (client) ID, and that the app is registered in (or consented to by) this tenant"},
	7000112: {connector.KindConfig, "the application is disabled in the tenant: enable it under Enterprise applications, Properties"},
	7000215: {connector.KindAuth, "the client secret is wrong: give the secret's Value (shown once when it is created), not its Secret ID"},
	7000222: {connector.KindAuth, "the client secret has expired: create a new one under App registrations, Certificates & secrets"},
	7000218: {connector.KindConfig, "the app needs a credential: give its client secret or certificate"},
	700027:  {connector.KindAuth, "the certificate is not registered with the app or the assertion signature is wrong: upload the certificate (public part) under App registrations, Certificates & secrets"},
	700024:  {connector.KindAuth, "the client assertion is outside its time range: check this machine's clock"},
	700021:  {connector.KindAuth, "the client assertion names another app: check the client id"},
	700212:  {connector.KindConfig, "the client assertion's audience is not this token endpoint: check the token URL"},
	50027:   {connector.KindAuth, "the client assertion is malformed"},
	70011:   {connector.KindConfig, "the scope is not valid for this request"},
	1002012: {connector.KindConfig, "the scope is not valid for this request"},
	70003:   {connector.KindConfig, "the token endpoint refused the grant type"},
	900144:  {connector.KindConfig, "a required parameter is missing"},
	65001:   {connector.KindPermission, "the permissions have not been consented to: an administrator must grant admin consent under App registrations, API permissions"},
	65004:   {connector.KindPermission, "the user declined consent: sign in again and accept the permissions"},
	500011:  {connector.KindConfig, "the resource is not in this tenant: the tenant needs Exchange Online (a Microsoft 365 subscription with mailboxes)"},
	700082:  {connector.KindAuth, "the refresh token expired after long inactivity: sign in again to get a new one"},
	70008:   {connector.KindAuth, "the refresh token has expired or was revoked: sign in again to get a new one"},
	70043:   {connector.KindAuth, "the refresh token expired under a conditional access sign-in frequency policy: sign in again"},
	50173:   {connector.KindAuth, "the refresh token was revoked by a password change: sign in again"},
	50076:   {connector.KindAuth, "multi-factor authentication is required: sign in again interactively"},
	50079:   {connector.KindAuth, "multi-factor authentication is required: sign in again interactively"},
	53003:   {connector.KindPermission, "blocked by a conditional access policy: ask the tenant administrator to allow this app"},
}

// byError is the fallback on RFC 6749 §5.2's error code.
var byError = map[string]struct {
	kind connector.Kind
	hint string
}{
	"invalid_client":          {connector.KindAuth, "the client id or its secret/certificate is wrong"},
	"unauthorized_client":     {connector.KindConfig, "the app may not use this grant, or is not registered in this tenant"},
	"invalid_grant":           {connector.KindAuth, "the refresh token is invalid, expired or revoked: authorise again to get a new one"},
	"invalid_scope":           {connector.KindConfig, "the scope is not valid for this app"},
	"invalid_request":         {connector.KindConfig, ""},
	"unsupported_grant_type":  {connector.KindConfig, ""},
	"consent_required":        {connector.KindPermission, "an administrator must grant consent for the app's permissions"},
	"interaction_required":    {connector.KindAuth, "sign in again interactively"},
	"temporarily_unavailable": {connector.KindTransient, ""},
	"server_error":            {connector.KindTransient, ""},
}

// classify turns a failed token request into a connector.Error whose
// message says what the endpoint said, never what was sent.
func (s *Source) classify(err error) *connector.Error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return s.transportError(err)
	}
	status := 0
	var retryAfter time.Duration
	if re.Response != nil {
		status = re.Response.StatusCode
		retryAfter = ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.cfg.Now())
	}
	var body endpointError
	_ = json.Unmarshal(re.Body, &body)
	if body.Error == "" {
		body.Error, body.Description = re.ErrorCode, re.ErrorDescription
	}
	kind, hint := connector.KindUnknown, ""
	for _, code := range body.Codes {
		if m, ok := aadsts[code]; ok {
			kind, hint = m.kind, m.hint
			break
		}
	}
	if kind == connector.KindUnknown {
		if m, ok := byError[body.Error]; ok {
			kind, hint = m.kind, m.hint
		}
	}
	if s.cfg.provider() == connector.OAuthGoogle && body.Error == "invalid_grant" {
		hint = "the Gmail refresh token has expired or was revoked (Google ends unused ones after six months, and those of apps in Testing status after 7 days): authorise Mailferry again"
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		kind = connector.KindTransient
	case kind == connector.KindUnknown && status == http.StatusUnauthorized:
		kind = connector.KindAuth
	case kind == connector.KindUnknown && status >= 400:
		kind = connector.KindConfig
	}
	msg := "the token endpoint answered"
	if status != 0 {
		msg += " " + strconv.Itoa(status)
	}
	if body.Error != "" {
		msg += " " + body.Error
	}
	if d := firstLine(body.Description); d != "" {
		msg += ": " + d
	}
	if body.CorrelationID != "" {
		msg += " (correlation id " + body.CorrelationID + ")"
	}
	e := s.errorf(kind, hint, errors.New(s.redact(msg)))
	e.RetryAfter = retryAfter
	return e
}

// transportError sorts errors that happened before an answer came.
func (s *Source) transportError(err error) *connector.Error {
	kind := connector.KindTransient
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		kind = connector.KindHost
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		kind = connector.KindTLS
	}
	// url.Error names the URL, which holds no secret (they travel in
	// the body); the redaction is for safety's sake.
	return s.errorf(kind, "", errors.New(s.redact(err.Error())))
}

// redact removes every secret of the configuration from msg, in case an
// endpoint echoes one.
func (s *Source) redact(msg string) string {
	for _, secret := range []string{s.cfg.ClientSecret, s.cfg.RefreshToken, s.refreshNow()} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "***")
		}
	}
	return msg
}

func (s *Source) refreshNow() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh
}

// firstLine keeps the first line of a Microsoft error_description, which
// goes on with trace and correlation ids and a timestamp, and bounds it.
func firstLine(d string) string {
	d, _, _ = strings.Cut(d, "\n")
	d = strings.TrimSpace(d)
	if len(d) > 300 {
		d = d[:300] + "…"
	}
	return d
}

// ParseRetryAfter reads an HTTP Retry-After header (RFC 9110 §10.2.3):
// seconds, possibly fractional as Graph's samples show, or an HTTP date.
// It returns 0 when there is none, it cannot be read, or it lies more
// than a day ahead (a broken clock or header, not a throttling hint).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if !(f > 0 && f <= 24*3600) { // also NaN
			return 0
		}
		return time.Duration(f * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= 24*time.Hour {
			return d
		}
	}
	return 0
}
