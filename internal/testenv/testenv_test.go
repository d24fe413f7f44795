package testenv_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

// testMessage has the things byte-exactness checks trip over: 8-bit UTF-8,
// trailing spaces, lines that are only dots, a "From " line and no final
// newline quirks (it ends in CRLF, which servers keep).
const testMessage = "From: Anna <anna@example.org>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: =?UTF-8?Q?=C3=84rger_&_Co.?=\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 +0100\r\n" +
	"Message-ID: <testenv-1@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Ärger mit Umlauten: äöüß €.\r\n" +
	"trailing spaces   \r\n" +
	".\r\n" +
	"..\r\n" +
	"From the start of a line\r\n"

func appendMessage(c *imapclient.Client, mailbox string, msg []byte) error {
	cmd := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		_ = cmd.Close()
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

func fetchBody(t *testing.T, c *imapclient.Client, mailbox string) []byte {
	t.Helper()
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select %q: %v", mailbox, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("fetch returned %d messages, want 1", len(msgs))
	}
	return msgs[0].FindBodySection(section)
}

func TestLayouts(t *testing.T) {
	for _, tc := range []struct {
		layout testenv.Layout
		prefix string
		delim  rune
		// The folder "Ärger & Co.2019" under "Projekte": with '.' as the
		// separator the name necessarily splits into two levels.
		created string
		want    []string
	}{
		{
			layout:  testenv.LayoutSlash,
			prefix:  "",
			delim:   '/',
			created: "Projekte/Ärger & Co.2019",
			want:    []string{"INBOX", "Projekte", "Projekte/Ärger & Co.2019"},
		},
		{
			layout:  testenv.LayoutCourier,
			prefix:  "INBOX.",
			delim:   '.',
			created: "INBOX.Projekte.Ärger & Co.2019",
			want:    []string{"INBOX", "INBOX.Projekte", "INBOX.Projekte.Ärger & Co", "INBOX.Projekte.Ärger & Co.2019"},
		},
	} {
		t.Run(tc.layout.String(), func(t *testing.T) {
			t.Parallel()
			d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: tc.layout})
			if d.Host != "127.0.0.1" || d.Port == 0 || d.POP3Port == 0 || d.TLSPort != 0 || d.CACert != nil || d.TLSAddr() != "" {
				t.Fatalf("unexpected instance fields: %+v", d)
			}
			if d.Layout.Prefix() != tc.prefix || d.Layout.Separator() != tc.delim {
				t.Fatalf("Layout helpers: prefix %q sep %q", d.Layout.Prefix(), d.Layout.Separator())
			}
			d.AddUser(t, "alice", "secret")
			c := d.Dial(t, "alice", "secret")

			if c.Caps().Has(imap.CapStartTLS) {
				t.Errorf("STARTTLS offered although TLS is off")
			}
			if !c.Caps().Has(imap.CapCondStore) {
				t.Errorf("CONDSTORE not advertised")
			}

			ns, err := c.Namespace().Wait()
			if err != nil {
				t.Fatalf("NAMESPACE: %v", err)
			}
			if len(ns.Personal) != 1 || ns.Personal[0].Prefix != tc.prefix || ns.Personal[0].Delim != tc.delim {
				t.Fatalf("personal namespace = %+v, want prefix %q delim %q", ns.Personal, tc.prefix, tc.delim)
			}

			if err := c.Create(tc.created, nil).Wait(); err != nil {
				t.Fatalf("CREATE %q: %v", tc.created, err)
			}
			list, err := c.List("", "*", nil).Collect()
			if err != nil {
				t.Fatalf("LIST: %v", err)
			}
			var names []string
			for _, m := range list {
				names = append(names, m.Mailbox)
				if m.Delim != tc.delim {
					t.Errorf("LIST %q delimiter %q, want %q", m.Mailbox, m.Delim, tc.delim)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.want) {
				t.Errorf("LIST = %q, want %q", names, tc.want)
			}

			if err := appendMessage(c, tc.created, []byte(testMessage)); err != nil {
				t.Fatalf("APPEND: %v", err)
			}
			if got := fetchBody(t, c, tc.created); !bytes.Equal(got, []byte(testMessage)) {
				t.Errorf("fetched message differs:\n got %q\nwant %q", got, testMessage)
			}
		})
	}
}

func TestSpecialUse(t *testing.T) {
	for _, layout := range []testenv.Layout{testenv.LayoutSlash, testenv.LayoutCourier} {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: layout, SpecialUse: true})
			d.AddUser(t, "alice", "secret")
			c := d.Dial(t, "alice", "secret")
			list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true, ReturnSubscribed: true}).Collect()
			if err != nil {
				t.Fatalf("LIST: %v", err)
			}
			got := map[string]*imap.ListData{}
			for _, m := range list {
				got[m.Mailbox] = m
			}
			for name, attr := range map[string]imap.MailboxAttr{
				"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash,
				"Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive,
			} {
				full := layout.Prefix() + name
				m := got[full]
				if m == nil {
					t.Errorf("%q not listed; got %v", full, list)
					continue
				}
				if !slices.Contains(m.Attrs, attr) {
					t.Errorf("%q attrs %v, want %v", full, m.Attrs, attr)
				}
				if !slices.Contains(m.Attrs, imap.MailboxAttrSubscribed) {
					t.Errorf("%q not subscribed: %v", full, m.Attrs)
				}
			}
		})
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{TLS: true})
	if d.TLSPort == 0 || d.CACert == nil || d.TLSAddr() == "" {
		t.Fatalf("TLS fields not set: %+v", d)
	}
	d.AddUser(t, "alice", "secret")

	login := func(t *testing.T, c *imapclient.Client, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if err := c.Login("alice", "secret").Wait(); err != nil {
			t.Fatalf("login: %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("select: %v", err)
		}
	}

	t.Run("implicit", func(t *testing.T) {
		c, err := imapclient.DialTLS(d.TLSAddr(), &imapclient.Options{TLSConfig: d.TLSConfig()})
		login(t, c, err)
	})
	t.Run("localhost", func(t *testing.T) {
		c, err := imapclient.DialTLS(net.JoinHostPort("localhost", strconv.Itoa(d.TLSPort)), &imapclient.Options{TLSConfig: d.TLSConfig()})
		login(t, c, err)
	})
	t.Run("system roots reject", func(t *testing.T) {
		c, err := imapclient.DialTLS(d.TLSAddr(), nil)
		if err == nil {
			c.Close()
			t.Fatal("self-signed certificate accepted with the system roots")
		}
		var unknown x509.UnknownAuthorityError
		var verify *tls.CertificateVerificationError
		if !errors.As(err, &unknown) && !errors.As(err, &verify) {
			t.Fatalf("want a certificate verification error, got %T: %v", err, err)
		}
	})
	t.Run("starttls", func(t *testing.T) {
		plain, err := imapclient.DialInsecure(d.Addr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !plain.Caps().Has(imap.CapStartTLS) {
			t.Errorf("plain port does not offer STARTTLS: %v", plain.Caps())
		}
		plain.Close()
		c, err := imapclient.DialStartTLS(d.Addr(), &imapclient.Options{TLSConfig: d.TLSConfig()})
		login(t, c, err)
	})
}

func TestMaxMailSize(t *testing.T) {
	t.Parallel()
	const limit = 4096
	d := testenv.StartDovecot(t, testenv.DovecotOptions{MaxMailSize: limit})
	d.AddUser(t, "alice", "secret")
	c := d.Dial(t, "alice", "secret")

	got, ok := c.Caps().AppendLimit()
	if !ok || got == nil || *got != limit {
		t.Fatalf("APPENDLIMIT = %v (ok %v), want %d; caps %v", got, ok, limit, c.Caps())
	}
	if c.Caps().Has(imap.CapQuota) {
		t.Errorf("QUOTA advertised although only MaxMailSize was asked for")
	}

	small := []byte("Subject: small\r\n\r\n" + strings.Repeat("x", 1000) + "\r\n")
	if err := appendMessage(c, "INBOX", small); err != nil {
		t.Fatalf("APPEND below the limit: %v", err)
	}
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("y\r\n", 3000))
	err := appendMessage(c, "INBOX", big)
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo || imapErr.Code != "LIMIT" {
		t.Fatalf("APPEND above the limit: got %v, want NO [LIMIT]", err)
	}
	// go-imap sends literals over 4096 bytes synchronously; Dovecot answers
	// the size with NO instead of "+", and go-imap then closes the whole
	// connection. Callers must expect to reconnect after such a refusal.
}

func TestQuota(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{QuotaBytes: 1 << 20})
	d.AddUser(t, "alice", "secret")
	c := d.Dial(t, "alice", "secret")
	if !c.Caps().Has(imap.CapQuota) {
		t.Fatalf("QUOTA not advertised: %v", c.Caps())
	}
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatalf("GETQUOTAROOT: %v", err)
	}
	if len(roots) != 1 {
		t.Fatalf("GETQUOTAROOT returned %d roots: %+v", len(roots), roots)
	}
	storage, ok := roots[0].Resources[imap.QuotaResourceStorage]
	if !ok || storage.Limit != 1024 { // IMAP reports KiB
		t.Fatalf("STORAGE = %+v (ok %v), want limit 1024 KiB", storage, ok)
	}
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	d.AddUser(t, "alice", "secret")
	d.Dial(t, "alice", "secret")

	// Added right after a login, i.e. usually within the same second as
	// the auth process's last look at the user files.
	d.AddUser(t, "bob", "p:w d\\\"")
	d.Dial(t, "bob", "p:w d\\\"")

	d.AddUser(t, "Carol@Example.ORG", "secret")
	d.Dial(t, "carol@example.org", "secret")
	d.Dial(t, "CAROL@example.org", "secret")

	// Same length, so only the mtime can tell Dovecot the file changed.
	d.AddUser(t, "alice", "public")
	c, err := imapclient.DialInsecure(d.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "secret").Wait(); err == nil {
		t.Fatal("old password still accepted after AddUser replaced it")
	}
	// Without the auth-penalty workaround this login would wait 2+ s.
	start := time.Now()
	d.Dial(t, "alice", "public")
	if dt := time.Since(start); dt > time.Second {
		t.Errorf("login after a failed login took %v; auth penalty not disabled?", dt)
	}
}

func TestPOP3(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	d.AddUser(t, "alice", "secret")
	c := d.Dial(t, "alice", "secret")
	if err := appendMessage(c, "INBOX", []byte(testMessage)); err != nil {
		t.Fatal(err)
	}

	conn, err := net.DialTimeout("tcp", d.POP3Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := textproto.NewReader(bufio.NewReader(conn))
	expectOK := func(cmd string) string {
		t.Helper()
		if cmd != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
				t.Fatal(err)
			}
		}
		line, err := r.ReadLine()
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		if !strings.HasPrefix(line, "+OK") {
			t.Fatalf("%q: %q", cmd, line)
		}
		return line
	}
	expectOK("")
	expectOK("USER alice")
	expectOK("PASS secret")
	if got, want := expectOK("STAT"), fmt.Sprintf("+OK 1 %d", len(testMessage)); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	expectOK("QUIT")
}

func TestDoveadm(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier, SpecialUse: true})
	d.AddUser(t, "alice", "secret")
	out := d.Doveadm(t, "mailbox", "list", "-u", "alice")
	for _, want := range []string{"INBOX", "INBOX.Sent"} {
		if !slices.Contains(strings.Fields(out), want) {
			t.Errorf("doveadm mailbox list = %q, missing %q", out, want)
		}
	}
}

func TestManyInstances(t *testing.T) {
	for i := range 6 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.Layout(i % 2), TLS: i%3 == 0})
			d.AddUser(t, "u", "p")
			if err := d.Dial(t, "u", "p").Noop().Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
