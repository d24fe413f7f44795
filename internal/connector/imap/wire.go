package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/utf7"
	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/sasl/xoauth2"
)

// appendConn is a minimal IMAP connection that only logs in and appends.
//
// Why not go-imap: v2.0.0-beta.8 sends every APPEND literal as a
// synchronising literal unless it is at most 4 KiB and the server offers
// LITERAL-, and holds the connection's write lock while it waits for the
// server's "+" continuation. Every message then costs one round trip per
// connection, which on a 50 ms link caps a connection at 20 messages per
// second. With LITERAL+ (RFC 7888) the client may send the literal at
// once, so this connection writes APPEND after APPEND without waiting and
// a reader goroutine matches the tagged answers as they come back. It is
// used only when the server advertises LITERAL+; otherwise the connector
// falls back to go-imap's Append.
type appendConn struct {
	conn net.Conn
	w    *watchConn // the TCP connection under conn
	br   *bufio.Reader

	wmu sync.Mutex
	bw  *bufio.Writer
	seq uint64

	mu      sync.Mutex
	pending map[string]*batch
	err     error // set once the connection failed
	done    chan struct{}

	// multi is true when the server offers MULTIAPPEND (RFC 3502): then
	// consecutive messages for one folder share one APPEND command, which
	// the server stores in one transaction instead of one per message.
	multi bool
	open  *batch // the APPEND still being written, guarded by wmu
	// openFolder is open's folder (nil when none), readable without wmu
	// by the pool choosing a connection (acquireAppender).
	openFolder atomic.Pointer[string]

	inflight int // guarded by the pool's mutex

	// maxBatch is the cap on messages per batch, between
	// batchMinMessages and batchMaxMessages (see adapt); 0 until the
	// first batch is answered.
	maxBatch atomic.Int32
}

// Limits of one MULTIAPPEND. The idle flush keeps the last messages of a
// burst from waiting; the count and size caps bound what one refused or
// lost command puts in doubt.
//
// The caps are set by the server's cost per command, not per message:
// Dovecot stores a MULTIAPPEND in one transaction, and on Maildir a
// transaction costs CPU in proportion to the folder's size (it re-reads
// the folder's dovecot-uidlist). Measured on Dovecot 2.3.19 (4 KB
// messages, CPU of the server per message stored; docs/PERFORMANCE.md,
// "Batches that suit the server"):
//
//	folder holds    1 per APPEND   8      24      64     256
//	0               550 µs         217    163     117    60
//	20,000          14,150 µs      2,017  747     327    123
//	50,000          27,530 µs      3,583  1,323   547    170
//
// so 64 messages per command cost a 50k-message folder 3× what 256 do.
// batchMaxBytes stays below half the engine's default bound on
// unanswered bytes (migrate.Options.WireBytes, 8 MiB), so that one
// batch is written while the one before it is stored, rather than a
// full batch waiting for the idle flush to end it.
const (
	batchMaxMessages = 512
	batchMaxBytes    = 3 << 20
	batchIdle        = 2 * time.Millisecond
	// batchIdleMore is the pause after which a batch ends although the
	// caller said another message follows (AppendRequest.More). The 2 ms
	// pause alone ended five of every six batches of a 30k-message copy
	// on a busy machine (about 40 messages per command instead of
	// hundreds): the next message was still being read from the source.
	batchIdleMore = 25 * time.Millisecond
	// batchMinMessages is where a connection's cap on messages per
	// batch starts, and the least it falls to. Nothing of a batch is
	// answered before its end, so on a slow link a batch of 512
	// messages would show no progress for a long while, and a Stop
	// would wait for all of it. The cap grows fourfold (64, 256, 512)
	// while full batches are answered within batchFast of their end,
	// and halves when one takes longer than batchSlow (see adapt).
	batchMinMessages = 64
	batchFast        = 250 * time.Millisecond
	batchSlow        = time.Second
)

// batch is one APPEND command carrying one or more messages.
type batch struct {
	tag    string
	folder string
	ended  time.Time // when its end was written; guarded by the connection's mu
	n      int
	bytes  int64
	timer  *time.Timer
	done   chan struct{}
	err    error
	uids   []uint32
	valid  uint32
	closed bool
	// answered ends the wait for this command's answer (see watchConn).
	answered func()
	// final is n when the command was ended, published under the
	// connection's mu so that waiters read it race-free.
	final int
}

// dialAppend opens and authenticates an appendConn.
func (c *Conn) dialAppend(ctx context.Context) (*appendConn, error) {
	a, err := c.dialRaw(ctx)
	if err != nil {
		return nil, err
	}
	go a.readLoop()
	return a, nil
}

// dialRaw opens and authenticates a connection of this package's own
// line protocol, without its reader goroutine (see dialAppend).
func (c *Conn) dialRaw(ctx context.Context) (*appendConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	op := "connect to " + c.server()
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, reconnectError(classify(err, op))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	tlsConfig := c.tlsConfig()
	var conn net.Conn = raw
	if c.cfg.Security == SecurityTLS {
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, tlsError(err, op)
		}
		conn = tc
	}
	a := &appendConn{conn: conn, w: raw, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 64<<10),
		pending: map[string]*batch{}, done: make(chan struct{}), multi: c.caps.Has(imap.CapMultiAppend)}
	if err := a.handshake(ctx, c, tlsConfig, raw); err != nil {
		conn.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return a, nil
}

// handshake reads the greeting, upgrades with STARTTLS when asked and
// authenticates, synchronously, before the reader goroutine starts.
func (a *appendConn) handshake(ctx context.Context, c *Conn, tlsConfig *tls.Config, raw net.Conn) error {
	op := fmt.Sprintf("log in to %s as %s", c.server(), c.cfg.Username)
	if _, err := a.readLine(); err != nil { // greeting
		return classify(err, op)
	}
	if c.cfg.Security == SecurityStartTLS {
		if err := a.simple("STARTTLS"); err != nil {
			return &connector.Error{Kind: connector.KindTLS, Op: op, Hint: hintTLS, Err: err}
		}
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return tlsError(err, op)
		}
		a.conn, a.br, a.bw = tc, bufio.NewReaderSize(tc, 16<<10), bufio.NewWriterSize(tc, 64<<10)
	}
	// AUTHENTICATE PLAIN with an initial response (RFC 4959) needs no
	// quoting whatever the password holds; the first session already
	// checked that the server accepts these credentials.
	var err error
	if c.cfg.Tokens != nil {
		return a.loginOAuth(ctx, c, op)
	}
	if c.caps.Has(imap.CapSASLIR) && hasAuth(c.caps, "PLAIN") {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + c.cfg.Username + "\x00" + c.cfg.Password))
		err = a.simple("AUTHENTICATE PLAIN " + ir)
	} else {
		err = a.simple("LOGIN " + quote(c.cfg.Username) + " " + quote(c.cfg.Password))
	}
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return &connector.Error{Kind: connector.KindAuth, Op: op, Hint: hintAuth, Err: fmt.Errorf("server said: %s", ie.Text)}
		}
		return classify(err, op)
	}
	return nil
}

// loginOAuth is AUTHENTICATE XOAUTH2 on the append connection, with the
// initial response inline where the server offers SASL-IR (RFC 4959),
// else after its empty continuation. An error challenge ("+ " and base64
// JSON) is answered with an empty line, as Google and Microsoft ask; a
// refused token is replaced once (it may have expired since the first
// session logged in).
func (a *appendConn) loginOAuth(ctx context.Context, c *Conn, op string) error {
	var last error
	for attempt := 0; attempt < 2; attempt++ {
		token, err := c.cfg.Tokens.Token(ctx)
		if err != nil {
			return err
		}
		ir := base64.StdEncoding.EncodeToString(xoauth2.InitialResponse(c.cfg.Username, token))
		a.seq++
		tag := "M" + strconv.FormatUint(a.seq, 10)
		cmd := tag + " AUTHENTICATE " + xoauth2.Mechanism
		inline := c.caps.Has(imap.CapSASLIR)
		if inline {
			cmd += " " + ir
		}
		if _, err := a.bw.WriteString(cmd + "\r\n"); err != nil {
			return classify(err, op)
		}
		if err := a.bw.Flush(); err != nil {
			return classify(err, op)
		}
		sentIR := inline
		var failure *xoauth2.Failure
		for {
			line, err := a.readLine()
			if err != nil {
				return classify(err, op)
			}
			if rest, ok := strings.CutPrefix(line, "+"); ok {
				answer := ""
				if !sentIR {
					answer, sentIR = ir, true
				} else if b, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(rest)); derr == nil {
					failure = xoauth2.ParseChallenge(b)
				}
				if _, err := a.bw.WriteString(answer + "\r\n"); err != nil {
					return classify(err, op)
				}
				if err := a.bw.Flush(); err != nil {
					return classify(err, op)
				}
				continue
			}
			t, rest, ok := strings.Cut(line, " ")
			if !ok || t != tag {
				continue
			}
			if _, _, err = parseStatus(rest); err == nil {
				return nil
			}
			var ie *imap.Error
			if !errors.As(err, &ie) {
				return classify(err, op)
			}
			last = fmt.Errorf("server said: %s", ie.Text)
			if failure != nil {
				last = fmt.Errorf("%w (%v)", last, failure)
			}
			break
		}
		c.cfg.Tokens.Invalidate(token)
	}
	return &connector.Error{Kind: connector.KindAuth, Op: op, Err: last,
		Hint: "the mail server refused a freshly issued OAuth token on a further connection; check the app's IMAP permission for this mailbox"}
}

func hasAuth(caps imap.CapSet, mech string) bool {
	for _, m := range caps.AuthMechanisms() {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// simple sends one command and waits for its tagged answer, skipping
// untagged data. Only used before the reader goroutine runs.
func (a *appendConn) simple(cmd string) error {
	a.seq++
	tag := "M" + strconv.FormatUint(a.seq, 10)
	if _, err := a.bw.WriteString(tag + " " + cmd + "\r\n"); err != nil {
		return err
	}
	if err := a.bw.Flush(); err != nil {
		return err
	}
	for {
		line, err := a.readLine()
		if err != nil {
			return err
		}
		if t, rest, ok := strings.Cut(line, " "); ok && t == tag {
			_, _, err := parseStatus(rest)
			return err
		}
	}
}

// readLine reads one response line, skipping over any literals in it
// (untagged data may carry them).
func (a *appendConn) readLine() (string, error) {
	var b strings.Builder
	for {
		line, err := a.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		b.WriteString(line)
		n, ok := literalSize(line)
		if !ok {
			return b.String(), nil
		}
		if _, err := io.CopyN(io.Discard, a.br, n); err != nil {
			return "", err
		}
	}
}

// literalSize reports a trailing {n} or {n+}.
func literalSize(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64)
	return n, err == nil
}

// parseStatus reads "OK [CODE args] text" into an *imap.Error for NO and
// BAD, so that classify treats these answers exactly like go-imap's, and
// the APPENDUID of an OK (RFC 4315; a UID set after MULTIAPPEND).
func parseStatus(s string) (uidValidity uint32, uids []uint32, err error) {
	typ, rest, _ := strings.Cut(s, " ")
	var code, args string
	if strings.HasPrefix(rest, "[") {
		if j := strings.IndexByte(rest, ']'); j > 0 {
			code, args, _ = strings.Cut(rest[1:j], " ")
			rest = strings.TrimSpace(rest[j+1:])
		}
	}
	switch strings.ToUpper(typ) {
	case "OK":
		if strings.EqualFold(code, "APPENDUID") {
			v, set, _ := strings.Cut(args, " ")
			validity, _ := strconv.ParseUint(v, 10, 32)
			return uint32(validity), parseUIDSet(set), nil
		}
		return 0, nil, nil
	case "NO", "BAD":
		return 0, nil, &imap.Error{Type: imap.StatusResponseType(strings.ToUpper(typ)), Code: imap.ResponseCode(strings.ToUpper(code)), Text: rest}
	}
	return 0, nil, fmt.Errorf("unexpected answer %q", s)
}

// parseUIDSet expands "5", "5:9" or "5,7:8" in order; anything malformed
// yields nil (UIDs are a convenience, never relied on for correctness).
func parseUIDSet(set string) []uint32 {
	var out []uint32
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil
			}
		}
		if b < a || b-a > 1<<16 {
			return nil
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out
}

// readLoop delivers tagged answers to their waiters until the connection
// ends; then every waiter learns the outcome is unknown.
func (a *appendConn) readLoop() {
	var err error
	for {
		var line string
		line, err = a.readLine()
		if err != nil {
			break
		}
		tag, rest, ok := strings.Cut(line, " ")
		if !ok || tag == "*" || tag == "+" {
			continue
		}
		valid, uids, serr := parseStatus(rest)
		a.mu.Lock()
		b := a.pending[tag]
		delete(a.pending, tag)
		a.mu.Unlock()
		if b != nil {
			b.answered()
			a.adapt(b)
			b.valid, b.uids, b.err = valid, uids, serr
			close(b.done)
		}
	}
	a.fail(err)
}

func (a *appendConn) fail(err error) {
	if err == nil {
		err = io.EOF
	}
	a.mu.Lock()
	if a.err == nil {
		a.err = err
		close(a.done)
	}
	waiters := a.pending
	a.pending = map[string]*batch{}
	a.mu.Unlock()
	_ = a.conn.Close()
	for _, b := range waiters {
		b.answered()
		b.err = err
		close(b.done)
	}
}

func (a *appendConn) broken() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// send writes one message and returns the batch it travels in and its
// position there. With MULTIAPPEND the command is left open so the next
// message for the same folder joins it; it is closed when full, when
// another folder comes, when a retry must travel alone, or after a short
// idle pause.
func (a *appendConn) send(mailbox string, req connector.AppendRequest, alone bool) (*batch, int, error) {
	name, err := utf7.Encoding.NewEncoder().String(mailbox)
	if err != nil {
		return nil, 0, err
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.broken() {
		return nil, 0, a.failure()
	}
	b := a.open
	if b != nil && (b.folder != mailbox || b.n >= a.batchCap() || b.bytes+req.Size > batchMaxBytes || alone) {
		if err := a.endBatch(); err != nil {
			return nil, 0, err
		}
		b = nil
	}
	var head strings.Builder
	if b == nil {
		a.seq++
		// From the first byte of the command on, an answer is awaited;
		// writing the literals counts as progress.
		b = &batch{tag: "M" + strconv.FormatUint(a.seq, 10), folder: mailbox, done: make(chan struct{}), answered: a.w.arm()}
		a.mu.Lock()
		a.pending[b.tag] = b
		a.mu.Unlock()
		head.WriteString(b.tag + " APPEND " + quote(name))
		a.openFolder.Store(&b.folder)
	}
	if flags := atoms(req.Flags); flags != "" {
		head.WriteString(" (" + flags + ")")
	}
	if !req.InternalDate.IsZero() {
		head.WriteString(` "` + req.InternalDate.Format("02-Jan-2006 15:04:05 -0700") + `"`)
	}
	head.WriteString(" {" + strconv.FormatInt(req.Size, 10) + "+}\r\n")
	_ = a.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	if _, err := a.bw.WriteString(head.String()); err != nil {
		a.fail(err)
		return nil, 0, err
	}
	n, err := io.Copy(a.bw, req.Body)
	if err == nil && n != req.Size {
		err = fmt.Errorf("message body has %d bytes, expected %d", n, req.Size)
	}
	if err != nil {
		// The server is now waiting for bytes that will never come, so
		// the connection cannot be used again; since the command never
		// ended, nothing in it was stored.
		a.fail(err)
		return nil, 0, err
	}
	idx := b.n
	b.n++
	b.bytes += req.Size
	a.open = b
	if !a.multi || alone {
		if err := a.endBatch(); err != nil {
			return b, idx, err
		}
		return b, idx, nil
	}
	// Hand the bytes to the server now so it stores while we read the
	// next message; end the command if nothing follows shortly.
	if err := a.bw.Flush(); err != nil {
		a.fail(err)
		return b, idx, errUncertainWrite{err}
	}
	idle := batchIdle
	if req.More {
		idle = batchIdleMore
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(idle, func() { a.idleFlush(b) })
	} else {
		b.timer.Reset(idle)
	}
	return b, idx, nil
}

// batchCap is the connection's current cap on messages per batch.
func (a *appendConn) batchCap() int {
	if n := int(a.maxBatch.Load()); n > 0 {
		return n
	}
	return batchMinMessages
}

// adapt moves the batch cap after b was answered: a quick answer
// (the link and the server keep up) lets batches grow, a slow one
// shrinks them. A batch still open when its answer came (the server
// refused it at once) says nothing.
func (a *appendConn) adapt(b *batch) {
	a.mu.Lock()
	ended, size := b.ended, b.final
	a.mu.Unlock()
	if ended.IsZero() {
		return
	}
	n, took := a.batchCap(), time.Since(ended)
	switch {
	case took > batchSlow:
		// Slow, full or not: shrink.
		n = max(n/2, batchMinMessages)
	case took <= batchFast && size >= n:
		// Only a full batch says a larger one would be answered as fast.
		n = min(4*n, batchMaxMessages)
	default:
		return
	}
	a.maxBatch.Store(int32(n))
}

// holdsOther reports whether the connection has a MULTIAPPEND open for
// a folder other than folder.
func (a *appendConn) holdsOther(folder string) bool {
	f := a.openFolder.Load()
	return f != nil && *f != folder
}

// endBatch terminates the open APPEND command. Caller holds wmu.
func (a *appendConn) endBatch() error {
	b := a.open
	if b == nil {
		return nil
	}
	a.open = nil
	a.openFolder.Store(nil)
	b.closed = true
	a.mu.Lock()
	b.final = b.n
	b.ended = time.Now()
	a.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
	if _, err := a.bw.WriteString("\r\n"); err != nil {
		a.fail(err)
		return errUncertainWrite{err}
	}
	if err := a.bw.Flush(); err != nil {
		a.fail(err)
		return errUncertainWrite{err}
	}
	return nil
}

func (a *appendConn) idleFlush(b *batch) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.open == b {
		_ = a.endBatch()
	}
}

func (a *appendConn) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// errUncertainWrite marks a write error after the whole literal may have
// reached the server.
type errUncertainWrite struct{ err error }

func (e errUncertainWrite) Error() string { return e.err.Error() }
func (e errUncertainWrite) Unwrap() error { return e.err }

func (a *appendConn) close() {
	a.wmu.Lock()
	_ = a.endBatch()
	_, _ = a.bw.WriteString("Z LOGOUT\r\n")
	_ = a.bw.Flush()
	a.wmu.Unlock()
	// LOGOUT is answered after every earlier command: once it is, the
	// server holds nothing of ours that could still be stored later.
	select {
	case <-a.done:
	case <-time.After(cancelGrace):
	}
	a.fail(net.ErrClosed)
}

// quote makes an IMAP quoted string (RFC 3501 section 4.3).
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

// atoms renders flags, dropping keywords that are not valid atoms
// (RFC 3501 section 9, atom-specials); a server would refuse them.
func atoms(flags []string) string {
	var out []string
	for _, f := range flags {
		name := strings.TrimPrefix(f, `\`)
		if name == "" || strings.ContainsAny(name, "(){ %*\"\\]\r\n") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			continue
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}
