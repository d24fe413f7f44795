package mbox

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
)

// bufSize is the read buffer, and so the longest line whose start is
// looked at as a whole (separator lines are far shorter).
const bufSize = 64 << 10

// hashLen is how many bytes of the SHA-256 of a message's stored bytes
// its ID carries: 48 bits tell a changed message from the one listed.
const hashLen = 6

// msgInfo is one message as the scanner found it.
type msgInfo struct {
	// Offset is where its "From " line starts (for bytes before the first
	// "From " line: where they start). End is where the next message
	// starts, or the end of what was read.
	Offset, End int64
	// ContentStart is the first byte served: after the "From " line and
	// the flag lines Mailferry wrote.
	ContentStart int64
	// Served is the number of bytes served: the stored bytes from
	// ContentStart with one '>' less on every quoted From line, without
	// the blank line that precedes the next separator.
	Served int64
	// CRLFSize is Served with every bare LF counted as CRLF: the size of
	// the message as the IMAP connector writes it, which the identity of
	// a message without Message-ID is computed from (docs/IDENTITY.md).
	CRLFSize int64
	// Hash is the start of the SHA-256 of the stored bytes Offset..End.
	Hash [hashLen]byte
	// Date is the "From " line's date.
	Date  time.Time
	Flags []string
	// Header is the start of the message up to its first empty line, at
	// most localfile.MaxHeader bytes.
	Header []byte
	// Problem, when set, says why the message cannot be copied.
	Problem string
	// ours: Mailferry wrote it (the X-Mailferry-Mbox line).
	ours bool
}

// ID is "<offset>.<hash>": the offset finds the message, the hash makes
// sure it is still the message that was listed.
func (m *msgInfo) ID() connector.ID {
	return connector.ID(fmt.Sprintf("%d.%x", m.Offset, m.Hash))
}

// parseID reads an ID made by msgInfo.ID.
func parseID(id connector.ID) (int64, bool) {
	off, h, ok := strings.Cut(string(id), ".")
	if !ok || len(h) != 2*hashLen {
		return 0, false
	}
	n, err := strconv.ParseInt(off, 10, 64)
	return n, err == nil && n >= 0
}

// errRead is a read error at a byte offset.
type errRead struct {
	off int64
	err error
}

func (e *errRead) Error() string { return fmt.Sprintf("read error at byte %d: %v", e.off, e.err) }
func (e *errRead) Unwrap() error { return e.err }

// scan splits r's bytes start..limit into messages and hands each to
// emit, in order. With one set it stops after the first message (start
// must then be a message's Offset).
//
// The split rule (lenient mboxo/mboxrd, after RFC 4155 and mutt's
// is_from): a line that starts with "From " separates messages when it
// starts the file (after blank lines) or follows an empty line, and
// either carries a date (see parseFromLine) or is followed by a line
// that looks like a header field. Other "From " lines are body lines
// (mboxo files leave them unquoted). A separator without a date makes
// its message a Problem; bytes before the first "From " line are one
// Problem message; a file that ends in the middle of a line makes its
// last message a Problem (it was cut short).
func scan(r io.ReaderAt, start, limit int64, one bool, emit func(*msgInfo) error) error {
	if limit <= start {
		return nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, limit-start), bufSize)
	pos := start
	var cur *building
	prevBlank, lineStart := false, true
	for {
		frag, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return &errRead{off: pos, err: err}
		}
		if len(frag) == 0 {
			break
		}
		complete := err == nil
		n := int64(len(frag))
		if !lineStart {
			cur.more(frag)
			pos += n
			lineStart = complete
			continue
		}
		blank := complete && localfile.IsBlankLine(frag)
		fromLine := complete && bytes.HasPrefix(frag, fromPrefix)
		switch {
		case cur == nil && blank:
			// Blank lines before the first message belong to none.
		case cur == nil:
			cur = begin(pos, frag, fromLine, complete)
		case prevBlank && fromLine:
			line := append([]byte(nil), frag...) // Peek below may move the buffer
			if isSeparator(line, br) {
				cur.finish(pos, false)
				if err := emit(&cur.info); err != nil {
					return err
				}
				if one {
					return nil
				}
				cur = begin(pos, line, true, true)
			} else {
				cur.line(pos, line, complete)
			}
		default:
			cur.line(pos, frag, complete)
		}
		prevBlank = blank
		pos += n
		lineStart = complete
	}
	if cur != nil {
		cur.finish(pos, true)
		return emit(&cur.info)
	}
	return nil
}

// isSeparator: line (a "From " line after an empty line) has a date, or
// the next line is a header field.
func isSeparator(line []byte, br *bufio.Reader) bool {
	if _, ok := parseFromLine(trimEOL(line)); ok {
		return true
	}
	next, _ := br.Peek(80)
	if i := bytes.IndexByte(next, '\n'); i >= 0 {
		next = next[:i]
	}
	return looksLikeHeader(next)
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// markerName starts the line Mailferry writes after the "From " line:
// "X-Mailferry-Mbox: v=1 flag-lines=N final-newline=0|1". It says that
// the next N lines (Status:, X-Status:, X-Keywords:) were added by
// Mailferry to carry the flags and are not part of the message, and
// whether the message ended with a newline (when it did not, one more
// "\n" was written so that the separator's blank line could follow).
const markerName = "X-Mailferry-Mbox:"

// parseMarker reads the marker line; ok false when it is not one.
func parseMarker(line []byte) (flagLines int, finalNewline bool, ok bool) {
	rest, found := bytes.CutPrefix(trimEOL(line), []byte(markerName))
	if !found {
		return 0, false, false
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(string(rest)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	n, err := strconv.Atoi(kv["flag-lines"])
	if kv["v"] != "1" || err != nil || n < 0 || n > 8 || kv["final-newline"] != "0" && kv["final-newline"] != "1" {
		return 0, false, false
	}
	return n, kv["final-newline"] == "1", true
}

// building is a message being scanned.
type building struct {
	info     msgInfo
	h        hash.Hash
	hasFrom  bool
	lines    int // lines after the "From " line
	metaLeft int
	meta     []byte // the flag lines Mailferry wrote
	noEOL    bool
	content  int64 // stored content bytes
	drops    int64 // '>' removed by unquoting
	m        fromMatch
	matching bool
	hdr      []byte
	hdrDone  bool
	// lastBlank is the length of the last line when it is an empty line
	// ("\n" or "\r\n"), else 0.
	lastBlank int64
	lastByte  byte
	// bareLF counts content lines ending in LF without CR.
	bareLF int64
}

func begin(pos int64, frag []byte, fromLine, complete bool) *building {
	b := &building{h: sha256.New()}
	b.info.Offset = pos
	if !fromLine {
		b.info.Problem = "the file does not start with a \"From \" line here, so these bytes are not a message in mbox format"
		b.info.ContentStart = pos
		b.contentLine(frag, complete)
		return b
	}
	b.h.Write(frag)
	b.hasFrom = true
	b.info.ContentStart = pos + int64(len(frag))
	if d, ok := parseFromLine(trimEOL(frag)); ok {
		b.info.Date = d
	} else {
		b.info.Problem = fmt.Sprintf("the \"From \" line %q has no date in the form \"From sender Mon Jan  2 15:04:05 2006\"", trimEOL(frag))
	}
	return b
}

// line takes the first fragment of a new line.
func (b *building) line(pos int64, frag []byte, complete bool) {
	if b.hasFrom && b.lines == 0 && complete {
		if n, nl, ok := parseMarker(frag); ok {
			b.h.Write(frag)
			b.lines++
			b.info.ours, b.metaLeft, b.noEOL = true, n, !nl
			b.info.ContentStart = pos + int64(len(frag))
			return
		}
	}
	if b.metaLeft > 0 && complete && looksLikeHeader(frag) {
		b.h.Write(frag)
		b.lines++
		b.metaLeft--
		b.meta = append(b.meta, frag...)
		b.info.ContentStart = pos + int64(len(frag))
		return
	}
	b.metaLeft = 0
	b.lines++
	b.contentLine(frag, complete)
}

func (b *building) contentLine(frag []byte, complete bool) {
	b.lastBlank = 0
	if complete && localfile.IsBlankLine(frag) {
		b.lastBlank = int64(len(frag))
	}
	b.m, b.matching = fromMatch{}, true
	b.more(frag)
}

// more takes content bytes: a line's first fragment (after contentLine)
// or the rest of a long line.
func (b *building) more(frag []byte) {
	if len(frag) > 0 && b.lastBlank != int64(len(frag)) {
		b.lastBlank = 0
	}
	b.h.Write(frag)
	if frag[len(frag)-1] == '\n' {
		prev := b.lastByte
		if len(frag) >= 2 {
			prev = frag[len(frag)-2]
		} else if b.content == 0 {
			prev = 0
		}
		if prev != '\r' {
			b.bareLF++
		}
	}
	b.content += int64(len(frag))
	b.lastByte = frag[len(frag)-1]
	if b.matching {
		for _, c := range frag {
			if r := b.m.step(c); r != 0 {
				if r == 1 && b.m.run > 0 {
					b.drops++
				}
				b.matching = false
				break
			}
		}
	}
	if !b.hdrDone {
		room := localfile.MaxHeader - len(b.hdr)
		b.hdr = append(b.hdr, frag[:min(len(frag), room)]...)
		if localfile.IsBlankLine(frag) || len(b.hdr) >= localfile.MaxHeader {
			b.hdrDone = true
		}
	}
}

// finish closes the message at end; eof: nothing follows it.
func (b *building) finish(end int64, eof bool) {
	b.info.End = end
	served := b.content - b.drops - b.lastBlank
	bare := b.bareLF
	if b.lastBlank == 1 {
		bare-- // the separator's blank line, a bare "\n", is not served
	}
	if b.info.ours && b.noEOL && served > 0 {
		served-- // the "\n" written to end the last line
		bare--
	}
	b.info.Served = max(served, 0)
	b.info.CRLFSize = b.info.Served + max(bare, 0)
	if eof && b.content > 0 && b.lastByte != '\n' && b.info.Problem == "" {
		b.info.Problem = "the message is cut short: the file ends in the middle of a line (it was probably truncated by a full disk or an interrupted copy)"
	}
	if b.info.ours {
		b.info.Flags = flagsFromHeader(b.meta)
	} else {
		b.info.Flags = flagsFromHeader(b.hdr)
	}
	b.info.Header = b.hdr
	copy(b.info.Hash[:], b.h.Sum(nil))
}

// scanOne rescans the message at off (up to limit).
func scanOne(r io.ReaderAt, off, limit int64) (*msgInfo, error) {
	var out *msgInfo
	err := scan(r, off, limit, true, func(m *msgInfo) error { out = m; return nil })
	if err == nil && out == nil {
		err = errors.New("no message there")
	}
	return out, err
}
