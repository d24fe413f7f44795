package imap_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/testenv"
)

// cutDialer resets the first connection it dials once that connection
// has read more than after bytes from the server.
type cutDialer struct {
	after int64
	mu    sync.Mutex
	dials int
	cut   bool
}

func (d *cutDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials++
	if d.dials > 1 {
		return c, nil
	}
	return &cutConn{Conn: c, d: d}, nil
}

type cutConn struct {
	net.Conn
	d *cutDialer
	n int64
}

func (c *cutConn) NetConn() net.Conn { return c.Conn }

func (c *cutConn) Read(p []byte) (int, error) {
	if c.n >= c.d.after {
		c.d.mu.Lock()
		c.d.cut = true
		c.d.mu.Unlock()
		_ = c.Conn.Close()
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	if left := c.d.after - c.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	return n, err
}

// A connection reset in the middle of a header field literal of the
// listing drops the session without reading that literal again: before,
// the listing drained the rest of the FETCH, re-reading the failed
// literal while go-imap's reader goroutine, released by the failure,
// read the same buffer (a data race the race detector reported in the
// jobs tests whenever a stopped pass cut its connections). The pass is
// then retried on a new connection and completes exactly.
func TestListingCutMidHeaderIsDroppedCleanly(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "una", e2ePassword)
	dst.AddUser(t, "una", e2ePassword)
	const n = 30
	var msgs []e2eMsg
	for i := 0; i < n; i++ {
		// Long Subject lines make every listed header literal a few KB,
		// so the cut lands inside one.
		raw := fmt.Sprintf("Message-ID: <cut-%d@old.example>\r\nFrom: a@old.example\r\nSubject: %d %s\r\n\r\nbody %d\r\n",
			i, i, strings.Repeat("long subject words ", 200), i)
		msgs = append(msgs, e2eMsg{folder: "INBOX", raw: raw, flags: []imap.Flag{imap.FlagSeen}, date: time.Unix(1e9+int64(i)*3600, 0)})
	}
	seedServer(t, src, "una", nil, msgs)
	for _, after := range []int64{6 << 10, 9 << 10, 13 << 10, 21 << 10, 40 << 10} {
		t.Run(fmt.Sprintf("after-%d", after), func(t *testing.T) {
			d := &cutDialer{after: after}
			scfg, dcfg := configFor(t, src, "una"), configFor(t, dst, "una")
			scfg.Dial = d.Dial
			scfg.MaxConnections = 1 // the cut connection is the one that lists
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			s, dc, serr, derr := imapconn.OpenBoth(ctx, scfg, dcfg)
			if serr != nil || derr != nil {
				t.Fatalf("open: source %v, destination %v", serr, derr)
			}
			defer s.Close()
			defer dc.Close()
			res, err := migrate.Run(ctx, s, dc, migrate.Options{
				Backoff: pacer.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, Attempts: 20}})
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			if !d.cut {
				t.Fatalf("the connection was never cut at %d bytes", after)
			}
			if len(res.Failures) != 0 || res.Stats.Copied+res.Stats.Present != n {
				t.Fatalf("copied %d and %d present of %d, failures %+v", res.Stats.Copied, res.Stats.Present, n, res.Failures)
			}
		})
	}
	sameMail(t, dumpServer(t, src, "una"), dumpServer(t, dst, "una"), nil, nil)
}
