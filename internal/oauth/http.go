package oauth

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// HTTPClient returns a client for token endpoints and web APIs that
// connects only through o.Dial when it is set (the operator's outbound
// policy, test proxies) and trusts o.RootCAs, or the system roots.
//
// o.InsecureSkipVerify is deliberately not honoured: it is a user's
// opt-out for their own mail server, and these requests carry app
// secrets and tenant-wide tokens to Microsoft or Google. No proxy is taken
// from the environment, because a proxy would see the policy's checks
// applied to itself instead of the real destination.
func HTTPClient(o connector.OpenOptions) *http.Client {
	dial := o.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	headerTimeout := o.StallTimeout
	if headerTimeout <= 0 {
		headerTimeout = 2 * time.Minute
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           dial,
			TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: headerTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
		},
		// A redirect would take the request (and with it the
		// Authorization header on the same host) somewhere nobody
		// checked; none of the APIs used redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// FromCredentials builds a Source from the credentials a connector was
// opened with. tenant is the tenant named in the address, used when c
// names none; scopes are those the connector needs (ScopeGraph,
// ScopeOutlook, ...); client makes the requests (see HTTPClient).
func FromCredentials(c *connector.OAuth, tenant string, scopes []string, client *http.Client) (*Source, error) {
	cfg, err := ConfigFromCredentials(c, tenant, scopes, client)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// ConfigFromCredentials is FromCredentials without the New, for callers
// that set more (a clock, OnRefreshToken).
func ConfigFromCredentials(c *connector.OAuth, tenant string, scopes []string, client *http.Client) (Config, error) {
	if c == nil {
		return Config{}, connector.Errorf(connector.KindConfig, "give the app's tenant, client id and client secret or certificate", errNoOAuth, "set up OAuth")
	}
	cfg := Config{
		Provider:     c.Provider,
		Tenant:       c.Tenant,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RefreshToken: c.RefreshToken,
		TokenURL:     c.TokenURL,
		Scopes:       scopes,
		HTTPClient:   client,
		// Rotated refresh tokens go back to whoever stores them.
		OnRefreshToken: c.OnRefreshToken,
	}
	if cfg.Tenant == "" {
		cfg.Tenant = tenant
	}
	if len(c.CertificatePEM) > 0 {
		cert, key, err := ParseCertificatePEM(c.CertificatePEM)
		if err != nil {
			return Config{}, connector.Errorf(connector.KindConfig, "give the certificate registered with the app and its unencrypted RSA private key, PEM-encoded in one file", err, "read the app certificate")
		}
		cfg.Certificate, cfg.Key = cert, key
	}
	return cfg, nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errNoOAuth = constError("no OAuth credentials")
