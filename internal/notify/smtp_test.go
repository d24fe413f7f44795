package notify

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailferry/mailferry/internal/testenv"
)

const testFrom = "Mailferry <noreply@mailferry.test>"

func plainConfig(srv *testenv.SMTPServer) SMTPConfig {
	return SMTPConfig{Host: srv.Host, Port: srv.Port, From: testFrom, Security: "none"}
}

func TestSMTPSendsWellFormedMessage(t *testing.T) {
	srv := testenv.StartSMTP(t)
	m := Message{
		To:      "Zoë Ærøskøbing <zoe@example.org>",
		Subject: "Übertragung abgeschlossen ✓ – 1.234 Nachrichten kopiert, keine Fehler, alles gut",
		Text: "Hallo Zoë,\n\n" +
			"dein Postfach wurde übertragen. " + strings.Repeat("Sehr lange Zeile ohne Umbruch. ", 6) + "\n" +
			"Anmelden: https://mailferry.example/login?token=a=b&c=d\n" +
			".\n" +
			"From the start of a line\n" +
			"trailing space \n" +
			"Grüße",
	}
	if err := NewSMTP(plainConfig(srv)).Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, "zoe@example.org", 5*time.Second)
	if got.From != "noreply@mailferry.test" {
		t.Errorf("envelope sender = %q", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "zoe@example.org" {
		t.Errorf("envelope recipients = %q", got.To)
	}
	p := parseMail(t, got.Data)
	checkHeaders(t, p, "noreply@mailferry.test", "zoe@example.org")
	if p.subject != m.Subject {
		t.Errorf("subject = %q, want %q", p.subject, m.Subject)
	}
	if want := crlf(m.Text); p.body != want {
		t.Errorf("body = %q, want %q", p.body, want)
	}
	to, _ := p.header.AddressList("To")
	if len(to) == 1 && to[0].Name != "Zoë Ærøskøbing" {
		t.Errorf("To display name = %q", to[0].Name)
	}
	from, _ := p.header.AddressList("From")
	if len(from) == 1 && from[0].Name != "Mailferry" {
		t.Errorf("From display name = %q", from[0].Name)
	}
}

func TestSMTPSubjectCannotInjectHeaders(t *testing.T) {
	srv := testenv.StartSMTP(t)
	m := Message{To: "a@example.org", Subject: "Report\r\nBcc: victim@example.org", Text: "x"}
	if err := NewSMTP(plainConfig(srv)).Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	p := parseMail(t, srv.WaitFor(t, "a@example.org", 5*time.Second).Data)
	if bcc := p.header.Get("Bcc"); bcc != "" {
		t.Errorf("subject injected a Bcc header: %q", bcc)
	}
	if p.subject != "Report Bcc: victim@example.org" {
		t.Errorf("subject = %q", p.subject)
	}
}

func TestSMTPAuthenticates(t *testing.T) {
	srv := testenv.StartSMTPWithAuth(t, "mailer", "correct horse")
	cfg := plainConfig(srv)
	cfg.Username, cfg.Password = "mailer", "correct horse"
	if err := NewSMTP(cfg).Send(context.Background(), Message{To: "b@example.org", Subject: "hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	p := parseMail(t, srv.WaitFor(t, "b@example.org", 5*time.Second).Data)
	if p.body != "hello\r\n" {
		t.Errorf("body = %q", p.body)
	}
}

func TestSMTPAuthFailure(t *testing.T) {
	srv := testenv.StartSMTPWithAuth(t, "mailer", "correct horse")
	cfg := plainConfig(srv)
	const password = "Wr0ng-P4ssw0rd-value"
	cfg.Username, cfg.Password = "mailer", password
	err := NewSMTP(cfg).Send(context.Background(), Message{To: "b@example.org", Subject: "hi", Text: "hello"})
	if err == nil {
		t.Fatal("Send with a wrong password succeeded")
	}
	msg := err.Error()
	want := "send email via " + srv.Addr + ": authentication failed: check the SMTP user name and password"
	if !strings.HasPrefix(msg, want) {
		t.Errorf("error = %q, want it to start with %q", msg, want)
	}
	if strings.Contains(msg, password) {
		t.Errorf("error contains the password: %q", msg)
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("error does not wrap the server's 535 reply: %#v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

func TestSMTPServerRequiresAuth(t *testing.T) {
	srv := testenv.StartSMTPWithAuth(t, "mailer", "pw")
	err := NewSMTP(plainConfig(srv)).Send(context.Background(), Message{To: "b@example.org", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "requires authentication") {
		t.Fatalf("error = %v, want one saying the server requires authentication", err)
	}
}

func TestSMTPServerWithoutAuth(t *testing.T) {
	srv := testenv.StartSMTP(t)
	cfg := plainConfig(srv)
	cfg.Username, cfg.Password = "mailer", "pw"
	err := NewSMTP(cfg).Send(context.Background(), Message{To: "b@example.org", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "does not offer authentication") {
		t.Fatalf("error = %v, want one saying the server does not offer authentication", err)
	}
}

func TestSMTPSecurityMismatch(t *testing.T) {
	srv := testenv.StartSMTP(t) // plain SMTP, no STARTTLS
	for _, tc := range []struct{ security, want string }{
		{"starttls", "STARTTLS"},
		{"tls", "did not answer with TLS"},
	} {
		cfg := plainConfig(srv)
		cfg.Security = tc.security
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := NewSMTP(cfg).Send(ctx, Message{To: "b@example.org", Text: "x"})
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("security %s: error = %v, want it to mention %q", tc.security, err, tc.want)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

// silentServer accepts connections and never says anything, like a
// firewall that swallows packets after the handshake.
func silentServer(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestSMTPHonoursContext(t *testing.T) {
	host, port := silentServer(t)
	for _, security := range []string{"none", "starttls", "tls"} {
		s := NewSMTP(SMTPConfig{Host: host, Port: port, From: testFrom, Security: security})

		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := s.Send(ctx, Message{To: "b@example.org", Text: "x"})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error = %v, want DeadlineExceeded", security, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: Send returned after %v, long past the deadline", security, d)
		}

		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start = time.Now()
		err = s.Send(ctx, Message{To: "b@example.org", Text: "x"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: error = %v, want Canceled", security, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: Send returned %v after cancellation", security, d)
		}
	}
}

func TestSMTPConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // nothing listens there now
	err = NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: addr.Port, From: testFrom, Security: "none"}).
		Send(context.Background(), Message{To: "b@example.org", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "cannot connect to the SMTP server") {
		t.Fatalf("error = %v, want a connect failure", err)
	}
}

func TestSMTPRejectsBadInput(t *testing.T) {
	srv := testenv.StartSMTP(t)
	for name, tc := range map[string]struct {
		cfg  SMTPConfig
		m    Message
		want string
	}{
		"no recipient":     {plainConfig(srv), Message{Text: "x"}, "no recipient"},
		"bad recipient":    {plainConfig(srv), Message{To: "not an address", Text: "x"}, "invalid recipient"},
		"bad sender":       {SMTPConfig{Host: srv.Host, Port: srv.Port, From: "nobody", Security: "none"}, Message{To: "a@example.org"}, "invalid sender"},
		"unknown security": {SMTPConfig{Host: srv.Host, Port: srv.Port, From: testFrom, Security: "ssl"}, Message{To: "a@example.org"}, "use starttls, tls or none"},
		"no host":          {SMTPConfig{From: testFrom}, Message{To: "a@example.org"}, "no SMTP host"},
	} {
		err := NewSMTP(tc.cfg).Send(context.Background(), tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to contain %q", name, err, tc.want)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

func TestSMTPConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		port         int
		security     string
		wantPort     int
		wantSecurity string
	}{
		{587, "", 587, "starttls"},
		{465, "", 465, "tls"},
		{25, "", 25, "starttls"},
		{0, "", 587, "starttls"},
		{0, "tls", 465, "tls"},
		{0, "none", 25, "none"},
		{2525, "NONE", 2525, "none"},
	} {
		port, security, err := SMTPConfig{Host: "h", Port: tc.port, Security: tc.security}.resolve()
		if err != nil || port != tc.wantPort || security != tc.wantSecurity {
			t.Errorf("resolve(port %d, %q) = %d, %q, %v; want %d, %q",
				tc.port, tc.security, port, security, err, tc.wantPort, tc.wantSecurity)
		}
	}
}

func TestSMTPConfigHidesPassword(t *testing.T) {
	cfg := SMTPConfig{Host: "smtp.example.com", Username: "u", Password: "hunter2-secret", From: testFrom}
	var buf strings.Builder
	for _, s := range []string{cfg.String(), cfg.LogValue().String()} {
		buf.WriteString(s)
	}
	if strings.Contains(buf.String(), "hunter2-secret") {
		t.Errorf("password shown: %s", buf.String())
	}
	if !strings.Contains(cfg.String(), "smtp.example.com") {
		t.Errorf("String() = %q, want the host", cfg.String())
	}
}
