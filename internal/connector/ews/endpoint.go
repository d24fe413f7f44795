package ews

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// The URL schemes this connector owns. Both mean HTTPS: EWS is never
// spoken without TLS here, so that a password never travels in clear.
const (
	// Scheme is ews://host[:port][/path]; the path defaults to
	// DefaultPath.
	Scheme = "ews"
	// SchemeHTTPS is ews+https://host[:port]/path, the same with the
	// path spelled out (e.g. a reverse proxy that serves EWS elsewhere).
	SchemeHTTPS = "ews+https"
	// DefaultPath is where Exchange 2007-2019 serve EWS
	// (learn.microsoft.com exchange/client-developer/exchange-web-services/
	// autodiscover-for-exchange: "https://<server>/EWS/Exchange.asmx").
	DefaultPath = "/EWS/Exchange.asmx"
)

// Parameters understood after '?' in an address. Anything else is
// refused, so that a misspelt setting never goes unnoticed.
const (
	// ParamAuth selects the authentication: "ntlm", "basic", or "auto"
	// (the default: NTLM when the server offers it, else Basic).
	ParamAuth = "auth"
	// ParamImpersonate names the mailbox to act on (its primary SMTP
	// address) with the login's ApplicationImpersonation right. It is
	// the same as OpenOptions.Credentials.Mailbox.
	ParamImpersonate = "impersonate"
)

// Backend registers the EWS connector: a source and a destination,
// reached over the network (not Local).
func Backend() connector.Backend {
	return connector.Backend{
		Name:        "ews",
		Schemes:     []string{Scheme, SchemeHTTPS},
		Source:      true,
		Destination: true,
		Parse:       Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return Open(ctx, e, o)
		},
	}
}

// Parse reads ews://[user@]host[:port][/path][?auth=…&impersonate=…] or
// ews+https://[user@]host[:port]/path[?…]. The path defaults to
// /EWS/Exchange.asmx. A password in the address is refused so that it
// never shows up in a process list, a log or the database.
func Parse(raw string) (connector.Endpoint, error) {
	var e connector.Endpoint
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes its input, password included.
		return e, fmt.Errorf("cannot read Exchange (EWS) address %q: expected e.g. ews://mail.example.com", redactRaw(raw))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != Scheme && scheme != SchemeHTTPS {
		return e, fmt.Errorf("Exchange (EWS) address %q: unknown scheme %q; use ews://host or ews+https://host/path", redactRaw(raw), u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return e, fmt.Errorf("Exchange (EWS) address %q: do not put the password in the address; use a password file or the environment", redactRaw(raw))
		}
		e.User = u.User.Username()
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return e, fmt.Errorf("Exchange (EWS) address %q has no host name: expected e.g. %s://mail.example.com", redactRaw(raw), scheme)
	}
	e.Host = strings.ToLower(u.Hostname())
	if !validHost(e.Host) {
		return e, fmt.Errorf("Exchange (EWS) address %q: %q is not a host name or IP address", redactRaw(raw), u.Hostname())
	}
	e.Port = 443
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return e, fmt.Errorf("Exchange (EWS) address %q: bad port %q", redactRaw(raw), p)
		}
		e.Port = n
	}
	e.Path = u.EscapedPath()
	switch {
	case e.Path == "" || e.Path == "/":
		if scheme == SchemeHTTPS {
			return e, fmt.Errorf("Exchange (EWS) address %q: ews+https:// needs the full path, e.g. ews+https://%s%s (or write ews://%s)",
				redactRaw(raw), u.Host, DefaultPath, u.Host)
		}
		e.Path = DefaultPath
	case strings.EqualFold(e.Path, DefaultPath):
		e.Path = DefaultPath
	}
	if u.Fragment != "" {
		return e, fmt.Errorf("Exchange (EWS) address %q: a '#' part is not understood", redactRaw(raw))
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return e, fmt.Errorf("Exchange (EWS) address %q: cannot read the settings after '?': %v", redactRaw(raw), err)
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return e, fmt.Errorf("Exchange (EWS) address %q: setting %q given %d times", redactRaw(raw), k, len(vs))
		}
		v := vs[0]
		switch k {
		case ParamAuth:
			v = strings.ToLower(v)
			if _, ok := parseAuthMode(v); !ok {
				return e, fmt.Errorf("Exchange (EWS) address %q: auth=%q: use auth=ntlm, auth=basic or leave it out", redactRaw(raw), vs[0])
			}
		case ParamImpersonate:
			if !plausibleSMTP(v) {
				return e, fmt.Errorf("Exchange (EWS) address %q: impersonate=%q is not an email address; give the mailbox's primary SMTP address", redactRaw(raw), v)
			}
		default:
			return e, fmt.Errorf("Exchange (EWS) address %q: unknown setting %q; known: %s, %s", redactRaw(raw), k, ParamAuth, ParamImpersonate)
		}
		if e.Params == nil {
			e.Params = map[string]string{}
		}
		e.Params[k] = v
	}
	e.Scheme = scheme
	e.Raw = raw
	e.Redacted = redacted(e)
	return e, nil
}

// EndpointFromUserInput turns what a user knows about their Exchange
// server into the canonical ews:// address: the Outlook on the web
// address (https://mail.example.com/owa, …/exchange, with or without
// whatever OWA shows after it), a bare host name or IP address (with an
// optional port), or the full EWS URL (https://host/EWS/Exchange.asmx).
// An http:// address is taken to mean the same server over TLS, since
// EWS is never used without it here. A path ending in ".asmx" other than
// the default is kept (ews+https://); any other path is OWA's and gives
// the server's default EWS path.
func EndpointFromUserInput(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", fmt.Errorf("no Exchange address given: enter the Outlook on the web address, e.g. https://mail.example.com/owa")
	}
	lower := strings.ToLower(in)
	switch {
	case strings.HasPrefix(lower, Scheme+"://"), strings.HasPrefix(lower, SchemeHTTPS+"://"):
		e, err := Parse(in)
		if err != nil {
			return "", err
		}
		return e.Redacted, nil
	case strings.HasPrefix(lower, "https://"), strings.HasPrefix(lower, "http://"):
	case strings.Contains(in, "://"):
		return "", fmt.Errorf("Exchange address %q: expected an https:// address (the one Outlook on the web opens), or just the server name", redactRaw(in))
	default:
		in = "https://" + in
	}
	u, err := url.Parse(in)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return "", fmt.Errorf("cannot read Exchange address %q: enter the Outlook on the web address, e.g. https://mail.example.com/owa", redactRaw(s))
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return "", fmt.Errorf("Exchange address %q: do not put the password in the address", redactRaw(s))
		}
	}
	e := connector.Endpoint{Scheme: Scheme, Host: strings.ToLower(u.Hostname()), Port: 443, Path: DefaultPath}
	if !validHost(e.Host) {
		return "", fmt.Errorf("Exchange address %q: %q is not a host name or IP address", redactRaw(s), u.Hostname())
	}
	if u.User != nil {
		e.User = u.User.Username()
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", fmt.Errorf("Exchange address %q: bad port %q", redactRaw(s), p)
		}
		// An explicit :80 came with http://; EWS is on 443 then.
		if !(n == 80 && strings.EqualFold(u.Scheme, "http")) {
			e.Port = n
		}
	}
	if p := u.EscapedPath(); strings.HasSuffix(strings.ToLower(p), ".asmx") && !strings.EqualFold(p, DefaultPath) {
		e.Scheme, e.Path = SchemeHTTPS, p
	}
	return redacted(e), nil
}

// redacted rebuilds the address from its parsed parts, which hold no
// secret (Parse refuses passwords); the default port and path are left
// out, so it is also the canonical form.
func redacted(e connector.Endpoint) string {
	var b strings.Builder
	b.WriteString(e.Scheme)
	b.WriteString("://")
	if e.User != "" {
		b.WriteString(url.User(e.User).String())
		b.WriteByte('@')
	}
	host := e.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if e.Port != 0 && e.Port != 443 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Port))
	}
	if e.Scheme == SchemeHTTPS || e.Path != DefaultPath {
		b.WriteString(e.Path)
	}
	if len(e.Params) > 0 {
		q := url.Values{}
		for k, v := range e.Params {
			q.Set(k, v)
		}
		b.WriteByte('?')
		b.WriteString(q.Encode())
	}
	return b.String()
}

// serviceURL is the https:// URL requests go to.
func serviceURL(e connector.Endpoint) *url.URL {
	port := e.Port
	if port == 0 {
		port = 443
	}
	host := e.Host
	if port != 443 {
		host = net.JoinHostPort(e.Host, strconv.Itoa(port))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	path := e.Path
	if path == "" {
		path = DefaultPath
	}
	u := &url.URL{Scheme: "https", Host: host}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path
	} else {
		u.Path = path
	}
	return u
}

// dialAddress is host:port for the TCP connection.
func dialAddress(e connector.Endpoint) string {
	port := e.Port
	if port == 0 {
		port = 443
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(port))
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

// validHost accepts an IP address or a DNS name (letters, digits, '-',
// '_' and dots).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// plausibleSMTP accepts local@domain without spaces or angle brackets:
// enough to catch a login name (DOMAIN\user) given where a mailbox
// address belongs.
func plausibleSMTP(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n<>\\\"")
}
