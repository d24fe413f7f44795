package autoconfig

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// DialFunc opens a connection, like net.Dialer.DialContext. The
// operator's outbound policy (internal/netpolicy's Policy.DialContext)
// has this shape; it resolves the host name itself and refuses addresses
// the policy does not allow.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// nonPublic returns why addr is no place for a public mail or web server,
// or "" when it is a public unicast address. It is the fallback check for
// a Finder without a Dial hook and for host names in results; the
// operator's policy, when given, decides for connections.
func nonPublic(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "not an address"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private network (RFC 1918 / RFC 4193)"
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast():
		return "link-local"
	case addr.IsUnspecified():
		return "unspecified address"
	case addr.IsMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range nonPublicRanges {
		if p.prefix.Contains(addr) {
			return p.why
		}
	}
	return ""
}

// nonPublicRanges are the special-purpose ranges netip's predicates miss
// that matter for "could this be the operator's own network".
var nonPublicRanges = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (RFC 791)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (RFC 1112)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"},
}

// localName reports whether a host name is by definition not on the
// internet: localhost (RFC 6761 section 6.3), .local (mDNS, RFC 6762),
// .home.arpa (RFC 8375), .internal (ICANN, 2024) and .localdomain.
func localName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" {
		return true
	}
	for _, s := range []string{".localhost", ".local", ".home.arpa", ".internal", ".localdomain"} {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// refusingDial is the dialer of a Finder without a Dial hook: it connects
// only to public addresses, checked on the resolved address just before
// connect(2), so that a name resolving to 127.0.0.1 is refused too.
func refusingDial(timeout time.Duration) DialFunc {
	d := &net.Dialer{
		Timeout: timeout,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refusing to connect to %s: not an address", address)
			}
			if why := nonPublic(ap.Addr()); why != "" {
				return fmt.Errorf("refusing to connect to %s: %s", ap.Addr(), why)
			}
			return nil
		},
	}
	return d.DialContext
}
