package graphserver

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// Options configures a Server. The zero value of each field means the
// documented default of the real service; tests shrink the budgets so that
// they can hit them quickly.
type Options struct {
	// Now is the server's clock (token expiry, throttling windows, dates).
	// Default time.Now.
	Now func() time.Time

	// TokenLifetime is the expires_in of issued access tokens. Default
	// 3599 s, as in the identity platform's documented response.
	TokenLifetime time.Duration

	// MaxRequestBody is the largest request body accepted before 413.
	// Default 4 MiB (about 4 MB per request, see LIMITS.md).
	MaxRequestBody int64

	// MaxUploadChunk is the largest byte range one upload-session PUT may
	// carry. Default 4 MiB ("up to 4 MB each time").
	MaxUploadChunk int64
	// MinUploadSessionSize is the smallest attachment an upload session
	// accepts (ErrorAttachmentSizeShouldNotBeLessThanMinimumSize). Default
	// 3 MiB.
	MinUploadSessionSize int64
	// MaxAttachmentSize is the largest attachment an upload session
	// accepts. Default 150 MiB.
	MaxAttachmentSize int64

	// ConcurrencyLimit is the number of requests in flight at once; the
	// next gets 429 MailboxConcurrency. Default 4.
	ConcurrencyLimit int
	// ConcurrencyPerMailbox applies ConcurrencyLimit per app and mailbox
	// (the current throttling-limits page). By default it applies per app
	// across all mailboxes, the stricter reading (see LIMITS.md).
	ConcurrencyPerMailbox bool
	// ConcurrencyRetryAfter is the Retry-After sent with a concurrency 429.
	// Default 1 s.
	ConcurrencyRetryAfter time.Duration

	// RequestBudget requests per RequestWindow per app and mailbox. Default
	// 10,000 per 10 minutes.
	RequestBudget int
	RequestWindow time.Duration

	// UploadBudget bytes of PATCH, POST and PUT bodies per UploadWindow per
	// mailbox (across apps, the stricter reading). Default 150 MB per 5
	// minutes.
	UploadBudget int64
	UploadWindow time.Duration

	// DeltaPageSize is the delta page size without Prefer:
	// odata.maxpagesize. Default 10.
	DeltaPageSize int
	// PageSize is the default page size of collections (mailFolders,
	// childFolders, messages). Default 10, as documented for mailFolders.
	PageSize int

	// Logf, if set, receives one line per request (method, path, status).
	// Tokens and secrets are never logged.
	Logf func(format string, args ...any)
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = 3599 * time.Second
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = 4 << 20
	}
	if c.MaxUploadChunk == 0 {
		c.MaxUploadChunk = 4 << 20
	}
	if c.MinUploadSessionSize == 0 {
		c.MinUploadSessionSize = 3 << 20
	}
	if c.MaxAttachmentSize == 0 {
		c.MaxAttachmentSize = 150 << 20
	}
	if c.ConcurrencyLimit == 0 {
		c.ConcurrencyLimit = 4
	}
	if c.ConcurrencyRetryAfter == 0 {
		c.ConcurrencyRetryAfter = time.Second
	}
	if c.RequestBudget == 0 {
		c.RequestBudget = 10000
	}
	if c.RequestWindow == 0 {
		c.RequestWindow = 10 * time.Minute
	}
	if c.UploadBudget == 0 {
		c.UploadBudget = 150 * 1000 * 1000
	}
	if c.UploadWindow == 0 {
		c.UploadWindow = 5 * time.Minute
	}
	if c.DeltaPageSize == 0 {
		c.DeltaPageSize = 10
	}
	if c.PageSize == 0 {
		c.PageSize = 10
	}
	return c
}

// Server is a running token endpoint and Graph server on one TLS port.
// All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, https://127.0.0.1:PORT. The Graph API is under
	// URL+"/v1.0" and URL+"/beta", the Microsoft token endpoint under
	// URL+"/{tenant}/oauth2/v2.0/token", Google's under URL+"/token".
	URL string
	// CertPool trusts exactly this server's certificate.
	CertPool *x509.CertPool
	// CertFile is the server's certificate (PEM), for clients that take
	// a CA file (mailferry copy --ca-file).
	CertFile string

	opts Options
	http *httptest.Server

	mu   sync.Mutex
	id   identityState
	mail mailState
	thr  throttleState

	counts   map[string]int
	faults   []*Fault
	gate     *gate
	throttle int // 429 answers sent by the throttle
}

// Start starts a server on a free loopback port; it stops on t.Cleanup.
// opts may be nil for the defaults.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	s := &Server{opts: opts.withDefaults(), counts: map[string]int{}}
	s.id.init()
	s.mail.init()
	s.thr.init()

	dir := t.TempDir()
	pool, err := testenv.WriteSelfSignedCert(dir)
	if err != nil {
		t.Fatalf("graphserver: certificate: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatalf("graphserver: load certificate: %v", err)
	}
	s.CertPool = pool
	s.CertFile = filepath.Join(dir, "cert.pem")
	s.http = httptest.NewUnstartedServer(s)
	s.http.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.http.StartTLS()
	s.URL = s.http.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server. Safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	g := s.gate
	s.gate = nil
	s.mu.Unlock()
	if g != nil {
		g.open()
	}
	s.http.Close()
}

// Client returns an HTTP client that trusts the server's certificate and
// nothing else.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.CertPool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
	}}
}

// TLSConfig returns a client TLS configuration that trusts the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool, MinVersion: tls.VersionTLS12}
}

// GraphURL is the v1.0 service root, e.g. https://127.0.0.1:PORT/v1.0.
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// BetaURL is the beta service root.
func (s *Server) BetaURL() string { return s.URL + "/beta" }

// TokenURL is the Microsoft identity platform token endpoint of tenant
// (its id or domain).
func (s *Server) TokenURL(tenant string) string { return s.URL + "/" + tenant + "/oauth2/v2.0/token" }

// GoogleTokenURL is the Google-style token endpoint.
func (s *Server) GoogleTokenURL() string { return s.URL + "/token" }

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func newID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

func newRequestID() string {
	h := newID(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ServeHTTP dispatches to the token endpoints, the upload URLs and Graph.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	reqID := newRequestID()
	rw.Header().Set("request-id", reqID)
	rw.Header().Set("client-request-id", reqID)
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/v1.0/") || path == "/v1.0" || strings.HasPrefix(path, "/beta/") || path == "/beta":
		s.serveGraph(rw, r, reqID, nil)
	case strings.HasPrefix(path, "/api/v2.0/"):
		s.serveUpload(rw, r, reqID)
	case path == "/token":
		s.serveGoogleToken(rw, r)
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		s.serveMicrosoftToken(rw, r)
	case strings.HasSuffix(path, "/oauth2/v2.0/authorize"):
		s.serveMicrosoftAuthorize(rw, r)
	default:
		http.NotFound(rw, r)
	}
	s.logf("graphserver: %s %s -> %d", r.Method, path, rw.status)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// readBody reads at most limit bytes; more is a 413 with Graph's error JSON.
func readBody(r *http.Request, limit int64) ([]byte, *graphError) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, newError(http.StatusBadRequest, "BadRequest", "The request body could not be read: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"The request is larger than the maximum allowed size of %d bytes.", limit)
	}
	return b, nil
}

// Fault is an injected failure: the next Count requests whose route is
// Route (a Route* constant; "" matches every Graph and upload route, not the
// token endpoints) are answered with Status and Graph's error JSON instead
// of being served.
type Fault struct {
	Route      string
	Status     int           // 429, 503, 413, 401, 500, ...
	Code       string        // error code; a default per status if empty
	RetryAfter time.Duration // Retry-After header when > 0
	Count      int           // default 1
}

// InjectFault queues f. Faults are consumed in the order injected.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// takeFault returns the error for the first matching fault, if any, and
// counts the request under route. Token-endpoint routes match only faults
// that name them.
func (s *Server) countAndFault(route string) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[route]++
	isToken := route == RouteMicrosoftToken || route == RouteGoogleToken
	for i, f := range s.faults {
		if f.Route != route && (f.Route != "" || isToken) {
			continue
		}
		f.Count--
		if f.Count == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		if f.Status == http.StatusTooManyRequests {
			s.throttle++
		}
		return faultError(f)
	}
	return nil
}

func faultError(f *Fault) *graphError {
	e := &graphError{Status: f.Status, Code: f.Code, RetryAfter: f.RetryAfter}
	switch f.Status {
	case http.StatusTooManyRequests:
		e.Message = "Please retry again later."
		if e.Code == "" {
			e.Code = "TooManyRequests"
		}
	case http.StatusServiceUnavailable:
		e.Message = "The service is temporarily unavailable. Please retry after some time."
		if e.Code == "" {
			e.Code = "serviceNotAvailable"
		}
	case http.StatusRequestEntityTooLarge:
		e.Message = "The request is larger than the maximum allowed size."
		if e.Code == "" {
			e.Code = "RequestEntityTooLarge"
		}
	case http.StatusUnauthorized:
		e.Message = "Lifetime validation failed, the token is expired."
		if e.Code == "" {
			e.Code = "InvalidAuthenticationToken"
		}
		e.Header = http.Header{"Www-Authenticate": {wwwAuthenticate}}
	default:
		e.Message = fmt.Sprintf("Injected failure %d.", f.Status)
		if e.Code == "" {
			e.Code = "generalException"
		}
	}
	return e
}

// RequestCount is the number of requests that matched route (a Route*
// constant), including those answered with an error.
func (s *Server) RequestCount(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[route]
}

// RequestCounts returns a copy of all per-route counts.
func (s *Server) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// ThrottledCount is the number of 429 answers sent so far (throttle and
// injected faults, inside batches too).
func (s *Server) ThrottledCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttle
}

// gate holds blocked requests until opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// BlockRequests holds every mailbox request after it has taken its
// concurrency slot, until release is called: tests use it to have requests
// in flight at once without timing. release is idempotent.
func (s *Server) BlockRequests() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = &gate{ch: make(chan struct{})}
	}
	g := s.gate
	return func() {
		s.mu.Lock()
		if s.gate == g {
			s.gate = nil
		}
		s.mu.Unlock()
		g.open()
	}
}

func (s *Server) waitGate() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g.ch
	}
}
