package graphserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// query is the parsed OData system query options of one request.
type query struct {
	sel             []string // canonical property names; nil: default set
	top             int      // 0: not given
	skip            int
	expandEP        []extPropID // $expand=singleValueExtendedProperties($filter=id eq '...')
	expandEPAll     bool
	includeHidden   bool
	changeType      string // delta custom option
	filter, orderby string
}

// parseSelect parses a $select value against the property names of typ
// (case-insensitively, as Outlook resources accept) and returns canonical
// names. OData URL conventions section 5.1.3.
func parseSelect(v string, props []string, typ string) ([]string, *graphError) {
	if strings.TrimSpace(v) == "" {
		return nil, newError(http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: The $select expression is empty.")
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		name := strings.TrimSpace(item)
		if name == "" {
			return nil, newError(http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: Syntax error at position %d in '%s'.", strings.Index(v, ",,")+1, v)
		}
		canon := ""
		for _, p := range props {
			if strings.EqualFold(p, name) {
				canon = p
				break
			}
		}
		if canon == "" {
			return nil, errSelect(name, typ)
		}
		out = append(out, canon)
	}
	return out, nil
}

// parseExpandExtProps parses $expand as Outlook supports it for extended
// properties: singleValueExtendedProperties($filter=id eq 'X' or id eq 'Y').
// Other navigation properties are refused (LIMITS.md).
func parseExpandExtProps(v, typ string) ([]extPropID, bool, *graphError) {
	s := strings.TrimSpace(v)
	const nav = "singlevalueextendedproperties"
	if len(s) < len(nav) || !strings.EqualFold(s[:len(nav)], nav) {
		name := s
		if i := strings.IndexAny(name, "(,"); i >= 0 {
			name = name[:i]
		}
		return nil, false, errSelect(strings.TrimSpace(name), typ)
	}
	rest := strings.TrimSpace(s[len(nav):])
	if rest == "" {
		return nil, true, nil
	}
	if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
		return nil, false, newError(http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: Found an unbalanced bracket expression.")
	}
	inner := strings.TrimSpace(rest[1 : len(rest)-1])
	const f = "$filter="
	if len(inner) < len(f) || !strings.EqualFold(inner[:len(f)], f) {
		return nil, false, newError(http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: only $filter is supported inside singleValueExtendedProperties().")
	}
	ids, err := parseIDFilter(inner[len(f):])
	if err != nil {
		return nil, false, newError(http.StatusBadRequest, "BadRequest", "Invalid filter clause: %v", err)
	}
	var out []extPropID
	for _, id := range ids {
		p, err := parseExtPropID(id)
		if err != nil {
			return nil, false, newError(http.StatusBadRequest, "ErrorInvalidExtendedProperty", "The extended property attribute combination is invalid.")
		}
		out = append(out, p)
	}
	return out, false, nil
}

// parseIDFilter parses "id eq 'A' or id eq 'B'" (OData string literals,
// ” escapes a quote).
func parseIDFilter(s string) ([]string, error) {
	var ids []string
	rest := strings.TrimSpace(s)
	for {
		fields := strings.Fields(rest)
		if len(fields) < 3 || !strings.EqualFold(fields[0], "id") || !strings.EqualFold(fields[1], "eq") {
			return nil, fmt.Errorf("expected id eq '...' at %q", rest)
		}
		i := strings.Index(rest, "'")
		if i < 0 {
			return nil, fmt.Errorf("expected a quoted string at %q", rest)
		}
		lit, n, err := readQuoted(rest[i:])
		if err != nil {
			return nil, err
		}
		ids = append(ids, lit)
		rest = strings.TrimSpace(rest[i+n:])
		if rest == "" {
			return ids, nil
		}
		if len(rest) < 3 || !strings.EqualFold(rest[:3], "or ") {
			return nil, fmt.Errorf("expected 'or' at %q", rest)
		}
		rest = strings.TrimSpace(rest[3:])
	}
}

// readQuoted reads an OData string literal starting at s[0]=='\”; it
// returns the value and the number of bytes consumed.
func readQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, nil
		}
		b.WriteByte(s[i])
	}
	return "", 0, fmt.Errorf("unterminated string literal")
}

// parsePrefer parses Prefer headers (RFC 7240): comma-separated
// preferences, each token[=value], value possibly quoted.
func parsePrefer(h http.Header) map[string]string {
	out := map[string]string{}
	for _, line := range h.Values("Prefer") {
		for _, part := range splitOutsideQuotes(line, ',') {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			// Parameters after ';' are ignored.
			if i := strings.IndexByte(part, ';'); i >= 0 {
				part = part[:i]
			}
			k, v, _ := strings.Cut(part, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			v = strings.Trim(strings.TrimSpace(v), `"`)
			if k != "" {
				if _, dup := out[k]; !dup {
					out[k] = v
				}
			}
		}
	}
	return out
}

func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	inQ := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			inQ = !inQ
		case s[i] == sep && !inQ:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// maxPageSize returns odata.maxpagesize from Prefer, 0 if absent, or an
// error for a value that is not a positive integer.
func maxPageSize(pref map[string]string) (int, *graphError) {
	v, ok := pref["odata.maxpagesize"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, newError(http.StatusBadRequest, "ErrorInvalidRequest", "The value '%s' of the odata.maxpagesize preference is not a positive integer.", v)
	}
	return n, nil
}

// allowedOptions lists, per kind of request, the $-options it accepts.
// Unknown $ options are refused; other (custom) options are ignored, as
// OData allows.
func parseQuery(q url.Values, allowed string, props []string, typ string) (*query, *graphError) {
	out := &query{}
	for k, vs := range q {
		if len(vs) > 1 {
			return nil, newError(http.StatusBadRequest, "BadRequest", "Query option '%s' was specified more than once, but it must be specified at most once.", k)
		}
		v := vs[0]
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "$") && !strings.Contains(allowed, lk+" ") {
			return nil, newError(http.StatusBadRequest, "BadRequest", "The query parameter '%s' is not supported.", k)
		}
		switch lk {
		case "$select":
			sel, err := parseSelect(v, props, typ)
			if err != nil {
				return nil, err
			}
			out.sel = sel
		case "$top", "$skip":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, newError(http.StatusBadRequest, "BadRequest", "Invalid value '%s' for query option '%s'.", v, k)
			}
			if lk == "$top" {
				out.top = n
			} else {
				out.skip = n
			}
		case "$expand":
			ids, all, err := parseExpandExtProps(v, typ)
			if err != nil {
				return nil, err
			}
			out.expandEP, out.expandEPAll = ids, all
		case "$filter":
			out.filter = v
		case "$orderby":
			out.orderby = v
		case "includehiddenfolders":
			out.includeHidden = strings.EqualFold(v, "true")
		case "changetype":
			switch v {
			case "created", "updated", "deleted":
				out.changeType = v
			default:
				return nil, newError(http.StatusBadRequest, "ErrorInvalidRequest", "The value '%s' of changeType is not one of created, updated, deleted.", v)
			}
		}
	}
	return out, nil
}

// encodeQuery encodes like url.Values.Encode but keeps '$' in option
// names literal, as Graph's own @odata.nextLink URLs do.
func encodeQuery(v url.Values) string {
	return strings.ReplaceAll(v.Encode(), "%24", "$")
}
