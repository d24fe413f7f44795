package gmailimap

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/utf7"
)

// encodeMailbox turns a UTF-8 folder name into its modified UTF-7 wire
// form (RFC 3501 section 5.1.3). Gmail sends names this way unless the
// client enabled UTF8=ACCEPT, which this server does not offer.
func encodeMailbox(name string) string {
	s, err := utf7.Encoding.NewEncoder().String(name)
	if err != nil {
		return name // only invalid UTF-8 fails; names are created valid
	}
	return s
}

// decodeMailbox is the inverse of encodeMailbox.
func decodeMailbox(s string) (string, error) {
	return utf7.Encoding.NewDecoder().String(s)
}

// quoteString writes s as an IMAP string: quoted, with "\" and DQUOTE
// escaped, or as a literal when it holds CR, LF, NUL or 8-bit octets,
// which a quoted string cannot carry (RFC 3501 section 4.3).
func quoteString(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 || c >= 0x80 {
			return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
		}
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// astringOut writes s as an atom when it may be one (ASTRING-CHARs
// only), else as a string. Gmail writes user labels this way in
// X-GM-LABELS (e.g. `CustomLabel`, `+IMNews`, `[Mailbox]`).
func astringOut(s string) string {
	if s == "" || strings.EqualFold(s, "NIL") {
		return quoteString(s)
	}
	for i := 0; i < len(s); i++ {
		if !isAstringChar(s[i]) {
			return quoteString(s)
		}
	}
	return s
}

// mailboxOut writes a folder name as Gmail does: always quoted, in
// modified UTF-7.
func mailboxOut(name string) string { return quoteString(encodeMailbox(name)) }

// nstring writes NIL for an empty value, else a string.
func nstring(s string) string {
	if s == "" {
		return "NIL"
	}
	return quoteString(s)
}
