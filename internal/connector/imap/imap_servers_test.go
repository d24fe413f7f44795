package imap_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/testenv"
)

// server is what the conformance and end-to-end tests need of a test
// server, whichever it is.
type server interface {
	AddUser(t testing.TB, user, password string)
	Addr() string
}

func plainConfig(host string, port int, user string) imapconn.Config {
	return imapconn.Config{Host: host, Port: port, Security: imapconn.SecurityNone, AllowPlaintext: true,
		Username: user, Password: "secret"}
}

func serverHarness(srv server, host string, port int, quirks conntest.Harness) conntest.Harness {
	var n atomic.Int32
	h := quirks
	h.NewMailbox = func(t *testing.T) connector.Conn {
		user := "user" + strconv.Itoa(int(n.Add(1)))
		srv.AddUser(t, user, "secret")
		c, err := imapconn.Open(context.Background(), plainConfig(host, port, user))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return h
}

// Courier-IMAP 5: no LITERAL+ (so appends go through go-imap), a bare NO
// for CREATE of an existing folder, '.' and INBOX.
func TestConformanceCourier(t *testing.T) {
	t.Parallel()
	c := testenv.StartCourier(t, testenv.CourierOptions{})
	conntest.Run(t, serverHarness(c, c.Host, c.Port, conntest.Harness{ServerAddsFinalNewline: true, ServerStripsLoneCR: true, LineEndsCRLF: true}))
}

// Cyrus IMAP 3.6 with Debian's namespace ('.' and INBOX.): LITERAL+ and
// MULTIAPPEND (appends through wire.go), CREATE-SPECIAL-USE, CONDSTORE.
func TestConformanceCyrus(t *testing.T) {
	t.Parallel()
	c := testenv.StartCyrus(t, testenv.CyrusOptions{Layout: testenv.LayoutCourier})
	conntest.Run(t, serverHarness(c, c.Host, c.Port, conntest.Harness{CreatesRoles: true, ServerMunges8BitHeaders: true, LineEndsCRLF: true}))
}
