package gmailimap

import (
	"bytes"
	"strings"
)

// splitMessage splits an RFC 5322 message into its header, blank line
// included (RFC 3501 section 6.4.5: HEADER "including the blank line"),
// and its body. A message without a blank line is all header.
func splitMessage(raw []byte) (header, body []byte) {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[:i+4], raw[i+4:]
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i+2], raw[i+2:]
	}
	return raw, nil
}

// headerFields splits a header into its fields, each with its
// continuation lines and line ends, exactly as stored.
func headerFields(header []byte) [][]byte {
	var out [][]byte
	start := -1 // start of the field being read
	pos := 0
	for pos < len(header) {
		end := bytes.IndexByte(header[pos:], '\n')
		next := len(header)
		if end >= 0 {
			next = pos + end + 1
		}
		line := header[pos:next]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the blank line
		}
		if (line[0] == ' ' || line[0] == '\t') && start >= 0 {
			pos = next
			continue // a continuation line of the current field
		}
		if start >= 0 {
			out = append(out, header[start:pos])
		}
		start = pos
		pos = next
	}
	if start >= 0 {
		out = append(out, header[start:pos])
	}
	return out
}

// fieldName is a field's name, as written.
func fieldName(field []byte) string {
	if i := bytes.IndexByte(field, ':'); i >= 0 {
		return strings.TrimRight(string(field[:i]), " \t")
	}
	return ""
}

// selectFields is BODY[HEADER.FIELDS (names)] (not=false) or
// BODY[HEADER.FIELDS.NOT (names)] (not=true): the matching fields in
// their order, then the blank line (RFC 3501 section 6.4.5).
func selectFields(raw []byte, names []string, not bool) []byte {
	header, _ := splitMessage(raw)
	var b bytes.Buffer
	for _, f := range headerFields(header) {
		match := false
		name := fieldName(f)
		for _, n := range names {
			if strings.EqualFold(n, name) {
				match = true
				break
			}
		}
		if match != not {
			b.Write(f)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// headerValue returns the unfolded, trimmed value of the first field
// called name, or "".
func headerValue(raw []byte, name string) string {
	header, _ := splitMessage(raw)
	for _, f := range headerFields(header) {
		if strings.EqualFold(fieldName(f), name) {
			v := f[bytes.IndexByte(f, ':')+1:]
			v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
			v = bytes.ReplaceAll(v, []byte("\n"), nil)
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}
