package autoconfig

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// decodeXML reads one XML document into v with encoding/xml in strict
// mode. encoding/xml never fetches external entities or DTDs, so a
// hostile document cannot make the lookup read files or other URLs; it
// also bounds element nesting. Unknown elements and attributes are
// skipped, which is how both formats are meant to be extended. UTF-8 is
// the rule (the autoconfig documentation says so); documents declaring
// US-ASCII or ISO-8859-1 are accepted too, since converting them is
// exact.
func decodeXML(data []byte, v any) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "us-ascii", "ascii", "iso-8859-1", "latin1", "latin-1", "iso_8859-1":
			return &latin1Reader{r: in}, nil
		}
		return nil, fmt.Errorf("the document is in %q; only UTF-8 is read", truncate(charset, 40))
	}
	return d.Decode(v)
}

// latin1Reader converts ISO-8859-1 to UTF-8: each byte is the code point
// of the same number.
type latin1Reader struct {
	r       io.Reader
	pending []byte // converted bytes that did not fit into the last p
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		buf := make([]byte, max(len(p)/2, 1))
		n, err := l.r.Read(buf)
		for _, b := range buf[:n] {
			l.pending = utf8.AppendRune(l.pending, rune(b))
		}
		if len(l.pending) == 0 {
			return 0, err
		}
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// cleanText makes a string from the network fit for display: control
// characters dropped, runs of white space made one space, at most max
// runes.
func cleanText(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
			n++
		}
		if n >= max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// cleanHost checks a server host name from a document: a DNS host name
// or an IP address literal, returned in lower case without a trailing
// dot; "" when it is neither.
func cleanHost(s string) string {
	s = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return strings.Trim(s, "[]")
	}
	if validHostname(s) {
		return s
	}
	return ""
}

// parsePort reads a TCP port number, 0 when it is not one.
func parsePort(s string) int {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0
	}
	return p
}

// httpsURL checks that s is an absolute https URL with a valid host and
// no user information, and returns it with its host and port (443 when
// none is given).
func httpsURL(s string) (u *url.URL, host string, port int, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 2048 {
		return nil, "", 0, false
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.User != nil || u.Opaque != "" {
		return nil, "", 0, false
	}
	u.Scheme = "https"
	host = cleanHost(u.Hostname())
	if host == "" {
		return nil, "", 0, false
	}
	port = 443
	if p := u.Port(); p != "" {
		if port = parsePort(p); port == 0 {
			return nil, "", 0, false
		}
	}
	return u, host, port, true
}
