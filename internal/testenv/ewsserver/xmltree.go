package ewsserver

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespaces of SOAP 1.1 and EWS. Requests must use exactly these URIs:
// Exchange validates the SOAP body against types.xsd and messages.xsd,
// whose targetNamespace attributes are nsTypes and nsMessages.
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
	nsXML      = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS    = "xmlns"
)

// Limits that keep a hostile request (or the fuzzer) from exhausting
// memory or the stack. Real requests nest fewer than 15 levels.
const (
	maxDepth = 64
	maxNodes = 1 << 20
)

// node is one element of a parsed request. Namespaces are resolved: ns is
// the namespace URI, never a prefix.
type node struct {
	ns, local string
	attrs     []xml.Attr // without xmlns declarations
	children  []*node
	text      strings.Builder
	line, col int
}

func (n *node) String() string { return n.qname() }

// qname names the element the way .NET's schema validator does in its
// messages: 'namespace:Local'.
func (n *node) qname() string {
	if n.ns == "" {
		return n.local + "' (in no namespace; EWS elements are in '" + nsMessages + "' and '" + nsTypes + "')"
	}
	return n.ns + ":" + n.local
}

// attr returns the value of an unqualified attribute.
func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// child returns the first child with the given namespace and local name.
func (n *node) child(ns, local string) *node {
	for _, c := range n.children {
		if c.ns == ns && c.local == local {
			return c
		}
	}
	return nil
}

// all returns the children with the given namespace and local name.
func (n *node) all(ns, local string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.ns == ns && c.local == local {
			out = append(out, c)
		}
	}
	return out
}

// value is the element's text with surrounding white space removed, which
// is how xs:boolean, xs:int, xs:dateTime and enumerations are compared.
func (n *node) value() string { return strings.TrimSpace(n.text.String()) }

// parseError is a request that is not well-formed XML. Exchange reports it
// as ErrorSchemaValidation with the line and position (see the AddImGroup
// error response on learn.microsoft.com).
type parseError struct {
	line, col int
	msg       string
}

func (e *parseError) Error() string {
	return fmt.Sprintf("%s Line %d, position %d.", e.msg, e.line, e.col)
}

// parseXML reads one XML document into a tree. It refuses DTDs (Exchange's
// XmlReader prohibits them, and they are the way to entity-expansion
// attacks), processing instructions other than the XML declaration, and
// text outside the root element.
func parseXML(r io.Reader) (*node, error) {
	d := xml.NewDecoder(r)
	d.Strict = true
	var (
		stack []*node
		root  *node
		count int
	)
	for {
		tok, err := d.Token()
		line, col := d.InputPos()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &parseError{line: se.Line, col: col, msg: se.Msg + "."}
			}
			return nil, &parseError{line: line, col: col, msg: err.Error() + "."}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, &parseError{line, col, "There are multiple root elements."}
			}
			if len(stack) >= maxDepth {
				return nil, &parseError{line, col, "The document is nested too deeply."}
			}
			if count++; count > maxNodes {
				return nil, &parseError{line, col, "The document has too many elements."}
			}
			// encoding/xml leaves an unbound prefix in Name.Space; a
			// namespace name is a URI and always has a colon.
			if t.Name.Space != "" && !strings.Contains(t.Name.Space, ":") {
				return nil, &parseError{line, col, fmt.Sprintf("'%s' is an undeclared prefix.", t.Name.Space)}
			}
			n := &node{ns: t.Name.Space, local: t.Name.Local, line: line, col: col}
			for _, a := range t.Attr {
				if a.Name.Space == nsXMLNS || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if a.Name.Space != "" && a.Name.Space != "xml" && !strings.Contains(a.Name.Space, ":") {
					return nil, &parseError{line, col, fmt.Sprintf("'%s' is an undeclared prefix.", a.Name.Space)}
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, &parseError{line, col, "Data at the root level is invalid."}
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		case xml.Directive:
			return nil, &parseError{line, col, "For security reasons DTD is prohibited in this XML document."}
		case xml.ProcInst:
			if t.Target != "xml" || root != nil {
				return nil, &parseError{line, col, "Unexpected XML declaration or processing instruction."}
			}
		case xml.Comment:
		}
	}
	if root == nil {
		return nil, &parseError{1, 1, "Root element is missing."}
	}
	return root, nil
}
