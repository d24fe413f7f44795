package ews

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/connector"
)

// client sends EWS operations over a transport.
type client struct {
	t *transport
	// impersonate is the mailbox named in ExchangeImpersonation; "" acts
	// on the login's own mailbox.
	impersonate string
	server      string
	// reached is set once Open's login check got an answer: from then on
	// a refused connection or a failed name lookup is a passing outage
	// (a restart, a load balancer shedding connections), which the retry
	// layer waits out, not a wrong address.
	reached atomic.Bool
}

// marshal writes a whole request.
func (c *client) marshal(op any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(newEnvelope(c.impersonate, op)); err != nil {
		return nil, fmt.Errorf("ews: build request: %w", err)
	}
	return b.Bytes(), nil
}

// call sends one operation and decodes its response element into out.
// what names the operation for errors ("list folders of …").
func (c *client) call(ctx context.Context, what string, req, out any) error {
	body, err := c.marshal(req)
	if err != nil {
		return err
	}
	return c.do(ctx, what, int64(len(body)), func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	}, true, func(r io.Reader) error { return decodeEnvelope(r, out) })
}

// do runs one request. A replayable request (its body can be written
// again) is sent again once when a reused connection turns out to be
// closed before any answer came, or when the server asked an
// authenticated connection to log in again. A request that is not
// replayable is never sent twice: an error after all its bytes went out
// is marked Uncertain.
func (c *client) do(ctx context.Context, what string, n int64, body func(io.Writer) error, replayable bool,
	parse func(io.Reader) error) error {
	for attempt := 0; ; attempt++ {
		x, err := c.t.send(ctx, n, body)
		if err == nil {
			err = x.receive(func(resp *http.Response) error { return handleResponse(resp, parse) })
			if err == nil {
				return nil
			}
		}
		retry, err := c.sorted(ctx, what, err, replayable && attempt == 0)
		if !retry {
			return err
		}
	}
}

// sorted classifies an exchange's error; retry says that a replayable
// request may be sent once more.
func (c *client) sorted(ctx context.Context, what string, err error, mayRetry bool) (retry bool, _ error) {
	retry, err = c.sortedOnce(ctx, what, err, mayRetry)
	var ce *connector.Error
	if c.reached.Load() && errors.As(err, &ce) && (ce.Kind == connector.KindConnect || ce.Kind == connector.KindHost) {
		ce.Kind = connector.KindTransient
	}
	return retry, err
}

func (c *client) sortedOnce(ctx context.Context, what string, err error, mayRetry bool) (retry bool, _ error) {
	if ctx.Err() != nil {
		return false, &connector.Error{Kind: connector.KindTransient, Op: what, Err: ctx.Err()}
	}
	if errors.Is(err, errAuthRetry) {
		if mayRetry {
			return true, nil // send authenticates a new connection, and fails with KindAuth if the login is refused
		}
		if verr := c.t.verifyLogin(ctx); verr != nil {
			return false, classify(verr, what)
		}
		// The login still works: the server dropped this connection's
		// authentication and refused the request before running it.
		return false, &connector.Error{Kind: connector.KindTransient, Op: what, Hint: hintTemp,
			Err: errors.New("the server asked to log in again in the middle of the request")}
	}
	var ne *netErr
	if errors.As(err, &ne) {
		if mayRetry && ne.reused && !ne.response {
			return true, nil
		}
		ce := classify(ne.err, what).(*connector.Error)
		if ce.Kind == connector.KindUnknown {
			ce.Kind = connector.KindTransient
		}
		ce.Uncertain = ne.written
		return false, ce
	}
	return false, classify(err, what)
}

// verifyLogin authenticates a new connection with the probe request: it
// tells a changed password (KindAuth) from a server that only dropped a
// connection's login.
func (t *transport) verifyLogin(ctx context.Context) error {
	x, err := t.send(ctx, int64(len(t.probe)), func(w io.Writer) error {
		_, err := w.Write(t.probe)
		return err
	})
	if err != nil {
		return err
	}
	err = x.receive(func(resp *http.Response) error { return nil })
	if errors.Is(err, errAuthRetry) {
		return &connector.Error{Kind: connector.KindAuth, Op: t.loginOp(), Hint: hintAuth,
			Err: errors.New("the server refused the user name or password")}
	}
	return err
}

// handleResponse checks the HTTP status and content type, then parses
// the SOAP answer. EWS answers 200 for success and for per-message
// errors, 500 with a SOAP fault for request-level errors, 503 when
// requests queue up in IIS (exchange-web-services/ews-throttling-in-
// exchange, table 4).
func handleResponse(resp *http.Response, parse func(io.Reader) error) error {
	isXML := false
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		isXML = mt == "text/xml" || mt == "application/soap+xml" || mt == "application/xml"
	}
	switch {
	case resp.StatusCode == http.StatusOK && isXML:
		return parse(resp.Body)
	case resp.StatusCode == http.StatusInternalServerError && isXML:
		var none struct{}
		err := decodeEnvelope(resp.Body, &none)
		var se *serverError
		if errors.As(err, &se) {
			return err
		}
		return statusError(resp)
	case resp.StatusCode == http.StatusOK:
		// Something else answered 200, e.g. an HTML login page of a
		// reverse proxy (forms-based authentication).
		return &serverError{HTTPStatus: http.StatusNotFound, Text: "the answer is not EWS (" + resp.Header.Get("Content-Type") + ")"}
	}
	return statusError(resp)
}

// errNotSOAP is an answer that is XML but not a SOAP envelope.
var errNotSOAP = errors.New("the answer is not a SOAP envelope")

// decodeEnvelope reads a SOAP envelope and decodes the first element of
// its Body into out; a Fault there becomes a *serverError.
func decodeEnvelope(r io.Reader, out any) error {
	d := xml.NewDecoder(r)
	d.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii") {
			return input, nil
		}
		return nil, fmt.Errorf("answer in charset %q, expected UTF-8", charset)
	}
	depth := 0
	inBody := false
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("ews: %w", io.ErrUnexpectedEOF)
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name.Local != "Envelope" || t.Name.Space != nsSOAP {
					return &serverError{HTTPStatus: http.StatusNotFound, Text: errNotSOAP.Error()}
				}
			case depth == 2 && t.Name.Local == "Body" && t.Name.Space == nsSOAP:
				inBody = true
			case depth == 3 && inBody:
				if t.Name.Local == "Fault" {
					var f soapFault
					if err := d.DecodeElement(&f, &t); err != nil {
						return err
					}
					return faultError(f)
				}
				return d.DecodeElement(out, &t)
			case depth == 2:
				if err := d.Skip(); err != nil {
					return err
				}
				depth--
			}
		case xml.EndElement:
			depth--
			if depth == 1 && inBody {
				return errors.New("ews: empty SOAP body")
			}
		}
	}
}

func faultError(f soapFault) *serverError {
	code := strings.TrimSpace(f.Detail.ResponseCode)
	if code == "" {
		code = strings.TrimSpace(f.Code)
		if i := strings.LastIndexByte(code, ':'); i >= 0 {
			code = code[i+1:]
		}
	}
	text := strings.TrimSpace(f.Detail.Message)
	if text == "" {
		text = strings.TrimSpace(f.String)
	}
	if v := strings.TrimSpace(f.Detail.MessageXML.Violation); v != "" {
		text += " (" + v + ")"
	}
	return &serverError{Code: code, Text: oneLine(text), HTTPStatus: http.StatusInternalServerError, BackOff: f.Detail.MessageXML.backOff()}
}

// oneLine keeps a server's text readable in a log line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// messageErr turns an error response message into a *connector.Error,
// or nil for success.
func messageErr(st respStatus, what string) error {
	if st.ok() {
		return nil
	}
	st.Text = oneLine(st.Text)
	return itemErr(what, st)
}
