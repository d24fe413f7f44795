package ewsserver

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A small schema validator for the part of types.xsd and messages.xsd this
// server accepts. Exchange validates every request against those schemas
// before it runs the operation and answers a violation with an HTTP 500
// SOAP fault whose code is ErrorSchemaValidation, so a request with an
// unknown element, a missing required element, elements out of sequence
// order or a value outside its simple type never reaches an operation.
//
// The content models below are transcribed from the schema files that
// Exchange serves at /EWS/types.xsd and /EWS/messages.xsd (the versions
// published for Exchange 2013 SP1 through 2016; the element orders used
// here are the same in all of them). Each type names its source.
//
// Elements that are valid per schema but that this server does not
// implement are declared with notImpl: a request using one passes schema
// validation and is then refused with a fault saying so, rather than being
// silently ignored (see LIMITS.md).

const unbounded = -1

type elem struct {
	ns, name string
	typ      *ctype
	notImpl  bool
}

// particle is one step of an xs:sequence: an element, or an xs:choice
// between elements, with its minOccurs and maxOccurs.
type particle struct {
	alts     []*elem
	min, max int
}

type attrDecl struct {
	name     string
	required bool
	check    func(string) error
}

type ctype struct {
	name  string
	seq   []particle
	attrs []attrDecl
	// anyAttrNS allows attributes from this namespace (xs:anyAttribute).
	anyAttrNS string
	// text validates simple content; nil means element-only content.
	text func(string) error
	// lax accepts any content (xs:any processContents="lax").
	lax bool
}

// schemaError is one violation, reported the way .NET's XmlSchemaValidator
// words it, which is what Exchange puts in faultstring and t:Violation.
type schemaError struct {
	line, col int
	msg       string
}

func (e *schemaError) Error() string { return e.msg }

// notImplError is a request that is valid EWS but uses something this
// server does not implement.
type notImplError struct{ what string }

func (e *notImplError) Error() string {
	return fmt.Sprintf("ewsserver: %s is valid EWS but this test server does not implement it (see internal/testenv/ewsserver/LIMITS.md)", e.what)
}

func (e *elem) qname() string { return e.ns + ":" + e.name }

func (e *elem) matches(n *node) bool { return n.ns == e.ns && n.local == e.name }

// validate checks n against t and, recursively, its children. It returns
// the first schema violation; if there is none it returns the first
// element that is declared notImpl, as a *notImplError.
func validate(n *node, t *ctype) error {
	var ni error
	if err := validateNode(n, t, &ni); err != nil {
		return err
	}
	return ni
}

func validateNode(n *node, t *ctype, ni *error) error {
	if err := validateAttrs(n, t); err != nil {
		return err
	}
	if t.lax {
		return nil
	}
	if t.text != nil {
		if len(n.children) > 0 {
			c := n.children[0]
			return &schemaError{c.line, c.col, fmt.Sprintf("The element '%s' in namespace '%s' cannot contain child element '%s' because the parent element's content model is text only.", n.local, n.ns, c.local)}
		}
		if err := t.text(n.value()); err != nil {
			return &schemaError{n.line, n.col, fmt.Sprintf("The '%s' element is invalid - The value '%s' is invalid according to its datatype - %v", n.qname(), n.value(), err)}
		}
		return nil
	}
	if strings.TrimSpace(n.text.String()) != "" {
		return &schemaError{n.line, n.col, fmt.Sprintf("The element '%s' in namespace '%s' cannot contain text.%s", n.local, n.ns, expectedList(t.seq, 0))}
	}
	i, used := 0, 0 // current particle and how often it matched
	for _, c := range n.children {
		for {
			if i >= len(t.seq) {
				return invalidChild(n, c, t, i)
			}
			p := t.seq[i]
			if e := p.match(c); e != nil && (p.max == unbounded || used < p.max) {
				used++
				if e.notImpl && *ni == nil {
					*ni = &notImplError{what: fmt.Sprintf("element %s in %s", c.local, n.local)}
				}
				if e.typ != nil {
					if err := validateNode(c, e.typ, ni); err != nil {
						return err
					}
				}
				break
			}
			if used < p.min {
				return invalidChild(n, c, t, i)
			}
			i, used = i+1, 0
		}
	}
	// Everything after the last matched particle must be optional.
	for ; i < len(t.seq); i, used = i+1, 0 {
		if used < t.seq[i].min {
			return &schemaError{n.line, n.col, fmt.Sprintf("The element '%s' in namespace '%s' has incomplete content.%s", n.local, n.ns, expectedList(t.seq, i))}
		}
	}
	return nil
}

func (p particle) match(n *node) *elem {
	for _, e := range p.alts {
		if e.matches(n) {
			return e
		}
	}
	return nil
}

func invalidChild(n, c *node, t *ctype, i int) error {
	msg := fmt.Sprintf("The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s'.%s", n.local, n.ns, c.local, c.ns, expectedList(t.seq, i))
	// Not part of .NET's wording: say whether the element is merely out of
	// order, which is the mistake a hand-written client makes most.
	for j, p := range t.seq {
		if p.match(c) != nil {
			if j < i {
				msg += fmt.Sprintf(" (The schema's sequence puts '%s' before the element that precedes it here.)", c.local)
			}
			break
		}
	}
	return &schemaError{c.line, c.col, msg}
}

// expectedList names the elements that could come at particle i, as .NET
// lists them.
func expectedList(seq []particle, i int) string {
	var names []string
	for ; i < len(seq); i++ {
		for _, e := range seq[i].alts {
			names = append(names, fmt.Sprintf("'%s' in namespace '%s'", e.name, e.ns))
		}
		if seq[i].min > 0 {
			break
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " List of possible elements expected: " + strings.Join(names, ", ") + "."
}

func validateAttrs(n *node, t *ctype) error {
	for _, a := range n.attrs {
		if a.Name.Space != "" {
			if a.Name.Space == t.anyAttrNS || a.Name.Space == nsXML {
				continue
			}
			return &schemaError{n.line, n.col, fmt.Sprintf("The '%s:%s' attribute is not declared.", a.Name.Space, a.Name.Local)}
		}
		d := t.attr(a.Name.Local)
		if d == nil {
			return &schemaError{n.line, n.col, fmt.Sprintf("The '%s' attribute is not declared.", a.Name.Local)}
		}
		if d.check != nil {
			if err := d.check(strings.TrimSpace(a.Value)); err != nil {
				return &schemaError{n.line, n.col, fmt.Sprintf("The '%s' attribute is invalid - The value '%s' is invalid according to its datatype - %v", a.Name.Local, a.Value, err)}
			}
		}
	}
	for _, d := range t.attrs {
		if d.required {
			if _, ok := n.attr(d.name); !ok {
				return &schemaError{n.line, n.col, fmt.Sprintf("The required attribute '%s' is missing.", d.name)}
			}
		}
	}
	return nil
}

func (t *ctype) attr(name string) *attrDecl {
	for i := range t.attrs {
		if t.attrs[i].name == name {
			return &t.attrs[i]
		}
	}
	return nil
}

// Simple types (XML Schema Part 2).

func xsBoolean(s string) error {
	switch s {
	case "true", "false", "1", "0":
		return nil
	}
	return fmt.Errorf("the string '%s' is not a valid Boolean value", s)
}

func parseBool(s string) bool { s = strings.TrimSpace(s); return s == "true" || s == "1" }

func xsInt(s string) error {
	if _, err := strconv.ParseInt(s, 10, 32); err != nil {
		return fmt.Errorf("the string '%s' is not a valid Int32 value", s)
	}
	return nil
}

func xsLong(s string) error {
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return fmt.Errorf("the string '%s' is not a valid Int64 value", s)
	}
	return nil
}

func intRange(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("the string '%s' is not a valid Int32 value", s)
		}
		if v < lo || v > hi {
			return fmt.Errorf("the value must be between %d and %d (MinInclusive/MaxInclusive constraint failed)", lo, hi)
		}
		return nil
	}
}

// parseDateTime reads xs:dateTime. A value without a zone offset is taken
// as UTC, which is what Exchange does when no TimeZoneContext is sent.
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("the string '%s' is not a valid AllXsd value", s)
}

func xsDateTime(s string) error { _, err := parseDateTime(s); return err }

func xsString(string) error { return nil }

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("the actual length is less than the MinLength value")
	}
	return nil
}

func enum(values ...string) func(string) error {
	return func(s string) error {
		for _, v := range values {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("the Enumeration constraint failed")
	}
}

// Constructors that keep the type tables below readable.

func tEl(name string, typ *ctype) *elem { return &elem{ns: nsTypes, name: name, typ: typ} }
func mEl(name string, typ *ctype) *elem { return &elem{ns: nsMessages, name: name, typ: typ} }

// ni declares elements that are valid but not implemented; their content
// is not checked.
func ni(ns string, names ...string) []*elem {
	out := make([]*elem, len(names))
	for i, n := range names {
		out[i] = &elem{ns: ns, name: n, typ: laxType(), notImpl: true}
	}
	return out
}

func one(e *elem) particle                        { return particle{alts: []*elem{e}, min: 1, max: 1} }
func opt(e *elem) particle                        { return particle{alts: []*elem{e}, min: 0, max: 1} }
func many(e *elem, min int) particle              { return particle{alts: []*elem{e}, min: min, max: unbounded} }
func choice(min, max int, alts ...*elem) particle { return particle{alts: alts, min: min, max: max} }

// optAll makes each element its own optional particle, for long runs of
// minOccurs="0" elements such as ItemType's.
func optAll(es []*elem) []particle {
	out := make([]particle, len(es))
	for i, e := range es {
		out[i] = opt(e)
	}
	return out
}

func seq(parts ...any) []particle {
	var out []particle
	for _, p := range parts {
		switch v := p.(type) {
		case particle:
			out = append(out, v)
		case []particle:
			out = append(out, v...)
		}
	}
	return out
}

func textType(name string, check func(string) error, attrs ...attrDecl) *ctype {
	return &ctype{name: name, text: check, attrs: attrs}
}

// laxType accepts any content (xs:any processContents="lax").
func laxType() *ctype { return &ctype{name: "any", lax: true} }
