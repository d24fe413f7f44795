package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// The wire format (RFC 1939 §3, RFC 2449 §3-4):
//
//   - A command is one line ending in CRLF, at most 255 octets
//     (RFC 2449 §4).
//   - A reply begins with a status line: "+OK" or "-ERR", optionally an
//     RFC 2449 §8 response code in brackets, and text; during SASL
//     (RFC 5034 §4) a continuation "+ " followed by base64.
//   - Some replies (RETR, TOP, LIST and UIDL without an argument, CAPA)
//     continue after "+OK" with lines terminated by CRLF "." CRLF. A line
//     of the reply that begins with "." has another "." prepended by the
//     server ("byte-stuffing"), which the client removes.

const (
	// maxStatusLine bounds a status line or a line of a LIST, UIDL or CAPA
	// reply. RFC 2449 §4 allows 512 octets; real greetings and error texts
	// sometimes exceed that, so there is room to spare.
	maxStatusLine = 8 << 10
	// readBufferSize is the session's read buffer. Message lines longer
	// than this are passed on in pieces, never accumulated.
	readBufferSize = 64 << 10
)

// status is a parsed status line.
type status struct {
	ok bool
	// cont marks a SASL continuation ("+ " base64, RFC 5034 §4).
	cont bool
	// code is the RFC 2449 §8 response code ("AUTH", "IN-USE",
	// "SYS/TEMP"…), "" when the line has none.
	code string
	// text is what follows the indicator (and the code).
	text string
}

// parseStatus reads one status line, without its line ending. RFC 1939
// §3 says servers MUST send "+OK" and "-ERR" in upper case; the check is
// case-insensitive anyway, as being lenient here costs nothing.
func parseStatus(line string) (status, error) {
	var st status
	var rest string
	switch {
	case hasPrefixFold(line, "+OK"):
		st.ok, rest = true, line[3:]
	case hasPrefixFold(line, "-ERR"):
		rest = line[4:]
	case line == "+" || strings.HasPrefix(line, "+ "):
		st.cont = true
		st.text = strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
		return st, nil
	default:
		return st, &protocolError{msg: fmt.Sprintf("expected +OK or -ERR, got %q", truncate(line, 80))}
	}
	// "+OKAY" is not "+OK" followed by text: the indicator must end the
	// line or be followed by a space (RFC 2449 §3: status [SP text]).
	if rest != "" && rest[0] != ' ' {
		return st, &protocolError{msg: fmt.Sprintf("expected +OK or -ERR, got %q", truncate(line, 80))}
	}
	rest = strings.TrimPrefix(rest, " ")
	// RFC 2449 §8: resp-code = "[" resp-level *("/" resp-level) "]".
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end > 0 {
			st.code = strings.ToUpper(rest[1:end])
			rest = strings.TrimPrefix(rest[end+1:], " ")
		}
	}
	st.text = rest
	return st, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readLine reads one line of at most maxStatusLine octets and returns it
// without its CRLF (or bare LF).
func readLine(r *bufio.Reader) (string, error) {
	var long []byte
	for {
		chunk, err := r.ReadSlice('\n')
		switch {
		case err == nil:
			if long != nil {
				chunk = append(long, chunk...)
			}
			if len(chunk) > maxStatusLine {
				return "", &protocolError{msg: fmt.Sprintf("line longer than %d octets", maxStatusLine)}
			}
			return string(trimEOL(chunk)), nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(long)+len(chunk) > maxStatusLine {
				return "", &protocolError{msg: fmt.Sprintf("line longer than %d octets", maxStatusLine)}
			}
			long = append(long, chunk...)
		case errors.Is(err, io.EOF):
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// trimEOL strips a trailing LF and the CR before it.
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// dotReader reads the lines of a multi-line reply after its "+OK" line
// and undoes byte-stuffing (RFC 1939 §3). It yields exactly the bytes
// between the status line and the terminating "." line, with the one
// "." the server prepended to lines beginning with "." removed, and
// nothing else changed: CR, bare LF, NUL and 8-bit bytes pass through as
// sent, and the CRLF that ends the last line (which precedes the
// terminator) belongs to the data.
//
// Lines are delimited by LF. The terminator is a line that is exactly
// "." followed by CRLF, or by a bare LF from servers that send bare LFs
// throughout: a data line that is "." alone would have been stuffed to
// "..", so no data line can look like either.
//
// Lines longer than the bufio.Reader's buffer are passed on in pieces,
// so memory does not grow with line length.
type dotReader struct {
	r       *bufio.Reader
	bol     bool // the next chunk begins a line
	done    bool
	err     error
	pending []byte // unread part of the current chunk (aliases r's buffer)
}

func newDotReader(r *bufio.Reader) *dotReader { return &dotReader{r: r, bol: true} }

// next returns the next piece of unstuffed data, which aliases the
// bufio.Reader's buffer and is valid until the following call; io.EOF
// after the terminator. A connection that ends before the terminator is
// io.ErrUnexpectedEOF: the data is incomplete and must not be used.
func (d *dotReader) next() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	for {
		chunk, err := d.r.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !full {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			d.err = err
			return nil, err
		}
		if d.bol && len(chunk) > 0 && chunk[0] == '.' {
			if !full && (len(chunk) == 2 && chunk[1] == '\n' || len(chunk) == 3 && chunk[1] == '\r' && chunk[2] == '\n') {
				d.done, d.err = true, io.EOF
				return nil, io.EOF
			}
			chunk = chunk[1:] // RFC 1939 §3: remove the stuffed "."
		}
		d.bol = !full
		if len(chunk) > 0 {
			return chunk, nil
		}
		// Only a line that was a lone stuffed "." with no line end
		// could leave nothing, and that cannot reach here (a full
		// buffer is longer); read on regardless.
	}
}

func (d *dotReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		chunk, err := d.next()
		if err != nil {
			return 0, err
		}
		d.pending = chunk
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// WriteTo passes the reader's buffer straight to w, saving a copy.
func (d *dotReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		chunk := d.pending
		d.pending = nil
		if len(chunk) == 0 {
			var err error
			if chunk, err = d.next(); err != nil {
				if errors.Is(err, io.EOF) {
					return total, nil
				}
				return total, err
			}
		}
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// drain reads to the terminator, so that the session can send its next
// command.
func (d *dotReader) drain() error {
	d.pending = nil
	for {
		if _, err := d.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// lines calls fn with each line of a short multi-line reply (CAPA, UIDL,
// LIST), without its line ending; a line over maxStatusLine octets is a
// protocol error.
func (d *dotReader) lines(fn func(line string) error) error {
	var buf []byte
	for {
		chunk, err := d.next()
		if errors.Is(err, io.EOF) {
			if len(buf) > 0 {
				return fn(string(trimEOL(buf)))
			}
			return nil
		}
		if err != nil {
			return err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxStatusLine {
			return &protocolError{msg: fmt.Sprintf("line longer than %d octets", maxStatusLine)}
		}
		if buf[len(buf)-1] == '\n' {
			if err := fn(string(trimEOL(buf))); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
}

// stallConn drops a connection that makes no progress: every Read and
// Write must move at least one byte within timeout. Reads happen only
// while a reply is awaited, so an idle session never trips it.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &stallError{msg: fmt.Sprintf("no answer from the server for %v", c.timeout)}
	}
	return n, err
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = &stallError{msg: fmt.Sprintf("the server accepted no data for %v", c.timeout)}
	}
	return n, err
}
