package imap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
)

// End-to-end copies between Dovecot and the other real servers: what
// Mailferry does must hold against servers that answer differently, not
// only against the one it was written with.

const e2ePassword = "secret"

// mailServer is what these tests need of Dovecot, Courier and Cyrus.
type mailServer interface {
	AddUser(t testing.TB, user, password string)
	Addr() string
	Dial(t testing.TB, user, password string) *imapclient.Client
}

func configFor(t testing.TB, srv mailServer, user string) imapconn.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg := plainConfig(host, p, user)
	cfg.Password = e2ePassword
	cfg.MaxConnections = 4
	return cfg
}

type e2eMsg struct {
	folder string // the server's name
	raw    string
	flags  []imap.Flag
	date   time.Time
}

// e2eMessages are varied messages for folders: plain, multipart with 8-bit
// body, no Message-ID, a malformed header, keywords and every system flag,
// dates decades apart.
func e2eMessages(folders []string, n int) []e2eMsg {
	base := time.Date(1998, 3, 4, 5, 6, 7, 0, time.UTC)
	flagSets := [][]imap.Flag{nil, {imap.FlagSeen}, {imap.FlagSeen, imap.FlagAnswered}, {imap.FlagFlagged, "$Label1"},
		{imap.FlagDraft}, {imap.FlagSeen, "Work", "$Forwarded"}}
	var out []e2eMsg
	for i := 0; i < n; i++ {
		date := base.Add(time.Duration(i) * 97 * 24 * time.Hour)
		var raw string
		switch i % 4 {
		case 0:
			raw = fmt.Sprintf("From: Alice <alice@old.example>\r\nTo: bob@old.example\r\nSubject: Report %d\r\nMessage-ID: <e2e-%d@old.example>\r\nDate: %s\r\n\r\nHello %d\r\n",
				i, i, date.Format(time.RFC1123Z), i)
		case 1:
			raw = fmt.Sprintf("From: bob@old.example\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_%d?=\r\nMessage-ID: <g%d@old.example>\r\nMIME-Version: 1.0\r\n"+
				"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\nContent-Type: text/plain; charset=utf-8\r\n"+
				"Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, \xff\xfe\r\n--b%d--\r\n", i, i, i, i, i)
		case 2: // no Message-ID
			raw = fmt.Sprintf("From: cron@old.example\r\nSubject: nightly job %d\r\nDate: %s\r\n\r\nrun %d ok\r\n", i, date.Format(time.RFC1123Z), i)
		default: // a line that is not a header field
			raw = fmt.Sprintf("Message-ID: <bad%d@old.example>\r\nSubject: odd %d\r\nthis is not a header\r\n\r\nbody %d\r\n", i, i, i)
		}
		out = append(out, e2eMsg{folder: folders[i%len(folders)], raw: raw, flags: flagSets[i%len(flagSets)], date: date})
	}
	return out
}

func seedServer(t testing.TB, srv mailServer, user string, create []string, msgs []e2eMsg) {
	t.Helper()
	c := srv.Dial(t, user, e2ePassword)
	for _, f := range create {
		if err := c.Create(f, nil).Wait(); err != nil && !strings.Contains(strings.ToLower(err.Error()), "exists") {
			t.Fatalf("create %q: %v", f, err)
		}
	}
	for i, m := range msgs {
		cmd := c.Append(m.folder, int64(len(m.raw)), &imap.AppendOptions{Flags: m.flags, Time: m.date})
		if _, err := io.WriteString(cmd, m.raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("seed append %d to %q: %v", i, m.folder, err)
		}
	}
	_ = c.Logout().Wait()
}

// servedMsg is one message as a server serves it.
type servedMsg struct {
	body  []byte
	flags string // sorted, lower case, \Recent dropped
	date  int64  // INTERNALDATE, Unix seconds
}

func (s servedMsg) String() string {
	sum := sha256.Sum256(s.body)
	return fmt.Sprintf("%x (%d bytes) flags=[%s] date=%d", sum[:6], len(s.body), s.flags, s.date)
}

// dumpServer reads every message of every folder, keyed by the folder's
// path as Mailferry sees it ('/'-joined, prefix removed), sorted by body.
func dumpServer(t testing.TB, srv mailServer, user string) map[string][]servedMsg {
	t.Helper()
	conn, err := imapconn.Open(context.Background(), configFor(t, srv, user))
	if err != nil {
		t.Fatalf("open %s: %v", user, err)
	}
	defer conn.Close()
	fs, err := conn.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Dial(t, user, e2ePassword)
	defer c.Close()
	out := map[string][]servedMsg{}
	for _, f := range fs {
		if f.NoSelect {
			continue
		}
		sel, err := c.Select(f.Name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %q: %v", f.Name, err)
		}
		key := f.Path.String()
		out[key] = []servedMsg{}
		if sel.NumMessages == 0 {
			continue
		}
		cmd := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			var s servedMsg
			for {
				item := m.Next()
				if item == nil {
					break
				}
				switch it := item.(type) {
				case imapclient.FetchItemDataFlags:
					var fl []string
					for _, f := range it.Flags {
						if !strings.EqualFold(string(f), `\Recent`) {
							fl = append(fl, strings.ToLower(string(f)))
						}
					}
					sort.Strings(fl)
					s.flags = strings.Join(fl, " ")
				case imapclient.FetchItemDataInternalDate:
					s.date = it.Time.Unix()
				case imapclient.FetchItemDataBodySection:
					s.body, _ = io.ReadAll(it.Literal)
				}
			}
			out[key] = append(out[key], s)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		sortServed(out[key])
	}
	return out
}

func sortServed(ms []servedMsg) {
	sort.Slice(ms, func(i, j int) bool { return bytes.Compare(ms[i].body, ms[j].body) < 0 })
}

// sameMail checks that every source folder arrived in its destination
// folder (mapping renames; identity otherwise) with the same messages,
// after stores, which is what the destination server is known to do to
// the bytes it is given (see testenv), has been applied to the source's.
func sameMail(t *testing.T, want, got map[string][]servedMsg, mapping map[string]string, stores func([]byte) []byte) {
	t.Helper()
	for from, msgs := range want {
		to := from
		if m, ok := mapping[from]; ok {
			to = m
		}
		g, ok := got[to]
		if !ok {
			t.Errorf("folder %q (from %q) missing on the destination; it has %v", to, from, folderKeys(got))
			continue
		}
		w := make([]servedMsg, len(msgs))
		for i, m := range msgs {
			w[i] = m
			if stores != nil {
				w[i].body = stores(m.body)
			}
		}
		sortServed(w)
		if len(g) != len(w) {
			t.Errorf("folder %q: %d messages, want %d", to, len(g), len(w))
			continue
		}
		for i := range w {
			if !bytes.Equal(g[i].body, w[i].body) || g[i].flags != w[i].flags || g[i].date != w[i].date {
				t.Errorf("folder %q message %d:\n got %v\nwant %v", to, i, g[i], w[i])
			}
		}
	}
}

func folderKeys(m map[string][]servedMsg) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// courierStores is what Courier-IMAP does to a message it stores: lone
// CRs are dropped and a missing final newline is added.
func courierStores(b []byte) []byte {
	var out []byte
	for i, ch := range b {
		if ch == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			continue
		}
		out = append(out, ch)
	}
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, "\r\n"...)
	}
	return out
}

// cyrusStores is what Cyrus IMAP (munge8bit) does: 8-bit bytes in the
// header become 'X'.
func cyrusStores(b []byte) []byte {
	out := append([]byte(nil), b...)
	end := bytes.Index(out, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(out)
	}
	for i := 0; i < end; i++ {
		if out[i] > 0x7f {
			out[i] = 'X'
		}
	}
	return out
}

func copyMail(t *testing.T, src, dst mailServer, user string, opts migrate.Options) *migrate.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, d, serr, derr := imapconn.OpenBoth(ctx, configFor(t, src, user), configFor(t, dst, user))
	if serr != nil || derr != nil {
		t.Fatalf("open: source %v, destination %v", serr, derr)
	}
	defer s.Close()
	defer d.Close()
	res, err := migrate.Run(ctx, s, d, opts)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	return res
}

func openState(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The first pass into a Courier mailbox that already has some of the
// folders (Courier refuses their CREATE with a bare NO), with nested
// folders under '.', special folders, and messages Courier stores
// differently (no final newline, a lone CR). Today's code failed every
// message of an existing folder and of its children.
func TestCopyDovecotToCourierIntoExistingFolders(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartCourier(t, testenv.CourierOptions{})
	src.AddUser(t, "anna", e2ePassword)
	dst.AddUser(t, "anna", e2ePassword)
	folders := []string{"Archive", "Archive/2019", "Archive/2019/Q1", "Projects", "Projects/Q1 plans/Größe", "Dots.in.name", "a&b"}
	all := append([]string{"INBOX", "Sent", "Trash", "Drafts"}, folders...)
	msgs := e2eMessages(all, 44)
	msgs = append(msgs,
		e2eMsg{folder: "Archive/2019", raw: "Message-ID: <no-final-newline@old.example>\r\nSubject: cut\r\n\r\nno newline at the end", date: time.Unix(1e9, 0)},
		e2eMsg{folder: "Archive", raw: "Message-ID: <lone-cr@old.example>\r\nSubject: cr\r\n\r\nbefore\rafter\r\n", flags: []imap.Flag{imap.FlagSeen}, date: time.Unix(1.1e9, 0)})
	seedServer(t, src, "anna", append(folders, "Projects/Q1 plans"), msgs)
	// The destination has some folders already, and one of the messages.
	seedServer(t, dst, "anna", []string{"INBOX.Archive", "INBOX.Archive.2019", "INBOX.Sent"},
		[]e2eMsg{{folder: "INBOX.Archive", raw: msgs[4].raw, flags: msgs[4].flags, date: msgs[4].date}})
	if msgs[4].folder != "Archive" {
		t.Fatalf("test data: message 4 is in %q", msgs[4].folder)
	}

	res := copyMail(t, src, dst, "anna", migrate.Options{})
	if len(res.Failures) != 0 {
		t.Fatalf("failures: %+v", res.Failures)
	}
	if res.Stats.Copied != int64(len(msgs)-1) || res.Stats.Present != 1 {
		t.Errorf("copied %d, present %d; want %d and 1", res.Stats.Copied, res.Stats.Present, len(msgs)-1)
	}
	mapping := map[string]string{"Dots.in.name": "Dots_in_name"}
	want, got := dumpServer(t, src, "anna"), dumpServer(t, dst, "anna")
	sameMail(t, want, got, mapping, courierStores)

	// The second pass finds everything, although Courier changed bytes.
	res = copyMail(t, src, dst, "anna", migrate.Options{})
	if len(res.Failures) != 0 || res.Stats.Copied != 0 || res.Stats.Present != int64(len(msgs)) {
		t.Errorf("second pass: copied %d, present %d, failures %+v; want 0, %d, none", res.Stats.Copied, res.Stats.Present, res.Failures, len(msgs))
	}
	sameMail(t, want, dumpServer(t, dst, "anna"), mapping, courierStores)
}

// From Courier (SELECT without UIDNEXT, no SPECIAL-USE: roles by name,
// no CONDSTORE: every later pass is a delta pass) to Dovecot.
func TestCopyCourierToDovecotWithDeltaPasses(t *testing.T) {
	t.Parallel()
	src := testenv.StartCourier(t, testenv.CourierOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	src.AddUser(t, "ben", e2ePassword)
	dst.AddUser(t, "ben", e2ePassword)
	folders := []string{"INBOX.Sent Items", "INBOX.Deleted Items", "INBOX.Archive", "INBOX.Archive.2019", "INBOX.Kunden", "INBOX.Kunden.Ärger & Co"}
	msgs := e2eMessages(append([]string{"INBOX"}, folders...), 42)
	seedServer(t, src, "ben", folders, msgs)
	st := openState(t)
	opts := migrate.Options{State: st, Pair: "ben"}

	res := copyMail(t, src, dst, "ben", opts)
	if len(res.Failures) != 0 || res.Stats.Copied != int64(len(msgs)) {
		t.Fatalf("first pass: copied %d of %d, failures %+v", res.Stats.Copied, len(msgs), res.Failures)
	}
	mapping := map[string]string{"Sent Items": "Sent", "Deleted Items": "Trash"}
	want := dumpServer(t, src, "ben")
	sameMail(t, want, dumpServer(t, dst, "ben"), mapping, nil)

	// Nothing changed: nothing is copied. (Without CONDSTORE no folder
	// can be skipped unseen: a flag change would not show in STATUS.)
	res = copyMail(t, src, dst, "ben", opts)
	if len(res.Failures) != 0 || res.Stats.Copied != 0 {
		t.Errorf("pass without changes copied %d, failures %+v", res.Stats.Copied, res.Failures)
	}

	// New mail in two folders: the delta pass copies just that.
	more := []e2eMsg{
		{folder: "INBOX.Archive.2019", raw: "Message-ID: <new-1@old.example>\r\nSubject: new\r\n\r\nnew 1\r\n", date: time.Unix(1.5e9, 0)},
		{folder: "INBOX", raw: "Message-ID: <new-2@old.example>\r\nSubject: new\r\n\r\nnew 2\r\n", flags: []imap.Flag{imap.FlagFlagged}, date: time.Unix(1.6e9, 0)},
	}
	seedServer(t, src, "ben", nil, more)
	res = copyMail(t, src, dst, "ben", opts)
	if len(res.Failures) != 0 || res.Stats.Copied != 2 {
		t.Fatalf("delta pass: copied %d, failures %+v; want 2", res.Stats.Copied, res.Failures)
	}
	sameMail(t, dumpServer(t, src, "ben"), dumpServer(t, dst, "ben"), mapping, nil)
}

// Into Cyrus, which offers CREATE-SPECIAL-USE: the special folders
// Mailferry creates carry their role, so mail programs recognise them.
// Cyrus rewrites 8-bit header bytes, and refuses messages with a line
// that is not a header field: each of those is reported, with Cyrus's
// reason, and nothing else fails.
func TestCopyDovecotToCyrusCreatesRoles(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartCyrus(t, testenv.CyrusOptions{Layout: testenv.LayoutCourier})
	src.AddUser(t, "cleo", e2ePassword)
	dst.AddUser(t, "cleo", e2ePassword)
	folders := []string{"Archive/2019", "Projects", "Projects/Größe"}
	all := append([]string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}, folders...)
	msgs := e2eMessages(all, 45)
	msgs = append(msgs, e2eMsg{folder: "Projects", raw: "From: \xe9t\xe9@old.example\r\nMessage-ID: <8bit-header@old.example>\r\nSubject: caf\xe9\r\n\r\nbody\r\n",
		date: time.Unix(1.2e9, 0)})
	seedServer(t, src, "cleo", folders, msgs)

	refused := 0
	for _, m := range msgs {
		if strings.Contains(m.raw, "this is not a header") {
			refused++
		}
	}
	checkRefusals := func(res *migrate.Result) {
		t.Helper()
		if len(res.Failures) != refused {
			t.Errorf("%d failures, want the %d messages with an invalid header: %+v", len(res.Failures), refused, res.Failures)
		}
		for _, f := range res.Failures {
			if !strings.Contains(f.Reason, "invalid header") || f.Kind != "item" || f.ID == "" {
				t.Errorf("failure %+v: want Cyrus's refusal of the invalid header, for that message", f)
			}
		}
	}
	res := copyMail(t, src, dst, "cleo", migrate.Options{})
	checkRefusals(res)
	if res.Stats.Copied != int64(len(msgs)-refused) {
		t.Fatalf("copied %d of %d", res.Stats.Copied, len(msgs)-refused)
	}
	c := dst.Dial(t, "cleo", e2ePassword)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, l := range list {
		for _, a := range l.Attrs {
			if a == imap.MailboxAttrSent || a == imap.MailboxAttrDrafts || a == imap.MailboxAttrTrash || a == imap.MailboxAttrJunk || a == imap.MailboxAttrArchive {
				roles[l.Mailbox] = string(a)
			}
		}
	}
	for name, attr := range map[string]string{"INBOX.Sent": `\Sent`, "INBOX.Drafts": `\Drafts`, "INBOX.Trash": `\Trash`, "INBOX.Junk": `\Junk`, "INBOX.Archive": `\Archive`} {
		if roles[name] != attr {
			t.Errorf("%s created with role %q, want %s; roles on the destination: %v", name, roles[name], attr, roles)
		}
	}
	want := dumpServer(t, src, "cleo")
	for k, ms := range want {
		kept := ms[:0]
		for _, m := range ms {
			if !bytes.Contains(m.body, []byte("this is not a header")) {
				kept = append(kept, m)
			}
		}
		want[k] = kept
	}
	sameMail(t, want, dumpServer(t, dst, "cleo"), nil, cyrusStores)

	// The second pass finds what was copied (the 8-bit header too) and
	// tries the refused messages again.
	res = copyMail(t, src, dst, "cleo", migrate.Options{})
	checkRefusals(res)
	if res.Stats.Copied != 0 || res.Stats.Present != int64(len(msgs)-refused) {
		t.Errorf("second pass: copied %d, present %d; want 0 and %d", res.Stats.Copied, res.Stats.Present, len(msgs)-refused)
	}
}

// appendScanner records, per connection, whether its client wrote an
// APPEND into a given folder.
type appendScanner struct {
	needle []byte
	mu     sync.Mutex
	conns  int // connections that carried such an APPEND
}

func (a *appendScanner) Dial(addr string) func(network, _ string) (net.Conn, error) {
	return func(network, _ string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return &scanConn{Conn: c, a: a}, nil
	}
}

type scanConn struct {
	net.Conn
	a    *appendScanner
	tail []byte
	seen bool
}

// NetConn lets the connector reach the TCP connection (quick ACKs).
func (c *scanConn) NetConn() net.Conn { return c.Conn }

func (c *scanConn) Write(b []byte) (int, error) {
	if !c.seen {
		buf := append(c.tail, b...)
		if bytes.Contains(buf, c.a.needle) {
			c.seen = true
			c.a.mu.Lock()
			c.a.conns++
			c.a.mu.Unlock()
		}
		c.tail = append([]byte(nil), buf[max(0, len(buf)-len(c.a.needle)):]...)
	}
	return c.Conn.Write(b)
}

// Courier serialises sessions that append to one folder through a lock
// file (IMAP_USELOCKS), which made several connections into one folder
// slow and erratic (docs/PERFORMANCE.md): a folder's appends go to one
// connection, however many the destination has.
func TestCourierFolderAppendsUseOneConnection(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartCourier(t, testenv.CourierOptions{})
	src.AddUser(t, "vera", e2ePassword)
	dst.AddUser(t, "vera", e2ePassword)
	const n = 120
	seedServer(t, src, "vera", []string{"One"}, e2eMessages([]string{"One"}, n))
	scan := &appendScanner{needle: []byte(`APPEND "INBOX.One"`)}
	scfg, dcfg := configFor(t, src, "vera"), configFor(t, dst, "vera")
	dcfg.Dial = scan.Dial(dst.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, d, serr, derr := imapconn.OpenBoth(ctx, scfg, dcfg)
	if serr != nil || derr != nil {
		t.Fatalf("open: %v %v", serr, derr)
	}
	defer s.Close()
	defer d.Close()
	start := time.Now()
	res, err := migrate.Run(ctx, s, d, migrate.Options{Streams: 4, PinStreams: true})
	t.Logf("copy took %v", time.Since(start))
	if err != nil || len(res.Failures) != 0 || res.Stats.Copied != n {
		t.Fatalf("copied %d of %d: %v %+v", res.Stats.Copied, n, err, res.Failures)
	}
	if scan.conns != 1 {
		t.Errorf("appends into one folder went over %d connections, want 1", scan.conns)
	}
}
