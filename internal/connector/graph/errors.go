package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// apiError is a Graph error answer: the status and the documented body
// {"error":{"code","message","innerError":{"request-id"}}}
// (learn.microsoft.com/graph/errors). Code decides; Message is shown.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RequestID  string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("Graph answered %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	return msg
}

// readAPIError reads an error answer; the body is bounded and closed.
func readAPIError(resp *http.Response, retryAfter time.Duration) *apiError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := parseAPIError(resp.StatusCode, b)
	e.RetryAfter = retryAfter
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("request-id")
	}
	return e
}

func parseAPIError(status int, body []byte) *apiError {
	var doc struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	e := &apiError{Status: status}
	if json.Unmarshal(body, &doc) == nil {
		e.Code, e.Message, e.RequestID = doc.Error.Code, doc.Error.Message, doc.Error.InnerError.RequestID
	}
	if len(e.Message) > 300 {
		e.Message = e.Message[:300] + "…"
	}
	e.Message = strings.ToValidUTF8(strings.ReplaceAll(e.Message, "\n", " "), "?")
	return e
}

// access says what an operation needs, for the permission hint.
type access int

const (
	accessRead access = iota
	accessWrite
	accessImport
)

// The hints name the exact application permissions (Microsoft Graph,
// Application type) of each API page's permission table.
func permissionHint(a access) string {
	switch a {
	case accessWrite:
		return "grant the application permission Mail.ReadWrite (Microsoft Graph, Application) and admin consent; if an application access policy limits the app to some mailboxes, add this one"
	case accessImport:
		return "grant the application permission Mail-Advanced.ReadWrite.All (Microsoft Graph, Application) and admin consent to import messages byte for byte"
	}
	return "grant the application permission Mail.Read (or Mail.ReadWrite) (Microsoft Graph, Application) and admin consent; if an application access policy limits the app to some mailboxes, add this one"
}

// sortError turns an answer or transport failure into a connector.Error.
// notFound is the kind a 404 ErrorItemNotFound means here
// (KindMissingFolder for a folder, KindItem for a message); other is the
// kind of any remaining 4xx.
func (c *Conn) sortError(err error, a access, notFound, other connector.Kind, op string, args ...any) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) && !isAPIError(err) {
		return err // already sorted (token endpoint, transport)
	}
	// An uncertain write stays uncertain whatever its kind.
	e := &connector.Error{Op: fmt.Sprintf(op, args...), Err: err, Uncertain: connector.IsUncertain(err)}
	var ae *apiError
	if !errors.As(err, &ae) {
		e.Kind = connector.KindTransient
		return e
	}
	e.RetryAfter = ae.RetryAfter
	code := strings.ToLower(ae.Code)
	switch {
	case ae.Status == http.StatusTooManyRequests || ae.Status >= 500 && ae.Status != http.StatusInsufficientStorage:
		e.Kind = connector.KindTransient
	case ae.Status == http.StatusInsufficientStorage || strings.Contains(code, "quotaexceeded"):
		e.Kind = connector.KindQuota
		e.Hint = "the mailbox is full: raise its quota (Exchange admin center) or delete mail"
	case ae.Status == http.StatusUnauthorized:
		e.Kind = connector.KindAuth
		e.Hint = "Graph refused a newly issued token: check that the app and the mailbox are in the same tenant and that the token is for Microsoft Graph"
	case ae.Status == http.StatusForbidden:
		e.Kind = connector.KindPermission
		e.Hint = permissionHint(a)
	case code == "errorinvaliduser" || code == "mailboxnotenabledforrestapi" || code == "request_resourcenotfound" ||
		code == "resourcenotfound" && ae.Status == http.StatusNotFound && notFound != connector.KindItem:
		e.Kind = connector.KindNoAccount
		e.Hint = "there is no Exchange Online mailbox for this user: check the address, and that the user has a licence with Exchange Online"
	case ae.Status == http.StatusNotFound:
		e.Kind = notFound
	case ae.Status == http.StatusRequestEntityTooLarge || strings.Contains(code, "toolarge") || strings.Contains(code, "sizeexceeded"):
		e.Kind = connector.KindItem
		e.Hint = "the message is larger than Microsoft 365 accepts (35 MB by default; an administrator can raise the mailbox's maximum receive size up to 150 MB)"
	default:
		e.Kind = other
	}
	return e
}

func isAPIError(err error) bool {
	var ae *apiError
	return errors.As(err, &ae)
}

func apiStatus(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Code
	}
	return 0, ""
}
