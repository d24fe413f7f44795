package ews

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// Hints shown to users, in the words of an Exchange administrator.
const (
	hintAuth = "Check the user name and password. Exchange accepts the login as DOMAIN\\user, as the user principal name " +
		"(user@corp.example) or as the email address, depending on its setup: if one form is refused, try another. " +
		"If the server allows only Basic or only NTLM authentication, add ?auth=basic or ?auth=ntlm to the address."
	hintNoNTLM = "The server does not offer NTLM authentication at this address. Add ?auth=basic to the address if it " +
		"offers Basic authentication over HTTPS, or ask the administrator which method EWS accepts."
	hintHost = "Check the server name for typos: it is the host name in the Outlook on the web address " +
		"(https://mail.example.com/owa → mail.example.com)."
	hintConnect = "No web server answered at this address and port. Check the Outlook on the web address, and that no " +
		"firewall blocks HTTPS (port 443) to it."
	hintTLS = "The secure (HTTPS) connection could not be set up. If the server uses a self-signed or expired " +
		"certificate and you trust it, run again with --insecure."
	hintNotEWS = "No Exchange Web Services endpoint answered at this address. Enter the Outlook on the web address " +
		"(https://mail.example.com/owa) or the EWS address https://mail.example.com/EWS/Exchange.asmx; behind a proxy " +
		"that serves EWS elsewhere, give its full path with ews+https://host/path."
	hintEWSDisabled = "Exchange refused EWS access for this account (HTTP 403). EWS may be switched off for the mailbox " +
		"(Set-CASMailbox <user> -EWSEnabled $true) or blocked for applications (Get-OrganizationConfig | fl Ews*)."
	hintImpersonation = "The admin account may not act on this mailbox. Grant it the ApplicationImpersonation role in the " +
		"Exchange Management Shell: New-ManagementRoleAssignment -Name MailferryImpersonation -Role ApplicationImpersonation " +
		"-User <admin account>, wait for the change to reach every server (up to an hour), and run again."
	hintAccessDenied = "Exchange refused access to this mailbox for the account logged in. Log in as the mailbox's owner, " +
		"or use an admin account with the ApplicationImpersonation role and name the mailbox to act on."
	hintNoMailbox = "Exchange says this mailbox does not exist. Check the email address (it must be the mailbox's primary " +
		"SMTP address). Mailferry does not create mailboxes: create it on the server first."
	hintLoginHasNoMailbox = "This login has no mailbox of its own. To use an admin account, name the mailbox to act on " +
		"(impersonation), or log in as the mailbox's owner."
	hintVersion = "This Exchange server does not understand EWS requests for Exchange 2013 SP1. Mailferry needs Exchange " +
		"2013 SP1, 2016 or 2019."
	hintProtocol = "Exchange refused a request Mailferry sent or answered in a way EWS does not allow. If this persists, " +
		"report it with the server's version."
	hintThrottle = "Exchange is limiting how fast Mailferry may work (EWS throttling). Mailferry waits as long as the server " +
		"asks and retries by itself; if this persists, lower --connections or ask the administrator for a less strict " +
		"throttling policy."
	hintTemp  = "Exchange reported a temporary problem. Mailferry retries by itself; if this persists, ask the administrator."
	hintStall = "The server stopped answering. Mailferry reconnects and retries by itself; a slow link or an overloaded " +
		"server causes this."
	hintTooBig = "Exchange refuses messages this large. Ask its administrator to raise the limits (the mailbox's " +
		"MaxReceiveSize and EWS's maxAllowedContentLength), or move the attachment by other means."
	hintItemSave = "Exchange could not store this message (it could not convert its MIME). The message stays in the " +
		"source; copy it by other means if it matters."
	hintQuota = "The destination mailbox is full. Ask its administrator for more space, or exclude large folders, then run " +
		"again: what was copied stays copied."
	hintMissingFolder = "The folder does not exist on the server (it may have been deleted or moved during the migration). " +
		"Run again to pick up the current folder list."
	hintVanished = "The message is no longer in the folder (it was deleted or moved). Nothing to do."
)

// serverError is an error Exchange reported: a SOAP fault, an error
// response message or an HTTP status.
type serverError struct {
	Code       string // ResponseCode, e.g. ErrorServerBusy; "" for a bare HTTP status
	Text       string // MessageText or faultstring
	HTTPStatus int
	BackOff    time.Duration // BackOffMilliseconds or Retry-After
}

func (e *serverError) Error() string {
	switch {
	case e.Code != "" && e.Text != "":
		return fmt.Sprintf("Exchange said %s: %s", e.Code, e.Text)
	case e.Code != "":
		return "Exchange said " + e.Code
	}
	return fmt.Sprintf("Exchange answered HTTP %d", e.HTTPStatus)
}

// kindOfCode sorts EWS response codes (web-service-reference/
// responsecode) by what the engine does about them.
func kindOfCode(code string) (connector.Kind, string) {
	switch code {
	case "ErrorServerBusy", "ErrorExceededConnectionCount", "ErrorTooManyObjectsOpened",
		"ErrorExceededFindCountLimit", "ErrorExceededSubscriptionCount", "ErrorInternalServerTransientError",
		"ErrorMailboxStoreUnavailable", "ErrorMailboxMoveInProgress", "ErrorTimeoutExpired",
		"ErrorConnectionFailed", "ErrorADUnavailable", "ErrorInternalServerError", "ErrorRpcCircularRedirect",
		"ErrorBatchProcessingStopped":
		if code == "ErrorServerBusy" || code == "ErrorExceededConnectionCount" || code == "ErrorTooManyObjectsOpened" ||
			code == "ErrorExceededFindCountLimit" {
			return connector.KindTransient, hintThrottle
		}
		return connector.KindTransient, hintTemp
	case "ErrorQuotaExceeded":
		return connector.KindQuota, hintQuota
	case "ErrorMessageSizeExceeded":
		return connector.KindItem, hintTooBig
	case "ErrorItemSave", "ErrorItemSavePropertyError", "ErrorMimeContentConversionFailed", "ErrorMimeContentInvalid",
		"ErrorMimeContentInvalidBase64String", "ErrorCorruptData", "ErrorItemCorrupt", "ErrorInvalidExtendedPropertyValue",
		"ErrorContentConversionFailed":
		return connector.KindItem, hintItemSave
	case "ErrorItemNotFound", "ErrorInvalidIdMalformed", "ErrorInvalidIdEmpty", "ErrorInvalidIdNotAnItemAttachmentId",
		"ErrorMoveCopyFailed":
		return connector.KindItem, hintVanished
	case "ErrorNonExistentMailbox":
		return connector.KindNoAccount, hintNoMailbox
	case "ErrorMissingEmailAddress", "ErrorMissingEmailAddressForManagedFolder":
		return connector.KindNoAccount, hintLoginHasNoMailbox
	case "ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed":
		return connector.KindPermission, hintImpersonation
	case "ErrorAccessDenied", "ErrorDelegateNoUser", "ErrorNoPublicFolderReplicaAvailable":
		return connector.KindPermission, hintAccessDenied
	case "ErrorAccountDisabled", "ErrorPasswordExpired", "ErrorPasswordChangeRequired":
		return connector.KindAuth, hintAuth
	case "ErrorFolderNotFound", "ErrorParentFolderNotFound", "ErrorSyncFolderNotFound":
		return connector.KindMissingFolder, hintMissingFolder
	case "ErrorInvalidServerVersion", "ErrorIncorrectSchemaVersion":
		return connector.KindConfig, hintVersion
	case "ErrorSchemaValidation", "ErrorInvalidRequest", "ErrorNotImplementedInTestServer", "ErrorInvalidPropertyRequest",
		"ErrorInvalidPropertySet", "ErrorInvalidExtendedProperty", "ErrorInvalidOperation":
		return connector.KindConfig, hintProtocol
	}
	return connector.KindUnknown, ""
}

// serverErr wraps a server's error into a *connector.Error.
func serverErr(se *serverError, op string) error {
	kind, hint := kindOfCode(se.Code)
	if se.Code == "" {
		kind, hint = kindOfStatus(se.HTTPStatus)
	}
	return &connector.Error{Kind: kind, Op: op, Hint: hint, Err: se, RetryAfter: se.BackOff}
}

// kindOfStatus sorts an HTTP status that came without an EWS answer.
func kindOfStatus(status int) (connector.Kind, string) {
	switch {
	case status == 401:
		return connector.KindAuth, hintAuth
	case status == 403:
		return connector.KindPermission, hintEWSDisabled
	case status == 404 || status == 405 || (status >= 300 && status < 400):
		return connector.KindConfig, hintNotEWS
	case status == 413:
		return connector.KindItem, hintTooBig
	case status == 429 || status == 503:
		return connector.KindTransient, hintThrottle
	case status >= 500:
		return connector.KindTransient, hintTemp
	}
	return connector.KindConfig, hintNotEWS
}

// stallError is a read or write that made no progress for the stall
// timeout.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("no data from the server for %v", e.after)
}

// unreachableError is the one text for every way of not reaching a web
// server at the address: refused, timed out, unreachable, refused by the
// operator's outbound policy. Telling them apart would let whoever can
// enter an address map the network the service runs in. The cause stays
// reachable with errors.Is/As.
type unreachableError struct{ cause error }

func (e *unreachableError) Error() string { return "no web server answered" }
func (e *unreachableError) Unwrap() error { return e.cause }

// classify turns any network or TLS error into a *connector.Error.
func classify(err error, op string) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		return err
	}
	var se *serverError
	if errors.As(err, &se) {
		return serverErr(se, op)
	}
	var st *stallError
	if errors.As(err, &st) {
		return &connector.Error{Kind: connector.KindTransient, Op: op, Hint: hintStall, Err: err}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &connector.Error{Kind: connector.KindHost, Op: op, Hint: hintHost, Err: err}
	}
	if isTLSError(err) {
		return &connector.Error{Kind: connector.KindTLS, Op: op, Hint: hintTLS, Err: errors.New(describeTLS(err))}
	}
	var ue *unreachableError
	if errors.As(err, &ue) {
		return &connector.Error{Kind: connector.KindConnect, Op: op, Hint: hintConnect, Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &connector.Error{Kind: connector.KindTransient, Op: op, Hint: hintTemp, Err: err}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return &connector.Error{Kind: connector.KindTransient, Op: op, Hint: hintTemp, Err: err}
	}
	return &connector.Error{Kind: connector.KindUnknown, Op: op, Err: err}
}

func isTLSError(err error) bool {
	var (
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &recErr) || errors.As(err, &alertErr) || errors.As(err, &certErr) ||
		errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "tls: ")
}

// describeTLS says what was wrong with the certificate in plain words.
func describeTLS(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "the server's certificate is not signed by a trusted authority (self-signed?)"
	case errors.As(err, &hostErr):
		return "the server's certificate is for another name: " + hostErr.Error()
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "the server's certificate has expired or is not yet valid"
		}
		return "the server's certificate is not valid: " + invalid.Error()
	}
	return "TLS handshake failed: " + err.Error()
}

// itemErr is a per-message failure: what the engine records with the
// folder, the message and the reason.
func itemErr(op string, status respStatus) error {
	se := &serverError{Code: status.Code, Text: status.Text, BackOff: status.MessageXML.backOff()}
	return serverErr(se, op)
}
