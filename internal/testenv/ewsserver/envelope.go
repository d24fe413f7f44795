package ewsserver

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// reqCtx is one request being answered.
type reqCtx struct {
	s       *Server
	acct    *user
	mbx     *mailbox // the mailbox acted on: the impersonated one, else the account's
	version string
	op      *node
	opName  string
	// forced, if set, is returned in every response message (an injected
	// FaultMessages fault).
	forced *itemError
	codes  []string
}

// versionRank orders the RequestServerVersion values this server accepts.
// It accepts Exchange 2010 through Exchange 2016 as an Exchange 2016
// server does for clients written against those schemas; Exchange2007
// values and the Exchange Online-only V20xx values are refused.
func versionRank(v string) int {
	switch v {
	case "Exchange2010":
		return 1
	case "Exchange2010_SP1":
		return 2
	case "Exchange2010_SP2":
		return 3
	case "Exchange2013":
		return 4
	case "Exchange2013_SP1":
		return 5
	case "Exchange2015":
		return 6
	case "Exchange2016":
		return 7
	}
	return 0
}

// atLeast2013 is true for requests whose schema version has the elements
// Exchange 2013 added, such as item:Flag.
func (c *reqCtx) atLeast2013() bool { return versionRank(c.version) >= versionRank("Exchange2013") }

// prepare parses and validates a request and resolves whose mailbox it
// acts on. Every refusal is a SOAP fault, as Exchange answers problems
// with the envelope, the headers or the schema.
func (s *Server) prepare(body []byte, acct *user, rec *Request) (*reqCtx, *soapFault) {
	root, err := parseXML(bytes.NewReader(body))
	if err != nil {
		var pe *parseError
		if errors.As(err, &pe) {
			return nil, schemaFault(pe.line, pe.col, pe.Error())
		}
		return nil, schemaFault(1, 1, err.Error())
	}
	if root.ns != nsSOAP || root.local != "Envelope" {
		return nil, schemaFault(root.line, root.col, fmt.Sprintf("The root element is '%s' in namespace '%s'; a SOAP 1.1 request must be an 'Envelope' in namespace '%s'.", root.local, root.ns, nsSOAP))
	}
	var header, bodyEl *node
	for i, ch := range root.children {
		switch {
		case ch.ns == nsSOAP && ch.local == "Header" && i == 0:
			header = ch
		case ch.ns == nsSOAP && ch.local == "Body" && bodyEl == nil:
			bodyEl = ch
		default:
			return nil, schemaFault(ch.line, ch.col, fmt.Sprintf("The element 'Envelope' in namespace '%s' has invalid child element '%s' in namespace '%s'. List of possible elements expected: 'Header', 'Body' in namespace '%s'.", nsSOAP, ch.local, ch.ns, nsSOAP))
		}
	}
	if bodyEl == nil {
		return nil, schemaFault(root.line, root.col, fmt.Sprintf("The element 'Envelope' in namespace '%s' has incomplete content. List of possible elements expected: 'Body' in namespace '%s'.", nsSOAP, nsSOAP))
	}
	if len(bodyEl.children) != 1 || strings.TrimSpace(bodyEl.text.String()) != "" {
		return nil, &soapFault{code: "ErrorInvalidRequest", text: "The request is invalid: the SOAP Body must contain exactly one operation element."}
	}
	op := bodyEl.children[0]
	rec.Op = op.local
	c := &reqCtx{s: s, acct: acct, op: op, opName: op.local}

	// Header entries.
	var impersonation *node
	if header != nil {
		for _, h := range header.children {
			if h.ns != nsTypes {
				if h.ns == nsMessages || h.ns == nsSOAP {
					return nil, schemaFault(h.line, h.col, fmt.Sprintf("The element '%s' in namespace '%s' is not a declared SOAP header for EWS.", h.local, h.ns))
				}
				if mu, ok := attrNS(h, nsSOAP, "mustUnderstand"); ok && (mu == "1" || mu == "true") {
					return nil, &soapFault{code: "MustUnderstand", text: fmt.Sprintf("The header '%s' in namespace '%s' was not understood.", h.local, h.ns)}
				}
				continue // other header entries are ignored (SOAP 1.1 section 4.2)
			}
			decl := s.schema.header[h.local]
			if decl == nil {
				return nil, schemaFault(h.line, h.col, fmt.Sprintf("The '%s' element is not declared.", h.qname()))
			}
			if err := validate(h, decl.typ); err != nil {
				return nil, validationFault(err)
			}
			if decl.notImpl {
				return nil, notImplFault(&notImplError{what: "SOAP header " + h.local})
			}
			switch h.local {
			case "RequestServerVersion":
				c.version, _ = h.attr("Version")
				rec.Version = c.version
			case "ExchangeImpersonation":
				impersonation = h
			}
		}
	}
	// The body: an operation from messages.xsd.
	decl := s.schema.ops[op.local]
	if op.ns != nsMessages || decl == nil {
		if op.ns == nsMessages && s.schema.knownOps[op.local] {
			return nil, notImplFault(&notImplError{what: "operation " + op.local})
		}
		return nil, schemaFault(op.line, op.col, fmt.Sprintf("The '%s' element is not declared.", op.qname()))
	}
	if err := validate(op, decl.typ); err != nil {
		return nil, validationFault(err)
	}
	// RequestServerVersion: required from Exchange 2010 on
	// (web-service-reference/requestserverversion).
	switch {
	case c.version == "":
		return nil, &soapFault{code: "ErrorInvalidServerVersion", text: "The request has no RequestServerVersion header; Exchange takes that as Exchange2007, which this server (Exchange 2016) does not accept from Mailferry's clients."}
	case versionRank(c.version) == 0:
		return nil, &soapFault{code: "ErrorInvalidServerVersion", text: fmt.Sprintf("The specified server version %s is invalid for this server; use Exchange2010 through Exchange2016.", c.version)}
	}
	// Impersonation ([ExchangeImpersonation], how-to-identify-the-account-to-impersonate).
	c.mbx = acct.mbx
	if impersonation != nil {
		sid := impersonation.child(nsTypes, "ConnectingSID").children[0]
		if sid.local == "SID" {
			return nil, notImplFault(&notImplError{what: "ConnectingSID/SID (this server has no security identifiers)"})
		}
		addr := sid.value()
		rec.Impersonated = strings.ToLower(addr)
		s.mu.Lock()
		target := s.users[strings.ToLower(addr)]
		if target == nil && sid.local == "PrincipalName" {
			target = s.userByLogin(addr)
		}
		s.mu.Unlock()
		if target == nil || target.mbx == nil {
			return nil, &soapFault{code: "ErrorNonExistentMailbox", text: errorText("ErrorNonExistentMailbox")}
		}
		if target != acct && !acct.canImpersonate {
			return nil, &soapFault{code: "ErrorImpersonateUserDenied", text: errorText("ErrorImpersonateUserDenied")}
		}
		c.mbx = target.mbx
	}
	return c, nil
}

func attrNS(n *node, ns, local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == ns && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

func validationFault(err error) *soapFault {
	var se *schemaError
	if errors.As(err, &se) {
		return schemaFault(se.line, se.col, se.msg)
	}
	var ne *notImplError
	if errors.As(err, &ne) {
		return notImplFault(ne)
	}
	return schemaFault(1, 1, err.Error())
}

// notImplFault refuses what this server does not implement. The code is
// deliberately not an Exchange code, so that no client mistakes it for a
// real answer.
func notImplFault(e *notImplError) *soapFault {
	return &soapFault{code: "ErrorNotImplementedInTestServer", text: e.Error()}
}

// dispatch runs the operation and returns the response document, or a
// fault if the operation refused the request as a whole.
func (s *Server) dispatch(c *reqCtx) ([]byte, *soapFault) {
	var msgs xw
	var fault *soapFault
	s.mu.Lock()
	switch c.opName {
	case "FindFolder":
		fault = s.findFolder(c, &msgs)
	case "GetFolder":
		fault = s.getFolder(c, &msgs)
	case "CreateFolder":
		fault = s.createFolder(c, &msgs)
	case "FindItem":
		fault = s.findItem(c, &msgs)
	case "GetItem":
		fault = s.getItem(c, &msgs)
	case "CreateItem":
		fault = s.createItem(c, &msgs)
	case "UpdateItem":
		fault = s.updateItem(c, &msgs)
	case "DeleteItem":
		fault = s.deleteItem(c, &msgs)
	case "SyncFolderItems":
		fault = s.syncFolderItems(c, &msgs)
	}
	s.mu.Unlock()
	if fault != nil {
		return nil, fault
	}
	var w xw
	writeEnvelopeStart(&w)
	name := "m:" + c.opName + "Response"
	w.open(name, "xmlns:m", nsMessages, "xmlns:t", nsTypes)
	w.open("m:ResponseMessages")
	w.b.Write(msgs.b.Bytes())
	w.close("m:ResponseMessages")
	w.close(name)
	writeEnvelopeEnd(&w)
	return w.b.Bytes(), nil
}

// message writes one response message and notes its code.
func (c *reqCtx) message(w *xw, e *itemError, body func(*xw), errBody func(*xw)) {
	name := "m:" + c.opName + "ResponseMessage"
	if e == nil && c.forced != nil {
		e = c.forced
	}
	if e != nil {
		c.codes = append(c.codes, e.code)
		writeMessage(w, name, e, errBody)
		return
	}
	c.codes = append(c.codes, "NoError")
	writeMessage(w, name, nil, body)
}
