package xoauth2imap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/testenv"
)

// Mechanism is the SASL mechanism name the server advertises (AUTH=XOAUTH2).
const Mechanism = "XOAUTH2"

// Options configures a Server.
type Options struct {
	// Verify decides whether token logs user in; nil accepts nothing. An
	// error with ChallengeStatus() and ChallengeScope() methods (as
	// graphserver.IMAPAuthError has) sets the challenge's status and scope.
	Verify func(user, token string) error
	// Scope is the challenge's scope when Verify's error does not give one.
	// Default https://mail.google.com/.
	Scope string
	// Plaintext serves IMAP without TLS (authentication is then allowed in
	// the clear). By default the server speaks implicit TLS (port 993
	// style) with a per-instance self-signed certificate.
	Plaintext bool
	// Caps are extra capabilities; IMAP4rev1 and AUTH=XOAUTH2 are always
	// advertised.
	Caps imap.CapSet
}

// Server is a running XOAUTH2 IMAP server. Methods are safe for concurrent
// use.
type Server struct {
	// Addr is host:port on the loopback interface.
	Addr string
	// CertPool trusts the server's certificate (nil with Plaintext).
	CertPool *x509.CertPool

	opts  Options
	mem   *imapmemserver.Server
	inner string // password of the memory users, never sent by clients

	mu    sync.Mutex
	users map[string]*imapmemserver.User
	stats Stats
}

// Stats counts what clients did.
type Stats struct {
	Logins        int // successful XOAUTH2 logins
	Refused       int // tokens refused (error challenge sent)
	Malformed     int // responses not of the exact XOAUTH2 form
	NonEmptyAfter int // non-empty client responses to an error challenge (protocol violations)
	LoginCommands int // LOGIN commands (always refused)
	OtherMechs    int // AUTHENTICATE with other mechanisms (refused)
}

// Start listens on a free loopback port; the server stops on t.Cleanup.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	s := &Server{mem: imapmemserver.New(), users: map[string]*imapmemserver.User{}, inner: "inner-" + randomHex()}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Scope == "" {
		s.opts.Scope = "https://mail.google.com/"
	}
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLiteralPlus: {}, imap.CapNamespace: {}}
	for c := range s.opts.Caps {
		caps[c] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{s: s}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: s.opts.Plaintext,
		Logger:       discard{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("xoauth2imap: listen: %v", err)
	}
	var l net.Listener = ln
	if !s.opts.Plaintext {
		dir := t.TempDir()
		pool, err := testenv.WriteSelfSignedCert(dir)
		if err != nil {
			t.Fatalf("xoauth2imap: certificate: %v", err)
		}
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatalf("xoauth2imap: load certificate: %v", err)
		}
		s.CertPool = pool
		l = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("xoauth2imap: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
	})
	s.Addr = ln.Addr().String()
	return s
}

// TLSConfig is a client configuration that trusts the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// AddUser creates a mailbox user with an INBOX and returns it, so tests
// can create more folders. User names are matched case-insensitively.
func (s *Server) AddUser(user string) *imapmemserver.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := imapmemserver.NewUser(strings.ToLower(user), s.inner)
	if err := u.Create("INBOX", nil); err != nil {
		panic(fmt.Sprintf("xoauth2imap: create INBOX: %v", err)) // cannot fail on a new user
	}
	s.mem.AddUser(u)
	s.users[strings.ToLower(user)] = u
	return u
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// session is one connection: not authenticated until XOAUTH2 succeeds,
// then go-imap's memory session of the user.
type session struct {
	*imapmemserver.UserSession // nil until authenticated
	s                          *Server
}

var _ imapserver.SessionSASL = (*session)(nil)

func (sess *session) Close() error {
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

// Login refuses LOGIN: the accounts are OAuth-only.
func (sess *session) Login(username, password string) error {
	sess.s.count(func(st *Stats) { st.LoginCommands++ })
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "LOGIN is disabled for this account; use AUTHENTICATE XOAUTH2"}
}

func (sess *session) AuthenticateMechanisms() []string { return []string{Mechanism} }

func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != Mechanism {
		sess.s.count(func(st *Stats) { st.OtherMechs++ })
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported authentication mechanism " + mech}
	}
	return &xoauth2{sess: sess}, nil
}

// ParseResponse splits an XOAUTH2 client response into user and token. It
// accepts exactly "user=" user "\x01auth=Bearer " token "\x01\x01", with
// non-empty user and token and no other fields.
func ParseResponse(resp []byte) (user, token string, err error) {
	const pre, mid, end = "user=", "\x01auth=Bearer ", "\x01\x01"
	if !bytes.HasPrefix(resp, []byte(pre)) || !bytes.HasSuffix(resp, []byte(end)) {
		return "", "", errors.New(`XOAUTH2 response must be "user=" USER "\x01auth=Bearer " TOKEN "\x01\x01"`)
	}
	body := string(resp[len(pre) : len(resp)-len(end)])
	user, token, ok := strings.Cut(body, mid)
	switch {
	case !ok:
		return "", "", errors.New(`XOAUTH2 response lacks "\x01auth=Bearer "`)
	case user == "" || token == "":
		return "", "", errors.New("XOAUTH2 response has an empty user or token")
	case strings.ContainsAny(user, "\x01") || strings.ContainsAny(token, "\x01 "):
		return "", "", errors.New("XOAUTH2 response has extra fields")
	}
	return user, token, nil
}

// xoauth2 is the server side of one AUTHENTICATE XOAUTH2 exchange.
type xoauth2 struct {
	sess       *session
	waitedIR   bool
	challenged bool
}

// Next implements sasl.Server.
func (x *xoauth2) Next(resp []byte) ([]byte, bool, error) {
	s := x.sess.s
	if x.challenged {
		// The client must answer the error challenge with an empty
		// response; either way the exchange ends with NO.
		if len(resp) != 0 {
			s.count(func(st *Stats) { st.NonEmptyAfter++ })
		}
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "SASL authentication failed"}
	}
	if resp == nil && !x.waitedIR {
		// No initial response (no SASL-IR): ask for it with an empty
		// challenge.
		x.waitedIR = true
		return nil, false, nil
	}
	user, token, err := ParseResponse(resp)
	if err != nil {
		s.count(func(st *Stats) { st.Malformed++ })
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid SASL argument: " + err.Error()}
	}
	status, scope := "401", s.opts.Scope
	verr := errors.New("no verifier configured")
	if s.opts.Verify != nil {
		verr = s.opts.Verify(user, token)
	}
	if verr == nil {
		s.mu.Lock()
		u := s.users[strings.ToLower(user)]
		s.mu.Unlock()
		if u == nil {
			verr = errors.New("no such mailbox")
		} else {
			x.sess.UserSession = imapmemserver.NewUserSession(u)
			s.count(func(st *Stats) { st.Logins++ })
			return nil, true, nil
		}
	}
	var ch interface {
		ChallengeStatus() string
		ChallengeScope() string
	}
	if errors.As(verr, &ch) {
		if v := ch.ChallengeStatus(); v != "" {
			status = v
		}
		if v := ch.ChallengeScope(); v != "" {
			scope = v
		}
	}
	s.count(func(st *Stats) { st.Refused++ })
	x.challenged = true
	b, _ := json.Marshal(struct {
		Status  string `json:"status"`
		Schemes string `json:"schemes"`
		Scope   string `json:"scope"`
	}{status, "bearer", scope})
	return b, false, nil
}

type discard struct{}

func (discard) Printf(string, ...any) {}
