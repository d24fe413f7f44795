package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// CountingProxy forwards TCP connections on loopback to a server and
// counts them as the server sees them: how many are open at once, the
// most ever open at once, and how many there were. Put in front of a
// Dovecot, it measures what a provider would count, whichever processes
// the connections come from (and a killed process's connections close
// when its sockets do).
type CountingProxy struct {
	Addr string

	ln                net.Listener
	upstream          string
	open, peak, total atomic.Int64
	mu                sync.Mutex
	conns             map[net.Conn]struct{}
	closed            bool
}

// StartCountingProxy listens on a free loopback port and forwards to
// upstream until the test ends.
func StartCountingProxy(t testing.TB, upstream string) *CountingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: counting proxy: %v", err)
	}
	p := &CountingProxy{Addr: ln.Addr().String(), ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Open is the number of connections open now.
func (p *CountingProxy) Open() int64 { return p.open.Load() }

// Peak is the most connections that were open at once.
func (p *CountingProxy) Peak() int64 { return p.peak.Load() }

// Total is the number of connections accepted.
func (p *CountingProxy) Total() int64 { return p.total.Load() }

func (p *CountingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *CountingProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *CountingProxy) forward(client net.Conn) {
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) || !p.track(server, true) {
		client.Close()
		server.Close()
		return
	}
	p.total.Add(1)
	n := p.open.Add(1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side closing ends the connection, as it would for the
		// server talking to the client directly.
		client.Close()
		server.Close()
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
	p.track(client, false)
	p.track(server, false)
	p.open.Add(-1)
}

func (p *CountingProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.ln.Close()
	for c := range conns {
		c.Close()
	}
}
