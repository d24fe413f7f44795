package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// session is one logged-in POP3 connection in the TRANSACTION state
// (RFC 1939 §6). A session is used by one goroutine at a time.
//
// The server fixes the maildrop's contents and message numbers when the
// session logs in (RFC 1939 §8: message numbers are valid only within a
// session, and many servers lock the maildrop for its duration), so a
// session sees the messages that were there at its login, and its index
// (message numbers, IDs, sizes) is read once and kept.
type session struct {
	raw net.Conn // the TCP connection, closed to abort
	r   *bufio.Reader
	w   *bufio.Writer

	caps       capabilities
	pipelining bool // RFC 2449 §6.6 PIPELINING, unless switched off
	top        bool // TOP is usable (RFC 1939 §7 optional command)

	broken atomic.Bool // the session's state is unknown: close, never reuse
	idx    *index      // read on first use
	body   bodySpool   // reused for every RETR
}

// capabilities are the CAPA answer (RFC 2449 §5), tags upper-cased, with
// their arguments; nil when the server does not know CAPA.
type capabilities map[string][]string

func (c capabilities) has(tag string) bool {
	_, ok := c[tag]
	return ok
}

// sasl reports whether the SASL capability lists mechanism mech.
func (c capabilities) sasl(mech string) bool {
	for _, m := range c["SASL"] {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// pipelineWindow bounds the octets of commands sent but not yet answered.
// RFC 2449 §6.6: "If either the client or server uses blocking writes, it
// MUST not exceed the window size of the underlying transport layer."
// Commands are a dozen octets each, so this is still hundreds of commands
// ahead, and it always fits in the socket buffers, so a write never
// blocks on a server that is busy writing replies we have not read yet.
const pipelineWindow = 4 << 10

func (s *session) setConn(c net.Conn) {
	s.r = bufio.NewReaderSize(c, readBufferSize)
	s.w = bufio.NewWriterSize(c, pipelineWindow)
}

// guard aborts the session when ctx ends while a command runs, so that no
// call blocks past cancellation. The returned func must be called when
// the command is done.
func (s *session) guard(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, s.abort)
}

// abort closes the connection at once, without QUIT. Nothing can be lost
// by that: without QUIT the server never enters the UPDATE state (RFC 1939
// §6), and this connector never marks a message for deletion anyway.
func (s *session) abort() {
	s.broken.Store(true)
	_ = s.raw.Close()
}

// send queues one command. Commands are built only from message numbers,
// fixed keywords and credentials already checked for line breaks.
func (s *session) send(cmd string) error {
	_, err := s.w.WriteString(cmd + "\r\n")
	return err
}

// status reads a status line.
func (s *session) status() (status, error) {
	line, err := readLine(s.r)
	if err != nil {
		return status{}, err
	}
	return parseStatus(line)
}

// cmd sends one command and reads its status line. A -ERR answer is a
// *serverError.
func (s *session) cmd(command string) (status, error) {
	if err := s.send(command); err != nil {
		return status{}, err
	}
	if err := s.w.Flush(); err != nil {
		return status{}, err
	}
	st, err := s.status()
	if err == nil && !st.ok && !st.cont {
		err = &serverError{code: st.code, text: st.text}
	}
	return st, err
}

// exchange sends cmds and reads their replies in order, calling handle
// with each status and, for a +OK reply of a multi-line command, a reader
// of its lines (what handle leaves unread is drained). With PIPELINING
// the next commands travel while replies are read, within pipelineWindow
// and, when ahead is not nil, only while ahead(oldest, next) allows
// sending command next with command oldest the first unanswered one;
// otherwise each command waits for the previous reply. An error from
// handle or the connection ends the exchange and breaks the session,
// whose replies may still be on their way.
func (s *session) exchange(cmds []string, multi bool, ahead func(oldest, next int) bool, handle func(i int, st status, body *dotReader) error) (err error) {
	sent, inflight := 0, 0
	defer func() {
		if err != nil {
			s.broken.Store(true)
		}
	}()
	for i := range cmds {
		for sent < len(cmds) && (sent == i || s.pipelining && inflight+len(cmds[sent])+2 <= pipelineWindow && (ahead == nil || ahead(i, sent))) {
			if err := s.send(cmds[sent]); err != nil {
				return err
			}
			inflight += len(cmds[sent]) + 2
			sent++
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.cont {
			return &protocolError{msg: fmt.Sprintf("unexpected continuation in answer to %s", verb(cmds[i]))}
		}
		inflight -= len(cmds[i]) + 2
		var body *dotReader
		if st.ok && multi {
			body = newDotReader(s.r)
		}
		if err := handle(i, st, body); err != nil {
			return err
		}
		if body != nil {
			if err := body.drain(); err != nil {
				return err
			}
		}
	}
	return nil
}

// verb is a command's keyword, for error messages (never its arguments,
// which may be a password).
func verb(cmd string) string {
	v, _, _ := strings.Cut(cmd, " ")
	return v
}

// readCapa sends CAPA (RFC 2449 §5). A server without CAPA (RFC 1939
// only) answers -ERR: then nothing is known and nil is returned.
func (s *session) readCapa() (capabilities, error) {
	var caps capabilities
	err := s.exchange([]string{"CAPA"}, true, nil, func(_ int, st status, body *dotReader) error {
		if !st.ok {
			return nil
		}
		caps = capabilities{}
		return body.lines(func(line string) error {
			f := strings.Fields(line)
			if len(f) > 0 {
				caps[strings.ToUpper(f[0])] = f[1:]
			}
			return nil
		})
	})
	return caps, err
}

// quit ends the session politely. QUIT in the TRANSACTION state enters
// the UPDATE state (RFC 1939 §6), which removes only messages marked by
// DELE, and this connector never sends DELE.
func (s *session) quit() {
	if !s.broken.Load() {
		// A server that does not answer QUIT promptly is simply cut off
		// (the stall timeout, which sets its own deadlines, is too long
		// to wait here).
		t := time.AfterFunc(5*time.Second, func() { _ = s.raw.Close() })
		_, _ = s.cmd("QUIT")
		t.Stop()
	}
	_ = s.raw.Close()
	s.body.reset()
}

// dial opens and authenticates one session.
func (c *Conn) dial(ctx context.Context) (*session, error) {
	if c.sec == SecurityNone && !c.opts.AllowPlaintext {
		return nil, plaintextError(c.addr)
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	op := "connect to " + c.addr
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, classify(err, op)
	}
	s := &session{raw: raw, body: bodySpool{dir: c.opts.SpoolDir}}
	// The greeting, STLS and login are bounded by the dial timeout: a
	// server that accepts the connection but never speaks must not hang.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	fail := func(err error, op string) (*session, error) {
		_ = raw.Close()
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("no answer within %v: %w", dialTimeout, err)
		}
		var ce *connector.Error
		if errors.As(err, &ce) && ce.Op == "" {
			ce.Op = op
		}
		return nil, classify(err, op)
	}
	var conn net.Conn = &stallConn{Conn: raw, timeout: c.stall}
	if c.sec == SecurityTLS {
		tc := tls.Client(conn, c.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(tlsFailure(err), op)
		}
		conn = tc
	}
	s.setConn(conn)

	// RFC 1939 §4: the greeting is a +OK line. -ERR means the server will
	// not serve us now (overloaded, shutting down).
	greeting, err := s.status()
	if err != nil {
		return fail(err, op)
	}
	if !greeting.ok {
		return fail(&connector.Error{Kind: connector.KindTransient, Hint: hintTemp,
			Err: &serverError{code: greeting.code, text: greeting.text}}, op)
	}
	if s.caps, err = s.readCapa(); err != nil {
		return fail(err, op)
	}
	if c.sec == SecurityStartTLS {
		if s, err = c.startTLS(ctx, s, conn); err != nil {
			return fail(err, op+" (STLS)")
		}
	}
	s.pipelining = s.caps.has("PIPELINING") && !c.noPipelining
	if err := c.login(s); err != nil {
		return fail(err, fmt.Sprintf("log in to %s as %s", c.addr, c.username))
	}
	// Capabilities of the TRANSACTION state may be announced only after
	// login (RFC 2449 §5 only requires the AUTHORIZATION ones before), so
	// ask again unless everything this connector uses was already there.
	if s.caps == nil || !s.caps.has("UIDL") || !s.caps.has("TOP") || !s.caps.has("PIPELINING") {
		caps, err := s.readCapa()
		if err != nil {
			return fail(err, "read capabilities of "+c.addr)
		}
		if caps != nil {
			s.caps = caps
		}
	}
	s.pipelining = s.caps.has("PIPELINING") && !c.noPipelining
	// A server that does not know CAPA may still have TOP (it predates
	// RFC 2449); one that lists its capabilities without TOP has none.
	s.top = s.caps == nil || s.caps.has("TOP")
	return s, nil
}

func (c *Conn) dialTCP(ctx context.Context) (net.Conn, error) {
	if c.opts.Dial != nil {
		return c.opts.Dial(ctx, "tcp", c.addr)
	}
	d := net.Dialer{KeepAlive: 30 * time.Second}
	return d.DialContext(ctx, "tcp", c.addr)
}

func (c *Conn) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         c.endpoint.Host,
		RootCAs:            c.opts.RootCAs,
		InsecureSkipVerify: c.opts.InsecureSkipVerify, //nolint:gosec // explicit user opt-out (--insecure)
		MinVersion:         tls.VersionTLS12,
	}
}

// tlsFailure marks any handshake error as a TLS problem: the handshake is
// the only thing that ran.
func tlsFailure(err error) error {
	if kind, _ := kindOf(err); kind == connector.KindTransient && !isTLSError(err) {
		return err // the connection dropped; a retry may do
	}
	return &connector.Error{Kind: connector.KindTLS, Hint: hintTLS, Err: errors.New(describeTLS(err))}
}

// startTLS upgrades the connection with STLS (RFC 2595 §4).
func (c *Conn) startTLS(ctx context.Context, s *session, conn net.Conn) (*session, error) {
	if s.caps != nil && !s.caps.has("STLS") {
		return nil, &connector.Error{Kind: connector.KindTLS, Hint: hintNoSTLS, Err: errors.New("the server does not offer STLS")}
	}
	if _, err := s.cmd("STLS"); err != nil {
		var se *serverError
		if errors.As(err, &se) {
			return nil, &connector.Error{Kind: connector.KindTLS, Hint: hintNoSTLS, Err: se}
		}
		return nil, err
	}
	// Anything the server sent after its +OK arrived in clear text and
	// could have been injected by a man in the middle; nothing legitimate
	// can be there, since the server waits for the handshake.
	if s.r.Buffered() > 0 {
		return nil, &connector.Error{Kind: connector.KindTLS, Hint: hintTLS,
			Err: errors.New("the server sent data after agreeing to STLS (a man in the middle?)")}
	}
	tc := tls.Client(conn, c.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, tlsFailure(err)
	}
	s.setConn(tc)
	// RFC 2595 §4: after TLS the client MUST discard what it knew of the
	// server's capabilities.
	var err error
	if s.caps, err = s.readCapa(); err != nil {
		return nil, err
	}
	return s, nil
}

// login authenticates with SASL PLAIN (RFC 5034, RFC 4616) when CAPA
// offers it, else with USER and PASS (RFC 1939 §7). Neither the password
// nor the commands that carry it ever appear in an error.
func (c *Conn) login(s *session) error {
	user, pass := c.username, c.opts.Credentials.Password
	if s.caps.sasl("PLAIN") {
		// RFC 4616 §2: [authzid] NUL authcid NUL passwd.
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		var st status
		var err error
		// RFC 5034 §4: the initial response goes on the AUTH line unless
		// that would exceed the 255 octets of RFC 2449 §4; then it is sent
		// after the server's empty challenge.
		if len("AUTH PLAIN ")+len(resp)+2 <= 255 {
			st, err = s.cmd("AUTH PLAIN " + resp)
		} else if st, err = s.cmd("AUTH PLAIN"); err == nil {
			if !st.cont {
				return &protocolError{msg: "no continuation after AUTH PLAIN"}
			}
			st, err = s.cmd(resp)
		}
		if err == nil && st.cont {
			// A challenge after the response: PLAIN has no second step.
			_, _ = s.cmd("*") // RFC 5034 §4: cancel the exchange
			return &protocolError{msg: "unexpected challenge after AUTH PLAIN"}
		}
		return asLoginError(err)
	}
	if s.pipelining {
		// Both lines in one round trip; a PASS after a refused USER is
		// simply refused too (RFC 1939 §7).
		var first error
		err := s.exchange([]string{"USER " + user, "PASS " + pass}, false, nil, func(_ int, st status, _ *dotReader) error {
			if !st.ok && first == nil {
				first = &serverError{code: st.code, text: st.text}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return asLoginError(first)
	}
	if _, err := s.cmd("USER " + user); err != nil {
		return asLoginError(err)
	}
	_, err := s.cmd("PASS " + pass)
	return asLoginError(err)
}

func asLoginError(err error) error {
	var se *serverError
	if errors.As(err, &se) {
		return loginError(se, "")
	}
	return err
}

func plaintextError(addr string) error {
	return &connector.Error{Kind: connector.KindConfig, Op: "connect to " + addr, Hint: hintPlaintext,
		Err: errors.New("refusing to send the password over an unencrypted connection (pop3://)")}
}
