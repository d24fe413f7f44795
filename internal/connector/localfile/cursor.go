package localfile

import (
	"sort"
	"strconv"
	"strings"
)

// Cursor is the key=value form the local connectors use for their
// opaque cursors: "v1;key=value;…". Keys and values never contain ';' or
// '=' (they are numbers and hex digests).
type Cursor map[string]string

// String formats the cursor with sorted keys, so that equal states give
// equal strings.
func (c Cursor) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("v1")
	for _, k := range keys {
		b.WriteString(";" + k + "=" + c[k])
	}
	return b.String()
}

// ParseCursor reads a cursor made by String; ok is false for anything
// else (a cursor of another version or connector), which callers treat
// as "no cursor".
func ParseCursor(s string) (Cursor, bool) {
	parts := strings.Split(s, ";")
	if len(parts) == 0 || parts[0] != "v1" {
		return nil, false
	}
	c := Cursor{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, false
		}
		c[k] = v
	}
	return c, true
}

// Int returns key as an integer; ok is false when it is missing or bad.
func (c Cursor) Int(key string) (int64, bool) {
	v, ok := c[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// SetInt stores an integer.
func (c Cursor) SetInt(key string, n int64) { c[key] = strconv.FormatInt(n, 10) }
