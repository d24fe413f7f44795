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

func dovecotHarness(d *testenv.Dovecot) conntest.Harness {
	var n atomic.Int32
	return conntest.Harness{LineEndsCRLF: true, NewMailbox: func(t *testing.T) connector.Conn {
		user := "user" + strconv.Itoa(int(n.Add(1)))
		d.AddUser(t, user, "secret")
		c, err := imapconn.Open(context.Background(), imapconn.Config{Host: d.Host, Port: d.TLSPort, Security: imapconn.SecurityTLS,
			RootCAs: d.CACert, Username: user, Password: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}}
}

// Dovecot with '/' as separator, SPECIAL-USE, CONDSTORE and quota, over TLS.
func TestConformanceDovecotSlash(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, TLS: true, SpecialUse: true, QuotaBytes: 1 << 30})
	conntest.Run(t, dovecotHarness(d))
}

// Courier-style: '.' separator and the INBOX. prefix.
func TestConformanceDovecotCourier(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier, TLS: true})
	conntest.Run(t, dovecotHarness(d))
}
