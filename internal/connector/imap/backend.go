package imap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/oauth"
)

// The URL schemes this connector owns.
const (
	SchemeTLS      = "imaps"
	SchemeStartTLS = "imap+starttls"
	SchemeNone     = "imap"
)

// DefaultConnections is how many connections per mailbox the connector
// opens through the registry when the caller does not say (what
// mailferry copy always used; the engine adapts below it).
const DefaultConnections = 6

// Backend registers the IMAP connector: a source and a destination,
// reached over the network.
func Backend() connector.Backend {
	return connector.Backend{
		Name:        "imap",
		Schemes:     []string{SchemeTLS, SchemeStartTLS, "imap+tls", SchemeNone},
		Source:      true,
		Destination: true,
		Parse:       Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			if err := connector.RefuseMailbox("IMAP", e, o.Credentials); err != nil {
				return nil, err
			}
			cfg := ConfigOf(e, o)
			if cfg.MaxConnections <= 0 {
				cfg.MaxConnections = DefaultConnections
			}
			if o.Credentials.OAuth != nil {
				ts, err := TokenSource(e, o)
				if err != nil {
					return nil, err
				}
				cfg.Tokens = ts
			}
			return Open(ctx, cfg)
		},
	}
}

// Parse reads imaps://[user@]host[:port], imap+starttls://[user@]host[:port]
// or imap://[user@]host[:port] (see ParseURL). The port is filled in
// (993, or 143), so that Endpoint.Host and Port name the server.
func Parse(raw string) (connector.Endpoint, error) {
	cfg, err := ParseURL(raw)
	if err != nil {
		return connector.Endpoint{}, err
	}
	u, _ := url.Parse(raw) // ParseURL parsed it already
	if u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return connector.Endpoint{}, &connector.Error{Kind: connector.KindConfig, Op: "read server address",
			Err:  fmt.Errorf("server address %s has something after the host", redactedOf(cfg)),
			Hint: "Give the server only, e.g. imaps://mail.example.com (folders are chosen with --include, --exclude and --map)."}
	}
	if cfg.Port == 0 {
		cfg.Port = cfg.Security.DefaultPort()
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "imap+tls" {
		scheme = SchemeStartTLS
	}
	return connector.Endpoint{Scheme: scheme, Raw: raw, Redacted: redactedOf(cfg), Host: cfg.Host, Port: cfg.Port, User: cfg.Username}, nil
}

// ConfigOf turns a parsed endpoint and the generic options into a Config.
func ConfigOf(e connector.Endpoint, o connector.OpenOptions) Config {
	cfg := Config{Host: e.Host, Port: e.Port, Username: e.User, Password: o.Credentials.Password,
		InsecureSkipVerify: o.InsecureSkipVerify, AllowPlaintext: o.AllowPlaintext, RootCAs: o.RootCAs,
		MaxConnections: o.MaxConnections, StallTimeout: o.StallTimeout, DialContext: o.Dial, GmailLabels: o.GmailLabels,
		Source: o.Role == connector.RoleSource}
	switch strings.ToLower(e.Scheme) {
	case SchemeStartTLS, "imap+tls":
		cfg.Security = SecurityStartTLS
	case SchemeNone:
		cfg.Security = SecurityNone
	default:
		cfg.Security = SecurityTLS
	}
	if o.Credentials.Username != "" {
		cfg.Username = o.Credentials.Username
	}
	return cfg
}

// redactedOf is the address without any secret (ParseURL refuses
// passwords in URLs anyway).
func redactedOf(c Config) string {
	scheme := SchemeTLS
	switch c.Security {
	case SecurityStartTLS:
		scheme = SchemeStartTLS
	case SecurityNone:
		scheme = SchemeNone
	}
	port := c.Port
	if port == 0 {
		port = c.Security.DefaultPort()
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if c.Username != "" {
		b.WriteString(url.User(c.Username).String() + "@")
	}
	b.WriteString(net.JoinHostPort(c.Host, strconv.Itoa(port)))
	return b.String()
}

// TokenSource builds the OAuth token source for an XOAUTH2 login from
// the credentials: Gmail asks for https://mail.google.com/ (Google's
// "OAuth 2.0 Mechanism" page); Microsoft 365 app-only access for
// https://outlook.office365.com/.default (the IMAP.AccessAsApp role) and
// delegated access with a refresh token for IMAP.AccessAsUser.All and
// offline_access ("Authenticate an IMAP, POP or SMTP connection using
// OAuth"). The tenant is the credentials' one, else the mailbox's domain.
// Token requests go through o.Dial like the mail connection.
func TokenSource(e connector.Endpoint, o connector.OpenOptions) (*oauth.Source, error) {
	cred := o.Credentials.OAuth
	user := e.User
	if o.Credentials.Username != "" {
		user = o.Credentials.Username
	}
	if user == "" {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: "set up OAuth for " + e.Redacted,
			Hint: "give the mailbox's address as the login name (--user alice@example.com, or imaps://alice%40example.com@imap.gmail.com)",
			Err:  errors.New("an OAuth login needs the mailbox's address")}
	}
	var scopes []string
	switch {
	case cred.Provider == connector.OAuthGoogle:
		scopes = []string{oauth.ScopeGoogleMail}
	case cred.RefreshToken != "":
		scopes = []string{oauth.ScopeOutlookIMAPUser, oauth.ScopeOfflineAccess}
	default:
		scopes = []string{oauth.ScopeOutlook}
	}
	_, domain, _ := strings.Cut(user, "@")
	return oauth.FromCredentials(cred, domain, scopes, oauth.HTTPClient(o))
}
