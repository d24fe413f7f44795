package netpolicy_test

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/netpolicy"
)

// serve runs a fake non-IMAP service on addr: what it does with each
// connection is up to handle.
func serve(t *testing.T, addr string, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

const banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"

// Whoever can enter a server address must not learn from the answer what
// listens at an address the policy refuses, nor tell a closed port from
// an open one that is not IMAP: a refused address, a closed port, a
// service that sends a banner, one that closes at once, one that says
// nothing and one that answers like a web server all give the same
// error, kind and hint, which never quote the other end's bytes. For
// every security setting.
func TestUnreachableLooksTheSameWhateverListens(t *testing.T) {
	refusedAddr := serve(t, "127.0.0.1:0", func(c net.Conn) { _, _ = c.Write([]byte(banner + "\r\n")); hold(c) })
	closed, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	targets := map[string]string{
		"refused by the policy": refusedAddr,
		"closed port":           closedAddr,
		"banner":                serve(t, "127.0.0.2:0", func(c net.Conn) { _, _ = c.Write([]byte(banner + "\r\n")); hold(c) }),
		"closes at once":        serve(t, "127.0.0.2:0", func(net.Conn) {}),
		"says nothing":          serve(t, "127.0.0.2:0", hold),
		"web server": serve(t, "127.0.0.2:0", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n"))
			hold(c)
		}),
		"one byte": serve(t, "127.0.0.2:0", func(c net.Conn) { _, _ = c.Write([]byte("S")); hold(c) }),
	}
	policy := netpolicy.New(netpolicy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	for _, sec := range []imapconn.Security{imapconn.SecurityNone, imapconn.SecurityStartTLS, imapconn.SecurityTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			seen := map[string]string{}
			for name, addr := range targets {
				host, port, _ := net.SplitHostPort(addr)
				cfg := imapconn.Config{Security: sec, Host: host, Username: "u", Password: "p", AllowPlaintext: true,
					DialTimeout: time.Second, DialContext: policy.DialContext}
				cfg.Port = mustAtoi(t, port)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := imapconn.Open(ctx, cfg)
				cancel()
				if err == nil {
					t.Fatalf("%s: connected", name)
				}
				if k := connector.KindOf(err); k != connector.KindConnect {
					t.Errorf("%s: kind %s (%v)", name, k, err)
				}
				msg := strings.ReplaceAll(err.Error(), addr, "ADDR") + " | " + connector.HintOf(err)
				for _, leak := range []string{"SSH", "OpenSSH", "nginx", "HTTP", `"S"`, "refused", "policy", "EOF", "timeout", "greeting"} {
					if strings.Contains(msg, leak) {
						t.Errorf("%s: the message tells %q: %s", name, leak, msg)
					}
				}
				seen[msg] = name
			}
			if len(seen) != 1 {
				for msg, name := range seen {
					t.Errorf("%s: %s", name, msg)
				}
			}
		})
	}
}

// hold keeps a connection open for a while, reading what comes, as a
// service waiting for its own protocol would.
func hold(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = bufio.NewReader(c).ReadString(0)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}
