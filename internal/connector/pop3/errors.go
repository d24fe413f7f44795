package pop3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/mailferry/mailferry/internal/connector"
)

// Hints shown to users, in the words of someone setting up a mail
// client; they mirror the IMAP connector's.
const (
	hintAuth = "Check the user name and password. Many providers need POP to be switched on in the mailbox settings, " +
		"and some (Gmail, iCloud, Yahoo, Microsoft 365 with MFA) need an app password instead of the normal one."
	hintHost = "Check the server name for typos. For POP3 it is usually pop.yourdomain.com or mail.yourdomain.com; " +
		"an IP address works too."
	hintConnect = "The server did not accept a connection on this port. Check the port (995 for SSL/TLS, 110 for STARTTLS or none) " +
		"and that no firewall blocks it."
	hintTLS = "The secure connection could not be set up. Check that the port matches the security setting " +
		"(995 = pop3s://, 110 = pop3+starttls://). If the server uses a self-signed or expired certificate and you trust it, " +
		"run again with --insecure."
	hintNoSTLS = "The server does not offer STARTTLS (STLS) on this port. Use pop3s:// (port 995) if the server has it, " +
		"or pop3:// with --allow-plaintext on a trusted network."
	hintPlaintext = "The connection is not encrypted, so the password would travel in clear text. " +
		"Use pop3s:// or pop3+starttls://, or pass --allow-plaintext if this is a trusted network."
	hintInUse = "The mailbox is in use by another POP3 session (most servers lock it while a client is connected). " +
		"Close other mail programs that check this mailbox by POP3; Mailferry retries by itself."
	hintLoginDelay = "The server allows a new POP3 login only after a delay (LOGIN-DELAY). Mailferry retries by itself."
	hintTemp       = "The server reported a temporary problem. Mailferry retries by itself; if this persists, ask the provider."
	hintStall      = "The server stopped answering. Mailferry reconnects and retries by itself; a slow link or an overloaded server causes this."
	hintVanished   = "The message is no longer on the server (another mail program may have downloaded and deleted it). Nothing to do."
	hintProtocol   = "The server answered in a way the POP3 standard does not allow. If this persists, report it with the server's name."
)

// serverError is a -ERR answer (RFC 1939 §3) with its RFC 2449 §8
// response code, if any.
type serverError struct {
	code string // e.g. "AUTH", "IN-USE", "SYS/TEMP"; "" when none
	text string // the server's words
}

func (e *serverError) Error() string {
	if e.text == "" {
		return "server said -ERR"
	}
	return "server said: " + e.text
}

// protocolError is an answer that breaks the grammar of RFC 1939/2449.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "POP3 protocol error: " + e.msg }

// stallError is a read or write that made no progress for the stall
// timeout.
type stallError struct{ msg string }

func (e *stallError) Error() string { return e.msg }

// classify turns any error from the network or the server into a
// *connector.Error. op names what was being done.
func classify(err error, op string) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		return err
	}
	kind, hint := kindOf(err)
	if kind == connector.KindTLS {
		err = errors.New(describeTLS(err))
	}
	return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: err}
}

func kindOf(err error) (connector.Kind, string) {
	var se *serverError
	if errors.As(err, &se) {
		return kindOfCode(se.code)
	}
	var stall *stallError
	if errors.As(err, &stall) {
		return connector.KindTransient, hintStall
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		// A garbled answer usually means a broken or intercepted
		// connection; a fresh session may well be fine.
		return connector.KindTransient, hintProtocol
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return connector.KindTransient, ""
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// Only dialling resolves names, and a name that cannot be
		// resolved now is one to check, whether NXDOMAIN or no answer.
		return connector.KindHost, hintHost
	}
	if isTLSError(err) {
		return connector.KindTLS, hintTLS
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return connector.KindConnect, hintConnect
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return connector.KindConnect, hintConnect
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return connector.KindTransient, ""
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return connector.KindTransient, ""
	}
	return connector.KindUnknown, ""
}

// kindOfCode sorts a -ERR outside of login by its response code (RFC
// 2449 §8, RFC 3206). Without a code a -ERR concerns the one command, so
// the message it addressed.
func kindOfCode(code string) (connector.Kind, string) {
	switch strings.ToUpper(code) {
	case "IN-USE":
		return connector.KindTransient, hintInUse
	case "LOGIN-DELAY":
		return connector.KindTransient, hintLoginDelay
	case "SYS/TEMP":
		return connector.KindTransient, hintTemp
	case "AUTH":
		return connector.KindAuth, hintAuth
	}
	return connector.KindItem, ""
}

// loginError sorts the answer to PASS or AUTH. RFC 2449 §8.1.1 ([IN-USE],
// [LOGIN-DELAY]) and RFC 3206 ([SYS/TEMP]) mark the refusals that a later
// try can overcome; every other -ERR (with [AUTH], [SYS/PERM] or no code:
// RFC 1939 servers give none) is the credentials or the account.
func loginError(se *serverError, op string) error {
	switch strings.ToUpper(se.code) {
	case "IN-USE", "LOGIN-DELAY", "SYS/TEMP":
		kind, hint := kindOfCode(se.code)
		return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: se}
	}
	return &connector.Error{Kind: connector.KindAuth, Op: op, Hint: hintAuth, Err: se}
}

func isTLSError(err error) bool {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalid     x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
	)
	switch {
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid),
		errors.As(err, &verifyErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return true
	}
	return strings.Contains(err.Error(), "tls: ")
}

// describeTLS says in plain words what was wrong with a certificate.
func describeTLS(err error) string {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalid     x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownAuth):
		return "the server's certificate is not signed by a trusted authority (self-signed?)"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the server's certificate is for another name (%s)", hostErr.Error())
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "the server's certificate has expired or is not yet valid"
		}
		return "the server's certificate is not valid"
	case errors.As(err, &recordErr):
		return "the server did not answer with TLS; the port may expect STARTTLS or no encryption"
	}
	return "TLS handshake failed: " + err.Error()
}

// reconnectError treats network trouble on a server that Open already
// reached as passing (a restart, a DNS hiccup, a load balancer shedding
// connections), so the engine backs off and retries; a refused password
// or certificate stays fatal, since retrying cannot fix it.
func reconnectError(err error) error {
	var ce *connector.Error
	if errors.As(err, &ce) && (ce.Kind == connector.KindHost || ce.Kind == connector.KindConnect) {
		ce.Kind = connector.KindTransient
	}
	return err
}
