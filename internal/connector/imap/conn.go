package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/sasl/xoauth2"
)

// Conn is one IMAP mailbox reached through a pool of sessions. It
// implements connector.Source and connector.Destination.
type Conn struct {
	cfg   Config
	caps  imap.CapSet
	ns    namespace
	feats connector.Features
	// condStore and uidPlus are the server's CONDSTORE (RFC 7162) and
	// UIDPLUS (RFC 4315).
	condStore, uidPlus bool

	mu     sync.Mutex
	idle   []*session
	open   int           // sessions alive, idle or in use
	freed  chan struct{} // signalled when a session returns or dies
	closed bool

	// literalPlus servers get appends through appendConns (see wire.go);
	// they share MaxConnections with the sessions used for listing (see
	// sessionCap), of which a destination rarely needs more than two.
	literalPlus bool
	appending   bool // appends are expected: one slot is kept for them
	appenders   []*appendConn
	dialing     int
	affinity    map[string]*appendConn // folder name -> its append connection
	createMu    sync.Mutex             // serialises CreateFolder
	madeParents map[string]bool        // folders CreateFolder made as parents; under createMu
	// noUIDNext is set once the server's SELECT answer lacked UIDNEXT
	// (Courier-IMAP); List then asks with STATUS.
	noUIDNext atomic.Bool
	// quickAck, appendSequential and appendAffinity are set for servers
	// without LITERAL+ (see Open).
	quickAck         atomic.Bool
	appendSequential atomic.Bool
	appendAffinity   atomic.Bool
	// appendOwner is, per folder, the session that takes its appends
	// when they go through go-imap (see acquireForAppend); under mu.
	appendOwner map[string]*session
	// reading is, per folder, the fetches reading it (see acquireIn);
	// under mu.
	reading map[string]*folderUse
	// gmail: the server offers X-GM-EXT-1; gmailImportant holds the
	// folders LIST marks \Important (under mu).
	gmail          bool
	gmailImportant map[string]bool
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.Destination  = (*Conn)(nil)
	_ connector.FlagSetter   = (*Conn)(nil)
	_ connector.Deleter      = (*Conn)(nil)
	_ connector.QuotaReader  = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
	_ connector.Warmer       = (*Conn)(nil)
)

// session is one logged-in IMAP connection.
type session struct {
	c        *imapclient.Client
	w        *watchConn // the TCP connection under c
	selected string     // mailbox name currently selected, "" for none
	validity uint32     // the selected mailbox's UIDVALIDITY
	readOnly bool
	broken   atomic.Bool
	idleAt   time.Time // when it last went back to the pool; under Conn.mu
	// inflight counts commands sent but not answered; pipelined appends
	// leave the session in the pool while their answers are pending.
	inflight atomic.Int32
}

// Open dials one session, logs in, and reads capabilities and namespace.
// Every error it returns is a *connector.Error whose kind says whether the
// problem is the password, the host, the port or TLS.
func Open(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 4
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	c := &Conn{cfg: cfg, freed: make(chan struct{}, 1), madeParents: map[string]bool{}}
	s, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.caps = s.c.Caps()
	done := s.busy()
	c.ns, err = readNamespace(s.c, c.caps)
	done()
	if err != nil {
		s.c.Close()
		return nil, s.classify(err, "read namespace")
	}
	c.uidPlus = c.caps.Has(imap.CapUIDPlus) || c.caps.Has(imap.CapIMAP4rev2)
	c.condStore = c.caps.Has(imap.CapCondStore)
	c.gmail = c.caps.Has(capGmail)
	c.feats = connector.Features{
		MaxConnections: cfg.MaxConnections,
		Folders:        true,
		CreateFolders:  true,
		Keywords:       true,
		SpecialUse:     c.caps.Has(imap.CapSpecialUse),
		// Without CONDSTORE a delta listing reads the flags of every old
		// message to find changed ones.
		CheapChanges: c.condStore,
		// UIDs only grow (RFC 3501 section 2.3.1.1): UID FETCH from:*
		// lists exactly what arrived.
		ExactNew:  true,
		AppendIDs: c.uidPlus,
		ByteExact: true,
	}
	if limit, ok := c.caps.AppendLimit(); ok && limit != nil {
		c.feats.MaxMessageSize = int64(*limit)
	}
	// With a single connection allowed, appends share it (go-imap's
	// APPEND) rather than open a second one.
	c.literalPlus = c.caps.Has(imap.CapLiteralPlus) && cfg.MaxConnections >= 2
	// Without LITERAL+ every APPEND waits for the server's "+" (RFC 3501
	// section 7.5). When a pipelined APPEND's command line reaches the
	// server before it answered the previous one, it sends the tagged
	// OK and the "+" as two small writes; Nagle's algorithm on the
	// server holds the "+" until the OK is acknowledged, and Linux
	// delays that ACK by up to 40 ms since we have nothing to send: 22
	// messages per second on Courier-IMAP, on any link. Acknowledging at
	// once removes the wait. A folder's appends also stay on one
	// session (acquireForAppend). docs/PERFORMANCE.md has the figures
	// of the alternatives (BenchmarkCopyToCourier).
	if !c.caps.Has(imap.CapLiteralPlus) {
		c.quickAck.Store(true)
		s.w.quickAck.Store(true)
		c.appendAffinity.Store(true)
	}
	c.open = 1
	c.idle = append(c.idle, s)
	return c, nil
}

// Warm implements connector.Warmer: it dials sessions in the background
// until n are open (within MaxConnections), and with appends on a server
// with LITERAL+ the first append connection.
func (c *Conn) Warm(n int, appends bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.appending = c.appending || appends
	for ; c.open < min(n, c.sessionCap()); c.open++ {
		go c.warmSession()
	}
	if appends && c.literalPlus && len(c.appenders)+c.dialing == 0 {
		c.dialing++
		go c.warmAppender()
	}
}

func (c *Conn) warmSession() {
	s, err := c.dial(context.Background())
	if err != nil {
		c.mu.Lock()
		c.open--
		c.mu.Unlock()
		c.signal()
		return
	}
	c.release(s) // into the pool, or closed if the Conn closed meanwhile
}

func (c *Conn) warmAppender() {
	a, err := c.dialAppend(context.Background())
	c.mu.Lock()
	c.dialing--
	if err != nil || c.closed {
		c.mu.Unlock()
		if err == nil {
			a.close()
		}
		return
	}
	c.appenders = append(c.appenders, a)
	c.mu.Unlock()
}

// OpenBoth opens a source and a destination at the same time, since each
// login is several round trips. When either fails, the other is closed
// and both connections are nil; the errors say which side failed.
func OpenBoth(ctx context.Context, srcCfg, dstCfg Config) (src, dst *Conn, srcErr, dstErr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		dst, dstErr = Open(ctx, dstCfg)
	}()
	src, srcErr = Open(ctx, srcCfg)
	<-done
	if srcErr != nil || dstErr != nil {
		for _, c := range []*Conn{src, dst} {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, nil, srcErr, dstErr
	}
	return src, dst, nil, nil
}

// Features implements connector.Conn.
func (c *Conn) Features() connector.Features { return c.feats }

// Close implements connector.Conn.
func (c *Conn) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.closed = true
	appenders := c.appenders
	c.appenders = nil
	c.mu.Unlock()
	for _, a := range appenders {
		a.close()
	}
	for _, s := range idle {
		done := s.busy()
		_ = s.c.Logout().Wait()
		done()
		_ = s.c.Close()
	}
	return nil
}

func (c *Conn) server() string { return c.cfg.Addr() }

// dialTCP opens the TCP connection, through Config.DialContext or
// Config.Dial when set, and watches it for stalls.
func (c *Conn) dialTCP(ctx context.Context) (*watchConn, error) {
	var conn net.Conn
	var err error
	if c.cfg.DialContext != nil {
		conn, err = c.cfg.DialContext(ctx, "tcp", c.server())
	} else if c.cfg.Dial != nil {
		conn, err = c.cfg.Dial("tcp", c.server())
	} else {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", c.server())
	}
	if err != nil {
		return nil, err
	}
	w := newWatchConn(conn, c.cfg.StallTimeout)
	w.quickAck.Store(c.quickAck.Load())
	return w, nil
}

// dial opens and authenticates one session.
func (c *Conn) dial(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	op := "connect to " + c.server()
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, classify(err, op)
	}
	tlsConfig := c.tlsConfig()
	// Bound the greeting, STARTTLS and login by the dial timeout: a server
	// that accepts the TCP connection but never speaks must not hang us.
	_ = raw.SetDeadline(time.Now().Add(c.cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	opts := &imapclient.Options{TLSConfig: tlsConfig}
	var client *imapclient.Client
	switch c.cfg.Security {
	case SecurityTLS:
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, handshakeError(err, c.server())
		}
		client = imapclient.New(tc, opts)
	case SecurityStartTLS:
		client, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			raw.Close()
			return nil, startTLSError(err, c.server())
		}
	default:
		client = imapclient.New(raw, opts)
	}
	if err := c.login(ctx, client); err != nil {
		client.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return &session{c: client, w: raw}, nil
}

func (c *Conn) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         c.cfg.Host,
		RootCAs:            c.cfg.RootCAs,
		InsecureSkipVerify: c.cfg.InsecureSkipVerify, //nolint:gosec // explicit user opt-out (--insecure)
		MinVersion:         tls.VersionTLS12,
	}
}

func tlsError(err error, op string) error {
	if !isTLSError(err) {
		return classify(err, op)
	}
	return &connector.Error{Kind: connector.KindTLS, Op: op, Hint: hintTLS, Err: errors.New(describeTLS(err))}
}

func (c *Conn) login(ctx context.Context, client *imapclient.Client) error {
	op := fmt.Sprintf("log in to %s as %s", c.server(), c.cfg.Username)
	if c.cfg.Tokens != nil {
		return c.loginOAuth(ctx, client, op)
	}
	if c.cfg.Security == SecurityNone && !c.cfg.AllowPlaintext {
		return &connector.Error{Kind: connector.KindConfig, Op: op, Hint: hintPlaintext,
			Err: errors.New("refusing to send the password over an unencrypted connection")}
	}
	if err := client.WaitGreeting(); err != nil {
		return greetingError(err, c.server())
	}
	if client.Caps().Has(imap.CapLoginDisabled) {
		return &connector.Error{Kind: connector.KindConfig, Op: op, Hint: hintPlaintext,
			Err: errors.New("the server does not allow logging in without TLS (LOGINDISABLED)")}
	}
	if err := client.Login(c.cfg.Username, c.cfg.Password).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return loginError(ie, op)
		}
		return classify(err, op)
	}
	return nil
}

// acquire takes an idle session or dials a new one, up to the cap.
func (c *Conn) acquire(ctx context.Context) (*session, error) {
	return c.acquireIn(ctx, "")
}

// affinityHold is how long a folder keeps its sessions after its last
// fetch ended. A fetcher picks its next batch (and records its intents)
// between two fetches of one folder, which takes milliseconds; a session
// idle for longer than this is taken by another folder.
const affinityHold = 100 * time.Millisecond

// folderUse is how a folder is being read: the fetches reading it
// (running or waiting for a session) and when the last one ended.
type folderUse struct {
	active int
	last   time.Time
}

// heldUntil says until when idle session s is kept for the folder it has
// selected: for affinityHold after it became idle, if a fetch is reading
// that folder or was until then. The zero time means not held. Caller
// holds c.mu.
func (c *Conn) heldUntil(s *session) time.Time {
	if s.selected == "" {
		return time.Time{}
	}
	u := c.reading[s.selected]
	if u == nil || u.active == 0 && u.last.Before(s.idleAt) {
		return time.Time{}
	}
	return s.idleAt.Add(affinityHold)
}

// startReading and doneReading bracket a fetch of folder name.
func (c *Conn) startReading(name string) {
	c.mu.Lock()
	if c.reading == nil {
		c.reading = map[string]*folderUse{}
	}
	u := c.reading[name]
	if u == nil {
		u = &folderUse{}
		c.reading[name] = u
	}
	u.active++
	c.mu.Unlock()
}

func (c *Conn) doneReading(name string) {
	c.mu.Lock()
	now := time.Now()
	if u := c.reading[name]; u != nil {
		u.active--
		u.last = now
	}
	// Forget folders nobody read for a while, so the map follows the
	// folders in flight.
	for n, u := range c.reading {
		if u.active == 0 && now.Sub(u.last) > 10*affinityHold {
			delete(c.reading, n)
		}
	}
	c.mu.Unlock()
	c.signal()
}

// acquireIn is acquire for work in folder (when not ""): folder affinity.
// On Dovecot's Maildir opening a large folder costs the server far more
// than fetching a batch from it (169 ms of CPU against 4 ms for 64
// bodies from a 51k-message folder), so a session that reads a folder
// keeps it selected until that folder is done, instead of moving to
// whichever folder's batch comes next. In order of preference it takes:
//  1. an idle session that has folder selected (no SELECT at all);
//  2. one with nothing selected, or with a folder no fetch is reading
//     (see heldUntil);
//  3. a new session, while under the cap;
//  4. a session another folder's fetch left less than affinityHold ago,
//     once that time has passed (its fetcher did not come back for it).
//
// Among equals it takes the one with the fewest answers pending, so
// pipelines stay balanced. Work outside a folder (folder "") never
// waits: it takes the best idle session there is.
func (c *Conn) acquireIn(ctx context.Context, folder string) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errors.New("imap: connection closed")
		}
		now := time.Now()
		var soonest time.Time // when the first held session is free
		for {
			best, rank := -1, 0
			for i, s := range c.idle {
				r := c.rankIdle(s, folder, now)
				if r == rankHeld && folder != "" {
					if until := c.heldUntil(s); soonest.IsZero() || until.Before(soonest) {
						soonest = until
					}
					continue
				}
				if best < 0 || r < rank || r == rank && s.inflight.Load() < c.idle[best].inflight.Load() {
					best, rank = i, r
				}
			}
			if best < 0 {
				break
			}
			s := c.idle[best]
			c.idle = append(c.idle[:best], c.idle[best+1:]...)
			if s.broken.Load() || isClosed(s.c) {
				c.open--
				c.mu.Unlock()
				_ = s.c.Close()
				c.mu.Lock()
				continue
			}
			c.mu.Unlock()
			return s, nil
		}
		if c.open < c.sessionCap() {
			c.open++
			c.mu.Unlock()
			s, err := c.dial(ctx)
			if err != nil {
				c.mu.Lock()
				c.open--
				c.mu.Unlock()
				c.signal()
				return nil, reconnectError(err)
			}
			return s, nil
		}
		// Idle sessions held by other folders: look again when one is
		// freed, or when the hold has passed.
		var timer <-chan time.Time
		if !soonest.IsZero() {
			timer = time.After(soonest.Sub(now))
		}
		c.mu.Unlock()
		select {
		case <-c.freed:
		case <-timer:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ranks of idle sessions for acquireIn, best first.
const (
	rankSame   = iota // has the folder selected
	rankFree          // nothing selected
	rankUnheld        // another folder, which no fetch is reading
	rankHeld          // another folder, still being read
)

// rankIdle ranks an idle session for work in folder. Caller holds c.mu.
func (c *Conn) rankIdle(s *session, folder string, now time.Time) int {
	switch {
	case folder != "" && s.selected == folder:
		return rankSame
	case s.selected == "":
		return rankFree
	case !now.Before(c.heldUntil(s)):
		return rankUnheld
	}
	return rankHeld
}

// acquireForAppend is acquire for an APPEND through go-imap: a folder's
// appends all go to one session at a time, its owner, while other folders
// use others. Courier-IMAP (IMAP_USELOCKS, Debian's default) serialises
// sessions that append to one folder through a lock file: four
// connections into one folder stored 180 messages per second where one
// stored 2,000.
func (c *Conn) acquireForAppend(ctx context.Context, folder string) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errors.New("imap: connection closed")
		}
		owner := c.appendOwner[folder]
		if owner != nil && (owner.broken.Load() || isClosed(owner.c)) {
			delete(c.appendOwner, folder)
			owner = nil
		}
		if owner == nil {
			c.mu.Unlock()
			s, err := c.acquire(ctx)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			if c.appendOwner == nil {
				c.appendOwner = map[string]*session{}
			}
			if cur := c.appendOwner[folder]; cur == nil || cur.broken.Load() {
				c.appendOwner[folder] = s
				c.mu.Unlock()
				return s, nil
			}
			// Another append made itself the owner meanwhile.
			c.mu.Unlock()
			c.release(s)
			continue
		}
		for i, s := range c.idle {
			if s == owner {
				c.idle = append(c.idle[:i], c.idle[i+1:]...)
				c.mu.Unlock()
				return s, nil
			}
		}
		c.mu.Unlock()
		// The owner is busy (writing another message, or lent to a
		// listing). The pool's signal may be for another session, so
		// look again after a short while too.
		select {
		case <-c.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// release returns a session to the pool, or closes it when broken.
func (c *Conn) release(s *session) {
	c.mu.Lock()
	if s.broken.Load() || c.closed {
		c.open--
		c.mu.Unlock()
		_ = s.c.Close()
	} else {
		s.idleAt = time.Now()
		c.idle = append(c.idle, s)
		c.mu.Unlock()
	}
	c.signal()
}

func (c *Conn) signal() {
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

func isClosed(cl *imapclient.Client) bool {
	select {
	case <-cl.Closed():
		return true
	default:
		return false
	}
}

// fail marks a session unusable after a network-level error so that the
// pool replaces it; IMAP-level NO/BAD answers leave it usable.
func (s *session) fail(err error) {
	if err == nil {
		return
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		s.broken.Store(true)
		_ = s.c.Close()
	}
}

// busy marks the session as waiting for the server until the returned
// func is called, so that a server that stops sending is noticed (see
// watchConn). Callers end it while they run a caller's callback.
func (s *session) busy() func() { return s.w.arm() }

// classify is classify for errors of this session: once a stall dropped
// the connection, whatever go-imap made of that is reported as the stall.
func (s *session) classify(err error, op string) error {
	if s.w.stalled() {
		return s.w.stallFailure(op)
	}
	return classify(err, op)
}

// guard closes the session if ctx ends while a command is running, so that
// no call blocks past cancellation. The returned func must be called when
// the command is done.
func (s *session) guard(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		s.broken.Store(true)
		_ = s.c.Close()
	})
}

// selectFolder makes name the selected mailbox of s. Writable selects with
// SELECT (which reports PERMANENTFLAGS); otherwise EXAMINE, so that
// reading never changes the source.
func (c *Conn) selectFolder(s *session, name string, writable bool) (*imap.SelectData, error) {
	return c.selected(s, c.startSelect(s, name, writable), name, writable)
}

// startSelect sends SELECT (or EXAMINE) without waiting, so the command
// that needs it can follow in the same round trip: the server runs them
// in order, and if the SELECT fails no mailbox is selected, so the
// follower fails too rather than run in another folder (RFC 3501 6.3.1).
func (c *Conn) startSelect(s *session, name string, writable bool) *imapclient.SelectCommand {
	s.selected = "" // unknown until the answer
	return s.c.Select(name, &imap.SelectOptions{ReadOnly: !writable, CondStore: c.condStore})
}

// selected waits for a SELECT sent by startSelect.
func (c *Conn) selected(s *session, cmd *imapclient.SelectCommand, name string, writable bool) (*imap.SelectData, error) {
	data, err := cmd.Wait()
	if err != nil {
		s.fail(err)
		return nil, s.classify(err, fmt.Sprintf("open folder %q", name))
	}
	s.selected, s.readOnly, s.validity = name, !writable, data.UIDValidity
	return data, nil
}

// deselect ends the selection of s before a STATUS of that folder:
// RFC 3501 section 6.3.10 says STATUS SHOULD NOT be used on the selected
// mailbox, and servers answer it from the session's view, which misses
// what other sessions added since (Dovecot, Courier-IMAP). With UNSELECT
// (RFC 3691) the folder is simply deselected; a folder opened read-only
// is closed with CLOSE, which expunges nothing then (RFC 3501 section
// 6.4.2); a writable one without UNSELECT (CLOSE would expunge) gets a
// NOOP, which brings the session's view up to date. The command is sent
// without waiting: the STATUS that follows travels with it.
func (c *Conn) deselect(s *session) *imapclient.Command {
	if s.selected == "" {
		return nil
	}
	var cmd *imapclient.Command
	switch {
	case c.caps.Has(imap.CapUnselect) || c.caps.Has(imap.CapIMAP4rev2):
		cmd = s.c.Unselect()
	case s.readOnly:
		cmd = s.c.UnselectAndExpunge()
	default:
		return s.c.Noop()
	}
	s.selected, s.validity = "", 0
	return cmd
}

// reconnectError treats network trouble on a server that Open already
// reached as passing (a restart, a DNS hiccup, a load balancer shedding
// connections), so the engine backs off and retries; a refused password
// or certificate stays fatal, since retrying cannot fix it.
func reconnectError(err error) error {
	var ce *connector.Error
	if errors.As(err, &ce) && (ce.Kind == connector.KindHost || ce.Kind == connector.KindConnect) {
		ce.Kind = connector.KindTransient
	}
	return err
}

// acquireAppender picks the append connection with the fewest answers
// outstanding, dialling another while under the cap and all are busy.
//
// Messages for one folder stick to the connection that last took one for
// it: consecutive appends to a folder then join the same MULTIAPPEND,
// which the server stores in one transaction. Spreading a folder over
// several connections made batches of three messages on average and
// tripled the destination server's CPU per message.
func (c *Conn) acquireAppender(ctx context.Context, folder string) (*appendConn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errors.New("imap: connection closed")
		}
		c.appending = true
		live := c.appenders[:0]
		for _, a := range c.appenders {
			if !a.broken() {
				live = append(live, a)
			}
		}
		c.appenders = live
		own := c.affinity[folder]
		if own != nil && (own.broken() || own.inflight >= affinityBusy) {
			own = nil
		}
		if own != nil && !own.holdsOther(folder) {
			own.inflight++
			c.mu.Unlock()
			return own, nil
		}
		// A connection whose MULTIAPPEND is open for another folder would
		// have to end it for this message: both folders' batches would
		// then stay small, and the server's cost is per command (see
		// batchMaxMessages). Prefer a connection without one.
		var best *appendConn
		for _, a := range live {
			if best == nil || better(a, best, folder) {
				best = a
			}
		}
		// Deeper pipelines before more connections: a new connection
		// costs a login and counts against the provider's limit, while
		// a pipelined one is nearly free.
		if (best == nil || best.inflight >= appendersBusy || best.holdsOther(folder)) && len(live)+c.dialing < c.appenderCap() {
			c.dialing++
			c.mu.Unlock()
			a, err := c.dialAppend(ctx)
			c.mu.Lock()
			c.dialing--
			if err != nil {
				c.mu.Unlock()
				if best != nil {
					continue // use an existing one rather than fail
				}
				return nil, err
			}
			a.inflight++
			c.appenders = append(c.appenders, a)
			c.setAffinity(folder, a)
			c.mu.Unlock()
			return a, nil
		}
		if own != nil && best != nil && best.holdsOther(folder) {
			// Every connection is filling a batch for another folder:
			// stay with this folder's own.
			best = own
		}
		if best != nil {
			best.inflight++
			c.setAffinity(folder, best)
			c.mu.Unlock()
			return best, nil
		}
		c.mu.Unlock()
		// Another goroutine is dialling the only allowed connection.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// MaxConnections bounds sessions and append connections together, since
// a provider's per-user limit counts both; each kind may always have one.
// Caller holds c.mu.
func (c *Conn) sessionCap() int {
	appends := len(c.appenders) + c.dialing
	if c.appending && c.literalPlus {
		appends = max(appends, 1)
	}
	return max(1, c.cfg.MaxConnections-appends)
}

// appenderCap is sessionCap's counterpart. Caller holds c.mu.
func (c *Conn) appenderCap() int {
	return max(1, c.cfg.MaxConnections-c.open)
}

// better reports whether a is a better connection than b for a message
// to folder: one without another folder's open batch first, then the
// one with fewer answers outstanding. Caller holds c.mu.
func better(a, b *appendConn, folder string) bool {
	if ao, bo := a.holdsOther(folder), b.holdsOther(folder); ao != bo {
		return !ao
	}
	return a.inflight < b.inflight
}

// setAffinity remembers which connection takes a folder's appends.
// Caller holds c.mu.
func (c *Conn) setAffinity(folder string, a *appendConn) {
	if c.affinity == nil {
		c.affinity = map[string]*appendConn{}
	}
	c.affinity[folder] = a
}

// appendersBusy is the number of unanswered appends on the least busy
// append connection above which another connection is opened.
const appendersBusy = 32

// affinityBusy is the number of unanswered appends on a folder's own
// connection above which the folder moves to a less busy one. It is
// above a full MULTIAPPEND batch and the one before it, so that a folder
// moves only when its connection falls behind, never in the middle of
// filling a batch.
const affinityBusy = 2*batchMaxMessages + appendersBusy

func (c *Conn) releaseAppender(a *appendConn) {
	c.mu.Lock()
	a.inflight--
	c.mu.Unlock()
}

// loginOAuth authenticates with SASL XOAUTH2 (Google's and Microsoft's
// "OAuth 2.0 for IMAP" pages): the server must offer AUTH=XOAUTH2, and a
// refused token is replaced once before the login fails with the
// server's decoded error challenge.
func (c *Conn) loginOAuth(ctx context.Context, client *imapclient.Client, op string) error {
	if c.cfg.Security == SecurityNone && !c.cfg.AllowPlaintext {
		return &connector.Error{Kind: connector.KindConfig, Op: op, Hint: hintPlaintext,
			Err: errors.New("refusing to send an OAuth token over an unencrypted connection")}
	}
	if err := client.WaitGreeting(); err != nil {
		return greetingError(err, c.server())
	}
	if !client.Caps().Has(imap.Cap("AUTH=" + xoauth2.Mechanism)) {
		return &connector.Error{Kind: connector.KindConfig, Op: op,
			Hint: "this server does not offer OAuth logins (AUTH=XOAUTH2); log in with a password (or an app password) instead",
			Err:  errors.New("the server does not offer AUTH=XOAUTH2")}
	}
	return xoauth2.Login(ctx, c.cfg.Username, c.cfg.Tokens,
		func(sc sasl.Client) error { return client.Authenticate(sc) },
		func(err error) bool {
			var ie *imap.Error
			return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo
		})
}
