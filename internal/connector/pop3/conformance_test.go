package pop3_test

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/pop3"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv"
)

// The suite against Dovecot's POP3 service; mail is put in through its
// IMAP side, the same maildrop.
func TestConformanceDovecotPOP3(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	var n atomic.Int32
	users := map[connector.Conn]string{}
	dial := func(t *testing.T, user string) connector.Conn {
		e, err := pop3.Parse("pop3://" + user + "@" + d.POP3Addr())
		if err != nil {
			t.Fatal(err)
		}
		c, err := pop3.Open(context.Background(), e, connector.OpenOptions{AllowPlaintext: true, Credentials: connector.Credentials{Password: "secret"}})
		if err != nil {
			t.Fatal(err)
		}
		users[c] = user
		return c
	}
	conntest.Run(t, conntest.Harness{NoFlags: true, DateFromHeader: true, AddsFinalNewline: true, LineEndsCRLF: true,
		NewMailbox: func(t *testing.T) connector.Conn {
			user := "user" + strconv.Itoa(int(n.Add(1)))
			d.AddUser(t, user, "secret")
			return dial(t, user)
		},
		Reopen: func(t *testing.T, c connector.Conn) connector.Conn { return dial(t, users[c]) },
		Seed: func(t *testing.T, c connector.Conn, _ mail.Path, raw []byte, flags []string, date time.Time) {
			ic := d.Dial(t, users[c], "secret")
			defer ic.Logout()
			fl := make([]imap.Flag, len(flags))
			for i, f := range flags {
				fl[i] = imap.Flag(f)
			}
			cmd := ic.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: fl, Time: date})
			if _, err := cmd.Write(raw); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := cmd.Wait(); err != nil && !bytes.Contains(raw, []byte("\n")) {
				t.Fatal(err)
			}
		}})
}
