package pop3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

const (
	// dialTimeout bounds connecting, TLS, the greeting and the login.
	dialTimeout = 30 * time.Second
	// defaultStallTimeout drops a connection on which no byte arrived for
	// this long while a reply was awaited.
	defaultStallTimeout = 60 * time.Second
	// defaultMaxConnections is 1 because most POP3 servers lock the
	// maildrop for the whole session (RFC 1939 §8 lets them: "the POP3
	// server then acquires an exclusive-access lock on the maildrop"), and
	// a second session is refused with -ERR [IN-USE] (RFC 2449 §8.1.1).
	// Servers that allow parallel sessions (Dovecot does unless
	// pop3_lock_session = yes) can be given more with MaxConnections.
	defaultMaxConnections = 1
	defaultListBatch      = 500
	// retrBytesAhead bounds the message bytes asked for by RETR beyond
	// the one being read (see retrAhead).
	retrBytesAhead = 1 << 20
)

// Conn is one POP3 maildrop reached through a small pool of sessions. It
// implements connector.Source, connector.StatusReader and
// connector.Warmer. It never sends DELE: nothing is ever removed from
// the source.
type Conn struct {
	endpoint connector.Endpoint
	opts     connector.OpenOptions
	sec      Security
	addr     string
	username string
	stall    time.Duration
	maxConns int
	// noPipelining ignores the server's PIPELINING, so that benchmarks
	// can measure what it gains.
	noPipelining bool

	mu     sync.Mutex
	idle   []*session
	open   int           // sessions alive, idle or in use
	freed  chan struct{} // signalled when a session returns or dies
	closed bool
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
	_ connector.Warmer       = (*Conn)(nil)
)

// inbox is the one folder of a POP3 maildrop.
func inbox() connector.Folder {
	return connector.Folder{Path: mail.Path{mail.InboxName}, Name: mail.InboxName, Role: mail.RoleInbox}
}

// Open checks the settings, then logs in once so that a wrong password,
// host, port or certificate is reported now, as a *connector.Error whose
// kind says which.
func Open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	if err := connector.RefuseMailbox("POP3", e, o.Credentials); err != nil {
		return nil, err
	}
	c, err := newConn(e, o)
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// start logs in the first session.
func (c *Conn) start(ctx context.Context) error {
	s, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.open = 1
	c.idle = append(c.idle, s)
	return nil
}

// newConn validates e and o without touching the network.
func newConn(e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	sec, ok := schemeSecurity(e.Scheme)
	if !ok {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: "open " + e.Redacted,
			Err: fmt.Errorf("%q is not a POP3 scheme", e.Scheme), Hint: "Use pop3s://, pop3+starttls:// or pop3://."}
	}
	c := &Conn{
		endpoint: e,
		opts:     o,
		sec:      sec,
		addr:     address(e),
		username: o.Credentials.Username,
		stall:    o.StallTimeout,
		maxConns: o.MaxConnections,
		freed:    make(chan struct{}, 1),
	}
	if c.username == "" {
		c.username = e.User
	}
	op := "open " + e.Redacted
	if o.Role == connector.RoleDestination {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op,
			Err: errors.New("POP3 can only be read from"), Hint: "Use POP3 as the source; write to an IMAP server or a local backup."}
	}
	if c.username == "" {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op,
			Err: errors.New("no user name"), Hint: "Give the mailbox's user name."}
	}
	// The credentials travel inside command lines: a line break in them
	// would end the command and start another (say, DELE).
	if strings.ContainsAny(c.username, "\r\n\x00") || strings.ContainsAny(o.Credentials.Password, "\r\n\x00") {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op,
			Err: errors.New("the user name or password contains a line break or NUL character"), Hint: "Check the credentials for stray characters (a password file should hold the password alone, on one line)."}
	}
	if sec == SecurityNone && !o.AllowPlaintext {
		return nil, plaintextError(c.addr)
	}
	if c.stall <= 0 {
		c.stall = defaultStallTimeout
	}
	if c.maxConns <= 0 {
		c.maxConns = defaultMaxConnections
	}
	return c, nil
}

// Features implements connector.Conn.
func (c *Conn) Features() connector.Features {
	return connector.Features{
		MaxConnections: c.maxConns,
		// POP3 has one folder and no flags, keywords or roles.
		Folders: false,
		// The cursor holds hashes of IDs, which cannot name a removed
		// message; AllOld lists the ones still there instead.
		ReportsRemovals: false,
		// A delta listing reads one UIDL line per message (a few dozen
		// bytes, no round trip per message) and the headers of new
		// messages only; flags cannot change, as POP3 has none.
		CheapChanges: true,
		// The cursor holds every ID seen: what it does not hold is new.
		ExactNew: true,
	}
}

// Folders implements connector.Conn: a POP3 maildrop is one folder, the
// inbox.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	return []connector.Folder{inbox()}, nil
}

func checkFolder(f connector.Folder) error {
	if f.Path.IsInbox() || f.Name == mail.InboxName {
		return nil
	}
	return &connector.Error{Kind: connector.KindMissingFolder, Op: fmt.Sprintf("open folder %q", f.Path.String()),
		Err: errors.New("POP3 has only the inbox"), Hint: "POP3 mailboxes have no folders; only INBOX can be read."}
}

// Warm implements connector.Warmer: it logs in sessions in the
// background until n are open (within MaxConnections).
func (c *Conn) Warm(n int, appends bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for ; c.open < min(n, c.maxConns); c.open++ {
		go func() {
			s, err := c.dial(context.Background())
			if err != nil {
				c.mu.Lock()
				c.open--
				c.mu.Unlock()
				c.signal()
				return
			}
			c.release(s)
		}()
	}
}

// Close implements connector.Conn: every idle session ends with QUIT;
// sessions in use end when their call returns.
func (c *Conn) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.closed = true
	c.mu.Unlock()
	for _, s := range idle {
		s.quit()
	}
	return nil
}

// acquire takes an idle session or logs in a new one, up to the cap.
func (c *Conn) acquire(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, &connector.Error{Kind: connector.KindTransient, Op: "pop3", Err: errors.New("connection closed")}
		}
		if n := len(c.idle); n > 0 {
			s := c.idle[n-1]
			c.idle = c.idle[:n-1]
			c.mu.Unlock()
			return s, nil
		}
		if c.open < c.maxConns {
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
		c.mu.Unlock()
		select {
		case <-c.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release returns a session to the pool, or ends it when broken.
func (c *Conn) release(s *session) {
	c.mu.Lock()
	if s.broken.Load() || c.closed {
		c.open--
		c.mu.Unlock()
		s.quit()
	} else {
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

// withSession runs fn on a session, aborting it if ctx ends, and turns
// what fails into a *connector.Error.
func (c *Conn) withSession(ctx context.Context, op string, fn func(s *session) error) error {
	s, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	stop := s.guard(ctx)
	err = fn(s)
	stop()
	c.release(s)
	if err == nil {
		return nil
	}
	var cb callbackError
	if errors.As(err, &cb) {
		return cb.err
	}
	if ctx.Err() != nil {
		return &connector.Error{Kind: connector.KindTransient, Op: op, Err: ctx.Err()}
	}
	return classify(err, op)
}

// ensureIndex reads the session's index if it has none yet. On a server
// without UIDL that means reading every message's header (see
// contentID); onHeader, when not nil, sees each one, so that List need
// not read them twice.
func (s *session) ensureIndex(onHeader func(e entry, block []byte, topErr error) error) (*index, error) {
	if s.idx == nil {
		x, err := s.readIndex()
		if err != nil {
			return nil, err
		}
		s.idx = x
	}
	if s.idx.complete() {
		return s.idx, nil
	}
	return s.idx, s.scanContent(onHeader)
}
