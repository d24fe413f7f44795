package netpolicy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNonPublicAddresses(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
		"0.0.0.0", "0.1.2.3", "100.64.0.1", "192.0.0.8", "198.18.0.1", "224.0.0.1", "239.1.2.3", "255.255.255.255", "240.0.0.1",
		"::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "ff05::2",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "2002:c0a8:101::1", "2001::1", "2001:db8::1",
		"100::1", "fec0::1",
	}
	for _, s := range refused {
		a := netip.MustParseAddr(s)
		if why := NonPublic(a); why == "" {
			t.Errorf("%s is treated as public", s)
		}
		if err := New(Config{}).Check(a); !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s) = %v, want refused", s, err)
		}
	}
	public := []string{"8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450:4001::1",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}
	for _, s := range public {
		if why := NonPublic(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s is refused as %s", s, why)
		}
	}
}

func TestAllowAndDenyRanges(t *testing.T) {
	p := New(Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.9.0.0/16")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("198.51.0.0/16"), netip.MustParsePrefix("10.9.9.0/24")},
	})
	for s, ok := range map[string]bool{
		"10.1.2.5": true, "10.1.3.5": false, "127.0.0.1": true, "::ffff:127.0.0.1": true, "127.0.0.2": false,
		"8.8.8.8": true, "198.51.7.7": false, "10.9.1.1": true, "10.9.9.9": false, // deny wins over allow
	} {
		if err := p.Check(netip.MustParseAddr(s)); (err == nil) != ok {
			t.Errorf("Check(%s) = %v, want allowed %v", s, err, ok)
		}
	}
	open := New(Config{AllowNonPublic: true, Deny: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}})
	if open.Check(netip.MustParseAddr("127.0.0.1")) != nil || open.Check(netip.MustParseAddr("169.254.169.254")) == nil {
		t.Error("AllowNonPublic with a deny list")
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{"10.1.2.3": "10.1.2.3/32", "10.1.2.3/8": "10.0.0.0/8", "[::1]": "::1/128", "fd00::/8": "fd00::/8",
		"::ffff:10.0.0.1": "10.0.0.1/32", " 192.0.2.0/24 ": "192.0.2.0/24"} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v %v, want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.1.2", "10.0.0.0/33", "mail.example.com", "fe80::1%eth0"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

// fakeResolver answers names from a map, as a DNS server under the
// attacker's control would.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// listen accepts on addr and reports every connection it gets.
func listen(t *testing.T, addr string) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- struct{}{}
			c.Close()
		}
	}()
	return l.Addr().String(), got
}

// The check is on the resolved address, at dial time, and the connection
// goes to the checked address: a name resolving to loopback is refused
// without a connection being made, and of a name with several addresses
// only the allowed ones are dialled.
func TestDialContextChecksTheResolvedAddress(t *testing.T) {
	addr, got := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	var refusals []string
	res := fakeResolver{
		"rebind.test": {netip.MustParseAddr("127.0.0.1")},
		"mixed.test":  {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
	}
	p := New(Config{Resolver: res, OnRefuse: func(host string, a netip.Addr, reason string) {
		refusals = append(refusals, host+" "+a.String()+" "+reason)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, target := range []string{"rebind.test:" + port, addr, "[::ffff:127.0.0.1]:" + port} {
		c, err := p.DialContext(ctx, "tcp", target)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected", target)
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want a dial error around a refusal", target, err)
		}
	}
	if len(refusals) != 3 || !strings.Contains(refusals[0], "rebind.test 127.0.0.1 loopback") {
		t.Errorf("OnRefuse calls: %q", refusals)
	}
	// Allowed: 127.0.0.2 only. mixed.test goes there, never to 127.0.0.1.
	addr2, got2 := listen(t, "127.0.0.2:"+port)
	_ = addr2
	p = New(Config{Resolver: res, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	c, err := p.DialContext(ctx, "tcp", "mixed.test:"+port)
	if err != nil {
		t.Fatalf("mixed.test: %v", err)
	}
	c.Close()
	select {
	case <-got2:
	case <-time.After(5 * time.Second):
		t.Fatal("the allowed address got no connection")
	}
	select {
	case <-got:
		t.Fatal("a refused address got a connection")
	case <-time.After(100 * time.Millisecond):
	}
	// A name that does not resolve stays a DNS error (host not found).
	if _, err := p.DialContext(ctx, "tcp", "nxdomain.test:993"); !errors.As(err, new(*net.DNSError)) {
		t.Errorf("unknown name: %v", err)
	}
}
