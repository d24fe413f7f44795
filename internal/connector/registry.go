package connector

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Endpoint is a parsed mailbox address, e.g. imaps://mail.example.com,
// pop3s://pop.example.com, maildir:/backup/alice, mbox:/backup/a.mbox.
type Endpoint struct {
	// Scheme selects the backend ("imaps", "pop3s", "maildir", …).
	Scheme string
	// Raw is the address as given, for the backend's own parsing.
	Raw string
	// Redacted is safe for logs and displays: no password, token or
	// secret, whatever was given.
	Redacted string
	// Host and Port are set for network backends (outbound policy and
	// per-host limits use them); empty for local files.
	Host string
	Port int
	// Path is a local path or a URL path.
	Path string
	// User is a login name given in the address, if any.
	User string
	// Params are backend-specific settings from the address.
	Params map[string]string
}

// Role is the part a connector plays in a copy.
type Role int

const (
	RoleSource Role = iota
	RoleDestination
)

// Credentials authenticate to a mailbox. They are never logged.
type Credentials struct {
	Username string
	Password string
	// Mailbox, when set, is the mailbox to work on when it is not the
	// login's own: an admin account that holds a right over other
	// mailboxes logs in with Username and Password and acts on Mailbox
	// (its primary email address), e.g. EWS ApplicationImpersonation.
	// Only connectors that say so in their documentation support it;
	// the others must refuse a non-empty Mailbox rather than open the
	// login's own mailbox.
	Mailbox string
	// OAuth, when set, logs in with OAuth 2.0 instead of a password
	// (Microsoft Graph; IMAP XOAUTH2 to Microsoft 365 and Gmail).
	OAuth *OAuth
}

// String hides the secrets, so that printing Credentials by mistake
// shows none.
func (c Credentials) String() string {
	s := fmt.Sprintf("user %q, password %s", c.Username, redactedMark(c.Password))
	if c.OAuth != nil {
		s += ", " + c.OAuth.String()
	}
	return s
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// OAuth is an OAuth 2.0 client registration and what it logs in with:
// app-only client credentials (a secret, or a certificate that signs a
// client assertion) or a user's refresh token. It holds data only: the
// connector builds its token source from it (package oauth) with the
// scope it needs and through OpenOptions.Dial. Never logged.
type OAuth struct {
	// Provider is OAuthMicrosoft (the default when empty) or OAuthGoogle.
	Provider string
	// Tenant is the Microsoft Entra tenant id or one of its verified
	// domains; empty takes it from the address (graph://tenant/...).
	Tenant string
	// ClientID is the application (client) id of the app registration.
	ClientID string
	// ClientSecret is the secret's value (not its id).
	ClientSecret string
	// CertificatePEM holds the app's certificate and its unencrypted RSA
	// private key, PEM-encoded in one block list; used instead of
	// ClientSecret.
	CertificatePEM []byte
	// RefreshToken, when set, acts as the user who granted it (Gmail,
	// Microsoft delegated access) instead of as the app.
	RefreshToken string
	// TokenURL replaces the provider's token endpoint (national clouds,
	// tests); "{tenant}" in it is replaced by Tenant. Set by the
	// operator, never taken from an address: the secret is sent there.
	TokenURL string
	// OnRefreshToken, if set, is given each new refresh token the
	// endpoint hands out with RefreshToken (Microsoft rotates them), so
	// that the caller can keep the newest. It must not block.
	OnRefreshToken func(token string)
}

// OAuth providers.
const (
	OAuthMicrosoft = "microsoft"
	OAuthGoogle    = "google"
)

// String hides the secrets.
func (o OAuth) String() string {
	p := o.Provider
	if p == "" {
		p = OAuthMicrosoft
	}
	return fmt.Sprintf("OAuth %s tenant %q client %q secret %s certificate %s refresh token %s",
		p, o.Tenant, o.ClientID, redactedMark(o.ClientSecret), redactedMark(string(o.CertificatePEM)), redactedMark(o.RefreshToken))
}

// GoString is String, for %#v.
func (o OAuth) GoString() string { return o.String() }

func redactedMark(secret string) string {
	if secret == "" {
		return "(none)"
	}
	return "***"
}

// OpenOptions are the settings every backend understands; a backend
// ignores what does not apply to it.
type OpenOptions struct {
	Role        Role
	Credentials Credentials
	// InsecureSkipVerify accepts any certificate (explicit user opt-out).
	InsecureSkipVerify bool
	// AllowPlaintext permits sending a password without TLS.
	AllowPlaintext bool
	// RootCAs replaces the system roots (tests).
	RootCAs *x509.CertPool
	// MaxConnections caps parallel sessions (backend default when 0).
	MaxConnections int
	// StallTimeout drops a connection that makes no progress this long
	// while an answer is awaited (backend default when 0).
	StallTimeout time.Duration
	// Dial, when set, replaces the TCP dialer: the operator's outbound
	// policy, test proxies.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// SpoolDir is where large bodies may be spooled.
	SpoolDir string
	// ServiceURL replaces a web API's default service root (Graph:
	// https://graph.microsoft.com) for national clouds and tests. Set by
	// the operator, never taken from an address: access tokens are sent
	// there.
	ServiceURL string
	// GmailLabels is how a Gmail source's labels become folders: "" or
	// "once" (each message copied once, from its first label folder by
	// a fixed priority, All Mail last) or "folders" (a copy in the folder
	// of every label). Only IMAP sources offering X-GM-EXT-1 read it.
	GmailLabels string
}

// DefaultStallTimeout is how long a network connector lets a connection
// go without a byte while an answer is awaited before it drops it and
// fails the operation with a transient error (OpenOptions.StallTimeout).
const DefaultStallTimeout = 60 * time.Second

// Backend is one connector's registration.
type Backend struct {
	// Name is the connector's name ("imap", "pop3", "maildir", …).
	Name string
	// Schemes are the URL schemes it owns.
	Schemes []string
	// Local backends read or write local files; portal users cannot use
	// them.
	Local bool
	// Source and Destination say which roles the backend can play.
	Source, Destination bool
	// OneSession: servers of this kind usually allow one session per
	// mailbox (POP3 servers lock the maildrop, RFC 1939 section 8), so a
	// general setting of connections per server (mailferry serve
	// --connections, mailferry copy's default) does not apply to it; only
	// a choice made for this one copy does.
	OneSession bool
	// Parse reads an address of one of Schemes.
	Parse func(raw string) (Endpoint, error)
	// Open connects (or opens files) and returns a Source and/or
	// Destination per Role.
	Open func(ctx context.Context, e Endpoint, o OpenOptions) (Conn, error)
}

// Registry maps URL schemes to backends. Build one with NewRegistry; it
// is read-only afterwards and safe for concurrent use.
type Registry struct {
	byScheme map[string]Backend
	backends []Backend
}

// NewRegistry registers backends; a scheme claimed twice is an error.
func NewRegistry(backends ...Backend) (*Registry, error) {
	r := &Registry{byScheme: make(map[string]Backend)}
	for _, b := range backends {
		if b.Parse == nil || b.Open == nil || len(b.Schemes) == 0 {
			return nil, fmt.Errorf("connector registry: backend %q lacks schemes, Parse or Open", b.Name)
		}
		for _, s := range b.Schemes {
			s = strings.ToLower(s)
			if o, dup := r.byScheme[s]; dup {
				return nil, fmt.Errorf("connector registry: scheme %q claimed by both %q and %q", s, o.Name, b.Name)
			}
			r.byScheme[s] = b
		}
		r.backends = append(r.backends, b)
	}
	return r, nil
}

// Schemes lists every registered scheme, sorted.
func (r *Registry) Schemes() []string {
	out := make([]string, 0, len(r.byScheme))
	for s := range r.byScheme {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Backends lists the registered backends in registration order.
func (r *Registry) Backends() []Backend { return append([]Backend(nil), r.backends...) }

// Parse finds the backend for raw's scheme and parses it. An address
// without a scheme is an error that lists the known ones.
func (r *Registry) Parse(raw string) (Endpoint, Backend, error) {
	scheme, _, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/\\ ") {
		return Endpoint{}, Backend{}, fmt.Errorf("address %q has no scheme: use one of %s (e.g. imaps://mail.example.com)", redactGuess(raw), strings.Join(r.Schemes(), ", "))
	}
	b, found := r.byScheme[strings.ToLower(scheme)]
	if !found {
		return Endpoint{}, Backend{}, fmt.Errorf("address %q: unknown scheme %q: use one of %s", redactGuess(raw), scheme, strings.Join(r.Schemes(), ", "))
	}
	e, err := b.Parse(raw)
	if err != nil {
		return Endpoint{}, Backend{}, err
	}
	return e, b, nil
}

// OpenSource opens e as a source.
func (r *Registry) OpenSource(ctx context.Context, e Endpoint, o OpenOptions) (Source, error) {
	b, ok := r.byScheme[strings.ToLower(e.Scheme)]
	if !ok || !b.Source {
		return nil, fmt.Errorf("%s cannot be read from: %q is not a source type", e.Redacted, e.Scheme)
	}
	o.Role = RoleSource
	c, err := b.Open(ctx, e, o)
	if err != nil {
		return nil, err
	}
	s, ok := c.(Source)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s: the %s connector cannot read", e.Redacted, b.Name)
	}
	return s, nil
}

// OpenDestination opens e as a destination.
func (r *Registry) OpenDestination(ctx context.Context, e Endpoint, o OpenOptions) (Destination, error) {
	b, ok := r.byScheme[strings.ToLower(e.Scheme)]
	if !ok || !b.Destination {
		return nil, fmt.Errorf("%s cannot be written to: %q is not a destination type", e.Redacted, e.Scheme)
	}
	o.Role = RoleDestination
	c, err := b.Open(ctx, e, o)
	if err != nil {
		return nil, err
	}
	d, ok := c.(Destination)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s: the %s connector cannot write", e.Redacted, b.Name)
	}
	return d, nil
}

// OpenBoth opens a source and a destination at the same time, since a
// login can be several round trips each. When either fails, the other is
// closed; the errors say which side failed.
func (r *Registry) OpenBoth(ctx context.Context, src Endpoint, so OpenOptions, dst Endpoint, do OpenOptions) (Source, Destination, error, error) {
	var d Destination
	var dErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, dErr = r.OpenDestination(ctx, dst, do)
	}()
	s, sErr := r.OpenSource(ctx, src, so)
	<-done
	if sErr != nil || dErr != nil {
		if s != nil {
			_ = s.Close()
		}
		if d != nil {
			_ = d.Close()
		}
		return nil, nil, sErr, dErr
	}
	return s, d, nil, nil
}

// redactGuess hides anything that looks like a password in an address
// that could not be parsed (user:pass@host).
func redactGuess(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	head := raw[:at]
	if i := strings.LastIndex(head, ":"); i >= 0 && !strings.Contains(head[i:], "/") {
		return head[:i] + ":***" + raw[at:]
	}
	return raw
}

// RefuseMailbox is what a connector that cannot act for another mailbox
// calls first in Open: a non-empty Credentials.Mailbox is a KindConfig
// error, never silently the login's own mailbox (which would copy the
// admin's mail, or into it, in place of the user's).
func RefuseMailbox(connector string, e Endpoint, c Credentials) error {
	if c.Mailbox == "" {
		return nil
	}
	return &Error{Kind: KindConfig, Op: "open " + e.Redacted,
		Err: fmt.Errorf("the %s connector cannot act on another mailbox (%s) with an admin login", connector, c.Mailbox),
		Hint: "Impersonation is offered for Exchange (EWS) only: give this mailbox's own login and password, " +
			"or leave the mailbox to act on empty."}
}
