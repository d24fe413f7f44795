package imap

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// DefaultStallTimeout is how long a connection may go without a byte in
// either direction while an answer is awaited before it is dropped.
// Servers answer within seconds even under load, and a large literal that
// keeps flowing is progress however long it takes, so a minute without a
// single byte is a stalled server or a dead link (a NAT that forgot the
// connection, a load balancer that holds it open), not a slow one.
const DefaultStallTimeout = connector.DefaultStallTimeout

// writeChunk bounds one write to the socket, so that a large write on a
// slow link shows progress piece by piece instead of only at its end.
const writeChunk = 16 << 10

// watchConn is the TCP connection under every session and append
// connection (below TLS, which then reads and writes through it). It
// notices a server that stops sending: while someone waits for the server
// (see arm), a stretch of the stall timeout without a byte read or written
// closes the connection. Every operation on it then fails with a transient
// error that says so, which the engine retries on a new connection.
//
// go-imap has fixed timeouts of its own (30 s within a response line,
// 5 minutes within a literal, none before an answer starts), so without
// this a stall cost anything from 30 s to forever.
type watchConn struct {
	net.Conn
	limit time.Duration
	last  atomic.Int64 // UnixNano of the last byte moved, or of the start of a wait

	mu      sync.Mutex
	armed   int
	timer   *time.Timer
	tripped atomic.Bool
	// quickAck: acknowledge every segment at once (see quickAck).
	quickAck atomic.Bool
}

func newWatchConn(c net.Conn, limit time.Duration) *watchConn {
	if limit <= 0 {
		limit = DefaultStallTimeout
	}
	return &watchConn{Conn: c, limit: limit}
}

func (w *watchConn) Read(b []byte) (int, error) {
	if w.quickAck.Load() {
		quickAck(w.Conn)
	}
	n, err := w.Conn.Read(b)
	if n > 0 {
		w.last.Store(time.Now().UnixNano())
	}
	if err != nil && w.tripped.Load() {
		err = w.stallErr()
	}
	return n, err
}

func (w *watchConn) Write(b []byte) (int, error) {
	var done int
	for len(b) > 0 {
		n, err := w.Conn.Write(b[:min(len(b), writeChunk)])
		done += n
		if n > 0 {
			w.last.Store(time.Now().UnixNano())
		}
		if err != nil {
			if w.tripped.Load() {
				err = w.stallErr()
			}
			return done, err
		}
		b = b[n:]
	}
	if w.quickAck.Load() {
		// Sending switches Linux back to delayed ACKs ("pingpong"),
		// and the reader is typically blocked in Read already.
		quickAck(w.Conn)
	}
	return done, nil
}

// arm records that an answer from the server is awaited, until the
// returned func is called (once; later calls do nothing). Only these
// stretches count: a connection nobody waits on may stay silent, and
// neither is a reader that stops reading (a consumer applying back
// pressure) a stalled server.
func (w *watchConn) arm() func() {
	w.rearm()
	var once sync.Once
	return func() { once.Do(w.disarm) }
}

// rearm and disarm are arm's two halves, for callers that pair them
// themselves (paused).
func (w *watchConn) rearm() {
	w.mu.Lock()
	w.armed++
	if w.armed == 1 {
		w.last.Store(time.Now().UnixNano()) // the wait starts now
		if w.timer == nil {
			w.timer = time.AfterFunc(w.limit, w.check)
		} else {
			w.timer.Reset(w.limit)
		}
	}
	w.mu.Unlock()
}

func (w *watchConn) disarm() {
	w.mu.Lock()
	w.armed--
	if w.armed == 0 && w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

func (w *watchConn) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed == 0 || w.tripped.Load() {
		return
	}
	if quiet := time.Since(time.Unix(0, w.last.Load())); quiet < w.limit {
		w.timer.Reset(w.limit - quiet)
		return
	}
	w.tripped.Store(true)
	_ = w.Conn.Close()
}

// stalled reports whether the connection was dropped for want of progress.
func (w *watchConn) stalled() bool { return w.tripped.Load() }

func (w *watchConn) stallErr() error { return stallError{w.limit} }

// stallError is what reads and writes return once a stall closed the
// connection. It is a net.Error timeout, so code that does not know it
// still treats it as a passing network failure.
type stallError struct{ limit time.Duration }

func (e stallError) Error() string {
	return fmt.Sprintf("the server sent nothing for %v while an answer was awaited; the connection was dropped", e.limit)
}
func (e stallError) Timeout() bool   { return true }
func (e stallError) Temporary() bool { return true }

var _ net.Error = stallError{}

// stallFailure is the connector error for an operation cut short by a
// stall: transient, so the engine retries it on a new connection.
func (w *watchConn) stallFailure(op string) error {
	return &connector.Error{Kind: connector.KindTransient, Op: op, Hint: hintStall, Err: w.stallErr()}
}

// watchedReader arms w during each Read, for readers (FETCH literals)
// whose consumer runs while the session is otherwise not waiting.
type watchedReader struct {
	r io.Reader
	w *watchConn
}

func (r watchedReader) Read(b []byte) (int, error) {
	r.w.rearm()
	defer r.w.disarm()
	return r.r.Read(b)
}
