package autoconfig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is an in-process DNS server (github.com/miekg/dns) answering
// from a table of records, on UDP and TCP of the same port. A name with
// no record of any type is NXDOMAIN.
type testDNS struct {
	addr string
	mu   sync.Mutex
	rrs  map[string][]dns.RR // lower-case FQDN → records
	// truncateUDP makes UDP answers for these names empty with TC set,
	// so that the client must ask again over TCP.
	truncateUDP map[string]bool
	queries     []string // "udp name type" / "tcp name type"
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	z := &testDNS{rrs: map[string][]dns.RR{}, truncateUDP: map[string]bool{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc, ln = nil, nil
	}
	if ln == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	z.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return z
}

// add puts records in zone-file syntax into the table.
func (z *testDNS) add(t *testing.T, lines ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
	}
}

// truncate makes UDP answers for name truncated.
func (z *testDNS) truncate(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.truncateUDP[strings.ToLower(name)] = true
}

func (z *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	udp := w.LocalAddr().Network() == "udp"
	z.mu.Lock()
	proto := "tcp"
	if udp {
		proto = "udp"
	}
	z.queries = append(z.queries, proto+" "+name+" "+dns.TypeToString[q.Qtype])
	rrs, exists := z.rrs[name]
	if !exists {
		// An empty non-terminal (a parent of a name that has records)
		// exists: NOERROR with no answer (RFC 8020).
		for n := range z.rrs {
			if strings.HasSuffix(n, "."+name) {
				exists = true
				break
			}
		}
	}
	trunc := udp && z.truncateUDP[name]
	z.mu.Unlock()
	switch {
	case trunc:
		m.Truncated = true
	case !exists:
		m.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	_ = w.WriteMsg(m)
}

func (z *testDNS) asked(proto, name, qtype string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, q := range z.queries {
		if q == proto+" "+strings.ToLower(dns.Fqdn(name))+" "+qtype {
			return true
		}
	}
	return false
}

// testWeb is a set of virtual web hosts served by one in-process HTTPS
// server (and one plain HTTP server for port 80), with a certificate
// from a test CA that only the Finder under test trusts. Its dial hook
// is the only way to reach them: it maps host:443 and host:80 of the
// registered hosts to the servers and answers every other name like a
// name that does not exist. Every address dialled is recorded.
type testWeb struct {
	t     *testing.T
	roots *x509.CertPool
	tls   *httptest.Server
	plain *httptest.Server

	mu     sync.Mutex
	hosts  map[string]*http.ServeMux
	routes map[string]string // "host:port" → listener address, for extra servers
	hang   map[string]chan struct{}
	dialed []string
}

// testCertNames are the names the test certificate is valid for.
var testCertNames = []string{
	"example.com", "*.example.com", "example.org", "*.example.org", "example.net", "*.example.net",
	"*.hoster.test", "ispdb.test", "customer.test", "*.customer.test",
}

func startWeb(t *testing.T) *testWeb {
	t.Helper()
	w := &testWeb{t: t, hosts: map[string]*http.ServeMux{}, routes: map[string]string{}, hang: map[string]chan struct{}{}}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "autoconfig test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "autoconfig test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: testCertNames, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	w.roots = x509.NewCertPool()
	w.roots.AddCert(ca)

	w.tls = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	w.tls.Config.ErrorLog = quietLog()
	w.tls.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	w.tls.StartTLS()
	t.Cleanup(w.tls.Close)
	w.plain = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	w.plain.Config.ErrorLog = quietLog()
	w.plain.Start()
	t.Cleanup(w.plain.Close)
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, c := range w.hang {
			close(c)
		}
		w.hang = map[string]chan struct{}{}
	})
	return w
}

// handle serves pattern (a ServeMux pattern such as "POST /x") on host.
func (w *testWeb) handle(host, pattern string, h http.HandlerFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	mux := w.hosts[host]
	if mux == nil {
		mux = http.NewServeMux()
		w.hosts[host] = mux
	}
	mux.HandleFunc(pattern, h)
}

// route sends connections to hostport to another listener (e.g. a
// server with an untrusted certificate).
func (w *testWeb) route(hostport, listener string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes[hostport] = listener
}

// hangDial makes dialling hostport block until the test ends, ignoring
// the context, as a misbehaving dial hook could.
func (w *testWeb) hangDial(hostport string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hang[hostport] = make(chan struct{})
}

func (w *testWeb) serve(rw http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	w.mu.Lock()
	mux := w.hosts[strings.ToLower(host)]
	w.mu.Unlock()
	if mux == nil {
		http.NotFound(rw, r)
		return
	}
	mux.ServeHTTP(rw, r)
}

// dial is the Finder's Dial hook in these tests.
func (w *testWeb) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	host = strings.ToLower(host)
	w.mu.Lock()
	w.dialed = append(w.dialed, host+":"+port)
	hang := w.hang[host+":"+port]
	target, routed := w.routes[host+":"+port]
	_, known := w.hosts[host]
	w.mu.Unlock()
	if hang != nil {
		<-hang
		return nil, &net.OpError{Op: "dial", Net: network, Err: context.Canceled}
	}
	if !routed {
		if !known {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		switch port {
		case "443":
			target = w.tls.Listener.Addr().String()
		case "80":
			target = w.plain.Listener.Addr().String()
		default:
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: "port not served in the test", Addr: addr}}
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

func (w *testWeb) wasDialed(hostport string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.dialed {
		if d == hostport {
			return true
		}
	}
	return false
}

// testEnv is a DNS server and a web, with a Finder pointed at both.
type testEnv struct {
	dns *testDNS
	web *testWeb
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return &testEnv{dns: startDNS(t), web: startWeb(t)}
}

// options are the Finder options of the tests: everything through the
// in-process servers, and budgets short enough that a test that waits
// for one stays quick.
func (e *testEnv) options() Options {
	return Options{
		Dial:           e.web.dial,
		DNSServer:      e.dns.addr,
		RootCAs:        e.web.roots,
		ISPDBURL:       "https://ispdb.test/v1.1/",
		Timeout:        3 * time.Second,
		RequestTimeout: time.Second,
	}
}

// finder returns a Finder whose SRV weighted choice always takes the
// first record in RFC 2782's list order.
func (e *testEnv) finder(opts Options) *Finder {
	f := New(opts)
	f.pick = func(int) int { return 0 }
	return f
}

func (e *testEnv) lookup(t *testing.T, opts Options, address string) *Result {
	t.Helper()
	res, err := e.finder(opts).Lookup(context.Background(), address)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", address, err)
	}
	return res
}

// xmlHandler serves body as XML.
func xmlHandler(body string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = rw.Write([]byte(body))
	}
}

// findNote returns the first note about where containing text.
func findNote(res *Result, where, text string) (Note, bool) {
	for _, n := range res.Notes {
		if (where == "" || n.Where == where) && strings.Contains(n.Text, text) {
			return n, true
		}
	}
	return Note{}, false
}

func mustNote(t *testing.T, res *Result, where, text string) Note {
	t.Helper()
	n, ok := findNote(res, where, text)
	if !ok {
		t.Fatalf("no note about %q containing %q; notes:\n%s", where, text, dumpNotes(res))
	}
	return n
}

func dumpNotes(res *Result) string {
	var b strings.Builder
	for _, n := range res.Notes {
		b.WriteString("  [" + string(n.Level) + "] " + string(n.Method) + " " + n.Where + ": " + n.Text)
		if n.Detail != "" {
			b.WriteString(" (" + n.Detail + ")")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// findCandidate returns the first candidate matching protocol, host and
// port.
func findCandidate(res *Result, p Protocol, host string, port int) (Candidate, bool) {
	for _, c := range res.Candidates {
		if c.Protocol == p && c.Host == host && c.Port == port {
			return c, true
		}
	}
	return Candidate{}, false
}

func mustCandidate(t *testing.T, res *Result, p Protocol, host string, port int) Candidate {
	t.Helper()
	c, ok := findCandidate(res, p, host, port)
	if !ok {
		t.Fatalf("no %s candidate %s:%d; candidates:\n%s\nnotes:\n%s", p, host, port, dumpCandidates(res), dumpNotes(res))
	}
	return c
}

func dumpCandidates(res *Result) string {
	var b strings.Builder
	for _, c := range res.Candidates {
		b.WriteString("  " + string(c.Protocol) + " " + c.Host + ":" + itoaTest(c.Port) + " " + string(c.Security) + " " + string(c.Confidence) + " " + c.URL)
		for _, s := range c.Sources {
			b.WriteString(" <" + string(s.Method) + " " + s.Where + ">")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// quietLog keeps the test servers from logging the handshakes that the
// tests break on purpose.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

func itoaTest(i int) string { return big.NewInt(int64(i)).String() }
