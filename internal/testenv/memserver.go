package testenv

import (
	"errors"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// MemServer is go-imap's in-process IMAP server on a loopback socket. It
// lacks CONDSTORE and SPECIAL-USE, which is itself useful: the engine must
// work against a plain IMAP4rev1+UIDPLUS server too.
type MemServer struct {
	Addr string
	mem  *imapmemserver.Server
}

// StartMemServer listens on a free loopback port; the server stops on
// t.Cleanup.
func StartMemServer(t testing.TB) *MemServer {
	t.Helper()
	mem := imapmemserver.New()
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapNamespace: {},
			imap.CapUIDPlus: {}, imap.CapLiteralPlus: {}, imap.CapListExtended: {},
		},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("memory IMAP server: %v", err)
		}
	}()
	// Closing the listener too unblocks Serve even if Close ran before
	// Serve registered it.
	t.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
	})
	return &MemServer{Addr: ln.Addr().String(), mem: mem}
}

// AddUser creates a user with an INBOX.
func (m *MemServer) AddUser(t testing.TB, user, password string) {
	t.Helper()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatalf("create INBOX: %v", err)
	}
	m.mem.AddUser(u)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
