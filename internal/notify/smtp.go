package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Transport security settings for SMTPConfig.Security.
const (
	securitySTARTTLS = "starttls"
	securityTLS      = "tls"
	securityNone     = "none"
)

// defaultSendTimeout bounds a send whose context has no deadline: a login
// link that arrives after minutes is as good as lost, and a hung server
// must not hold a worker forever.
const defaultSendTimeout = 2 * time.Minute

// SMTPConfig says how to reach the installation's mail server.
type SMTPConfig struct {
	Host string
	// Port defaults to 465 for "tls", 587 for "starttls" and 25 for
	// "none".
	Port int

	// Username and Password enable AUTH PLAIN when Username is set. The
	// password never appears in errors; String and LogValue leave it out.
	Username, Password string

	// From is the envelope sender and the From header, e.g.
	// "Mailferry <mailferry@example.com>".
	From string

	// Security is "starttls", "tls" (implicit TLS) or "none". Empty means
	// "tls" on port 465 and "starttls" otherwise, so that nothing is sent
	// in clear unless asked for.
	Security string

	InsecureSkipVerify bool
	RootCAs            *x509.CertPool // nil: the system roots
}

// String describes the configuration without the password, so printing
// one with %v cannot leak it.
func (c SMTPConfig) String() string {
	pw := "none"
	if c.Password != "" {
		pw = "set"
	}
	return fmt.Sprintf("smtp host=%s port=%d security=%s user=%q password=%s from=%q insecure_skip_verify=%t",
		c.Host, c.Port, c.Security, c.Username, pw, c.From, c.InsecureSkipVerify)
}

// LogValue keeps the password out of structured logs.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("security", c.Security),
		slog.String("user", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.String("from", c.From),
		slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
	)
}

// resolve applies the defaults documented on SMTPConfig.
func (c SMTPConfig) resolve() (port int, security string, err error) {
	if strings.TrimSpace(c.Host) == "" {
		return 0, "", errors.New("no SMTP host configured")
	}
	security = strings.ToLower(strings.TrimSpace(c.Security))
	port = c.Port
	if security == "" {
		security = securitySTARTTLS
		if port == 465 {
			security = securityTLS
		}
	}
	switch security {
	case securityTLS:
		if port == 0 {
			port = 465
		}
	case securitySTARTTLS:
		if port == 0 {
			port = 587
		}
	case securityNone:
		if port == 0 {
			port = 25
		}
	default:
		return 0, "", fmt.Errorf("unknown SMTP security %q: use starttls, tls or none", c.Security)
	}
	if port < 1 || port > 65535 {
		return 0, "", fmt.Errorf("invalid SMTP port %d", port)
	}
	return port, security, nil
}

type smtpSender struct {
	cfg SMTPConfig
}

// NewSMTP returns a Sender that delivers through an SMTP server. Each Send
// opens its own connection: notifications are rare, and a fresh connection
// never trips over a server's idle timeout.
func NewSMTP(cfg SMTPConfig) Sender {
	return &smtpSender{cfg: cfg}
}

// Send delivers m, honouring ctx's deadline and cancellation for every step
// including the dial. Without a deadline it gives up after two minutes.
func (s *smtpSender) Send(ctx context.Context, m Message) error {
	port, security, err := s.cfg.resolve()
	if err != nil {
		return fmt.Errorf("send email: %w", err)
	}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(port))
	env, err := compose(s.cfg.From, m, time.Now())
	if err != nil {
		return fmt.Errorf("send email via %s: %w", addr, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultSendTimeout)
		defer cancel()
	}
	a := attempt{ctx: ctx, cfg: s.cfg, addr: addr, security: security}
	return a.redact(a.send(env))
}

// attempt is one delivery: it carries what error messages need.
type attempt struct {
	ctx      context.Context
	cfg      SMTPConfig
	addr     string
	security string
}

func (a attempt) send(env envelope) error {
	c, stop, err := a.connect()
	if err != nil {
		return err
	}
	defer stop()
	defer c.Close()

	if a.cfg.Username != "" {
		if err := a.auth(c); err != nil {
			return err
		}
	}

	var opts *smtp.MailOptions
	if !isASCII(env.from) || !isASCII(env.to) {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(env.from, opts); err != nil {
		var se *smtp.SMTPError
		// RFC 4954 says 530; go-smtp and others answer 502 5.7.0.
		if errors.As(err, &se) && (se.Code == 530 ||
			se.EnhancedCode == (smtp.EnhancedCode{5, 7, 0}) && strings.Contains(strings.ToLower(se.Message), "authenticat")) {
			return a.fail("the server requires authentication: set the SMTP user name and password", err)
		}
		return a.fail(fmt.Sprintf("the server refused the sender address %s", env.from), err)
	}
	if err := c.Rcpt(env.to, nil); err != nil {
		return a.fail(fmt.Sprintf("the server refused the recipient address %s", env.to), err)
	}
	w, err := c.Data()
	if err != nil {
		return a.fail("the server refused to accept a message", err)
	}
	if _, err := w.Write(env.data); err != nil {
		_ = w.Close()
		return a.fail("sending the message failed", err)
	}
	if err := w.Close(); err != nil {
		return a.fail("the server did not accept the message", err)
	}
	// The message is accepted; a failed QUIT changes nothing for it.
	_ = c.Quit()
	return nil
}

// connect dials, sets up the transport security and says hello. The caller
// must call stop once done with the client.
func (a attempt) connect() (c *smtp.Client, stop func() bool, err error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	raw, err := d.DialContext(a.ctx, "tcp", a.addr)
	if err != nil {
		return nil, nil, a.fail("cannot connect to the SMTP server", err)
	}
	deadline, _ := a.ctx.Deadline()
	conn := &deadlineConn{Conn: raw, limit: deadline}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		raw.Close()
		return nil, nil, a.fail("cannot connect to the SMTP server", err)
	}
	// Deadlines cover expiry; closing the connection is what interrupts
	// a blocked read when ctx is cancelled early.
	stop = context.AfterFunc(a.ctx, func() { raw.Close() })

	c, err = a.handshake(conn)
	if err != nil {
		stop()
		raw.Close()
		return nil, nil, err
	}
	return c, stop, nil
}

func (a attempt) handshake(conn net.Conn) (*smtp.Client, error) {
	tlsConfig := &tls.Config{
		ServerName:         a.cfg.Host,
		RootCAs:            a.cfg.RootCAs,
		InsecureSkipVerify: a.cfg.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
	}
	var c *smtp.Client
	switch a.security {
	case securityTLS:
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(a.ctx); err != nil {
			return nil, a.fail("TLS connection failed; if the server does not support implicit TLS, "+
				`set the security to "starttls" (usually port 587)`, err)
		}
		c = smtp.NewClient(tc)
	case securitySTARTTLS:
		var err error
		c, err = smtp.NewClientStartTLS(conn, tlsConfig)
		if err != nil {
			return nil, a.fail("starting TLS (STARTTLS) failed; if the server does not support STARTTLS, "+
				`set the security to "tls" (usually port 465) or "none"`, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	// Saying hello now (go-smtp would do it lazily) makes a failed TLS
	// handshake after STARTTLS show up here rather than as a misleading
	// authentication or sender error.
	if err := c.Hello("localhost"); err != nil {
		c.Close()
		return nil, a.fail("the SMTP server did not greet", err)
	}
	return c, nil
}

func (a attempt) auth(c *smtp.Client) error {
	if ok, _ := c.Extension("AUTH"); !ok {
		msg := "the server does not offer authentication: remove the SMTP user name"
		if a.security == securityNone {
			msg += `, or set the security to "starttls" or "tls" (many servers offer authentication only over TLS)`
		}
		return a.fail(msg, nil)
	}
	if !c.SupportsAuth(sasl.Plain) {
		return a.fail("the server does not offer AUTH PLAIN, the only method mailferry supports", nil)
	}
	err := c.Auth(sasl.NewPlainClient("", a.cfg.Username, a.cfg.Password))
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		switch {
		case se.Code == 535 || se.EnhancedCode == (smtp.EnhancedCode{5, 7, 8}):
			return a.fail("authentication failed: check the SMTP user name and password", err)
		case se.Code == 534 || se.EnhancedCode == (smtp.EnhancedCode{5, 7, 9}):
			return a.fail("authentication failed: the server refuses password logins for this account "+
				"(it may need an app password)", err)
		case se.Code == 538 || se.Code == 523:
			return a.fail(`authentication failed: the server requires an encrypted connection; set the security to "starttls" or "tls"`, err)
		}
	}
	return a.fail("authentication failed", err)
}

// fail phrases err in the admin's terms: what went wrong, then the detail.
func (a attempt) fail(what string, err error) error {
	if ctxErr := a.ctx.Err(); ctxErr != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		if ctxErr == nil {
			ctxErr = context.DeadlineExceeded
		}
		// The underlying error is then only the symptom, such as a closed
		// connection, so report the reason instead.
		return fmt.Errorf("send email via %s: %s: gave up: %w", a.addr, what, ctxErr)
	}
	// A TLS failure can surface at any later step, since go-smtp
	// handshakes lazily after STARTTLS; name it for what it is.
	if hint := tlsHint(err); hint != "" {
		what = "TLS connection failed: " + hint
	}
	if err == nil {
		return fmt.Errorf("send email via %s: %s", a.addr, what)
	}
	return fmt.Errorf("send email via %s: %s: %w", a.addr, what, err)
}

// redact is a last line of defence: a server that echoes credentials back
// in an error must not get the password into a log through us.
func (a attempt) redact(err error) error {
	if err == nil || a.cfg.Password == "" || !strings.Contains(err.Error(), a.cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), a.cfg.Password, "[redacted]"))
}

// tlsHint explains the TLS failures admins meet most: an untrusted or
// mismatched certificate, and a security setting that does not match the
// port.
func tlsHint(err error) string {
	if err == nil {
		return ""
	}
	var cve *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &hostErr):
		return "the server's certificate is not valid for this host name"
	case errors.As(err, &cve):
		return "the server's certificate is not trusted"
	case errors.As(err, &rhe):
		return `the server did not answer with TLS; check the security setting ("tls" is for port 465, "starttls" for 587)`
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// deadlineConn keeps go-smtp, which sets its own per-command deadlines,
// from extending them past the context's deadline.
type deadlineConn struct {
	net.Conn
	limit time.Time // zero: no limit
}

func (c *deadlineConn) clamp(t time.Time) time.Time {
	if c.limit.IsZero() || (!t.IsZero() && t.Before(c.limit)) {
		return t
	}
	return c.limit
}

func (c *deadlineConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}
