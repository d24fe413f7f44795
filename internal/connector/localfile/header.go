package localfile

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// MaxHeader bounds how much of a message's header block is read for
// listing. Identity fields sit at the top of real messages; a header
// longer than this is parsed as far as it goes.
const MaxHeader = 256 << 10

// HeaderBlock reads r's header block: every line up to and including
// the first empty line, at most MaxHeader bytes. It never fails; a read
// error just ends the block (the caller learns of it when it reads the
// body).
func HeaderBlock(r io.Reader) []byte {
	br := bufio.NewReaderSize(r, 4096)
	var b bytes.Buffer
	for b.Len() < MaxHeader {
		line, err := br.ReadSlice('\n')
		if len(line) > MaxHeader-b.Len() {
			line = line[:MaxHeader-b.Len()]
		}
		b.Write(line)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil || IsBlankLine(line) {
			break
		}
	}
	return b.Bytes()
}

// IsBlankLine reports whether line (with its terminator) is empty: "\n"
// or "\r\n".
func IsBlankLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// ReceivedDate returns the newest date among the Received: fields of a
// header block (RFC 5321 section 4.4: the date follows the last ';'),
// else the Date: field. ok is false when neither parses.
func ReceivedDate(block []byte) (time.Time, bool) {
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), max(len(block), 16)))
	if err != nil && h.Len() == 0 {
		return time.Time{}, false
	}
	var newest time.Time
	fields := h.FieldsByKey("Received")
	for fields.Next() {
		v := fields.Value()
		i := strings.LastIndexByte(v, ';')
		if i < 0 {
			continue
		}
		if t, err := mail.ParseDate(strings.TrimSpace(v[i+1:])); err == nil && t.After(newest) {
			newest = t
		}
	}
	if !newest.IsZero() {
		return newest, true
	}
	if t, err := mail.ParseDate(h.Get("Date")); err == nil {
		return t, true
	}
	return time.Time{}, false
}
