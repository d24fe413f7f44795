package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv"
)

const (
	testUser = "alice"
	testPass = "s3cret-Pass"
)

func startDovecot(t testing.TB, withTLS bool) *testenv.Dovecot {
	t.Helper()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{TLS: withTLS})
	d.AddUser(t, testUser, testPass)
	return d
}

// seed appends messages to the user's INBOX over IMAP: the same
// mailbox POP3 serves.
func seed(t testing.TB, d *testenv.Dovecot, msgs ...[]byte) {
	t.Helper()
	c := d.Dial(t, testUser, testPass)
	for _, m := range msgs {
		cmd := c.Append("INBOX", int64(len(m)), nil)
		if _, err := cmd.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// imapMessage is a message as Dovecot's IMAP serves it.
type imapMessage struct {
	body  []byte
	flags []imap.Flag
}

// imapInbox returns the INBOX as IMAP serves it, in sequence order (the
// order Dovecot's POP3 numbers messages in).
func imapInbox(t testing.TB, d *testenv.Dovecot) []imapMessage {
	t.Helper()
	c := d.Dial(t, testUser, testPass)
	defer c.Logout()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	bufs, err := c.Fetch(set, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(bufs, func(i, j int) bool { return bufs[i].SeqNum < bufs[j].SeqNum })
	out := make([]imapMessage, len(bufs))
	for i, b := range bufs {
		out[i] = imapMessage{body: b.FindBodySection(section), flags: b.Flags}
	}
	return out
}

// expunge removes the message with sequence number seq over IMAP.
func expunge(t testing.TB, d *testenv.Dovecot, seq uint32) {
	t.Helper()
	c := d.Dial(t, testUser, testPass)
	defer c.Logout()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

func endpoint(t testing.TB, raw string) connector.Endpoint {
	t.Helper()
	e, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// open opens raw with the test user's credentials; o may add settings.
func open(t testing.TB, raw string, o connector.OpenOptions) *Conn {
	t.Helper()
	return openPipelining(t, raw, o, true)
}

// openPipelining is open that can ignore the server's PIPELINING.
func openPipelining(t testing.TB, raw string, o connector.OpenOptions, pipelining bool) *Conn {
	t.Helper()
	if o.Credentials == (connector.Credentials{}) {
		o.Credentials = connector.Credentials{Username: testUser, Password: testPass}
	}
	c, err := newConn(endpoint(t, raw), o)
	if err == nil {
		c.noPipelining = !pipelining
		err = c.start(context.Background())
	}
	if err != nil {
		t.Fatalf("open %s: %v (hint: %s)", raw, err, connector.HintOf(err))
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func listAll(t testing.TB, c *Conn, opts connector.ListOptions) ([]connector.Message, connector.Listing) {
	t.Helper()
	var all []connector.Message
	lst, err := c.List(context.Background(), inbox(), opts, func(ms []connector.Message) error {
		if opts.Batch > 0 && len(ms) > opts.Batch {
			t.Errorf("batch of %d messages, asked for %d", len(ms), opts.Batch)
		}
		all = append(all, ms...)
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return all, lst
}

// fetchAll fetches msgs and checks that every body is exactly Size bytes.
func fetchAll(t testing.TB, c *Conn, msgs []connector.Message) map[connector.ID][]byte {
	t.Helper()
	out := map[connector.ID][]byte{}
	err := c.Fetch(context.Background(), inbox(), msgs, func(b connector.Body, err error) error {
		if err != nil {
			t.Errorf("fetch %s: %v", b.Message.ID, err)
			return nil
		}
		data, err := io.ReadAll(b.Reader)
		if err != nil {
			return err
		}
		if int64(len(data)) != b.Size {
			t.Errorf("message %s: Size %d, reader gave %d bytes", b.Message.ID, b.Size, len(data))
		}
		out[b.Message.ID] = data
		return nil
	})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return out
}

// recorder keeps every write a client makes on its connections, one
// entry per Write call, so that tests can see what was sent and how it
// was grouped.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	dials  int
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.dials++
	r.mu.Unlock()
	return &recordedConn{Conn: c, r: r}, nil
}

type recordedConn struct {
	net.Conn
	r *recorder
}

func (c *recordedConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.writes = append(c.r.writes, append([]byte(nil), p...))
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// commands returns every command line written, in order.
func (r *recorder) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.writes {
		for _, line := range strings.SplitAfter(string(w), "\r\n") {
			if line != "" {
				out = append(out, strings.TrimSuffix(line, "\r\n"))
			}
		}
	}
	return out
}

// maxPerWrite is the largest number of commands sent in one write.
func (r *recorder) maxPerWrite(verb string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	most := 0
	for _, w := range r.writes {
		n := 0
		for _, line := range strings.Split(string(w), "\r\n") {
			if strings.HasPrefix(strings.ToUpper(line), verb+" ") {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// filterOptions say what a filterProxy hides of the server.
type filterOptions struct {
	noUIDL, noPipelining, noSASL, noTOP bool
}

// startFilterProxy puts a line-level proxy in front of a real POP3 server
// that hides capabilities Dovecot 2.3 cannot be configured to lack:
// its CAPA always lists TOP, UIDL and PIPELINING (they are fixed in
// Dovecot's code, not settings). The proxy drops them from CAPA answers
// and answers -ERR itself to UIDL, TOP or AUTH when hidden; every other
// byte is the real server's. It relies on the client not pipelining when
// PIPELINING is hidden (or not sending hidden commands), which is what
// the connector does, so replies stay in order.
func startFilterProxy(t testing.TB, upstream string, f filterOptions) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	hidden := map[string]bool{"UIDL": f.noUIDL, "PIPELINING": f.noPipelining, "SASL": f.noSASL, "TOP": f.noTOP}
	refused := map[string]bool{"UIDL": f.noUIDL, "TOP": f.noTOP, "AUTH": f.noSASL}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = client.Close()
				continue
			}
			go filterConn(client, server, hidden, refused)
		}
	}()
	return l.Addr().String()
}

func filterConn(client, server net.Conn, hidden, refused map[string]bool) {
	defer client.Close()
	defer server.Close()
	var wmu sync.Mutex
	toClient := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := client.Write(b)
		return err
	}
	capas := make(chan struct{}, 64) // one token per CAPA forwarded
	go func() {
		defer server.Close()
		r := bufio.NewReader(client)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			verb := strings.ToUpper(strings.Fields(string(line) + " x")[0])
			if refused[verb] {
				if toClient([]byte("-ERR not supported\r\n")) != nil {
					return
				}
				continue
			}
			if verb == "CAPA" {
				capas <- struct{}{}
			}
			if _, err := server.Write(line); err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(server)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		select {
		case <-capas:
			// The next status line answers CAPA (no pipelining).
			if !bytes.HasPrefix(line, []byte("+OK")) {
				break
			}
			var out bytes.Buffer
			out.Write(line)
			for {
				l, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				tag := strings.ToUpper(strings.Fields(string(l) + " x")[0])
				if string(l) == ".\r\n" || !hidden[tag] {
					out.Write(l)
				}
				if string(l) == ".\r\n" {
					break
				}
			}
			line = out.Bytes()
		default:
		}
		if toClient(line) != nil {
			return
		}
	}
}
