package graphserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// graphError is Graph's error body: a single "error" object with code,
// message and innerError (https://learn.microsoft.com/graph/errors).
type graphError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sets Retry-After when > 0
	Header     http.Header   // extra response headers (WWW-Authenticate)
}

func (e *graphError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func newError(status int, code, format string, args ...any) *graphError {
	return &graphError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors, with the codes and messages the real service is documented
// or reported to use (see LIMITS.md for the source of each).
func errNotSupported() *graphError {
	// Reported for an unsupported method on an existing resource
	// (microsoft-graph-docs-contrib issue 2755).
	return newError(http.StatusMethodNotAllowed, "ErrorInvalidRequest", "The OData request is not supported.")
}

func errSegment(seg string) *graphError {
	return newError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg)
}

func errItemNotFound() *graphError {
	return newError(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

func errInvalidUser(id string) *graphError {
	return newError(http.StatusNotFound, "ErrorInvalidUser", "The requested user '%s' is invalid.", id)
}

func errAccessDenied() *graphError {
	return newError(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
}

func errBodyRead(format string, args ...any) *graphError {
	return newError(http.StatusBadRequest, "RequestBodyRead", format, args...)
}

func errUnknownProperty(name, typ string) *graphError {
	return errBodyRead("The property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", name, typ)
}

func errSelect(name, typ string) *graphError {
	return newError(http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '%s' on type '%s'.", name, typ)
}

func errMediaType(ct string) *graphError {
	return newError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The content type '%s' is not supported for this request.", ct)
}

// writeError writes e as Graph does: status, optional Retry-After, and the
// JSON body with innerError's date and request-id.
func writeError(w http.ResponseWriter, e *graphError, requestID string, now time.Time) {
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(errorBody(e, requestID, now))
}

func errorBody(e *graphError, requestID string, now time.Time) []byte {
	body := map[string]any{"error": map[string]any{
		"code":    e.Code,
		"message": e.Message,
		"innerError": map[string]any{
			"date":              now.UTC().Format("2006-01-02T15:04:05"),
			"request-id":        requestID,
			"client-request-id": requestID,
		},
	}}
	b, _ := json.Marshal(body)
	return b
}
