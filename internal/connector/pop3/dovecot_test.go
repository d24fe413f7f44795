package pop3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// fixtures are messages with what byte-exactness and date checks trip
// over; want is the InternalDate the listing must report ("" = zero).
func fixtures() []struct {
	name string
	raw  []byte
	want string
} {
	longLine := strings.Repeat("0123456789", 1024) // 10 KB, one line
	hugeLine := "." + strings.Repeat("abcdefgh", 100<<10/8)
	return []struct {
		name string
		raw  []byte
		want string
	}{
		{"received", crlf("Received: from mx.example.org by pop.example.net; Tue, 2 Jul 2024 10:00:05 +0200\n" +
			"Received: from client by mx.example.org; Tue, 2 Jul 2024 09:59:00 +0200\n" +
			"From: Anna <anna@example.org>\nTo: alice@example.net\nSubject: hello\n" +
			"Date: Mon, 1 Jul 2024 08:00:00 +0000\nMessage-ID: <m1@example.org>\n\nHi.\n"), "2024-07-02T08:00:05Z"},
		{"dots", crlf("From: b@example.org\nDate: Wed, 3 Jul 2024 12:00:00 +0000\nMessage-ID: <m2@example.org>\n\n" +
			".\n..\n...\n.leading dot\n. space\nmid.dle\n.\n"), "2024-07-03T12:00:00Z"},
		{"10 KB line", crlf("From: c@example.org\nSubject: long\n\n" + longLine + "\n" + hugeLine + "\nend\n"), ""},
		{"8-bit", append(crlf("From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\nSubject: Ärger\nContent-Type: text/plain; charset=utf-8\n"+
			"Content-Transfer-Encoding: 8bit\nMessage-ID: <m4@example.org>\n\nÄrger mit Umlauten: äöüß €.\ntrailing spaces   \n"),
			[]byte("raw latin-1 \xe4\xf6\xfc \x80\xff\r\n")...), ""},
		{"no final newline", []byte("From: d@example.org\r\nSubject: cut\r\n\r\nlast line without CRLF"), ""},
		{"bare LF", []byte("From: e@example.org\nSubject: unix\n\nline\n.dot\n"), ""},
	}
}

// TestListAndFetchByteExact lists and fetches the fixtures from Dovecot's
// POP3, with and without pipelining, and compares with what Dovecot's
// IMAP serves for the same messages.
func TestListAndFetchByteExact(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	fx := fixtures()
	for _, f := range fx {
		seed(t, d, f.raw)
	}
	viaIMAP := imapInbox(t, d)
	for _, pipelined := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelined), func(t *testing.T) {
			rec := &recorder{}
			c := openPipelining(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true, Dial: rec.dial}, pipelined)

			msgs, lst := listAll(t, c, connector.ListOptions{Batch: 4})
			if len(msgs) != len(fx) || lst.Status.Messages != int64(len(fx)) || lst.Reset {
				t.Fatalf("listed %d messages (status %+v), want %d", len(msgs), lst.Status, len(fx))
			}
			bodies := fetchAll(t, c, msgs)
			var total int64
			for i, m := range msgs {
				f, served := fx[i], viaIMAP[i].body
				total += m.Size
				if m.Change != connector.ChangeNew || m.ID == "" {
					t.Errorf("%s: %+v", f.name, m)
				}
				got := bodies[m.ID]
				want := served
				if f.name == "no final newline" {
					// POP3 cannot carry a message without a final line
					// break: the server adds CRLF before the terminator.
					want = append(append([]byte(nil), served...), '\r', '\n')
					if m.Size == int64(len(got)) {
						t.Errorf("%s: LIST size %d equals the delivered size; the fixture no longer tests the spool", f.name, m.Size)
					}
				} else if m.Size != int64(len(served)) {
					t.Errorf("%s: Size %d, IMAP serves %d bytes", f.name, m.Size, len(served))
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: POP3 gave %d bytes, IMAP %d; first difference at %d", f.name, len(got), len(want), firstDiff(got, want))
				}
				hdr, _, _ := bytes.Cut(served, []byte("\r\n\r\n"))
				wantHeaders := mail.ParseHeaders(append(hdr, "\r\n\r\n"...))
				if m.Headers != wantHeaders || m.Identity != mail.ComputeIdentity(wantHeaders, m.Size) {
					t.Errorf("%s: headers %+v identity %s, want %+v", f.name, m.Headers, m.Identity, wantHeaders)
				}
				var date string
				if !m.InternalDate.IsZero() {
					date = m.InternalDate.UTC().Format(time.RFC3339)
				}
				if date != f.want {
					t.Errorf("%s: InternalDate %q, want %q", f.name, date, f.want)
				}
			}
			if lst.Status.Size != total {
				t.Errorf("Status.Size %d, sum of sizes %d", lst.Status.Size, total)
			}
			if tops := rec.maxPerWrite("TOP"); pipelined && tops < 2 || !pipelined && tops > 1 {
				t.Errorf("pipelining %v, but up to %d TOP commands were sent in one write", pipelined, tops)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestNeverDeletes: a full session (status, list, fetch, close) writes no
// DELE, ends with QUIT, and leaves every message on the server.
func TestNeverDeletes(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	for _, f := range fixtures() {
		seed(t, d, f.raw)
	}
	before := imapInbox(t, d)
	rec := &recorder{}
	c := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true, Dial: rec.dial})
	if _, errs := c.Statuses(context.Background(), []connector.Folder{inbox()}, nil); errs[0] != nil {
		t.Fatal(errs[0])
	}
	msgs, _ := listAll(t, c, connector.ListOptions{})
	fetchAll(t, c, msgs)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	cmds := rec.commands()
	for _, cmd := range cmds {
		if strings.HasPrefix(strings.ToUpper(cmd), "DELE") || strings.HasPrefix(strings.ToUpper(cmd), "RSET") {
			t.Errorf("sent %q", cmd)
		}
	}
	if len(cmds) == 0 || cmds[len(cmds)-1] != "QUIT" {
		t.Errorf("session did not end with QUIT: %q", cmds)
	}
	after := imapInbox(t, d)
	if len(after) != len(before) {
		t.Fatalf("the server holds %d messages after the POP3 session, %d before", len(after), len(before))
	}
	for i := range before {
		if !bytes.Equal(before[i].body, after[i].body) {
			t.Errorf("message %d changed on the server", i+1)
		}
	}
	// And POP3 itself still lists them all.
	again, _ := listAll(t, open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true}), connector.ListOptions{})
	if len(again) != len(before) {
		t.Errorf("a second session lists %d messages, want %d", len(again), len(before))
	}
}

// TestDelta: cursors make later listings report only new messages;
// Statuses says Unchanged only for exactly the same UIDL set.
func TestDelta(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	url := "pop3://" + d.POP3Addr()
	o := connector.OpenOptions{AllowPlaintext: true}
	msg := func(i int) []byte {
		return crlf(fmt.Sprintf("From: x@example.org\nMessage-ID: <delta-%d@example.org>\nSubject: %d\n\nbody %d\n", i, i, i))
	}
	seed(t, d, msg(1), msg(2), msg(3))
	c := open(t, url, o)
	first, lst1 := listAll(t, c, connector.ListOptions{})
	if len(first) != 3 {
		t.Fatalf("first listing: %d messages", len(first))
	}
	statuses := func(c *Conn, cur connector.Cursor) connector.FolderStatus {
		t.Helper()
		sts, errs := c.Statuses(context.Background(), []connector.Folder{inbox()}, []connector.Cursor{cur})
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		return sts[0]
	}
	if st := statuses(c, lst1.Cursor); !st.Unchanged || st.Messages != 3 {
		t.Errorf("status at the listing's own cursor: %+v, want Unchanged", st)
	}
	if none, _ := listAll(t, c, connector.ListOptions{Since: lst1.Cursor, Changes: true}); len(none) != 0 {
		t.Errorf("listing since its own cursor gave %d messages", len(none))
	}

	seed(t, d, msg(4), msg(5))
	c2 := open(t, url, o) // a new session sees the new mail (RFC 1939 §8)
	if st := statuses(c2, lst1.Cursor); st.Unchanged || st.Messages != 5 {
		t.Errorf("status after two new messages: %+v", st)
	}
	fresh, lst2 := listAll(t, c2, connector.ListOptions{Since: lst1.Cursor, Changes: true})
	if len(fresh) != 2 || lst2.Reset {
		t.Fatalf("delta listing: %d messages (reset %v), want the 2 new", len(fresh), lst2.Reset)
	}
	for i, m := range fresh {
		if m.Change != connector.ChangeNew || m.Headers.MessageID != fmt.Sprintf("<delta-%d@example.org>", i+4) {
			t.Errorf("delta message %d: %+v", i, m)
		}
	}
	if none, _ := listAll(t, c2, connector.ListOptions{Since: lst2.Cursor}); len(none) != 0 {
		t.Errorf("the delta listing's cursor does not cover everything: %d more", len(none))
	}
	withOld, _ := listAll(t, c2, connector.ListOptions{Since: lst1.Cursor, AllOld: true})
	var nNew, nOld int
	for _, m := range withOld {
		switch m.Change {
		case connector.ChangeNew:
			nNew++
		case connector.ChangeFlags:
			nOld++
			if m.Size == 0 || m.ID == "" {
				t.Errorf("old message without ID or size: %+v", m)
			}
		}
	}
	if nNew != 2 || nOld != 3 {
		t.Errorf("AllOld listing: %d new, %d old; want 2 and 3", nNew, nOld)
	}

	// A message removed by another client: not Unchanged; AllOld lists
	// the four left so that the caller can see which one is gone.
	expunge(t, d, 1)
	c3 := open(t, url, o)
	if st := statuses(c3, lst2.Cursor); st.Unchanged || st.Messages != 4 {
		t.Errorf("status after a removal: %+v", st)
	}
	left, _ := listAll(t, c3, connector.ListOptions{Since: lst2.Cursor, AllOld: true})
	ids := map[connector.ID]bool{}
	for _, m := range left {
		if m.Change != connector.ChangeFlags {
			t.Errorf("after a removal, %s is %v", m.ID, m.Change)
		}
		ids[m.ID] = true
	}
	if len(left) != 4 || ids[first[0].ID] {
		t.Errorf("AllOld after removing %s: %d messages %v", first[0].ID, len(left), ids)
	}

	// A cursor that is not ours makes a full listing with Reset.
	for _, bad := range []connector.Cursor{"garbage", "pop3-content-1:"} {
		all, lst := listAll(t, c3, connector.ListOptions{Since: bad})
		if !lst.Reset || len(all) != 4 {
			t.Errorf("since %q: reset %v, %d messages", bad, lst.Reset, len(all))
		}
		if st := statuses(c3, bad); st.Unchanged {
			t.Errorf("status at a foreign cursor %q is Unchanged", bad)
		}
	}
}

// TestLargeMessageBoundedMemory: a 5 MB message streams through a
// temporary file, not memory, and arrives intact.
func TestLargeMessageBoundedMemory(t *testing.T) {
	d := startDovecot(t, false)
	var b bytes.Buffer
	b.WriteString("From: big@example.org\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\r\n")
	for i := 0; b.Len() < 5<<20; i++ {
		fmt.Fprintf(&b, "%07d the quick brown fox jumps over the lazy dog; a line of about eighty octets.\r\n", i)
		if i%1000 == 0 {
			b.WriteString(".dot-stuffed line\r\n")
		}
	}
	seed(t, d, b.Bytes())
	want := sha256.Sum256(imapInbox(t, d)[0].body)
	spoolDir := t.TempDir()
	c := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true, SpoolDir: spoolDir})
	msgs, _ := listAll(t, c, connector.ListOptions{})

	copyBuf := make([]byte, 32<<10)
	h := sha256.New()
	var spooled []os.DirEntry
	var size int64
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	err := c.Fetch(context.Background(), inbox(), msgs, func(body connector.Body, err error) error {
		if err != nil {
			return err
		}
		spooled, _ = os.ReadDir(spoolDir)
		size = body.Size
		_, err = io.CopyBuffer(h, body.Reader, copyBuf)
		return err
	})
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(b.Len()) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("5 MB message: size %d (want %d), content differs: %v", size, b.Len(), !bytes.Equal(h.Sum(nil), want[:]))
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("fetching a 5 MB message allocated %d bytes; the body must not be held in memory", alloc)
	}
	if len(spooled) != 1 {
		t.Errorf("spool directory during the callback: %d files, want 1", len(spooled))
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

// TestTLS: pop3s and STLS with the test CA; certificate problems are
// KindTLS with a hint.
func TestTLS(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, true)
	seed(t, d, crlf("From: x@example.org\nMessage-ID: <tls@example.org>\n\nhi\n"))
	withCA := connector.OpenOptions{RootCAs: d.CACert}
	for _, url := range []string{"pop3s://" + d.POP3TLSAddr(), "pop3+starttls://" + d.POP3Addr()} {
		rec := &recorder{}
		o := withCA
		o.Dial = rec.dial
		c := open(t, url, o)
		msgs, _ := listAll(t, c, connector.ListOptions{})
		if bodies := fetchAll(t, c, msgs); len(msgs) != 1 || !bytes.Contains(bodies[msgs[0].ID], []byte("<tls@example.org>")) {
			t.Errorf("%s: listed %d, fetched %v", url, len(msgs), bodies)
		}
		// Nothing but STLS (and CAPA before it) travels in clear text.
		rec.mu.Lock()
		for _, w := range rec.writes {
			if bytes.Contains(w, []byte(testPass)) || bytes.Contains(w, []byte("AUTH")) || bytes.Contains(w, []byte("RETR")) {
				t.Errorf("%s: clear text on the wire: %q", url, w)
			}
		}
		rec.mu.Unlock()
	}
	ctx := context.Background()
	creds := connector.Credentials{Username: testUser, Password: testPass}
	for _, tc := range []struct {
		name, url string
		o         connector.OpenOptions
		want      connector.Kind
	}{
		{"untrusted certificate", "pop3s://" + d.POP3TLSAddr(), connector.OpenOptions{}, connector.KindTLS},
		{"untrusted certificate (STLS)", "pop3+starttls://" + d.POP3Addr(), connector.OpenOptions{}, connector.KindTLS},
		{"wrong name", "pop3s://pop.example.com", connector.OpenOptions{RootCAs: d.CACert, Dial: to(d.POP3TLSAddr())}, connector.KindTLS},
		{"TLS to the plain port", "pop3s://" + d.POP3Addr(), withCA, connector.KindTLS},
	} {
		tc.o.Credentials = creds
		_, err := Open(ctx, endpoint(t, tc.url), tc.o)
		if connector.KindOf(err) != tc.want || connector.HintOf(err) == "" {
			t.Errorf("%s: %v (kind %v, hint %q), want kind %v", tc.name, err, connector.KindOf(err), connector.HintOf(err), tc.want)
		}
	}
	c := open(t, "pop3s://"+d.POP3TLSAddr(), connector.OpenOptions{InsecureSkipVerify: true})
	if msgs, _ := listAll(t, c, connector.ListOptions{}); len(msgs) != 1 {
		t.Errorf("--insecure: %d messages", len(msgs))
	}
}

// to is a dialer that reaches addr whatever address is asked for: the
// operator's outbound policy may route connections like this.
func to(addr string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// TestSTLSNotOffered: pop3+starttls to a server without TLS fails as a
// TLS problem before any credentials are sent.
func TestSTLSNotOffered(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	rec := &recorder{}
	_, err := Open(context.Background(), endpoint(t, "pop3+starttls://"+d.POP3Addr()),
		connector.OpenOptions{Credentials: connector.Credentials{Username: testUser, Password: testPass}, Dial: rec.dial})
	if connector.KindOf(err) != connector.KindTLS || !strings.Contains(connector.HintOf(err), "STARTTLS") {
		t.Errorf("err = %v (hint %q), want KindTLS saying STLS is not offered", err, connector.HintOf(err))
	}
	for _, cmd := range rec.commands() {
		if strings.HasPrefix(cmd, "USER") || strings.HasPrefix(cmd, "PASS") || strings.HasPrefix(cmd, "AUTH") {
			t.Errorf("credentials sent without TLS: %q", verb(cmd))
		}
	}
}

// TestLoginFailures: a wrong password, a refused port and an unknown
// host are told apart, and no error shows the password.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := free.Addr().String()
	free.Close()
	userPass := startFilterProxy(t, d.POP3Addr(), filterOptions{noSASL: true})
	ctx := context.Background()
	for _, tc := range []struct {
		name, url, pass string
		want            connector.Kind
		hint            string
	}{
		{"wrong password (AUTH PLAIN)", "pop3://" + d.POP3Addr(), "wrong-Secret-1", connector.KindAuth, "password"},
		{"wrong password (USER/PASS)", "pop3://" + userPass, "wrong-Secret-2", connector.KindAuth, "password"},
		{"refused port", "pop3://" + closed, testPass, connector.KindConnect, "port"},
		{"unknown host", "pop3://no-such-host.invalid:110", testPass, connector.KindHost, "server name"},
	} {
		_, err := Open(ctx, endpoint(t, tc.url), connector.OpenOptions{AllowPlaintext: true,
			Credentials: connector.Credentials{Username: testUser, Password: tc.pass}})
		if connector.KindOf(err) != tc.want || !strings.Contains(connector.HintOf(err), tc.hint) {
			t.Errorf("%s: %v (kind %v, hint %q), want %v", tc.name, err, connector.KindOf(err), connector.HintOf(err), tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.pass) {
			t.Errorf("%s: error shows the password: %v", tc.name, err)
		}
	}
}

// TestAuthMechanisms: AUTH PLAIN where CAPA offers SASL PLAIN, USER/PASS
// where it does not.
func TestAuthMechanisms(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	seed(t, d, crlf("From: x@example.org\n\nhi\n"))
	for _, tc := range []struct {
		name, addr string
		want       string
	}{
		{"SASL PLAIN", d.POP3Addr(), "AUTH PLAIN"},
		{"USER/PASS", startFilterProxy(t, d.POP3Addr(), filterOptions{noSASL: true}), "USER " + testUser},
	} {
		rec := &recorder{}
		c := open(t, "pop3://"+tc.addr, connector.OpenOptions{AllowPlaintext: true, Dial: rec.dial})
		if msgs, _ := listAll(t, c, connector.ListOptions{}); len(msgs) != 1 {
			t.Errorf("%s: %d messages", tc.name, len(msgs))
		}
		if !strings.Contains(strings.Join(rec.commands(), "\n"), tc.want) {
			t.Errorf("%s: commands %q lack %q", tc.name, rec.commands(), tc.want)
		}
	}
	// A password too long for the AUTH line (RFC 5034 §4) goes after the
	// server's empty challenge.
	long := strings.Repeat("p", 300)
	d.AddUser(t, "bob", long)
	seedBob := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true,
		Credentials: connector.Credentials{Username: "bob", Password: long}})
	if msgs, _ := listAll(t, seedBob, connector.ListOptions{}); len(msgs) != 0 {
		t.Errorf("bob has %d messages", len(msgs))
	}
}

// TestNoUIDL: a server without UIDL and PIPELINING (Dovecot behind a
// proxy that hides them) gets content IDs that are stable across
// sessions, delta listings, byte-exact fetches, and never Unchanged.
func TestNoUIDL(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	dup := crlf("From: cron@example.org\nSubject: same\n\nsame body\n")
	seed(t, d, crlf("From: a@example.org\nMessage-ID: <n1@example.org>\n\n.one\n"), dup, dup)
	for _, noTOP := range []bool{false, true} {
		t.Run(fmt.Sprintf("noTOP=%v", noTOP), func(t *testing.T) {
			addr := startFilterProxy(t, d.POP3Addr(), filterOptions{noUIDL: true, noPipelining: true, noTOP: noTOP})
			url := "pop3://" + addr
			rec := &recorder{}
			c := open(t, url, connector.OpenOptions{AllowPlaintext: true, Dial: rec.dial})
			msgs, lst := listAll(t, c, connector.ListOptions{})
			if len(msgs) != 3 || !strings.HasPrefix(string(lst.Cursor), cursorContent) {
				t.Fatalf("listed %d, cursor %q", len(msgs), truncate(string(lst.Cursor), 30))
			}
			if msgs[2].ID != msgs[1].ID+"#2" || !strings.HasPrefix(string(msgs[0].ID), "hdr-") {
				t.Errorf("IDs %s %s %s: want content IDs, the duplicate numbered", msgs[0].ID, msgs[1].ID, msgs[2].ID)
			}
			if msgs[0].Headers.MessageID != "<n1@example.org>" {
				t.Errorf("headers not read: %+v", msgs[0].Headers)
			}
			served := imapInbox(t, d)
			bodies := fetchAll(t, c, msgs)
			for i, m := range msgs {
				if !bytes.Equal(bodies[m.ID], served[i].body) {
					t.Errorf("message %d not byte-exact", i+1)
				}
			}
			for _, verb := range []string{"TOP", "RETR", "LIST", "USER"} {
				if n := rec.maxPerWrite(verb); n > 1 {
					t.Errorf("%d %s commands in one write to a server without PIPELINING", n, verb)
				}
			}
			for _, cmd := range rec.commands() {
				if noTOP && strings.HasPrefix(cmd, "TOP") || strings.HasPrefix(cmd, "DELE") {
					t.Errorf("sent %q", cmd)
				}
			}
			// Another session: the same IDs, and nothing new since the cursor.
			c2 := open(t, url, connector.OpenOptions{AllowPlaintext: true})
			again, _ := listAll(t, c2, connector.ListOptions{})
			for i := range again {
				if again[i].ID != msgs[i].ID {
					t.Errorf("message %d: ID %s in one session, %s in the next", i+1, msgs[i].ID, again[i].ID)
				}
			}
			if none, l := listAll(t, c2, connector.ListOptions{Since: lst.Cursor}); len(none) != 0 || l.Reset {
				t.Errorf("since the cursor: %d messages, reset %v", len(none), l.Reset)
			}
			sts, errs := c2.Statuses(context.Background(), []connector.Folder{inbox()}, []connector.Cursor{lst.Cursor})
			if errs[0] != nil || sts[0].Messages != 3 {
				t.Errorf("status: %+v %v", sts[0], errs[0])
			}
			// A UIDL cursor means nothing here.
			if _, l := listAll(t, c2, connector.ListOptions{Since: makeCursor(true, nil)}); !l.Reset {
				t.Error("a UIDL cursor was taken for content IDs")
			}
		})
	}
	// Statuses on a fresh session cannot prove anything without UIDL.
	c := open(t, "pop3://"+startFilterProxy(t, d.POP3Addr(), filterOptions{noUIDL: true, noPipelining: true}), connector.OpenOptions{AllowPlaintext: true})
	_, lst := listAll(t, open(t, "pop3://"+startFilterProxy(t, d.POP3Addr(), filterOptions{noUIDL: true}), connector.OpenOptions{AllowPlaintext: true}), connector.ListOptions{})
	sts, errs := c.Statuses(context.Background(), []connector.Folder{inbox()}, []connector.Cursor{lst.Cursor})
	if errs[0] != nil || sts[0].Unchanged || sts[0].Messages != 3 {
		t.Errorf("status without UIDL: %+v %v; must never be Unchanged", sts[0], errs[0])
	}
}

// TestStall: a connection on which the server stops answering is dropped
// after StallTimeout with a transient error, and the next call
// reconnects.
func TestStall(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	seed(t, d, crlf("From: x@example.org\n\nhi\n"))
	p := testenv.StartProxy(t, d.POP3Addr())
	var dials int
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		var dd net.Dialer
		return dd.DialContext(ctx, network, addr)
	}
	c := open(t, "pop3://"+p.Addr, connector.OpenOptions{AllowPlaintext: true, StallTimeout: 300 * time.Millisecond, Dial: dial})
	p.AddLatency(t, 20000) // 10 s each way: the server seems to hang
	start := time.Now()
	_, err := c.List(context.Background(), inbox(), connector.ListOptions{}, func([]connector.Message) error { return nil })
	elapsed := time.Since(start)
	var stall *stallError
	if connector.KindOf(err) != connector.KindTransient || !errors.As(err, &stall) {
		t.Fatalf("err = %v (kind %v), want a transient stall error", err, connector.KindOf(err))
	}
	if elapsed > 5*time.Second {
		t.Errorf("the stall was noticed after %v", elapsed)
	}
	p.Clear()
	if msgs, _ := listAll(t, c, connector.ListOptions{}); len(msgs) != 1 {
		t.Errorf("after the stall: %d messages", len(msgs))
	}
	if dials != 2 {
		t.Errorf("%d dials, want 2 (the stalled session replaced once)", dials)
	}
}

// TestCancel: a cancelled context ends a call promptly.
func TestCancel(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	seed(t, d, crlf("From: x@example.org\n\nhi\n"))
	p := testenv.StartProxy(t, d.POP3Addr())
	c := open(t, "pop3://"+p.Addr, connector.OpenOptions{AllowPlaintext: true})
	p.AddLatency(t, 20000)
	defer p.Clear() // else stopping the proxy waits for the delayed bytes
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.List(ctx, inbox(), connector.ListOptions{}, func([]connector.Message) error { return nil })
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled list: %v after %v", err, time.Since(start))
	}
}

// TestFolders: one folder, INBOX; other folders are missing.
func TestFolders(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	c := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true})
	fs, err := c.Folders(context.Background())
	if err != nil || len(fs) != 1 || !fs[0].Path.IsInbox() || fs[0].Role != mail.RoleInbox {
		t.Fatalf("Folders = %+v, %v", fs, err)
	}
	f := connector.FeaturesOf(c)
	if f.Folders || f.CreateFolders || f.SetFlags || f.Delete || !f.Status || f.MaxConnections != 1 || f.ReportsRemovals {
		t.Errorf("features %+v", f)
	}
	other := connector.Folder{Path: mail.Path{"Sent"}, Name: "Sent"}
	if _, err := c.List(context.Background(), other, connector.ListOptions{}, nil); connector.KindOf(err) != connector.KindMissingFolder {
		t.Errorf("listing Sent: %v", err)
	}
	// A message that is gone is a per-message failure, and Fetch goes on.
	seed(t, d, crlf("From: x@example.org\n\nhi\n"))
	c2 := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true})
	msgs, _ := listAll(t, c2, connector.ListOptions{})
	var kinds []connector.Kind
	err = c2.Fetch(context.Background(), inbox(), append([]connector.Message{{ID: "gone"}}, msgs...), func(b connector.Body, err error) error {
		kinds = append(kinds, connector.KindOf(err))
		return nil
	})
	if err != nil || len(kinds) != 2 || kinds[0] != connector.KindItem || kinds[1] != connector.KindUnknown {
		t.Errorf("fetch with a vanished ID: %v, kinds %v", err, kinds)
	}
}

// TestParallelSessions: with MaxConnections above 1 (Dovecot allows it),
// Warm opens sessions and concurrent calls share them, each session with
// its own message numbers.
func TestParallelSessions(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, false)
	var raws [][]byte
	for i := range 12 {
		raws = append(raws, crlf(fmt.Sprintf("From: p@example.org\nMessage-ID: <par-%d@example.org>\n\nbody %d\n", i, i)))
	}
	seed(t, d, raws...)
	served := imapInbox(t, d)
	rec := &recorder{}
	c := open(t, "pop3://"+d.POP3Addr(), connector.OpenOptions{AllowPlaintext: true, MaxConnections: 3, Dial: rec.dial})
	c.Warm(3, false)
	msgs, _ := listAll(t, c, connector.ListOptions{})
	if len(msgs) != len(raws) {
		t.Fatalf("listed %d", len(msgs))
	}
	errs := make(chan error, 3)
	for part := range 3 {
		go func() {
			var mine []connector.Message
			for i := part; i < len(msgs); i += 3 {
				mine = append(mine, msgs[i])
			}
			errs <- c.Fetch(context.Background(), inbox(), mine, func(b connector.Body, err error) error {
				if err != nil {
					return err
				}
				data, err := io.ReadAll(b.Reader)
				if err != nil {
					return err
				}
				for i, m := range msgs {
					if m.ID == b.Message.ID && !bytes.Equal(data, served[i].body) {
						return fmt.Errorf("message %d: wrong bytes", i+1)
					}
				}
				return nil
			})
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if c.Features().MaxConnections != 3 {
		t.Errorf("MaxConnections %d", c.Features().MaxConnections)
	}
	rec.mu.Lock()
	dials := rec.dials
	rec.mu.Unlock()
	if dials < 2 || dials > 3 {
		t.Errorf("%d sessions for MaxConnections 3", dials)
	}
}
