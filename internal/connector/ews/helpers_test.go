package ews

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

const (
	alice = "alice@example.com"
	pw    = "correct horse"
)

// server starts an ewsserver with alice (and whatever users add adds).
func server(t testing.TB, opts *ewsserver.Options, add ...func(*ewsserver.Server)) *ewsserver.Server {
	t.Helper()
	if opts == nil {
		opts = &ewsserver.Options{}
	}
	opts.TB = t
	s := ewsserver.New(opts)
	if err := s.AddUser(alice, ewsserver.UserOptions{Password: pw, Logins: []string{`EXAMPLE\alice`}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range add {
		f(s)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// endpoint is the canonical address of s with extra parameters.
func endpoint(t testing.TB, s *ewsserver.Server, query string) connector.Endpoint {
	t.Helper()
	raw := "ews://" + s.Host()
	if query != "" {
		raw += "?" + query
	}
	e, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func options(s *ewsserver.Server, user, pass string) connector.OpenOptions {
	return connector.OpenOptions{
		Credentials: connector.Credentials{Username: user, Password: pass},
		RootCAs:     s.CertPool(),
	}
}

// open opens alice's mailbox on s.
func open(t testing.TB, s *ewsserver.Server, query string, mod ...func(*connector.OpenOptions)) *Conn {
	t.Helper()
	o := options(s, alice, pw)
	for _, m := range mod {
		m(&o)
	}
	c, err := Open(context.Background(), endpoint(t, s, query), o)
	if err != nil {
		t.Fatalf("open: %v (hint: %s)", err, connector.HintOf(err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// msg is a small RFC 5322 message.
func msg(n int, extra string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf("From: \"Bob Example\" <bob@example.org>\n"+
		"To: alice@example.com\nSubject: message %d\nDate: Mon, 2 Jan 2006 15:04:%02d +0100\n"+
		"Message-ID: <m%d@example.org>\n%s\nbody of %d\n", n, n%60, n, extra, n), "\n", "\r\n"))
}

// folderByPath finds a listed folder.
func folderByPath(t testing.TB, c *Conn, p ...string) connector.Folder {
	t.Helper()
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Path.Equal(mail.Path(p)) {
			return f
		}
	}
	t.Fatalf("no folder %q in %v", p, fs)
	return connector.Folder{}
}

// listAll lists a folder completely.
func listAll(t testing.TB, c *Conn, f connector.Folder, opts connector.ListOptions) ([]connector.Message, connector.Listing) {
	t.Helper()
	var out []connector.Message
	lst, err := c.List(context.Background(), f, opts, func(ms []connector.Message) error {
		out = append(out, ms...)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", f.Path, err)
	}
	return out, lst
}

// seed adds raw messages to a folder of alice's mailbox on s.
func seed(t testing.TB, s *ewsserver.Server, folderID string, raws ...[]byte) []string {
	t.Helper()
	var ids []string
	for i, raw := range raws {
		id, err := s.Mailbox(alice).AddItem(folderID, ewsserver.SeedItem{MIME: raw, Received: time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func inboxID(s *ewsserver.Server) string { return s.Mailbox(alice).DistinguishedFolderID("inbox") }

// appendMsg stores raw in f and waits for the answer.
func appendMsg(t testing.TB, c *Conn, f connector.Folder, raw []byte, flags []string, date time.Time) connector.ID {
	t.Helper()
	p, err := c.Append(context.Background(), f, connector.AppendRequest{Flags: flags, InternalDate: date, Size: int64(len(raw)), Body: strings.NewReader(string(raw))})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	res, err := p.Wait()
	if err != nil {
		t.Fatalf("append: %v (hint %s)", err, connector.HintOf(err))
	}
	return res.ID
}
