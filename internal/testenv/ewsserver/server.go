package ewsserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// Options configure a Server. The zero value is Exchange 2016's defaults.
type Options struct {
	// FindCountLimit is EWSFindCountLimit: the most items or folders one
	// FindItem or FindFolder returns (default 1000). A paged request
	// asking for more gets a partial page with IncludesLastItemInRange
	// false.
	FindCountLimit int
	// MaxConcurrency is EWSMaxConcurrency: how many requests one account
	// may have in progress at once (default 27, as Exchange 2013 and
	// later). One more is refused with ErrorExceededConnectionCount.
	// Negative means unlimited.
	MaxConcurrency int
	// MaxRequestBytes bounds a request body (default 150 MiB); a larger
	// one gets HTTP 413 as from IIS.
	MaxRequestBytes int64
	// DisableBasic and DisableNTLM switch off an authentication scheme.
	DisableBasic, DisableNTLM bool
	// NTLMDomain is the NetBIOS domain the NTLM challenge names (default
	// MAILFERRY).
	NTLMDomain string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TB, if set, makes Start register Close with TB.Cleanup and makes
	// any message a client asks to send fail the test.
	TB testing.TB
}

// Server is an in-process EWS server. Create it with New, add users, then
// Start it.
type Server struct {
	opts   Options
	schema *schema

	mu          sync.Mutex
	users       map[string]*user
	nextMailbox uint16
	counts      map[string]int
	requests    []Request
	faults      []*faultRule
	blocks      map[string]chan struct{}
	inFlight    map[string]int
	maxInFlight map[string]int
	sent        []SentMessage
	syncKey     []byte

	hs      *httptest.Server
	pool    *x509.CertPool
	certPEM []byte
}

// Request records one EWS request, for tests to inspect.
type Request struct {
	// Op is the operation (the SOAP body's element), e.g. "FindItem";
	// empty if the request was refused before its body was read.
	Op string
	// Account is the authenticated account's primary SMTP address.
	Account string
	// Impersonated is the mailbox named in ExchangeImpersonation, if any.
	Impersonated string
	// AnchorMailbox is the X-AnchorMailbox header.
	AnchorMailbox string
	// AuthScheme is "Basic", "NTLM" or "Negotiate".
	AuthScheme string
	// Version is RequestServerVersion's Version.
	Version string
	// Status is the HTTP status of the answer.
	Status int
	// Codes are the ResponseCodes of the answer: the fault code, or one
	// per response message.
	Codes []string
}

// SentMessage is a message a client asked Exchange to send. Mailferry
// must never do that; tests assert that Sent is empty.
type SentMessage struct {
	Account, Mailbox string
	Disposition      string
	MIME             []byte
}

// New returns a server that is not yet listening.
func New(opts *Options) *Server {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.FindCountLimit == 0 {
		o.FindCountLimit = 1000
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = 27
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 150 << 20
	}
	if o.NTLMDomain == "" {
		o.NTLMDomain = "MAILFERRY"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Server{opts: o, schema: buildSchema(), users: map[string]*user{}, counts: map[string]int{},
		blocks: map[string]chan struct{}{}, inFlight: map[string]int{}, maxInFlight: map[string]int{}, syncKey: key}
}

func (s *Server) now() time.Time { return s.opts.Now() }

type connKey struct{}

// connState is per TCP connection: NTLM authenticates a connection, not
// a request.
type connState struct {
	mu           sync.Mutex
	challenge    [8]byte
	hasChallenge bool
	user         *user
	scheme       string
}

// Start listens on a loopback port with TLS. The certificate is
// self-signed and made for this server; CertPool trusts it.
func (s *Server) Start() error {
	if s.hs != nil {
		return errors.New("ewsserver: already started")
	}
	dir, err := os.MkdirTemp("", "ewsserver-tls-")
	if err != nil {
		return fmt.Errorf("ewsserver: start: %w", err)
	}
	defer os.RemoveAll(dir)
	pool, err := testenv.WriteSelfSignedCert(dir)
	if err != nil {
		return fmt.Errorf("ewsserver: start: certificate: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return fmt.Errorf("ewsserver: start: certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return fmt.Errorf("ewsserver: start: certificate: %w", err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// NTLM needs one connection for a whole handshake; IIS, too, falls
	// back to HTTP/1.1 for it. EnableHTTP2 stays false.
	hs.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, &connState{})
	}
	hs.Config.ErrorLog = nil
	hs.StartTLS()
	s.hs, s.pool, s.certPEM = hs, pool, certPEM
	if s.opts.TB != nil {
		s.opts.TB.Cleanup(s.Close)
	}
	return nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	if s.hs == nil {
		return
	}
	s.mu.Lock()
	for op, ch := range s.blocks {
		close(ch)
		delete(s.blocks, op)
	}
	s.mu.Unlock()
	s.hs.Close()
}

// URL is the EWS endpoint, https://127.0.0.1:PORT/EWS/Exchange.asmx.
func (s *Server) URL() string { return s.hs.URL + "/EWS/Exchange.asmx" }

// OWAURL is the Outlook on the web address users know,
// https://127.0.0.1:PORT/owa.
func (s *Server) OWAURL() string { return s.hs.URL + "/owa" }

// Host is 127.0.0.1:PORT.
func (s *Server) Host() string { return strings.TrimPrefix(s.hs.URL, "https://") }

// CertPEM is the server's certificate in PEM form, for a client in
// another process (SSL_CERT_FILE).
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// CertPool trusts the server's certificate (and nothing else).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// TLSConfig is a client configuration that trusts the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
}

// ServeHTTP routes /EWS/Exchange.asmx and /owa; paths are matched without
// regard to case, as IIS does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := strings.ToLower(r.URL.Path); p {
	case "/ews/exchange.asmx":
		s.serveEWS(w, r)
	case "/owa", "/owa/":
		// Exchange 2016 sends an unauthenticated browser to the forms
		// login page.
		target := "https://" + r.Host + "/owa/"
		http.Redirect(w, r, "/owa/auth/logon.aspx?url="+url.QueryEscape(target)+"&reason=0", http.StatusFound)
	case "/owa/auth/logon.aspx":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Outlook</title></head><body><form method=\"post\" action=\"/owa/auth.owa\"></form></body></html>")
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) challengeHeaders(w http.ResponseWriter, r *http.Request) {
	if !s.opts.DisableNTLM {
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", "NTLM")
	}
	if !s.opts.DisableBasic {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", r.Host))
	}
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	s.challengeHeaders(w, r)
	w.WriteHeader(http.StatusUnauthorized)
}

func (s *Server) userByLogin(login string) *user {
	login = strings.ToLower(login)
	for _, u := range s.users {
		if u.smtp == login {
			return u
		}
		for _, l := range u.logins {
			if l == login {
				return u
			}
		}
	}
	return nil
}

// authenticate returns the account of an authenticated request, or
// answers 401 and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*user, string) {
	cs, _ := r.Context().Value(connKey{}).(*connState)
	if cs == nil {
		cs = &connState{}
	}
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		cs.mu.Lock()
		u, sch := cs.user, cs.scheme
		cs.mu.Unlock()
		if u != nil {
			return u, sch
		}
	case strings.EqualFold(scheme, "Basic") && !s.opts.DisableBasic:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		if err == nil {
			login, pass, _ := strings.Cut(string(raw), ":")
			s.mu.Lock()
			u := s.userByLogin(login)
			s.mu.Unlock()
			if u != nil && hmac.Equal([]byte(u.password), []byte(pass)) {
				return u, "Basic"
			}
		}
	case (strings.EqualFold(scheme, "NTLM") || strings.EqualFold(scheme, "Negotiate")) && !s.opts.DisableNTLM:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		if err != nil {
			break
		}
		msg := ntlmMessage(raw)
		kind, ok := msg.kind()
		if !ok {
			break // a Kerberos or SPNEGO token: not offered here
		}
		cs.mu.Lock()
		defer cs.mu.Unlock()
		switch kind {
		case 1:
			cs.challenge, cs.hasChallenge, cs.user = newChallenge(), true, nil
			type2 := challengeMessage(cs.challenge, s.opts.NTLMDomain, "EXCH01", s.now())
			w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(type2))
			w.WriteHeader(http.StatusUnauthorized)
			return nil, ""
		case 3:
			if !cs.hasChallenge {
				break
			}
			cs.hasChallenge = false
			a, err := parseAuthenticate(msg)
			if err != nil {
				break
			}
			login := a.user
			if a.domain != "" {
				login = a.domain + `\` + a.user
			}
			s.mu.Lock()
			u := s.userByLogin(login)
			s.mu.Unlock()
			if u != nil && verifyNTLMv2(a, cs.challenge, u.password) {
				cs.user, cs.scheme = u, scheme
				return u, scheme
			}
		}
		cs.user = nil
	}
	s.unauthorized(w, r)
	return nil, ""
}

// forgetConnection drops an NTLM-authenticated connection's login, as
// when the password changes on the server.
func forgetConnection(r *http.Request) {
	if cs, _ := r.Context().Value(connKey{}).(*connState); cs != nil {
		cs.mu.Lock()
		cs.user = nil
		cs.mu.Unlock()
	}
}

func (s *Server) serveEWS(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		http.Error(w, "TLS is required", http.StatusForbidden)
		return
	}
	if f := s.takeFault("", true); f != nil && f.HTTPStatus != 0 {
		// An HTTP-level fault for any operation fires before the request
		// is read, as IIS answers it.
		s.answerHTTPFault(w, r, f, &Request{})
		return
	}
	acct, scheme := s.authenticate(w, r)
	if acct == nil {
		return
	}
	rec := &Request{Account: acct.smtp, AuthScheme: scheme, AnchorMailbox: r.Header.Get("X-AnchorMailbox")}
	defer s.record(rec)
	if r.Method != http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		rec.Status = http.StatusOK
		_, _ = io.WriteString(w, "<html><body>You have created a service.</body></html>")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "text/xml" {
		// WCF, which hosts EWS, answers a SOAP 1.1 endpoint's wrong
		// content type with 415.
		rec.Status = http.StatusUnsupportedMediaType
		http.Error(w, "Cannot process the message because the content type was not the expected type 'text/xml; charset=utf-8'.", rec.Status)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxRequestBytes))
	if err != nil {
		rec.Status = http.StatusRequestEntityTooLarge
		http.Error(w, "Request Entity Too Large", rec.Status)
		return
	}
	c, fault := s.prepare(body, acct, rec)
	if fault == nil {
		if f := s.takeFault(rec.Op, false); f != nil {
			if f.HTTPStatus != 0 {
				s.answerHTTPFault(w, r, f, rec)
				return
			}
			switch f.Scope {
			case FaultMessages:
				c.forced = &itemError{code: f.Code, text: faultText(f), backOff: f.BackOff.Milliseconds()}
			default:
				fault = &soapFault{code: f.Code, text: faultText(f), backOff: f.BackOff.Milliseconds()}
			}
		}
	}
	if fault != nil {
		rec.Status = http.StatusInternalServerError
		if fault.status != 0 {
			rec.Status = fault.status
		}
		rec.Codes = []string{fault.code}
		fault.write(w)
		return
	}
	if fault = s.enter(acct); fault != nil {
		rec.Status, rec.Codes = http.StatusInternalServerError, []string{fault.code}
		fault.write(w)
		return
	}
	defer s.leave(acct)
	s.wait(rec.Op)
	out, fault := s.dispatch(c)
	if fault != nil {
		rec.Status, rec.Codes = http.StatusInternalServerError, []string{fault.code}
		fault.write(w)
		return
	}
	rec.Status, rec.Codes = http.StatusOK, c.codes
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(out)
}

func (s *Server) answerHTTPFault(w http.ResponseWriter, r *http.Request, f *Fault, rec *Request) {
	rec.Status = f.HTTPStatus
	switch f.HTTPStatus {
	case http.StatusUnauthorized:
		forgetConnection(r)
		s.unauthorized(w, r)
	case http.StatusServiceUnavailable:
		if f.BackOff > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int(f.BackOff.Seconds()+0.999)))
		}
		http.Error(w, "Service Unavailable", f.HTTPStatus)
	default:
		http.Error(w, http.StatusText(f.HTTPStatus), f.HTTPStatus)
	}
	if rec.Account == "" {
		s.record(rec)
	}
}

func (s *Server) record(rec *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec.Op != "" {
		s.counts[rec.Op]++
	}
	s.requests = append(s.requests, *rec)
}

// enter counts a request against its account's EWSMaxConcurrency budget.
func (s *Server) enter(u *user) *soapFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxConcurrency > 0 && s.inFlight[u.smtp] >= s.opts.MaxConcurrency {
		return &soapFault{code: "ErrorExceededConnectionCount", text: errorText("ErrorExceededConnectionCount")}
	}
	s.inFlight[u.smtp]++
	if s.inFlight[u.smtp] > s.maxInFlight[u.smtp] {
		s.maxInFlight[u.smtp] = s.inFlight[u.smtp]
	}
	return nil
}

func (s *Server) leave(u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight[u.smtp]--
}

func (s *Server) wait(op string) {
	s.mu.Lock()
	ch := s.blocks[op]
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Block holds every request for op (after authentication and the
// concurrency check) until release is called, so that a test can have
// requests in progress at the same time. release may be called more than
// once.
func (s *Server) Block(op string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.blocks[op] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.blocks[op] == ch {
				delete(s.blocks, op)
			}
			s.mu.Unlock()
			close(ch)
		})
	}
}

// InFlight is how many requests of account are in progress now.
func (s *Server) InFlight(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight[strings.ToLower(account)]
}

// MaxInFlight is the most requests account had in progress at once, so a
// test can check that a client stays under a concurrency cap.
func (s *Server) MaxInFlight(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight[strings.ToLower(account)]
}

// Count is how many requests for op were received from authenticated
// accounts, whatever their outcome.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Requests returns the log of requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Sent returns the messages clients asked to send (MessageDisposition
// SendOnly or SendAndSaveCopy). It should always be empty.
func (s *Server) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentMessage, len(s.sent))
	copy(out, s.sent)
	return out
}
