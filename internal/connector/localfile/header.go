package localfile

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/mailferry/mailferry/internal/connector"
	mfmail "github.com/mailferry/mailferry/internal/mail"
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

// NewExactReader yields exactly n bytes of r (a file whose size was
// read), and a KindItem error naming what (e.g. "maildir /x/cur/y") and
// the offset when the file turns out shorter: it was cut while being
// read.
func NewExactReader(r io.Reader, n int64, what string) io.Reader {
	return &exactReader{r: r, n: n, what: what}
}

type exactReader struct {
	r    io.Reader
	n    int64
	off  int64
	what string
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.off >= e.n {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n-e.off {
		p = p[:e.n-e.off]
	}
	n, err := e.r.Read(p)
	e.off += int64(n)
	if err == io.EOF && e.off < e.n {
		return n, connector.Errorf(connector.KindItem, "", io.ErrUnexpectedEOF, "%s at byte %d: the file became shorter while it was read", e.what, e.off)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// CRLFSize returns how many bytes r holds with every bare LF (one not
// preceded by CR) counted as CRLF: the size of the message as the IMAP
// connector writes it. The identity of a message without Message-ID
// includes its size (mail.ComputeIdentity), and it must be the same on
// both sides of a copy to IMAP, so local connectors, whose files often
// have bare LF line ends, compute it from this size (docs/IDENTITY.md).
// Only messages without Message-ID need it.
func CRLFSize(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n int64
	prev := byte(0)
	for {
		b, err := br.ReadSlice('\n')
		n += int64(len(b))
		if len(b) > 0 && b[len(b)-1] == '\n' {
			p := prev
			if len(b) >= 2 {
				p = b[len(b)-2]
			}
			if p != '\r' {
				n++
			}
		}
		if len(b) > 0 {
			prev = b[len(b)-1]
		}
		switch {
		case err == nil, err == bufio.ErrBufferFull:
		case err == io.EOF:
			return n, nil
		default:
			return n, err
		}
	}
}

// IdentitySize is the size a local connector computes a message's
// identity from: its size when it has a Message-ID (the size is not used
// then), else its CRLF size, read through open. A file that cannot be
// read keeps its size.
func IdentitySize(h mfmail.Headers, size int64, open func() (io.ReadCloser, error)) int64 {
	if strings.TrimSpace(h.MessageID) != "" {
		return size
	}
	r, err := open()
	if err != nil {
		return size
	}
	defer r.Close()
	n, err := CRLFSize(io.LimitReader(r, size))
	if err != nil {
		return size
	}
	return n
}
