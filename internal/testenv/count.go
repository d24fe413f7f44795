package testenv

import (
	"net"
	"sync/atomic"
)

// CommandCounter counts IMAP commands by the tagged completions ("T12 OK
// …", "M3 NO …") servers send back on connections it dialled. Message
// bodies are not parsed, so a body line that looks like a completion
// would be counted too: good enough for measuring how the number of
// commands grows, which is what it is for.
// It also tracks how many of its connections are open at once.
type CommandCounter struct {
	n                 atomic.Int64
	open, peak, dials atomic.Int64
}

// Dials returns the number of connections opened.
func (c *CommandCounter) Dials() int64 { return c.dials.Load() }

// Commands returns the number counted so far.
func (c *CommandCounter) Commands() int64 { return c.n.Load() }

// PeakConnections returns the most connections that were open at once.
func (c *CommandCounter) PeakConnections() int64 { return c.peak.Load() }

// Dial is a drop-in for the connector's Config.Dial.
func (c *CommandCounter) Dial(network, addr string) (net.Conn, error) {
	conn, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	c.dials.Add(1)
	n := c.open.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &countingConn{Conn: conn, c: c}, nil
}

type countingConn struct {
	net.Conn
	c      *CommandCounter
	closed atomic.Bool
	// Line scanner state, kept across reads: 0 line start, 1 tag
	// letter seen, 2 in the tag's digits, 3 rest of the line.
	state int
}

func (cc *countingConn) Close() error {
	if !cc.closed.Swap(true) {
		cc.c.open.Add(-1)
	}
	return cc.Conn.Close()
}

func (cc *countingConn) Read(b []byte) (int, error) {
	n, err := cc.Conn.Read(b)
	for _, ch := range b[:n] {
		switch {
		case ch == '\n':
			cc.state = 0
			continue
		case cc.state == 0 && (ch == 'T' || ch == 'M'):
			cc.state = 1
		case (cc.state == 1 || cc.state == 2) && ch >= '0' && ch <= '9':
			cc.state = 2
		case cc.state == 2 && ch == ' ':
			cc.c.n.Add(1)
			cc.state = 3
		default:
			cc.state = 3
		}
	}
	return n, err
}
