package imap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
)

// Hints shown to users. They say what to check, in the words of someone
// setting up a mail client, not of an IMAP implementer.
const (
	hintAuth = "Check the user name and password. Many providers need IMAP to be switched on in the mailbox settings, " +
		"and some (Gmail, iCloud, Yahoo, Microsoft 365 with MFA) need an app password instead of the normal one."
	hintHost = "Check the server name for typos. For IMAP it is usually mail.yourdomain.com or imap.yourdomain.com; " +
		"an IP address works too."
	hintConnect = "No IMAP server answered at this address and port. Check the server name and the port (993 for SSL/TLS, " +
		"143 for STARTTLS or no encryption), and that no firewall blocks the connection."
	hintTLS = "The secure connection could not be set up. Check that the port matches the security setting " +
		"(993 = TLS, 143 = STARTTLS). If the server uses a self-signed or expired certificate and you trust it, " +
		"run again with --insecure."
	hintPlaintext = "The connection is not encrypted, so the password would travel in clear text. " +
		"Use imaps:// or imap+starttls://, or pass --allow-plaintext if this is a trusted network."
	hintTooBig = "The destination refuses messages this large. Forward the attachment by other means, or ask the " +
		"destination's administrator to raise the limit."
	hintQuota = "The destination mailbox is full. Ask its administrator for more space, or exclude large folders, then run again: " +
		"what was copied stays copied."
	hintMissingFolder = "The folder does not exist on the server (it may have been deleted or renamed during the migration). Run again to pick up the current folder list."
	hintThrottle      = "The server is limiting how fast we may work. Mailferry retries by itself; if this persists, lower --connections."
	hintNoAccount     = "The server says this mailbox does not exist. Mailferry does not create mailboxes: create it on that server first " +
		"(on a new service, in its admin panel), or check the email address and login name."
	hintStall = "The server stopped answering, so Mailferry dropped the connection and retries on a new one. " +
		"If this keeps happening, check the server's load and the network, or raise --stall-timeout for a server that is slow but alive."
)

// loginError sorts a NO to LOGIN. It is an authentication problem
// whatever response code the server chose (RFC 5530 AUTHENTICATIONFAILED
// is the usual one, and most servers say the same for an unknown user, so
// as not to reveal who has an account), unless the server says that the
// account does not exist: RFC 5530's NONEXISTENT, or words to that effect
// from servers configured to tell (Dovecot with a passdb "reason").
func loginError(ie *imap.Error, op string) error {
	text := strings.Join(strings.Fields(ie.Text), " ")
	err := fmt.Errorf("server said: %s", text)
	if gmailBandwidth(text) {
		return gmailBandwidthError(op, err, time.Now())
	}
	if ie.Code == imap.ResponseCodeNonExistent || saysNoAccount(text) {
		return &connector.Error{Kind: connector.KindNoAccount, Op: op, Hint: hintNoAccount, Err: err}
	}
	return &connector.Error{Kind: connector.KindAuth, Op: op, Hint: hintAuth, Err: err}
}

// noAccountPhrases are what servers say at login about an account that
// does not exist (whitespace normalised, lower case).
var noAccountPhrases = []string{
	"no such user", "unknown user", "user unknown", "user not found", "user does not exist", "user doesn't exist",
	"no such account", "account not found", "account does not exist", "account doesn't exist",
	"no such mailbox", "mailbox not found", "mailbox does not exist", "mailbox doesn't exist", "not provisioned",
}

func saysNoAccount(text string) bool {
	text = strings.ToLower(text)
	for _, p := range noAccountPhrases {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// classify turns any error from go-imap or the network into a
// *connector.Error. op names what was being done.
func classify(err error, op string) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		return err
	}
	if ie := (*imap.Error)(nil); errors.As(err, &ie) && gmailBandwidth(ie.Text) {
		return gmailBandwidthError(op, err, time.Now())
	}
	kind, hint := kindOf(err)
	if kind == connector.KindTransient {
		if d := suggestedBackoff(err); d > 0 {
			return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: err, RetryAfter: d}
		}
	}
	if kind == connector.KindConnect {
		// Refused, timed out, unreachable or refused by the outbound
		// policy all read the same (see errUnreachable).
		return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: &unreachableError{cause: err}}
	}
	return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: err}
}

// suggestedBackoff reads how long a throttling server asks us to wait:
// Microsoft 365 and Exchange answer "Request is throttled. Suggested
// Backoff Time: 10000 milliseconds" (no response code says it). The
// retry layer waits at least that long (connector.Error.RetryAfter).
func suggestedBackoff(err error) time.Duration {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return 0
	}
	text := strings.ToLower(ie.Text)
	i := strings.Index(text, "suggested backoff time")
	if i < 0 {
		return 0
	}
	rest := strings.TrimLeft(text[i+len("suggested backoff time"):], ": ")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	ms, perr := strconv.ParseInt(rest[:end], 10, 64)
	if perr != nil || ms <= 0 {
		return 0
	}
	d := time.Duration(ms) * time.Millisecond
	return min(d, 10*time.Minute) // a hostile or broken server cannot park us for hours
}

// unreachableError is the one text for every way of not reaching an IMAP
// server: connection refused, timed out, host unreachable, refused by the
// service's outbound policy, closed before the greeting, or a server that
// answered something other than IMAP. Telling these apart would let
// whoever can enter a server address map the ports of the network the
// service runs in (a closed port, an open one, a banner's first byte);
// the hint covers all of them. The cause stays reachable with errors.Is
// and errors.As, but its text, which may quote the other end's bytes, is
// never shown.
type unreachableError struct{ cause error }

func (e *unreachableError) Error() string { return "no IMAP server answered" }

func (e *unreachableError) Unwrap() error { return e.cause }

// unreachable is the uniform error for connecting to server.
func unreachable(server string, cause error) error {
	return &connector.Error{Kind: connector.KindConnect, Op: "connect to " + server, Hint: hintConnect, Err: &unreachableError{cause: cause}}
}

// greetingError classifies a failure to read the server's greeting (RFC
// 9051 section 7.1). A greeting that is a proper IMAP response (BYE, for
// a server that is busy) keeps its meaning; anything else means no IMAP
// server is there.
func greetingError(err error, server string) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return classify(err, "connect to "+server)
	}
	return unreachable(server, err)
}

// startTLSError classifies a failed STARTTLS exchange (RFC 9051 section
// 6.2.1): a refused command or a failed handshake are TLS problems, a
// connection on which nothing IMAP answered is not reachable.
func startTLSError(err error, server string) error {
	op := "connect to " + server
	if isTLSError(err) {
		return tlsError(err, op)
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return unreachable(server, err)
	}
	e := classify(err, op+" (STARTTLS)")
	var ce *connector.Error
	if errors.As(e, &ce) && ce.Kind != connector.KindTransient {
		ce.Kind, ce.Hint = connector.KindTLS, hintTLS
	}
	return e
}

func kindOf(err error) (connector.Kind, string) {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return kindOfStatus(ie)
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

// kindOfStatus sorts tagged NO/BAD answers by response code (RFC 5530)
// and, for servers that send none, by the wording major servers use.
func kindOfStatus(e *imap.Error) (connector.Kind, string) {
	text := strings.ToLower(e.Text)
	switch e.Code {
	case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed, imap.ResponseCodeExpired,
		imap.ResponseCodePrivacyRequired, imap.ResponseCodeContactAdmin:
		return connector.KindAuth, hintAuth
	case imap.ResponseCodeTooBig:
		return connector.KindItem, hintTooBig
	case imap.ResponseCodeOverQuota:
		return connector.KindQuota, hintQuota
	case imap.ResponseCodeUnavailable, imap.ResponseCodeLimit, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
		return connector.KindTransient, hintThrottle
	case imap.ResponseCodeNonExistent, imap.ResponseCodeTryCreate:
		return connector.KindMissingFolder, hintMissingFolder
	}
	switch {
	case strings.Contains(text, "throttl"), strings.Contains(text, "try again"), strings.Contains(text, "too many"),
		strings.Contains(text, "server busy"), strings.Contains(text, "temporar"):
		return connector.KindTransient, hintThrottle
	case strings.Contains(text, "quota"), strings.Contains(text, "mailbox is full"), strings.Contains(text, "no space"):
		return connector.KindQuota, hintQuota
	case strings.Contains(text, "maximum size"), strings.Contains(text, "too large"), strings.Contains(text, "too big"),
		strings.Contains(text, "message size"):
		return connector.KindItem, hintTooBig
	case strings.Contains(text, "mailbox doesn't exist"), strings.Contains(text, "mailbox does not exist"),
		strings.Contains(text, "no such mailbox"), strings.Contains(text, "unknown mailbox"):
		return connector.KindMissingFolder, hintMissingFolder
	}
	return connector.KindItem, ""
}

// handshakeError classifies a failed implicit-TLS handshake (RFC 8314):
// a server that speaks TLS but fails the checks is a TLS problem, one that
// answered a plain IMAP greeting is on a port without TLS, and anything
// else is not an IMAP server at all.
func handshakeError(err error, server string) error {
	var rec tls.RecordHeaderError
	if (errors.As(err, &rec) && !looksLikeIMAP(rec.RecordHeader[:])) || !isTLSError(err) {
		return unreachable(server, err)
	}
	return tlsError(err, "connect to "+server)
}

// looksLikeIMAP reports whether the first bytes a server sent are the
// start of an IMAP greeting ("* OK", "* PREAUTH", "* BYE").
func looksLikeIMAP(b []byte) bool {
	s := strings.ToUpper(string(b))
	return strings.HasPrefix(s, "* OK") || strings.HasPrefix(s, "* PRE") || strings.HasPrefix(s, "* BYE")
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
		return "the server answered without encryption; the port expects STARTTLS or no encryption"
	}
	return "TLS handshake failed"
}
