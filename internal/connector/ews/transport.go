package ews

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/mailferry/mailferry/internal/connector"
)

// This file is the HTTP/1.1 client under the SOAP calls. It is written
// here rather than taken from net/http's Transport because EWS
// authentication needs control over connections that Transport hides:
//
//   - NTLM authenticates a TCP connection, not a request ([MS-NLMP] 3.1.5;
//     IIS keeps the connection authenticated). Each new connection is
//     authenticated once with a small probe request before any real
//     request is sent on it, so that a large CreateItem body is sent once
//     and never repeated for a handshake (go-ntlmssp's Negotiator would
//     send it up to three times and buffer it in memory).
//   - Every TCP connection goes through OpenOptions.Dial (the operator's
//     outbound policy, test proxies).
//   - A connection on which nothing moves for StallTimeout is dropped.
//   - The number of connections is the number of requests in flight,
//     capped per mailbox (EWSMaxConcurrency, ews-throttling-in-exchange).

const (
	dialTimeout         = 30 * time.Second
	defaultStallTimeout = 2 * time.Minute
	// idleMax is how long an idle connection is kept. IIS closes idle
	// connections after its connectionTimeout (120 s by default); a
	// connection older than this is not reused, so that a request is
	// seldom written into a connection the server is closing.
	idleMax = 50 * time.Second
	// idleCheck: a connection idle longer than this is checked for a
	// close from the server before reuse.
	idleCheck = time.Second
	userAgent = "Mailferry (EWS)"
)

// authMode is how requests authenticate.
type authMode int32

const (
	authAuto authMode = iota // NTLM when offered, else Basic; decided on the first connection
	authNTLM
	authBasic
)

func parseAuthMode(s string) (authMode, bool) {
	switch strings.ToLower(s) {
	case "", "auto":
		return authAuto, true
	case "ntlm", "negotiate":
		return authNTLM, true
	case "basic":
		return authBasic, true
	}
	return 0, false
}

func (m authMode) String() string {
	switch m {
	case authNTLM:
		return "NTLM"
	case authBasic:
		return "Basic"
	}
	return "automatic"
}

// transport sends requests to one EWS endpoint on a small pool of
// authenticated connections. It is safe for concurrent use.
type transport struct {
	server  string // host[:port] for messages
	addr    string // host:port to dial
	reqPath string // request-target, e.g. /EWS/Exchange.asmx
	hostHdr string
	tlsConf *tls.Config
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	stall   time.Duration

	user, pass string
	anchor     string // X-AnchorMailbox, set when impersonating
	want       authMode
	mode       atomic.Int32 // decided mode: authNTLM or authBasic once known
	scheme     atomic.Value // "NTLM" or "Negotiate": what the server offered
	probe      []byte       // a small valid request used to authenticate a connection

	slots chan struct{} // one per request in flight

	mu     sync.Mutex
	idle   []*hconn
	closed bool
}

// hconn is one HTTP/1.1 connection.
type hconn struct {
	sc       *stallConn
	br       *bufio.Reader
	bw       *bufio.Writer
	authed   bool
	lastUsed time.Time
}

func (c *hconn) close() { _ = c.sc.Close() }

// stallConn drops a connection on which a read or write makes no
// progress for stall, and lets a context cancel a blocked call.
type stallConn struct {
	net.Conn
	stall time.Duration
	dead  atomic.Bool
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.dead.Load() {
		return 0, context.Canceled
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.stall))
	n, err := c.Conn.Read(p)
	return n, c.wrap(err)
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.dead.Load() {
		return 0, context.Canceled
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	n, err := c.Conn.Write(p)
	return n, c.wrap(err)
}

func (c *stallConn) wrap(err error) error {
	if err == nil {
		return nil
	}
	if c.dead.Load() {
		return context.Canceled
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &stallError{after: c.stall}
	}
	return err
}

// watch makes ctx's cancellation abort whatever the connection is doing;
// the returned stop must be called when the exchange is over.
func (c *stallConn) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		c.dead.Store(true)
		_ = c.Conn.SetDeadline(time.Unix(1, 0))
	})
}

// netErr is a failure of the connection during an exchange, with how far
// the request got: Written means every byte of the request was handed
// to the network, so the server may have acted on it.
type netErr struct {
	err      error
	written  bool
	response bool // some of the response had arrived
	reused   bool // the connection had carried an earlier request
}

func (e *netErr) Error() string { return e.err.Error() }
func (e *netErr) Unwrap() error { return e.err }

// errAuthRetry marks a 401 on a connection that was authenticated: the
// login may have been dropped by the server (a restart, a changed
// password). The caller checks the credentials on a new connection.
var errAuthRetry = errors.New("the server asked to authenticate again")

// exchange is a request whose bytes have been sent and whose answer is
// still to be read on conn.
type exchange struct {
	t      *transport
	c      *hconn
	stop   func() bool
	ctx    context.Context
	reused bool // the connection had carried an earlier request
}

func (t *transport) acquire(ctx context.Context) error {
	select {
	case t.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *transport) releaseSlot() { <-t.slots }

// conn returns an idle connection or dials a new one; reused reports an
// idle one.
func (t *transport) conn(ctx context.Context) (c *hconn, reused bool, err error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, false, net.ErrClosed
		}
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c = t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		idle := time.Since(c.lastUsed)
		if idle > idleMax || (idle > idleCheck && !alive(c)) {
			c.close()
			continue
		}
		return c, true, nil
	}
	c, err = t.dialConn(ctx)
	return c, false, err
}

// alive reports whether an idle connection is still open: a server that
// closed it has sent EOF, which a read with a very short deadline sees.
func alive(c *hconn) bool {
	if c.br.Buffered() > 0 {
		return false // unsolicited bytes: the connection is out of step
	}
	_ = c.sc.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.br.Peek(1)
	_ = c.sc.Conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *transport) dialConn(ctx context.Context) (*hconn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var raw net.Conn
	var err error
	if t.dial != nil {
		raw, err = t.dial(dctx, "tcp", t.addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(dctx, "tcp", t.addr)
	}
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &unreachableError{cause: err}
	}
	tc := tls.Client(raw, t.tlsConf)
	if err := tc.HandshakeContext(dctx); err != nil {
		_ = raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isTLSError(err) {
			return nil, err
		}
		return nil, &unreachableError{cause: err}
	}
	sc := &stallConn{Conn: tc, stall: t.stall}
	return &hconn{sc: sc, br: bufio.NewReaderSize(sc, 32<<10), bw: bufio.NewWriterSize(sc, 32<<10), lastUsed: time.Now()}, nil
}

// put returns a connection to the pool after a complete exchange.
func (t *transport) put(c *hconn) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.close()
		return
	}
	t.idle = append(t.idle, c)
}

func (t *transport) close() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// writeRequest writes one POST with an n-byte body.
func (t *transport) writeRequest(c *hconn, n int64, authz string, body func(io.Writer) error) error {
	w := c.bw
	fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n", t.reqPath, t.hostHdr, userAgent)
	w.WriteString("Content-Type: text/xml; charset=utf-8\r\nAccept: text/xml\r\nAccept-Encoding: gzip\r\n")
	fmt.Fprintf(w, "Content-Length: %d\r\n", n)
	if authz != "" {
		w.WriteString("Authorization: " + authz + "\r\n")
	}
	if t.anchor != "" {
		// exchange-web-services/how-to-maintain-affinity-between-group-of-
		// subscriptions-and-mailbox-server: X-AnchorMailbox routes the
		// request to the impersonated mailbox's server.
		w.WriteString("X-AnchorMailbox: " + t.anchor + "\r\n")
	}
	w.WriteString("\r\n")
	cw := &countWriter{w: w}
	if err := body(cw); err != nil {
		return err
	}
	if cw.n != n {
		return fmt.Errorf("ews: request body is %d bytes, announced %d", cw.n, n)
	}
	return w.Flush()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var postRequest = &http.Request{Method: http.MethodPost}

// readResponse reads a status line and headers.
func readResponse(c *hconn) (*http.Response, error) {
	return http.ReadResponse(c.br, postRequest)
}

// drain reads the rest of a body so that the connection can carry the
// next request; it reports whether it can.
func drain(resp *http.Response) bool {
	_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false
	}
	var one [1]byte
	if n, _ := resp.Body.Read(one[:]); n > 0 {
		return false // more than a MiB of something nobody wanted
	}
	_ = resp.Body.Close()
	return !resp.Close
}

// authorization returns the Authorization header for a request on c, or
// "" when c is authenticated (NTLM) or no login is needed yet.
func (t *transport) authorization() string {
	if authMode(t.mode.Load()) == authBasic {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(t.user+":"+t.pass))
	}
	return ""
}

// authenticate makes c ready for requests: for NTLM it runs the
// NEGOTIATE/CHALLENGE/AUTHENTICATE exchange ([MS-NLMP] 3.1.5.1) with the
// probe request; for Basic nothing is needed. On the first connection
// in automatic mode it asks the server which schemes it offers.
func (t *transport) authenticate(ctx context.Context, c *hconn) error {
	if c.authed || authMode(t.mode.Load()) == authBasic {
		return nil
	}
	if authMode(t.mode.Load()) == authAuto {
		resp, err := t.probeOnce(c, "")
		if err != nil {
			return err
		}
		offers := offeredSchemes(resp.Header)
		keep := drain(resp)
		if resp.StatusCode != http.StatusUnauthorized {
			// No login needed at all (an open test server); say so.
			if !keep {
				return &netErr{err: io.ErrUnexpectedEOF, written: true, response: true}
			}
			c.authed = true
			return nil
		}
		switch {
		case t.want != authBasic && (offers["ntlm"] || offers["negotiate"]):
			t.setScheme(offers)
			t.mode.Store(int32(authNTLM))
		case t.want != authNTLM && offers["basic"]:
			t.mode.Store(int32(authBasic))
			if !keep {
				return errRedial
			}
			return nil
		case t.want == authNTLM:
			return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintNoNTLM,
				Err: errors.New("the server offers no NTLM authentication")}
		default:
			return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintAuth,
				Err: fmt.Errorf("the server offers no authentication Mailferry supports (it offers %s)", schemeList(offers))}
		}
		if !keep {
			return errRedial
		}
	}
	scheme, _ := t.scheme.Load().(string)
	if scheme == "" {
		scheme = "NTLM"
	}
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		return err
	}
	resp, err := t.probeOnce(c, scheme+" "+base64.StdEncoding.EncodeToString(neg))
	if err != nil {
		return err
	}
	challenge, found := ntlmChallenge(resp.Header, scheme)
	keep := drain(resp)
	if resp.StatusCode != http.StatusUnauthorized {
		if !keep {
			return &netErr{err: io.ErrUnexpectedEOF, written: true, response: true}
		}
		c.authed = true
		return nil
	}
	if !found {
		return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintNoNTLM,
			Err: errors.New("the server sent no NTLM challenge")}
	}
	if !keep {
		// IIS keeps the connection for the handshake; a server that does
		// not cannot do NTLM.
		return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintNoNTLM,
			Err: errors.New("the server closed the connection in the middle of the NTLM handshake")}
	}
	auth, err := ntlmssp.NewAuthenticateMessage(challenge, t.user, t.pass, nil)
	if err != nil {
		return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintAuth,
			Err: fmt.Errorf("NTLM: cannot answer the server's challenge: %v", err)}
	}
	resp, err = t.probeOnce(c, scheme+" "+base64.StdEncoding.EncodeToString(auth))
	if err != nil {
		return err
	}
	keep = drain(resp)
	if resp.StatusCode == http.StatusUnauthorized {
		return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp() + " (NTLM)", Hint: hintAuth,
			Err: errors.New("the server refused the user name or password")}
	}
	if !keep {
		return &netErr{err: io.ErrUnexpectedEOF, written: true, response: true}
	}
	c.authed = true
	return nil
}

// errRedial: the server closed the connection after telling which
// schemes it offers; authentication goes on on a new one.
var errRedial = errors.New("ews: redial")

func (t *transport) setScheme(offers map[string]bool) {
	if offers["ntlm"] {
		t.scheme.Store("NTLM")
	} else {
		// IIS's Negotiate provider accepts raw NTLM tokens (RFC 4559 §4).
		t.scheme.Store("Negotiate")
	}
}

// probeOnce sends the probe request with the given Authorization.
func (t *transport) probeOnce(c *hconn, authz string) (*http.Response, error) {
	if err := t.writeRequest(c, int64(len(t.probe)), authz, func(w io.Writer) error {
		_, err := w.Write(t.probe)
		return err
	}); err != nil {
		return nil, &netErr{err: err}
	}
	resp, err := readResponse(c)
	if err != nil {
		return nil, &netErr{err: err, written: true}
	}
	return resp, nil
}

// offeredSchemes lists the schemes of WWW-Authenticate (RFC 7235 §4.1),
// lower case.
func offeredSchemes(h http.Header) map[string]bool {
	out := map[string]bool{}
	for _, v := range h.Values("Www-Authenticate") {
		for _, part := range strings.Split(v, ",") {
			f := strings.Fields(part)
			if len(f) > 0 && !strings.Contains(f[0], "=") {
				out[strings.ToLower(f[0])] = true
			}
		}
	}
	return out
}

func schemeList(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return strings.Join(s, ", ")
}

// ntlmChallenge finds the CHALLENGE_MESSAGE in "WWW-Authenticate: NTLM
// <base64>" ([MS-NTHT] 2.2.2).
func ntlmChallenge(h http.Header, scheme string) ([]byte, bool) {
	for _, v := range h.Values("Www-Authenticate") {
		f := strings.Fields(v)
		if len(f) == 2 && (strings.EqualFold(f[0], scheme) || strings.EqualFold(f[0], "NTLM") || strings.EqualFold(f[0], "Negotiate")) {
			b, err := base64.StdEncoding.DecodeString(f[1])
			if err == nil && len(b) > 0 {
				return b, true
			}
		}
	}
	return nil, false
}

// send opens (or reuses) an authenticated connection, writes the request
// and returns the exchange whose answer is still to be read. On error
// the slot and connection have been released.
func (t *transport) send(ctx context.Context, n int64, body func(io.Writer) error) (*exchange, error) {
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	for redials := 0; ; redials++ {
		c, reused, err := t.conn(ctx)
		if err != nil {
			t.releaseSlot()
			return nil, err
		}
		stop := c.sc.watch(ctx)
		if err := t.authenticate(ctx, c); err != nil {
			stop()
			c.close()
			if (errors.Is(err, errRedial) || isNetErr(err)) && redials < 2 && ctx.Err() == nil {
				continue
			}
			t.releaseSlot()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if err := t.writeRequest(c, n, t.authorization(), body); err != nil {
			stop()
			c.close()
			t.releaseSlot()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &netErr{err: err, reused: reused}
		}
		return &exchange{t: t, c: c, stop: stop, ctx: ctx, reused: reused}, nil
	}
}

func isNetErr(err error) bool {
	var ne *netErr
	return errors.As(err, &ne)
}

// receive reads the answer and hands it to read, which must consume the
// body it wants; then the connection goes back to the pool (or is closed)
// and the slot is released. A 401 on an authenticated connection is
// errAuthRetry.
func (x *exchange) receive(read func(*http.Response) error) (err error) {
	t, c := x.t, x.c
	defer t.releaseSlot()
	keep := false
	defer func() {
		x.stop()
		if keep && !c.sc.dead.Load() {
			t.put(c)
		} else {
			c.close()
		}
	}()
	resp, rerr := readResponse(c)
	if rerr != nil {
		if x.ctx.Err() != nil {
			return x.ctx.Err()
		}
		return &netErr{err: rerr, written: true, reused: x.reused}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		keep = false
		drain(resp)
		c.authed = false
		return errAuthRetry
	}
	body := resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		gz, gerr := gzip.NewReader(body)
		if gerr != nil {
			return &netErr{err: gerr, written: true, response: true}
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{gz, body}
	}
	err = read(resp)
	if x.ctx.Err() != nil {
		return x.ctx.Err()
	}
	keep = drain(resp)
	var ne *netErr
	if err != nil && !errors.As(err, &ne) && isConnError(err) {
		return &netErr{err: err, written: true, response: true}
	}
	return err
}

// isConnError reports errors that come from the connection rather than
// from what the server said.
func isConnError(err error) bool {
	var st *stallError
	var netE net.Error
	return errors.As(err, &st) || errors.As(err, &netE) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

// statusError reads a non-SOAP answer into a serverError.
func statusError(resp *http.Response) *serverError {
	se := &serverError{HTTPStatus: resp.StatusCode}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && secs > 0 {
			se.BackOff = time.Duration(secs) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			if d := time.Until(at); d > 0 {
				se.BackOff = d
			}
		}
	}
	return se
}

// loginOp names the login for errors: the address and the user name,
// never the password.
func (t *transport) loginOp() string {
	return "log in to " + t.server + " as " + t.user
}
