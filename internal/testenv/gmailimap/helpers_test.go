package gmailimap_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

const (
	alice   = "alice@gmail.com"
	alicePw = "abcdefghijklmnop"
)

// start runs a server with alice's account (app password alicePw).
func start(t *testing.T, opts *gmailimap.Options) *gmailimap.Server {
	t.Helper()
	s := gmailimap.Start(t, opts)
	if err := s.AddAccount(alice, &gmailimap.AccountOptions{AppPassword: alicePw}); err != nil {
		t.Fatal(err)
	}
	return s
}

// rawMsg builds a small message with a given Message-ID.
func rawMsg(id, subject string) []byte {
	return []byte("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nFrom: Bob <bob@example.com>\r\nTo: alice@gmail.com\r\n" +
		"Subject: " + subject + "\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello " + subject + "\r\n")
}

func seed(t *testing.T, s *gmailimap.Server, m gmailimap.Message) uint64 {
	t.Helper()
	id, err := s.Seed(alice, m)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rawConn is a line-level IMAP client: it sends commands verbatim and
// returns the responses with literals inlined, so tests can check the
// exact bytes of Gmail's extensions, which go-imap's client cannot parse.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	tagN int
	// Greeting is the server's first line.
	Greeting string
}

func dial(t *testing.T, s *gmailimap.Server) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", s.Addr, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.Greeting = rc.line()
	if !strings.HasPrefix(rc.Greeting, "* OK Gimap ready for requests from ") {
		t.Fatalf("greeting %q", rc.Greeting)
	}
	return rc
}

// login dials and logs in as alice with LOGIN.
func login(t *testing.T, s *gmailimap.Server) *rawConn {
	t.Helper()
	rc := dial(t, s)
	rc.ok("LOGIN " + alice + " " + alicePw)
	return rc
}

func (rc *rawConn) send(line string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, line+"\r\n"); err != nil {
		rc.t.Fatalf("write %q: %v", line, err)
	}
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// response reads one response, inlining literals: "{n}\r\n" is replaced
// by the n octets that follow.
func (rc *rawConn) response() string {
	rc.t.Helper()
	var b strings.Builder
	for {
		l := rc.line()
		b.WriteString(l)
		if !strings.HasSuffix(l, "}") {
			return b.String()
		}
		i := strings.LastIndexByte(l, '{')
		n, err := strconv.Atoi(l[i+1 : len(l)-1])
		if i < 0 || err != nil {
			return b.String()
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			rc.t.Fatal(err)
		}
		s := b.String()
		b.Reset()
		b.WriteString(s[:len(s)-(len(l)-i)])
		b.Write(buf)
	}
}

// do sends a tagged command and returns the untagged responses and the
// tagged status (without the tag).
func (rc *rawConn) do(cmd string) (untagged []string, status string) {
	rc.t.Helper()
	rc.tagN++
	tag := fmt.Sprintf("a%03d", rc.tagN)
	rc.send(tag + " " + cmd)
	return rc.until(tag)
}

func (rc *rawConn) until(tag string) (untagged []string, status string) {
	rc.t.Helper()
	for {
		r := rc.response()
		if strings.HasPrefix(r, tag+" ") {
			return untagged, strings.TrimPrefix(r, tag+" ")
		}
		untagged = append(untagged, r)
	}
}

// ok runs cmd and fails the test unless it ends with OK.
func (rc *rawConn) ok(cmd string) []string {
	rc.t.Helper()
	u, st := rc.do(cmd)
	if !strings.HasPrefix(st, "OK") {
		rc.t.Fatalf("%s: %s (untagged %q)", cmd, st, u)
	}
	return u
}

// eof reports whether the server closed the connection.
func (rc *rawConn) eof() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.r.ReadByte()
	return err != nil
}

// client dials with go-imap's client and logs in as alice.
func client(t *testing.T, s *gmailimap.Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(alice, alicePw).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// grep returns the untagged responses that contain sub.
func grep(lines []string, sub string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// appendRaw appends raw with go-imap's client and returns APPENDUID.
func appendRaw(t *testing.T, c *imapclient.Client, folder string, raw []byte, opts *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), opts)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", folder, err)
	}
	return data
}
