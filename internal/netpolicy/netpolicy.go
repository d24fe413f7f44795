// Package netpolicy decides which addresses the service may connect to on
// behalf of a portal user. Without it, anyone who can create a project can
// make the server connect to its own loopback interface, the private
// network it sits in or a cloud metadata endpoint, and read from the error
// messages which ports are open there.
//
// The check is made on the resolved address at dial time, and the
// connection goes to exactly the address that was checked: a name that
// resolves to a public address when the project is saved and to 127.0.0.1
// when the pass runs (DNS rebinding) is refused too.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name (net.Resolver does).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is the operator's setting.
type Config struct {
	// Allow lists ranges that may be reached even though they are not
	// public (e.g. the company's own mail server at 10.1.2.3).
	Allow []netip.Prefix
	// Deny lists ranges that are never reached, public or not; it wins
	// over Allow.
	Deny []netip.Prefix
	// AllowNonPublic lifts the default refusal of loopback, private,
	// link-local and other non-public addresses (a single-tenant
	// install whose users are trusted).
	AllowNonPublic bool
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
	// OnRefuse, when set, is told of every refused connection, for the
	// operator's log: the user is only told that the server could not be
	// reached.
	OnRefuse func(host string, addr netip.Addr, reason string)
}

// Policy checks and dials outbound connections. The zero value is not
// usable; create one with New.
type Policy struct {
	cfg Config
}

// New returns the policy of cfg.
func New(cfg Config) *Policy {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	return &Policy{cfg: cfg}
}

// RefusedError is a connection the policy does not allow. It travels
// inside a *net.OpError with Op "dial", so callers treat it as any other
// failed connection; its text is for the operator, never for the user.
type RefusedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("connection to %s refused by the outbound policy (%s)", e.Addr, e.Reason)
}

// ErrRefused matches every RefusedError with errors.Is.
var ErrRefused = errors.New("refused by the outbound policy")

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ParsePrefix reads a CIDR range (10.0.0.0/8, fd00::/8) or a single
// address (192.0.2.7, which means /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address range: write it like 10.1.0.0/16 or fd00::/8", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: a range cannot have a zone", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a range: write it like 192.0.2.7 or 10.1.0.0/16", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Check says whether addr may be reached: nil, or a *RefusedError.
func (p *Policy) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, d := range p.cfg.Deny {
		if d.Contains(addr.WithZone("")) {
			return &RefusedError{Addr: addr, Reason: "in the denied range " + d.String()}
		}
	}
	for _, a := range p.cfg.Allow {
		if a.Contains(addr.WithZone("")) {
			return nil
		}
	}
	if p.cfg.AllowNonPublic {
		return nil
	}
	if reason := NonPublic(addr); reason != "" {
		return &RefusedError{Addr: addr, Reason: reason}
	}
	return nil
}

// special are the IANA special-purpose ranges (RFC 6890 and its updates)
// that netip's predicates do not cover and that are no place for a mail
// server on the internet.
var special = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (RFC 791)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space of carrier-grade NAT (RFC 6598)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (RFC 5737)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (RFC 5737)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, including the broadcast address (RFC 1112)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6, deprecated (RFC 4291)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (RFC 6666)"},
	{netip.MustParsePrefix("2001::/32"), "Teredo tunnelling (RFC 4380)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation (RFC 3849)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local, deprecated (RFC 3879)"},
}

// embedded are IPv6 ranges that carry an IPv4 address, which is checked
// in their place: 64:ff9b::10.0.0.1 reaches 10.0.0.1 through NAT64.
var embedded = []struct {
	prefix netip.Prefix
	offset int // byte offset of the IPv4 address
}{
	{netip.MustParsePrefix("64:ff9b::/96"), 12},   // NAT64 (RFC 6052)
	{netip.MustParsePrefix("64:ff9b:1::/48"), 12}, // local NAT64 (RFC 8215)
	{netip.MustParsePrefix("2002::/16"), 2},       // 6to4 (RFC 3056)
}

// NonPublic returns why addr is not a public unicast address, or "" when
// it is one. IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4
// address it maps.
func NonPublic(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	switch {
	case !addr.IsValid():
		return "not an address"
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "a private network"
	case addr.IsLinkLocalUnicast():
		return "link-local (this includes cloud metadata services)"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, s := range special {
		if s.prefix.Contains(addr) {
			return s.why
		}
	}
	if addr.Is6() {
		b := addr.As16()
		for _, e := range embedded {
			if e.prefix.Contains(addr) {
				v4 := netip.AddrFrom4([4]byte(b[e.offset : e.offset+4]))
				if why := NonPublic(v4); why != "" {
					return "an IPv6 form of " + v4.String() + ", " + why
				}
			}
		}
	}
	return ""
}

// DialContext connects like net.Dialer.DialContext, to an allowed address
// only: a host name is resolved here, every address it resolves to is
// checked, and the connection goes to the first allowed one that
// answers. A refused address gives a *net.OpError with Op "dial" around
// a *RefusedError, as a refused connection would.
func (p *Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		family := "ip"
		switch network {
		case "tcp4":
			family = "ip4"
		case "tcp6":
			family = "ip6"
		}
		if addrs, err = p.cfg.Resolver.LookupNetIP(ctx, family, host); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	var allowed []netip.Addr
	var refused error
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			if refused == nil {
				refused = err
			}
			if p.cfg.OnRefuse != nil {
				var re *RefusedError
				errors.As(err, &re)
				p.cfg.OnRefuse(host, re.Addr, re.Reason)
			}
			continue
		}
		allowed = append(allowed, a.Unmap())
	}
	if len(allowed) == 0 {
		if refused == nil {
			refused = &RefusedError{Reason: "the name has no address"}
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: refused}
	}
	d := net.Dialer{KeepAlive: 30 * time.Second, ControlContext: p.control}
	var last error
	for _, a := range allowed {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// control checks, just before connect(2), the address the socket really
// connects to: whatever path led here, no refused address is reached.
func (p *Policy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: "unreadable address " + address}
	}
	return p.Check(ap.Addr())
}
