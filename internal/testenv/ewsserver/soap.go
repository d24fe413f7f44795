package ewsserver

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
)

// xw writes XML. Names are written with their prefix as given; the caller
// declares the prefixes.
type xw struct{ b bytes.Buffer }

func (w *xw) open(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteByte('>')
}

func (w *xw) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteByte(' ')
		w.b.WriteString(attrs[i])
		w.b.WriteString(`="`)
		_ = xml.EscapeText(&w.b, []byte(attrs[i+1]))
		w.b.WriteByte('"')
	}
}

func (w *xw) close(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteByte('>')
}

func (w *xw) empty(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteString("/>")
}

func (w *xw) leaf(name, text string, attrs ...string) {
	w.open(name, attrs...)
	_ = xml.EscapeText(&w.b, []byte(text))
	w.close(name)
}

// Exchange 2016 (15.1) answers with this ServerVersionInfo; the build
// numbers are illustrative.
func writeEnvelopeStart(w *xw) {
	w.b.WriteString(`<?xml version="1.0" encoding="utf-8"?>`)
	w.open("s:Envelope", "xmlns:s", nsSOAP)
	w.open("s:Header")
	w.empty("h:ServerVersionInfo", "MajorVersion", "15", "MinorVersion", "1", "MajorBuildNumber", "2507", "MinorBuildNumber", "6",
		"Version", "V2017_07_11", "xmlns:h", nsTypes, "xmlns", nsTypes,
		"xmlns:xsd", "http://www.w3.org/2001/XMLSchema", "xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	w.close("s:Header")
	w.open("s:Body", "xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance", "xmlns:xsd", "http://www.w3.org/2001/XMLSchema")
}

func writeEnvelopeEnd(w *xw) {
	w.close("s:Body")
	w.close("s:Envelope")
}

// soapFault is an error answered with HTTP 500 and a SOAP 1.1 fault, in
// the shape learn.microsoft.com shows for Exchange 2013 and later (e.g.
// the GetServiceConfiguration and AddImGroup error responses):
// faultcode in the types namespace, detail with e:ResponseCode,
// e:Message and t:MessageXml.
type soapFault struct {
	code    string // EWS response code
	text    string // faultstring
	message string // e:Message; defaults to text
	// line, col and violation fill MessageXml for schema errors.
	line, col int
	violation string
	// backOff, if positive, adds <t:Value Name="BackOffMilliseconds">.
	backOff int64
	status  int // HTTP status, default 500
}

func (f *soapFault) Error() string { return f.code + ": " + f.text }

func schemaFault(line, col int, violation string) *soapFault {
	return &soapFault{code: "ErrorSchemaValidation", text: "The request failed schema validation: " + violation,
		message: "The request failed schema validation.", line: line, col: col, violation: violation}
}

func (f *soapFault) write(rw http.ResponseWriter) {
	var w xw
	w.b.WriteString(`<?xml version="1.0" encoding="utf-8"?>`)
	w.open("s:Envelope", "xmlns:s", nsSOAP)
	w.open("s:Body")
	w.open("s:Fault")
	w.leaf("faultcode", "a:"+f.code, "xmlns:a", nsTypes)
	w.leaf("faultstring", f.text, "xml:lang", "en-US")
	w.open("detail")
	w.leaf("e:ResponseCode", f.code, "xmlns:e", nsErrors)
	msg := f.message
	if msg == "" {
		msg = f.text
	}
	w.leaf("e:Message", msg, "xmlns:e", nsErrors)
	if f.violation != "" || f.backOff > 0 {
		w.open("t:MessageXml", "xmlns:t", nsTypes)
		if f.violation != "" {
			w.leaf("t:LineNumber", strconv.Itoa(f.line))
			w.leaf("t:LinePosition", strconv.Itoa(f.col))
			w.leaf("t:Violation", f.violation)
		}
		if f.backOff > 0 {
			w.leaf("t:Value", strconv.FormatInt(f.backOff, 10), "Name", "BackOffMilliseconds")
		}
		w.close("t:MessageXml")
	}
	w.close("detail")
	w.close("s:Fault")
	w.close("s:Body")
	w.close("s:Envelope")
	status := f.status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write(w.b.Bytes())
}

// itemError is an error for one response message: ResponseClass="Error"
// with MessageText, ResponseCode, DescriptiveLinkKey and optionally
// MessageXml (ResponseMessageType in messages.xsd).
type itemError struct {
	code, text string
	class      string // "Error" (default) or "Warning"
	backOff    int64
	fieldURI   string // MessageXml t:FieldURI, for ErrorInvalidPropertyRequest
}

func (e *itemError) Error() string { return e.code + ": " + e.text }

// writeMessage writes one response message. body writes the elements
// that follow ResponseCode (Folders, Items, RootFolder, ...); for an error
// errBody writes the elements an error response still carries, such as
// the empty m:Items that ItemInfoResponseMessageType requires.
func writeMessage(w *xw, name string, e *itemError, body func(*xw)) {
	if e == nil {
		w.open(name, "ResponseClass", "Success")
		w.leaf("m:ResponseCode", "NoError")
		if body != nil {
			body(w)
		}
		w.close(name)
		return
	}
	class := e.class
	if class == "" {
		class = "Error"
	}
	w.open(name, "ResponseClass", class)
	w.leaf("m:MessageText", e.text)
	w.leaf("m:ResponseCode", e.code)
	w.leaf("m:DescriptiveLinkKey", "0")
	if e.backOff > 0 || e.fieldURI != "" {
		w.open("m:MessageXml")
		if e.fieldURI != "" {
			w.empty("t:FieldURI", "FieldURI", e.fieldURI)
		}
		if e.backOff > 0 {
			w.leaf("t:Value", strconv.FormatInt(e.backOff, 10), "Name", "BackOffMilliseconds")
		}
		w.close("m:MessageXml")
	}
	if body != nil {
		body(w)
	}
	w.close(name)
}

// Texts Exchange uses for common response codes (from the error examples
// on learn.microsoft.com where one is shown; otherwise worded after the
// ResponseCode reference page).
func errorText(code string) string {
	switch code {
	case "ErrorInvalidIdMalformed":
		return "Id is malformed."
	case "ErrorInvalidIdEmpty":
		return "Id must be non-empty."
	case "ErrorItemNotFound":
		return "The specified object was not found in the store."
	case "ErrorFolderNotFound":
		return "The specified folder could not be found in the store."
	case "ErrorFolderExists":
		return "A folder with the specified name already exists."
	case "ErrorParentFolderNotFound":
		return "The parent folder could not be found."
	case "ErrorInvalidSyncStateData":
		return "Synchronization state data is corrupt or otherwise invalid."
	case "ErrorMessageSizeExceeded":
		return "The message exceeds the maximum supported size."
	case "ErrorQuotaExceeded":
		return "The mailbox quota has been exceeded."
	case "ErrorBatchProcessingStopped":
		return "Because of previous errors, this item was not processed."
	case "ErrorInvalidPropertyRequest":
		return "Property is not valid for this object type."
	case "ErrorServerBusy":
		return "The server cannot service this request right now. Try again later."
	case "ErrorTooManyObjectsOpened":
		return "Too many objects are opened on the server at the same time. Try again later."
	case "ErrorExceededConnectionCount":
		return "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed."
	case "ErrorItemSave":
		return "The item could not be saved."
	case "ErrorMessageDispositionRequired":
		return "MessageDisposition attribute is required."
	case "ErrorChangeKeyRequiredForWriteOperations":
		return "When making a request that requires a change key, the change key must be supplied."
	case "ErrorIrresolvableConflict":
		return "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."
	case "ErrorMimeContentInvalidBase64String":
		return "The MIME content is not a valid base64 string."
	case "ErrorNonExistentMailbox":
		return "The SMTP address has no mailbox associated with it."
	case "ErrorImpersonateUserDenied":
		return "The account does not have permission to impersonate the requested user."
	case "ErrorMissingEmailAddress":
		return "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folders."
	case "ErrorAccessDenied":
		return "Access is denied. Check credentials and try again."
	case "ErrorInvalidPagingMaxRows":
		return "The MaxEntriesReturned value must be greater than zero."
	case "ErrorInvalidIndexedPagingParameters":
		return "The paging offset cannot be negative."
	case "ErrorIncorrectUpdatePropertyCount":
		return "An object within a change description must contain one and only one property to modify."
	case "ErrorInvalidPropertySet":
		return "The property cannot be set."
	case "ErrorNoFolderClassOverride":
		return "The folder class cannot be set on a typed folder."
	case "ErrorDeleteDistinguishedFolder":
		return "Distinguished folders cannot be deleted."
	case "ErrorInvalidServerVersion":
		return "The specified server version is invalid."
	case "ErrorIncorrectSchemaVersion":
		return "The request is valid but does not specify the correct server version in the RequestServerVersion SOAP header."
	case "ErrorInvalidOperation":
		return "The operation is not valid."
	}
	return fmt.Sprintf("%s.", code)
}

func newItemError(code string) *itemError { return &itemError{code: code, text: errorText(code)} }
