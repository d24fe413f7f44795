package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is an in-process toxiproxy between a client and a server on
// loopback. Tests and benchmarks use it to add round-trip latency or to
// cut connections, never to reach anything but this machine.
type Proxy struct {
	Addr string
	p    *toxiproxy.Proxy
	mu   sync.Mutex // guards n, for Freeze from other goroutines
	n    int
}

// StartProxy listens on a free loopback port and forwards to upstream.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	return StartProxyAt(t, "127.0.0.1:0", upstream)
}

// StartProxyAt is StartProxy on a given loopback address, for tests that
// need a server at an address fixed in their test data (mailferry copy
// keys its state by server address).
func StartProxyAt(t testing.TB, listen, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "mailferry-test", listen, upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{Addr: p.Listen, p: p}
}

// AddLatency delays each direction by half of rtt, so that a round trip
// takes rtt longer.
func (p *Proxy) AddLatency(t testing.TB, rttMillis int) {
	t.Helper()
	half := rttMillis / 2
	for _, dir := range []string{"upstream", "downstream"} {
		p.addToxic(t, "latency", dir, fmt.Sprintf(`{"latency":%d}`, half))
	}
}

// CutAfter closes each connection once it has carried n bytes towards the
// server: the way a provider's load balancer drops a long upload.
func (p *Proxy) CutAfter(t testing.TB, n int64) {
	t.Helper()
	p.addToxic(t, "limit_data", "upstream", fmt.Sprintf(`{"bytes":%d}`, n))
}

// Clear removes all toxics.
func (p *Proxy) Clear() { p.p.Toxics.ResetToxics(context.Background()) }

func (p *Proxy) addToxic(t testing.TB, typ, stream, attrs string) {
	t.Helper()
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	js := fmt.Sprintf(`{"name":"t%d","type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, n, typ, stream, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatalf("add %s toxic: %v", typ, err)
	}
}

// LimitBandwidth caps the rate towards the server in KB/s, so that a long
// upload takes a predictable while.
func (p *Proxy) LimitBandwidth(t testing.TB, kbPerSecond int) {
	t.Helper()
	p.addToxic(t, "bandwidth", "upstream", fmt.Sprintf(`{"rate":%d}`, kbPerSecond))
}

// CutReadsAfter closes each connection once it has carried n bytes
// towards the client: a connection reset in the middle of a FETCH
// response.
func (p *Proxy) CutReadsAfter(t testing.TB, n int64) {
	t.Helper()
	p.addToxic(t, "limit_data", "downstream", fmt.Sprintf(`{"bytes":%d}`, n))
}

// Down closes the listener and every connection through it, as a server
// that went away: connections are cut and new ones are refused until Up.
func (p *Proxy) Down() { p.p.Stop() }

// Up listens again on the same address after Down.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	if err := p.p.Start(); err != nil {
		t.Fatalf("restart proxy on %s: %v", p.Addr, err)
	}
}

// LimitReadBandwidth caps the rate towards the client in KB/s, so that a
// long download (a FETCH of many bodies) takes a predictable while.
func (p *Proxy) LimitReadBandwidth(t testing.TB, kbPerSecond int) {
	t.Helper()
	p.addToxic(t, "bandwidth", "downstream", fmt.Sprintf(`{"rate":%d}`, kbPerSecond))
}

// Freeze stops all data in both directions on every connection through
// the proxy, without closing any: what a stalled server or a dead link
// that still holds the connection looks like. It may be called from any
// goroutine (it reports errors rather than failing the test); Clear
// undoes it.
func (p *Proxy) Freeze() error {
	for _, dir := range []string{"upstream", "downstream"} {
		p.mu.Lock()
		p.n++
		n := p.n
		p.mu.Unlock()
		// A timeout toxic with timeout 0 drops data and never closes.
		js := fmt.Sprintf(`{"name":"freeze%d","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, n, dir)
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return fmt.Errorf("add timeout toxic: %w", err)
		}
	}
	return nil
}
