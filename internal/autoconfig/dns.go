package autoconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errNoSuchName is an NXDOMAIN answer: the name does not exist.
var errNoSuchName = errors.New("the name does not exist")

// errNoAddress: the name exists but has neither an A nor an AAAA record.
var errNoAddress = errors.New("the name has no address")

// resolver asks one recursive DNS server. It talks to that server
// directly, not through the outbound-policy dial hook: the server is the
// operator's own setting (often 127.0.0.53), not a place a user chose.
type resolver struct {
	server  string // host:port
	timeout time.Duration
}

// ednsSize is the UDP payload size advertised with EDNS0 (RFC 6891); 1232
// avoids IP fragmentation (DNS flag day 2020).
const ednsSize = 1232

// query asks for name/qtype and returns the answer records of that type
// whose owner is name or a name it is a CNAME for. An empty answer is no
// error; NXDOMAIN is errNoSuchName.
func (r *resolver) query(parent context.Context, name string, qtype uint16) ([]dns.RR, error) {
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)
	c := &dns.Client{Net: "udp", UDPSize: ednsSize, Timeout: r.timeout}
	resp, _, err := c.ExchangeContext(ctx, m, r.server)
	if err == nil && resp.Truncated {
		// RFC 1035 section 4.2.1 / RFC 7766: retry a truncated answer
		// over TCP.
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, timeoutError(parent)
		}
		return nil, fmt.Errorf("DNS server %s: %w", r.server, err)
	}
	if resp.Id != m.Id {
		return nil, fmt.Errorf("DNS server %s answered another question", r.server)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, errNoSuchName
	default:
		return nil, fmt.Errorf("DNS server %s answered %s", r.server, dns.RcodeToString[resp.Rcode])
	}
	// Follow CNAMEs inside the answer (RFC 1034 section 3.6.2).
	names := map[string]bool{strings.ToLower(dns.Fqdn(name)): true}
	for range 8 {
		grew := false
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && names[strings.ToLower(c.Hdr.Name)] && !names[strings.ToLower(c.Target)] {
				names[strings.ToLower(c.Target)] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype && names[strings.ToLower(rr.Header().Name)] {
			out = append(out, rr)
		}
	}
	return out, nil
}

// maxRecords bounds the SRV and MX records used from one answer; real
// domains publish a handful.
const maxRecords = 16

// srvRecord is one SRV answer (RFC 2782).
type srvRecord struct {
	Target   string // without the trailing dot, lower case
	Port     int
	Priority int
	Weight   int
}

// lookupSRV returns the usable records of name in RFC 2782 order, and
// whether the name says the service is decidedly not offered (a single
// record whose target is ".", RFC 2782 "Target", RFC 6186 section 4).
func (r *resolver) lookupSRV(ctx context.Context, name string, pick func(n int) int) (recs []srvRecord, notOffered bool, err error) {
	rrs, err := r.query(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, false, err
	}
	dots := 0
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		target := strings.ToLower(strings.TrimSuffix(s.Target, "."))
		if target == "" {
			dots++
			continue
		}
		if s.Port == 0 || !validHostname(target) {
			continue
		}
		recs = append(recs, srvRecord{Target: target, Port: int(s.Port), Priority: int(s.Priority), Weight: int(s.Weight)})
	}
	ordered := orderSRV(recs, pick)
	if len(ordered) > maxRecords {
		ordered = ordered[:maxRecords]
	}
	return ordered, len(recs) == 0 && dots > 0, nil
}

// orderSRV orders records as RFC 2782 ("Usage rules") tells clients to:
// lowest priority first; within a priority, repeatedly pick a record at
// random with probability proportional to its weight, records of weight
// 0 placed first so that they are picked only rarely. pick(n) returns a
// uniform integer in [0, n).
func orderSRV(recs []srvRecord, pick func(n int) int) []srvRecord {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b srvRecord) int { return a.Priority - b.Priority })
	var out []srvRecord
	for len(recs) > 0 {
		end := 1
		for end < len(recs) && recs[end].Priority == recs[0].Priority {
			end++
		}
		group := recs[:end]
		recs = recs[end:]
		// Weight 0 at the beginning of the list.
		slices.SortStableFunc(group, func(a, b srvRecord) int { return b2i(a.Weight != 0) - b2i(b.Weight != 0) })
		for len(group) > 0 {
			sum := 0
			for _, g := range group {
				sum += g.Weight
			}
			n := pick(sum + 1) // uniform in [0, sum], inclusive
			i, running := 0, 0
			for ; i < len(group); i++ {
				running += group[i].Weight
				if running >= n {
					break
				}
			}
			if i == len(group) { // a pick outside [0, sum]
				i = len(group) - 1
			}
			out = append(out, group[i])
			group = slices.Delete(group, i, i+1)
		}
	}
	return out
}

// mxHost is one MX answer.
type mxHost struct {
	Host       string // without the trailing dot, lower case
	Preference int
}

// lookupMX returns the MX hosts by preference (RFC 5321 section 5.1), and
// whether the domain publishes a null MX (RFC 7505: it accepts no mail).
func (r *resolver) lookupMX(ctx context.Context, domain string) (hosts []mxHost, null bool, err error) {
	rrs, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, false, err
	}
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		h := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		if h == "" {
			null = true
			continue
		}
		if validHostname(h) {
			hosts = append(hosts, mxHost{Host: h, Preference: int(mx.Preference)})
		}
	}
	slices.SortStableFunc(hosts, func(a, b mxHost) int { return a.Preference - b.Preference })
	if len(hosts) > maxRecords {
		hosts = hosts[:maxRecords]
	}
	return hosts, null && len(hosts) == 0, nil
}

// lookupAddrs returns the IPv4 and IPv6 addresses of host: errNoSuchName
// when the name does not exist, errNoAddress when it has no address, and
// another error only when no address came back and a question failed.
func (r *resolver) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	type answer struct {
		addrs []netip.Addr
		err   error
	}
	ch := make(chan answer, 2)
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		go func() {
			rrs, err := r.query(ctx, host, t)
			var a answer
			a.err = err
			for _, rr := range rrs {
				var ip net.IP
				switch v := rr.(type) {
				case *dns.A:
					ip = v.A
				case *dns.AAAA:
					ip = v.AAAA
				}
				if addr, ok := netip.AddrFromSlice(ip); ok {
					a.addrs = append(a.addrs, addr.Unmap())
				}
			}
			ch <- a
		}()
	}
	var addrs []netip.Addr
	var errs []error
	for range 2 {
		a := <-ch
		addrs = append(addrs, a.addrs...)
		if a.err != nil {
			errs = append(errs, a.err)
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, err := range errs {
		if errors.Is(err, errNoSuchName) {
			return nil, errNoSuchName
		}
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return nil, errNoAddress
}

// systemDNSServer returns the first name server of /etc/resolv.conf.
func systemDNSServer(path string) (string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("read the DNS configuration %s: %w", path, err)
	}
	if len(cfg.Servers) == 0 {
		return "", fmt.Errorf("%s names no DNS server", path)
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}
