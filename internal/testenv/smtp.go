package testenv

import (
	"errors"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPServer is go-smtp's server on a loopback socket, recording every
// message it accepts. It speaks plain SMTP without TLS, so clients must
// connect with no transport security.
type SMTPServer struct {
	Addr string // host:port
	Host string
	Port int

	user, pass string // empty user: no AUTH offered or required

	mu   sync.Mutex
	msgs []ReceivedMail
	// arrived is closed and replaced whenever a message is recorded, so
	// WaitFor can sleep until something happens instead of polling.
	arrived chan struct{}
}

// ReceivedMail is one accepted message: the envelope and the raw data as
// sent after DATA (CRLF line endings, dot-unstuffed).
type ReceivedMail struct {
	From string
	To   []string
	Data []byte
}

// StartSMTP listens on a free 127.0.0.1 port and accepts any mail without
// authentication. The server stops on t.Cleanup.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	return startSMTP(t, "", "")
}

// StartSMTPWithAuth is StartSMTP but offers only AUTH PLAIN, accepts only
// user and pass, and refuses mail from clients that have not authenticated.
func StartSMTPWithAuth(t testing.TB, user, pass string) *SMTPServer {
	t.Helper()
	if user == "" {
		t.Fatal("StartSMTPWithAuth: empty user name")
	}
	return startSMTP(t, user, pass)
}

func startSMTP(t testing.TB, user, pass string) *SMTPServer {
	t.Helper()
	s := &SMTPServer{user: user, pass: pass, arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 32 << 20
	// A client that stalls must not keep a test's cleanup waiting.
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s.Addr, s.Host, s.Port = tcp.String(), tcp.IP.String(), tcp.Port

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("test SMTP server: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close only closes listeners Serve has registered; a test that
		// ends before the goroutine got that far would otherwise leave
		// Serve blocked in Accept forever.
		_ = ln.Close()
		<-done
	})
	return s
}

// Messages returns the messages accepted so far, oldest first.
func (s *SMTPServer) Messages() []ReceivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReceivedMail, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = ReceivedMail{From: m.From, To: slices.Clone(m.To), Data: slices.Clone(m.Data)}
	}
	return out
}

// WaitFor waits up to timeout for a message with rcpt (compared
// case-insensitively) among its envelope recipients and returns the first
// such message; it fails the test if none arrives in time.
func (s *SMTPServer) WaitFor(t testing.TB, rcpt string, timeout time.Duration) ReceivedMail {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if slices.ContainsFunc(m.To, func(to string) bool { return strings.EqualFold(to, rcpt) }) {
				s.mu.Unlock()
				return ReceivedMail{From: m.From, To: slices.Clone(m.To), Data: slices.Clone(m.Data)}
			}
		}
		arrived := s.arrived
		n := len(s.msgs)
		s.mu.Unlock()

		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("no mail for %s within %v (%d other messages received)", rcpt, timeout, n)
			return ReceivedMail{}
		}
	}
}

func (s *SMTPServer) record(m ReceivedMail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// smtpSession is one client connection. go-smtp calls its methods from the
// connection's goroutine only, so it needs no locking of its own.
type smtpSession struct {
	srv    *SMTPServer
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil // go-smtp then does not advertise AUTH at all
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if s.srv.user == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || username != s.srv.user || password != s.srv.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.record(ReceivedMail{From: s.from, To: slices.Clone(s.to), Data: data})
	return nil
}

func (s *smtpSession) Reset() {
	s.from, s.to = "", nil
}

func (s *smtpSession) Logout() error { return nil }
