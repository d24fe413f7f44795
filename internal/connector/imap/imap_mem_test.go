package imap_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/testenv"
)

// The suite against go-imap's in-process server: no SPECIAL-USE, no
// CONDSTORE, no quota, so it exercises the fallbacks.
func TestConformanceMemServer(t *testing.T) {
	srv := testenv.StartMemServer(t)
	var n atomic.Int32
	conntest.Run(t, conntest.Harness{ServerAddsHeaderSeparator: true, LineEndsCRLF: true, NewMailbox: func(t *testing.T) connector.Conn {
		user := "user" + strconv.Itoa(int(n.Add(1)))
		srv.AddUser(t, user, "secret")
		host, port, _ := net.SplitHostPort(srv.Addr)
		p, _ := strconv.Atoi(port)
		c, err := imapconn.Open(context.Background(), imapconn.Config{Host: host, Port: p, Security: imapconn.SecurityNone,
			AllowPlaintext: true, Username: user, Password: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}})
}
