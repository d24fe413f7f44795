package testenv

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// CommandCounter counts IMAP commands by the tagged completions ("T12 OK
// …", "M3 NO …") servers send back on connections it dialled. Message
// bodies are not parsed, so a body line that looks like a completion
// would be counted too: good enough for measuring how the number of
// commands grows, which is what it is for.
// It also tracks how many of its connections are open at once, and
// counts the commands the client sends by name (Sent).
type CommandCounter struct {
	n                 atomic.Int64
	open, peak, dials atomic.Int64

	mu   sync.Mutex
	sent map[string]int64
}

// Sent returns how many commands named name ("EXAMINE", "SELECT", "UID
// FETCH", "UID STORE"; case-insensitive) the client sent. Only lines
// written at the start of a write or after a CRLF that begin with a tag
// are read, so message literals are not parsed; a literal line that
// looks like a command would be counted.
func (c *CommandCounter) Sent(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[strings.ToUpper(name)]
}

func (c *CommandCounter) countSent(line []byte) {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return
	}
	name := strings.ToUpper(string(f[1]))
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(string(f[2]))
	}
	c.mu.Lock()
	if c.sent == nil {
		c.sent = map[string]int64{}
	}
	c.sent[name]++
	c.mu.Unlock()
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
	// out is the client's current line, up to outMax bytes; outSkip is
	// set while the rest of a long line (a literal) is passed over.
	wmu     sync.Mutex
	out     []byte
	outSkip bool
}

const outMax = 256

// Write reads the command names out of what the client sends.
func (cc *countingConn) Write(b []byte) (int, error) {
	cc.wmu.Lock()
	for _, ch := range b {
		if ch == '\n' {
			if !cc.outSkip && len(cc.out) > 0 && isTagStart(cc.out[0]) {
				cc.c.countSent(cc.out)
			}
			cc.out, cc.outSkip = cc.out[:0], false
			continue
		}
		if cc.outSkip {
			continue
		}
		if len(cc.out) >= outMax {
			cc.outSkip = true
			continue
		}
		cc.out = append(cc.out, ch)
	}
	cc.wmu.Unlock()
	return cc.Conn.Write(b)
}

// isTagStart: tags are letters and digits (go-imap "T12", mbsync and
// Dovecot's imapc plain numbers); "*" and "+" never start a command.
func isTagStart(ch byte) bool {
	return ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
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
