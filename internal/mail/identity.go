package mail

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// IdentityHeaderFields returns the header fields a connector must return
// for each listed message so that Identity can be computed. Subject is
// read only to report failures when the user opts in; it is not part of
// the identity of a message that has a Message-ID.
func IdentityHeaderFields() []string {
	return []string{"Message-Id", "Date", "From", "To", "Subject"}
}

// Headers holds the raw values of the identity header fields.
type Headers struct {
	MessageID string
	Date      string
	From      string
	To        string
	Subject   string
}

// ParseHeaders reads the identity fields from a header block such as the
// answer to FETCH BODY.PEEK[HEADER.FIELDS (...)]. Malformed headers never
// fail: whatever could be read is returned, because an identity must exist
// for every message, including ones no parser accepts.
func ParseHeaders(block []byte) Headers {
	// A reader sized to the block: the default 4 KiB buffer per listed
	// message was the largest allocation of a whole copy.
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), max(len(block), 16)))
	if err != nil && h.Len() == 0 {
		return Headers{}
	}
	return Headers{
		MessageID: h.Get("Message-Id"),
		Date:      h.Get("Date"),
		From:      h.Get("From"),
		To:        h.Get("To"),
		Subject:   h.Get("Subject"),
	}
}

// Identity recognises the same message on two servers without any state
// and without changing the message. See docs/IDENTITY.md for why it is
// built this way.
type Identity [16]byte

// String returns the identity in hex, for logs and state.
func (id Identity) String() string { return hex.EncodeToString(id[:]) }

// ComputeIdentity derives the identity from the header values and the
// RFC 822 size.
//
// With a Message-ID, the identity is the normalised Message-ID, Date and
// From: Message-IDs alone are not unique in practice (broken mailers and
// list software reuse them), and Date plus From separate such reuse while
// staying identical on every server. Size is left out because servers
// disagree on it (Exchange rewrites messages; imapsync avoids size for the
// same reason).
//
// Without a Message-ID (drafts, some automated mail), the identity falls
// back to Date, From, To and Subject plus the size, because those headers
// alone often repeat (cron mail sent within one second).
func ComputeIdentity(h Headers, size int64) Identity {
	var b strings.Builder
	if mid := normaliseMessageID(h.MessageID); mid != "" {
		b.WriteString("m\x00")
		b.WriteString(mid)
		b.WriteString("\x00")
		b.WriteString(normaliseDate(h.Date))
		b.WriteString("\x00")
		b.WriteString(normaliseText(h.From))
	} else {
		b.WriteString("h\x00")
		b.WriteString(normaliseDate(h.Date))
		b.WriteString("\x00")
		b.WriteString(normaliseText(h.From))
		b.WriteString("\x00")
		b.WriteString(normaliseText(h.To))
		b.WriteString("\x00")
		b.WriteString(normaliseText(h.Subject))
		b.WriteString("\x00")
		b.WriteString(strconv.FormatInt(size, 10))
	}
	sum := sha256.Sum256([]byte(b.String()))
	var id Identity
	copy(id[:], sum[:])
	return id
}

// normaliseMessageID keeps the part between angle brackets and lower-cases
// it; some servers re-fold or re-case the header.
func normaliseMessageID(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	return strings.ToLower(strings.Join(strings.Fields(eightBitAsX(s)), ""))
}

// normaliseDate turns a parseable date into a UTC Unix time so that a
// server re-formatting the header (time-zone name, spacing) does not
// change the identity; an unparseable one is compared as text.
func normaliseDate(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if t, ok := parseDate(s); ok {
		return strconv.FormatInt(t.Unix(), 10)
	}
	return normaliseText(s)
}

// parseDate returns what net/mail.ParseDate returns for s. ParseDate
// tries up to 24 layouts in turn and allocates an error for each miss,
// which made it the largest allocator of a copy. quickDate first tries
// the one layout that the shape of s calls for.
func parseDate(s string) (time.Time, bool) {
	if t, ok := quickDate(s); ok {
		return t, true
	}
	t, err := mail.ParseDate(s)
	return t, err == nil
}

// quickDate handles the common RFC 5322 form with a numeric zone, such as
// "Tue, 1 Jul 2003 10:52:37 +0200 (CEST)". It cuts the date where
// net/mail.ParseDate does (four digits after the first '+' or '-') and
// calls time.Parse with the layout of ParseDate's list that has the same
// shape: the layouts of that list differ in shape only (weekday or not,
// seconds or not, two- or four-digit year, zone form), so at most one of
// them can accept the string, and the result is the same. Anything else
// (another zone form, an unusual comment, CR or LF) is left to ParseDate.
func quickDate(s string) (time.Time, bool) {
	var none time.Time
	if strings.ContainsAny(s, "\r\n") {
		return none, false
	}
	i := strings.IndexAny(s, "+-")
	if i < 0 || len(s) < i+5 {
		return none, false
	}
	date, rest := s[:i+5], strings.TrimSpace(s[i+5:])
	if rest != "" && (len(rest) < 2 || rest[0] != '(' || rest[len(rest)-1] != ')' ||
		strings.ContainsAny(rest[1:len(rest)-1], "()\\")) {
		return none, false
	}
	f := strings.Fields(date)
	dow := ""
	if len(f) == 6 && strings.HasSuffix(f[0], ",") {
		dow, f = "Mon, ", f[1:]
	}
	if len(f) != 5 {
		return none, false
	}
	var layout string
	switch len(f[2]) {
	case 4:
		layout = dow + "2 Jan 2006 15:04"
	case 2:
		layout = dow + "2 Jan 06 15:04"
	default:
		return none, false
	}
	switch strings.Count(f[3], ":") {
	case 2:
		layout += ":05 -0700"
	case 1:
		layout += " -0700"
	default:
		return none, false
	}
	t, err := time.Parse(layout, date)
	return t, err == nil
}

func normaliseText(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(eightBitAsX(s)), " "))
}

// eightBitAsX replaces every byte above 0x7F with 'X', which is what
// Cyrus IMAP does to raw 8-bit bytes in header fields when it stores a
// message (its default, munge8bit). Such bytes are not allowed in a
// header anyway (RFC 5322 section 2.2; RFC 6532 allows UTF-8, which is
// folded the same way), so a message keeps its identity on a server that
// rewrites them: without this, every later pass into Cyrus copied such a
// message again.
func eightBitAsX(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		if b[j] > 0x7f {
			b[j] = 'X'
		}
	}
	return string(b)
}
