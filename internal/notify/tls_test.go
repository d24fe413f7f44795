package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The shared test server in testenv speaks plain SMTP only; these tests
// run go-smtp with TLS directly to check that certificates are verified
// against RootCAs and that authentication happens inside TLS.

// selfSigned returns a certificate for ip only and a pool trusting it.
func selfSigned(t *testing.T, ip net.IP) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "notify test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{ip},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

type tlsSession struct {
	user, pass string
	authed     bool
	got        chan<- []byte
}

func (s *tlsSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *tlsSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, u, p string) error {
		if u != s.user || p != s.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}
func (s *tlsSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *tlsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err == nil {
		s.got <- b
	}
	return err
}
func (s *tlsSession) Reset()        {}
func (s *tlsSession) Logout() error { return nil }

// startTLSServer serves SMTP with TLS, implicit or via STARTTLS, and
// requires AUTH PLAIN as u/p, which go-smtp offers only once TLS is up.
func startTLSServer(t *testing.T, implicit bool, cert tls.Certificate) (port int, got <-chan []byte) {
	t.Helper()
	ch := make(chan []byte, 10)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &tlsSession{user: "u", pass: "p", got: ch}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ErrorLog = nopLog{}
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	if implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
		<-done
	})
	return port, ch
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}

var loopback = net.IPv4(127, 0, 0, 1)

func TestSMTPOverTLS(t *testing.T) {
	cert, pool := selfSigned(t, loopback)
	for _, security := range []string{"starttls", "tls"} {
		port, got := startTLSServer(t, security == "tls", cert)
		cfg := SMTPConfig{
			Host: "127.0.0.1", Port: port, Security: security, From: testFrom,
			Username: "u", Password: "p", RootCAs: pool,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := NewSMTP(cfg).Send(ctx, Message{To: "c@example.org", Subject: "über TLS", Text: "sicher"})
		cancel()
		if err != nil {
			t.Fatalf("%s: Send: %v", security, err)
		}
		select {
		case data := <-got:
			p := parseMail(t, data)
			if p.subject != "über TLS" || p.body != "sicher\r\n" {
				t.Errorf("%s: got subject %q body %q", security, p.subject, p.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: server received nothing", security)
		}
	}
}

func TestSMTPVerifiesCertificate(t *testing.T) {
	cert, _ := selfSigned(t, loopback)
	otherCert, otherPool := selfSigned(t, net.IPv4(192, 0, 2, 1))
	for _, security := range []string{"starttls", "tls"} {
		port, got := startTLSServer(t, security == "tls", cert)
		base := SMTPConfig{Host: "127.0.0.1", Port: port, Security: security, From: testFrom, Username: "u", Password: "p"}

		untrusted := base // system roots do not know the test certificate
		err := NewSMTP(untrusted).Send(context.Background(), Message{To: "c@example.org", Text: "x"})
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) || !strings.Contains(err.Error(), "certificate is not trusted") {
			t.Errorf("%s, untrusted: error = %v, want a certificate error explaining it", security, err)
		}

		// A trusted certificate, but for another address.
		otherPort, otherGot := startTLSServer(t, security == "tls", otherCert)
		wrongName := base
		wrongName.Port, wrongName.RootCAs = otherPort, otherPool
		err = NewSMTP(wrongName).Send(context.Background(), Message{To: "c@example.org", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "not valid for this host name") {
			t.Errorf("%s, wrong name: error = %v, want a host name error", security, err)
		}

		select {
		case <-got:
			t.Fatalf("%s: a message got through an unverified connection", security)
		case <-otherGot:
			t.Fatalf("%s: a message got through a connection to the wrong host", security)
		default:
		}

		insecure := base
		insecure.InsecureSkipVerify = true
		if err := NewSMTP(insecure).Send(context.Background(), Message{To: "c@example.org", Text: "x"}); err != nil {
			t.Errorf("%s, InsecureSkipVerify: %v", security, err)
		}
	}
}
