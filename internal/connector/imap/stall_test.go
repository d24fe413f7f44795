package imap_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/testenv"
)

// A server that stops sending in the middle of a transfer is noticed
// within about the stall timeout: the connection is dropped, the
// operation retried on a new one, and the copy completes exactly. Before,
// go-imap's own timeouts (30 s within a line, 5 minutes within a literal,
// none before an answer) froze the copy for minutes per stall.

const stallTimeout = 2 * time.Second

// stallDialer routes every connection through a toxiproxy of its own, so
// that one connection can be frozen while new ones work. The first
// connection to carry more than after bytes (read from the server when
// reads, else written to it) is frozen.
type stallDialer struct {
	t        *testing.T
	upstream string
	after    int64
	reads    bool

	mu        sync.Mutex
	frozen    bool
	frozenAt  time.Time
	droppedAt time.Time
	dials     int
	err       error
}

func (d *stallDialer) Dial(network, _ string) (net.Conn, error) {
	p := testenv.StartProxy(d.t, d.upstream)
	c, err := net.Dial(network, p.Addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.dials++
	d.mu.Unlock()
	return &stallConn{Conn: c, d: d, p: p, closed: make(chan struct{})}, nil
}

type stallConn struct {
	net.Conn
	d      *stallDialer
	p      *testenv.Proxy
	n      atomic.Int64
	frozen atomic.Bool
	// closed is closed by Close. Once frozen, reads wait for it: what the
	// kernel had already buffered before the freeze is not handed out
	// either, so that a response smaller than the socket buffers (loopback
	// buffers grow to megabytes) still stalls its reader.
	closed    chan struct{}
	closeOnce sync.Once
}

// NetConn lets the connector reach the TCP connection (quick ACKs).
func (c *stallConn) NetConn() net.Conn { return c.Conn }

func (c *stallConn) count(n int) {
	if c.n.Add(int64(n)) <= c.d.after {
		return
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if c.d.frozen {
		return
	}
	c.d.frozen = true
	c.frozen.Store(true)
	c.d.frozenAt = time.Now()
	c.d.err = c.p.Freeze()
}

func (c *stallConn) Read(b []byte) (int, error) {
	if c.frozen.Load() && c.d.reads {
		<-c.closed
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(b)
	if c.d.reads {
		c.count(n)
	}
	return n, err
}

func (c *stallConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if !c.d.reads {
		c.count(n)
	}
	return n, err
}

func (c *stallConn) Close() error {
	if c.frozen.Load() {
		c.d.mu.Lock()
		if c.d.droppedAt.IsZero() {
			c.d.droppedAt = time.Now()
		}
		c.d.mu.Unlock()
	}
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// check asserts that the freeze happened and was noticed in time. The
// bound is generous (a loaded CI machine); without stall detection the
// frozen connection is not dropped for minutes.
func (d *stallDialer) check(t *testing.T) time.Duration {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		t.Fatalf("freezing the connection: %v", d.err)
	}
	if !d.frozen {
		t.Fatal("no connection carried enough bytes to be frozen: the test did not stall anything")
	}
	if d.droppedAt.IsZero() {
		t.Fatal("the frozen connection was never dropped")
	}
	took := d.droppedAt.Sub(d.frozenAt)
	if took < stallTimeout/2 || took > 10*stallTimeout {
		t.Errorf("frozen connection dropped after %v; want about the stall timeout of %v", took, stallTimeout)
	}
	return took
}

// stallMessages are n messages of about 24 KB, so that a transfer spans
// many reads and writes.
func stallMessages(folders []string, n int) []e2eMsg {
	var out []e2eMsg
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("Message-ID: <stall-%d@old.example>\r\nFrom: a@old.example\r\nSubject: %d\r\n\r\n%s\r\n",
			i, i, strings.Repeat(fmt.Sprintf("line %d of a long message\r\n", i), 900))
		out = append(out, e2eMsg{folder: folders[i%len(folders)], raw: raw, flags: []imap.Flag{imap.FlagSeen}, date: time.Unix(1e9+int64(i)*3600, 0)})
	}
	return out
}

// stalledCopy copies user's mailbox from src to dst with stall detection
// at stallTimeout, through the dialer on the side it names, and checks
// that every message arrived exactly once.
func stalledCopy(t *testing.T, src, dst mailServer, user string, d *stallDialer, onSource bool, dstStores func([]byte) []byte, n int) {
	t.Helper()
	scfg, dcfg := configFor(t, src, user), configFor(t, dst, user)
	scfg.StallTimeout, dcfg.StallTimeout = stallTimeout, stallTimeout
	if onSource {
		scfg.Dial = d.Dial
	} else {
		dcfg.Dial = d.Dial
	}
	// Without stall detection the copy would hang far beyond this.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	s, dc, serr, derr := imapconn.OpenBoth(ctx, scfg, dcfg)
	if serr != nil || derr != nil {
		t.Fatalf("open: source %v, destination %v", serr, derr)
	}
	defer s.Close()
	defer dc.Close()
	start := time.Now()
	// Small fetches: with one FETCH per folder, the answer could be in
	// the socket buffers whole when the connection froze, and the frozen
	// session was never asked for anything again (the test was flaky,
	// 2 runs in 3 under load); with several per session the next one
	// waits on the frozen connection.
	res, err := migrate.Run(ctx, s, dc, migrate.Options{FetchBatch: 4,
		Backoff: pacer.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, Attempts: 20}})
	if err != nil {
		t.Fatalf("copy: %v (after %v)", err, time.Since(start))
	}
	took := d.check(t)
	t.Logf("frozen connection dropped after %v; copy took %v, %d connections dialled on the stalled side, %d appends whose answer was lost",
		took, time.Since(start), d.dials, res.Stats.Uncertain)
	if len(res.Failures) != 0 || res.Stats.Copied != int64(n) {
		t.Fatalf("copied %d of %d, failures %+v", res.Stats.Copied, n, res.Failures)
	}
	sameMail(t, dumpServer(t, src, user), dumpServer(t, dst, user), nil, dstStores)
}

// The source stops sending in the middle of a FETCH (go-imap session).
func TestStalledSourceMidFetchIsRetried(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "sam", e2ePassword)
	dst.AddUser(t, "sam", e2ePassword)
	const n = 40
	seedServer(t, src, "sam", []string{"Work"}, stallMessages([]string{"INBOX", "Work"}, n))
	// Listing the folders reads a few KB; 200 KB is well into the bodies.
	d := &stallDialer{t: t, upstream: src.Addr(), after: 200 << 10, reads: true}
	stalledCopy(t, src, dst, "sam", d, true, nil, n)
}

// The destination stops answering in the middle of pipelined APPENDs on
// the package's own LITERAL+ connection (wire.go): answers are lost, so
// the engine looks for each message before sending it again.
func TestStalledDestinationMidAppendIsRetried(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "tom", e2ePassword)
	dst.AddUser(t, "tom", e2ePassword)
	const n = 40
	seedServer(t, src, "tom", []string{"Work"}, stallMessages([]string{"INBOX", "Work"}, n))
	d := &stallDialer{t: t, upstream: dst.Addr(), after: 300 << 10}
	stalledCopy(t, src, dst, "tom", d, false, nil, n)
}

// The same against Courier, which has no LITERAL+: appends go through
// go-imap, which waits for each continuation.
func TestStalledCourierDestinationMidAppendIsRetried(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartCourier(t, testenv.CourierOptions{})
	src.AddUser(t, "uma", e2ePassword)
	dst.AddUser(t, "uma", e2ePassword)
	const n = 40
	seedServer(t, src, "uma", []string{"Work"}, stallMessages([]string{"INBOX", "Work"}, n))
	d := &stallDialer{t: t, upstream: dst.Addr(), after: 300 << 10}
	stalledCopy(t, src, dst, "uma", d, false, courierStores, n)
}
