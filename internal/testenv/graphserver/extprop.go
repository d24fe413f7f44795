package graphserver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// extPropID is a single-value extended property id in one of the three
// documented forms (singleValueLegacyExtendedProperty resource):
//
//	{type} {proptag}                 Integer 0x0E07
//	{type} {guid} Name {name}        String {00020329-...} Name Foo
//	{type} {guid} Id {id}            Integer {...} Id 0x8502
type extPropID struct {
	typ  string // canonical case, e.g. "Integer", "SystemTime"
	tag  uint32 // proptag form: property id (16 bits)
	guid string // lowercase, without braces
	name string
	num  uint32
	kind byte // 't' tag, 'n' name, 'i' id
}

// Property ids the server gives meaning to ([MS-OXPROPS]).
const (
	tagMessageFlags   = 0x0E07 // PidTagMessageFlags, Integer
	tagDeliveryTime   = 0x0E06 // PidTagMessageDeliveryTime, SystemTime
	tagClientSubmit   = 0x0039 // PidTagClientSubmitTime, SystemTime
	tagMessageSize    = 0x0E08 // PidTagMessageSize, Integer
	msgflagRead       = 0x01   // mfRead
	msgflagUnsent     = 0x08   // mfUnsent: the message is a draft
	extTypeInteger    = "Integer"
	extTypeSystemTime = "SystemTime"
)

var extTypes = []string{"ApplicationTime", "Binary", "Boolean", "CLSID", "Currency", "Double", "Float", "Integer", "Long", "Object", "Short", "String", "SystemTime"}

var guidRE = regexp.MustCompile(`^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$`)

func parseExtPropID(s string) (extPropID, error) {
	var p extPropID
	typ, rest, ok := strings.Cut(s, " ")
	if !ok {
		return p, fmt.Errorf("no space after the type in %q", s)
	}
	for _, t := range extTypes {
		if strings.EqualFold(t, typ) {
			p.typ = t
		}
	}
	if p.typ == "" {
		return p, fmt.Errorf("unknown property type %q", typ)
	}
	if strings.HasPrefix(rest, "{") {
		g, after, ok := strings.Cut(rest, " ")
		if !ok || !guidRE.MatchString(g) {
			return p, fmt.Errorf("bad property set GUID in %q", s)
		}
		p.guid = strings.ToLower(strings.Trim(g, "{}"))
		kw, val, ok := strings.Cut(after, " ")
		if !ok || val == "" {
			return p, fmt.Errorf("expected Name or Id after the GUID in %q", s)
		}
		switch {
		case strings.EqualFold(kw, "Name"):
			p.kind, p.name = 'n', val
		case strings.EqualFold(kw, "Id"):
			n, err := parseNum(val)
			if err != nil {
				return p, err
			}
			p.kind, p.num = 'i', n
		default:
			return p, fmt.Errorf("expected Name or Id, got %q", kw)
		}
		return p, nil
	}
	n, err := parseNum(rest)
	if err != nil {
		return p, err
	}
	if n > 0xFFFF {
		return p, fmt.Errorf("property tag 0x%x has more than 16 bits; give the property id without its type", n)
	}
	p.kind, p.tag = 't', n
	return p, nil
}

func parseNum(v string) (uint32, error) {
	l := strings.ToLower(v)
	var n uint64
	var err error
	if strings.HasPrefix(l, "0x") {
		n, err = strconv.ParseUint(l[2:], 16, 32)
	} else {
		n, err = strconv.ParseUint(l, 10, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("bad number %q", v)
	}
	return uint32(n), nil
}

// String is the canonical form the server returns: lowercase hex without
// leading zeros ("Integer 0xe07"); clients should compare ids parsed, not
// as strings (LIMITS.md).
func (p extPropID) String() string {
	switch p.kind {
	case 'n':
		return fmt.Sprintf("%s {%s} Name %s", p.typ, p.guid, p.name)
	case 'i':
		return fmt.Sprintf("%s {%s} Id 0x%x", p.typ, p.guid, p.num)
	default:
		return fmt.Sprintf("%s 0x%x", p.typ, p.tag)
	}
}

// key identifies the property regardless of the type name's case.
func (p extPropID) key() string { return p.String() }

func (p extPropID) isTag(tag uint32) bool { return p.kind == 't' && p.tag == tag }
