package pop3

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// Security is how the connection is protected.
type Security int

const (
	// SecurityTLS is implicit TLS, pop3s on port 995 (RFC 8314 §3.3).
	SecurityTLS Security = iota
	// SecurityStartTLS upgrades a plain connection on port 110 with STLS
	// (RFC 2595 §4).
	SecurityStartTLS
	// SecurityNone sends everything, the password included, in clear
	// text; it needs OpenOptions.AllowPlaintext.
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

// DefaultPort is 995 for implicit TLS and 110 otherwise.
func (s Security) DefaultPort() int {
	if s == SecurityTLS {
		return 995
	}
	return 110
}

// The URL schemes this connector owns.
const (
	SchemeTLS      = "pop3s"
	SchemeStartTLS = "pop3+starttls"
	SchemeNone     = "pop3"
)

// Backend registers the POP3 connector: a source only, reached over the
// network.
func Backend() connector.Backend {
	return connector.Backend{
		Name:       "pop3",
		Schemes:    []string{SchemeTLS, SchemeStartTLS, SchemeNone},
		Source:     true,
		OneSession: true,
		Parse:      Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return Open(ctx, e, o)
		},
	}
}

// Parse reads pop3s://[user@]host[:port], pop3+starttls://[user@]host[:port]
// or pop3://[user@]host[:port]. A password in the URL is refused, so that
// it never shows up in a process list, a log or the database.
func Parse(raw string) (connector.Endpoint, error) {
	var e connector.Endpoint
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the input in its error, password included.
		return e, fmt.Errorf("cannot read POP3 server address %q: expected e.g. pop3s://pop.example.com", redactRaw(raw))
	}
	sec, ok := schemeSecurity(u.Scheme)
	if !ok {
		return e, fmt.Errorf("POP3 server address %q: unknown scheme %q; use pop3s://, pop3+starttls:// or pop3://", redactRaw(raw), u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return e, fmt.Errorf("POP3 server address %q: do not put the password in the URL; use a password file or the environment", redactRaw(raw))
		}
		e.User = u.User.Username()
	}
	e.Host = u.Hostname()
	if e.Host == "" || u.Opaque != "" {
		return e, fmt.Errorf("POP3 server address %q has no host name: expected e.g. %s://pop.example.com", redactRaw(raw), strings.ToLower(u.Scheme))
	}
	e.Port = sec.DefaultPort()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return e, fmt.Errorf("POP3 server address %q: bad port %q", redactRaw(raw), p)
		}
		e.Port = n
	}
	if u.Path != "" && u.Path != "/" {
		return e, fmt.Errorf("POP3 server address %q: a POP3 mailbox has no path (%q); POP3 reads the inbox only", redactRaw(raw), u.Path)
	}
	// No settings are read from the query: an unknown one is refused
	// rather than ignored, since a misspelt option must not go unnoticed.
	if u.RawQuery != "" || u.Fragment != "" {
		return e, fmt.Errorf("POP3 server address %q: settings after '?' or '#' are not understood; use command-line options", redactRaw(raw))
	}
	e.Scheme = strings.ToLower(u.Scheme)
	e.Raw = raw
	e.Redacted = redacted(e)
	return e, nil
}

func schemeSecurity(scheme string) (Security, bool) {
	switch strings.ToLower(scheme) {
	case SchemeTLS:
		return SecurityTLS, true
	case SchemeStartTLS:
		return SecurityStartTLS, true
	case SchemeNone:
		return SecurityNone, true
	}
	return 0, false
}

// redacted rebuilds the address from its parsed parts, which hold no
// secret (Parse refuses passwords).
func redacted(e connector.Endpoint) string {
	var b strings.Builder
	b.WriteString(e.Scheme)
	b.WriteString("://")
	if e.User != "" {
		b.WriteString(url.User(e.User).String())
		b.WriteByte('@')
	}
	b.WriteString(net.JoinHostPort(e.Host, strconv.Itoa(e.Port)))
	return b.String()
}

// redactRaw hides whatever stands between "//" and "@" in an address
// that was not (or not fully) understood: it may hold a password.
func redactRaw(raw string) string {
	start := strings.Index(raw, "//")
	if start < 0 {
		return raw
	}
	at := strings.LastIndex(raw, "@")
	if at < start {
		return raw
	}
	head := raw[start+2 : at]
	if user, _, hasPass := strings.Cut(head, ":"); hasPass {
		return raw[:start+2] + user + ":***" + raw[at:]
	}
	return raw
}

// address is host:port of the endpoint.
func address(e connector.Endpoint) string {
	port := e.Port
	if port == 0 {
		if sec, ok := schemeSecurity(e.Scheme); ok {
			port = sec.DefaultPort()
		}
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(port))
}
