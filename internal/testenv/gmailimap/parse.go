package gmailimap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Limits of what one command may carry, so that a broken or hostile
// client cannot make the server hold unbounded memory.
const (
	maxLineLength = 64 << 10
	// maxLiteral bounds literals outside APPEND (LOGIN passwords, search
	// strings); APPEND's own literal is bounded by Options.AppendLimit.
	maxLiteral = 64 << 10
	// maxNonSyncLiteral is LITERAL-'s bound (RFC 7888 section 5).
	maxNonSyncLiteral = 4096
)

// errBadSyntax is wrapped by every parse error; the command then gets
// "BAD".
var errBadSyntax = errors.New("Could not parse command")

// literalRefused is returned by a literal check to answer the command
// with resp (a tagged status such as `BAD [TOOBIG] ...`) instead of the
// continuation request.
type literalRefused struct {
	resp string
	// bye, if set, ends the connection with "* BYE <bye>" instead.
	bye string
}

func (e *literalRefused) Error() string { return e.resp + e.bye }

// parser reads one command at a time from r. Its methods follow the
// names of the formal syntax of RFC 3501 section 9 and keep the first
// error: after a failure each method returns a zero value, and the
// caller checks err once at the end (as a decoder would).
//
// A command is one or more lines: a literal ("{" number ["+"] "}" CRLF,
// RFC 3501 section 4.3; the "+" form is RFC 7888's non-synchronizing
// literal) ends a line, its octets follow, and the command continues on
// the next line.
type parser struct {
	r   *bufio.Reader
	buf []byte // the current line, without CRLF
	pos int
	err error

	// cont writes the continuation request for a synchronizing literal.
	cont func() error
	// checkLiteral, if set, vets the next literal's size before the
	// continuation request is sent (APPEND's APPENDLIMIT and quotas).
	checkLiteral func(n int64) error
	// literalMax is the largest literal accepted when checkLiteral is
	// not set.
	literalMax int64
	// pendingSync is true when the current line ended with a
	// synchronizing literal the client has not been told to send.
	pendingSync bool
}

func newParser(r *bufio.Reader) *parser {
	return &parser{r: r, literalMax: maxLiteral}
}

// readLine reads the next line of a command into buf.
func (p *parser) readLine() error {
	p.buf = p.buf[:0]
	p.pos = 0
	p.pendingSync = false
	for {
		chunk, err := p.r.ReadSlice('\n')
		p.buf = append(p.buf, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(p.buf) > maxLineLength {
				return errLineTooLong
			}
			continue
		}
		if len(p.buf) > 0 && errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if len(p.buf) > maxLineLength {
		return errLineTooLong
	}
	p.buf = p.buf[:len(p.buf)-1]
	if n := len(p.buf); n > 0 && p.buf[n-1] == '\r' {
		p.buf = p.buf[:n-1]
	}
	return nil
}

var errLineTooLong = errors.New("Line too long")

// begin starts a new command: it reads its first line.
func (p *parser) begin() error {
	p.err = nil
	p.checkLiteral = nil
	p.literalMax = maxLiteral
	return p.readLine()
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", errBadSyntax, fmt.Sprintf(format, args...))
	}
}

func (p *parser) failed() bool { return p.err != nil }

func (p *parser) atEnd() bool { return p.pos >= len(p.buf) }

func (p *parser) peek() byte {
	if p.err != nil || p.pos >= len(p.buf) {
		return 0
	}
	return p.buf[p.pos]
}

// take consumes c if it is next.
func (p *parser) take(c byte) bool {
	if p.peek() == c && p.err == nil && p.pos < len(p.buf) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(c byte) {
	if !p.take(c) {
		p.fail("expected %q at column %d", c, p.pos)
	}
}

func (p *parser) sp() { p.expect(' ') }

// end checks that the command has no more arguments (CRLF follows).
func (p *parser) end() {
	if p.err == nil && !p.atEnd() {
		p.fail("unexpected %q at column %d", p.rest(), p.pos)
	}
}

func (p *parser) rest() string {
	s := string(p.buf[min(p.pos, len(p.buf)):])
	if len(s) > 20 {
		s = s[:20] + "..."
	}
	return s
}

// isAtomChar is ATOM-CHAR: any CHAR except atom-specials ("(" ")" "{" SP
// CTL list-wildcards quoted-specials resp-specials).
func isAtomChar(c byte) bool {
	if c <= 0x1f || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isAstringChar is ASTRING-CHAR = ATOM-CHAR / resp-specials.
func isAstringChar(c byte) bool { return isAtomChar(c) || c == ']' }

// atom = 1*ATOM-CHAR.
func (p *parser) atom() string {
	return p.run(isAtomChar, "atom")
}

func (p *parser) run(ok func(byte) bool, what string) string {
	if p.err != nil {
		return ""
	}
	start := p.pos
	for p.pos < len(p.buf) && ok(p.buf[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		p.fail("expected %s at column %d", what, start)
		return ""
	}
	return string(p.buf[start:p.pos])
}

// keyword reads an atom and returns it upper-cased (command names and
// keywords are case-insensitive, RFC 3501 section 9 note 3).
func (p *parser) keyword() string { return strings.ToUpper(p.atom()) }

// number = 1*DIGIT, a 32-bit unsigned value.
func (p *parser) number() uint32 {
	return uint32(p.numberBits(32))
}

// number64 is a 63-bit number (mod-sequence-value, RFC 7162; Gmail's
// message and thread ids, which the extensions page calls 64-bit).
func (p *parser) number64() uint64 { return p.numberBits(64) }

func (p *parser) numberBits(bits int) uint64 {
	s := p.run(func(c byte) bool { return c >= '0' && c <= '9' }, "number")
	if p.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		p.fail("number %q out of range", s)
	}
	return n
}

// nzNumber = digit-nz *DIGIT.
func (p *parser) nzNumber() uint32 {
	n := p.number()
	if n == 0 && p.err == nil {
		p.fail("zero where a non-zero number is required")
	}
	return n
}

// quoted = DQUOTE *QUOTED-CHAR DQUOTE, with "\" escaping only DQUOTE and
// "\" (RFC 3501 section 9).
func (p *parser) quoted() string {
	p.expect('"')
	if p.err != nil {
		return ""
	}
	var b strings.Builder
	for {
		if p.pos >= len(p.buf) {
			p.fail("unterminated quoted string")
			return ""
		}
		c := p.buf[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String()
		case '\\':
			if p.pos >= len(p.buf) || (p.buf[p.pos] != '"' && p.buf[p.pos] != '\\') {
				p.fail("bad escape in quoted string")
				return ""
			}
			b.WriteByte(p.buf[p.pos])
			p.pos++
		case '\r', '\n', 0:
			p.fail("control character in quoted string")
			return ""
		default:
			b.WriteByte(c)
		}
	}
}

// literal = "{" number ["+"] "}" CRLF *CHAR8. The octets are read from
// the connection; for a synchronizing literal the continuation request
// is sent first (RFC 3501 section 7.5).
func (p *parser) literal() []byte {
	p.expect('{')
	n := p.numberBits(63)
	nonSync := p.take('+')
	p.expect('}')
	if p.err != nil {
		return nil
	}
	if !p.atEnd() {
		p.fail("literal size must end the line")
		return nil
	}
	size := int64(n)
	if nonSync && size > maxNonSyncLiteral {
		// RFC 7888 section 5: LITERAL- allows non-synchronizing literals
		// of at most 4096 octets. The client sends the octets anyway:
		// read past them to stay in step, then refuse.
		if _, err := io.CopyN(io.Discard, p.r, size); err != nil {
			p.err = err
			return nil
		}
		_ = p.readLine()
		p.err = &literalRefused{resp: "BAD [TOOBIG] Non-synchronizing literal larger than 4096 octets"}
		return nil
	}
	if p.checkLiteral != nil {
		if err := p.checkLiteral(size); err != nil {
			p.err = err
			p.pendingSync = !nonSync
			if nonSync {
				// The octets are on their way; skip them.
				if _, cerr := io.CopyN(io.Discard, p.r, size); cerr == nil {
					_ = p.readLine()
				}
			}
			return nil
		}
	} else if size > p.literalMax {
		p.err = &literalRefused{resp: "BAD [TOOBIG] Literal too large"}
		p.pendingSync = !nonSync
		return nil
	}
	if !nonSync && p.cont != nil {
		if err := p.cont(); err != nil {
			p.err = err
			return nil
		}
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(p.r, data); err != nil {
		p.err = err
		return nil
	}
	if err := p.readLine(); err != nil {
		p.err = err
		return nil
	}
	return data
}

// str is string = quoted / literal.
func (p *parser) str() string {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		return string(p.literal())
	}
	p.fail("expected a string at column %d", p.pos)
	return ""
}

// astring = 1*ASTRING-CHAR / string.
func (p *parser) astring() string {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		return string(p.literal())
	}
	return p.run(isAstringChar, "astring")
}

// listMailbox = 1*list-char / string, where list-char adds the
// wildcards "%" and "*" to ASTRING-CHAR.
func (p *parser) listMailbox() string {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		return string(p.literal())
	}
	return p.run(func(c byte) bool { return isAstringChar(c) || c == '%' || c == '*' }, "list-mailbox")
}

// mailbox = "INBOX" / astring, decoded from modified UTF-7 (RFC 3501
// section 5.1.3).
func (p *parser) mailbox() string {
	s := p.astring()
	if p.err != nil {
		return ""
	}
	name, err := decodeMailbox(s)
	if err != nil {
		p.fail("mailbox name %q is not valid modified UTF-7", s)
		return ""
	}
	return name
}

// list parses "(" [item *(SP item)] ")" calling item for each.
func (p *parser) list(item func()) {
	p.expect('(')
	if p.take(')') {
		return
	}
	for p.err == nil {
		item()
		if p.take(')') {
			return
		}
		p.sp()
	}
}

// flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" /
// flag-keyword / flag-extension.
func (p *parser) flag() string {
	if p.take('\\') {
		if p.take('*') {
			p.fail(`"\*" is not a flag`)
			return ""
		}
		a := p.atom()
		switch strings.ToLower(a) {
		case "answered", "flagged", "deleted", "seen", "draft", "recent":
			return `\` + strings.ToUpper(a[:1]) + strings.ToLower(a[1:])
		}
		return `\` + a
	}
	return p.atom()
}

// flagList = "(" [flag *(SP flag)] ")".
func (p *parser) flagList() []string {
	var out []string
	p.list(func() { out = append(out, p.flag()) })
	return out
}

// seqSet is sequence-set, with "*" kept as 0 in the pairs.
type seqSet []seqRange

type seqRange struct{ lo, hi uint32 } // 0 means "*"

func (p *parser) seqNumber() uint32 {
	if p.take('*') {
		return 0
	}
	return p.nzNumber()
}

// sequenceSet = (seq-number / seq-range) ["," sequence-set].
func (p *parser) sequenceSet() seqSet {
	var out seqSet
	for p.err == nil {
		lo := p.seqNumber()
		hi := lo
		if p.take(':') {
			hi = p.seqNumber()
		}
		out = append(out, seqRange{lo, hi})
		if !p.take(',') {
			break
		}
	}
	return out
}

// contains reports whether n is in the set, with "*" standing for max.
func (s seqSet) contains(n, max uint32) bool {
	for _, r := range s {
		lo, hi := r.lo, r.hi
		if lo == 0 {
			lo = max
		}
		if hi == 0 {
			hi = max
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

func (s seqSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seqNum(r.lo))
		if r.hi != r.lo {
			b.WriteByte(':')
			b.WriteString(seqNum(r.hi))
		}
	}
	return b.String()
}

func seqNum(n uint32) string {
	if n == 0 {
		return "*"
	}
	return strconv.FormatUint(uint64(n), 10)
}

// dateTime = DQUOTE date-day-fixed "-" date-month "-" date-year SP time
// SP zone DQUOTE (RFC 3501 section 9).
func (p *parser) dateTime() time.Time {
	s := p.quoted()
	if p.err != nil {
		return time.Time{}
	}
	for _, layout := range []string{"_2-Jan-2006 15:04:05 -0700", "02-Jan-2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	p.fail("bad date-time %q", s)
	return time.Time{}
}

// date = date-text / DQUOTE date-text DQUOTE, date-text = date-day "-"
// date-month "-" date-year.
func (p *parser) date() time.Time {
	var s string
	if p.peek() == '"' {
		s = p.quoted()
	} else {
		s = p.atom()
	}
	if p.err != nil {
		return time.Time{}
	}
	for _, layout := range []string{"2-Jan-2006", "02-Jan-2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	p.fail("bad date %q", s)
	return time.Time{}
}

// skipCommand discards what is left of a failed command so that the next
// one is read in step: the rest of the line and, for each
// non-synchronizing literal that ends a line, its octets and the next
// line. A synchronizing literal the client was not invited to send ends
// the command.
func (p *parser) skipCommand() error {
	if p.pendingSync {
		return nil
	}
	for {
		line := p.buf
		n, nonSync, ok := trailingLiteral(line)
		if !ok {
			return nil
		}
		if !nonSync {
			return nil
		}
		if _, err := io.CopyN(io.Discard, p.r, n); err != nil {
			return err
		}
		if err := p.readLine(); err != nil {
			return err
		}
	}
}

// trailingLiteral reports whether line ends with a literal prefix.
func trailingLiteral(line []byte) (n int64, nonSync, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	i := len(line) - 2
	if line[i] == '+' {
		nonSync = true
		i--
	}
	j := i
	for j >= 0 && line[j] >= '0' && line[j] <= '9' {
		j--
	}
	if j < 0 || j == i || line[j] != '{' {
		return 0, false, false
	}
	v, err := strconv.ParseInt(string(line[j+1:i+1]), 10, 64)
	if err != nil {
		return 0, false, false
	}
	return v, nonSync, true
}
