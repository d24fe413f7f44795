package imap

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/sasl/xoauth2"
)

// Security is how the connection is protected.
type Security int

const (
	// SecurityTLS is implicit TLS (port 993).
	SecurityTLS Security = iota
	// SecurityStartTLS upgrades a plain connection (port 143).
	SecurityStartTLS
	// SecurityNone sends everything in clear text. Logging in this way
	// also needs Config.AllowPlaintext.
	SecurityNone
)

func (s Security) String() string {
	switch s {
	case SecurityTLS:
		return "tls"
	case SecurityStartTLS:
		return "starttls"
	case SecurityNone:
		return "none"
	}
	return "?"
}

// ParseSecurity accepts tls|ssl, starttls and none|plain.
func ParseSecurity(s string) (Security, error) {
	switch strings.ToLower(s) {
	case "tls", "ssl", "imaps":
		return SecurityTLS, nil
	case "starttls":
		return SecurityStartTLS, nil
	case "none", "plain", "insecure":
		return SecurityNone, nil
	}
	return 0, fmt.Errorf("unknown security %q: use tls, starttls or none", s)
}

// DefaultPort is 993 for implicit TLS and 143 otherwise (RFC 8314).
func (s Security) DefaultPort() int {
	if s == SecurityTLS {
		return 993
	}
	return 143
}

// Config says how to reach and log in to one IMAP mailbox.
type Config struct {
	Host     string
	Port     int
	Security Security
	Username string
	// Password is never logged nor put in an error message.
	Password string

	// InsecureSkipVerify accepts any certificate. Only for an explicit
	// user opt-out (--insecure).
	InsecureSkipVerify bool
	// AllowPlaintext permits LOGIN on a connection without TLS.
	AllowPlaintext bool
	// RootCAs replaces the system roots; tests use it for their own CA.
	RootCAs *x509.CertPool

	// MaxConnections caps parallel sessions (default 4).
	MaxConnections int
	// DialTimeout bounds connecting and the TLS handshake (default 30s).
	DialTimeout time.Duration
	// StallTimeout is how long a connection may go without moving a
	// byte while an answer is awaited before it is dropped and the
	// operation fails with a transient error (default
	// DefaultStallTimeout). A large message that keeps flowing is
	// progress, however long it takes.
	StallTimeout time.Duration
	// Dial, when set, replaces the TCP dialer (tests route through a
	// latency proxy with it).
	Dial func(network, addr string) (net.Conn, error)
	// DialContext, when set, opens the TCP connection before Dial is
	// considered: the service passes its outbound policy here
	// (internal/netpolicy), which refuses addresses portal users may
	// not reach. Its errors are reported as any failed connection.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Tokens, when set, logs in with SASL XOAUTH2 and tokens from it
	// instead of LOGIN with Password (Microsoft 365, Gmail). Each new
	// session asks it for a token, so an expired one is replaced on
	// reconnect; a token the server refuses is replaced once.
	Tokens xoauth2.TokenSource
	// GmailLabels is how a Gmail source's labels become folders
	// (GmailLabelsOnce, the default, or GmailLabelsFolders; see gmail.go).
	GmailLabels string
	// Source: the mailbox is read from (Gmail's labels are then sorted
	// out, see gmail.go); a destination's listings are left alone.
	Source bool
}

// Addr returns host:port.
func (c Config) Addr() string {
	port := c.Port
	if port == 0 {
		port = c.Security.DefaultPort()
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// ParseURL reads a server address: imaps://host[:port] (implicit TLS),
// imap+starttls://host[:port], imap://host[:port] (no TLS), or a bare
// host[:port], which means imaps. A user name in the URL is taken too;
// a password in it is refused so that it never shows up in a process list.
func ParseURL(raw string) (Config, error) {
	var c Config
	if !strings.Contains(raw, "://") {
		raw = "imaps://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("cannot read server address %q: expected e.g. imaps://mail.example.com", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		c.Security = SecurityTLS
	case "imap+starttls", "imap+tls":
		c.Security = SecurityStartTLS
	case "imap":
		c.Security = SecurityNone
	default:
		return c, fmt.Errorf("server address %q: unknown scheme %q; use imaps://, imap+starttls:// or imap://", raw, u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return c, fmt.Errorf("server address: do not put the password in the URL; use a password file or the environment")
		}
		c.Username = u.User.Username()
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return c, fmt.Errorf("server address %q has no host name", raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return c, fmt.Errorf("server address %q: bad port %q", raw, p)
		}
		c.Port = n
	}
	return c, nil
}
