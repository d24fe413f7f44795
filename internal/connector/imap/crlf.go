package imap

import (
	"bytes"
	"io"
)

// RFC 5322 section 2.1 and RFC 3501 section 4.3 want CRLF line ends in a
// message; local files (Maildir, mbox, .eml) often hold bare LF, and
// servers refuse (Cyrus: "Message contains bare newlines") or silently
// rewrite such messages. So Append turns every LF not preceded by CR into
// CRLF, and nothing else: a lone CR stays, and a message that already
// has CRLF passes unchanged. This is the only place Mailferry changes a
// message's bytes; byte-exactness is defined on the CRLF form, and the
// identity of a message without Message-ID is computed from the size of
// that form by every connector (docs/IDENTITY.md).

// bareLFs counts the LFs in r not preceded by CR. It reads r through
// io.Copy, so that a reader with WriteTo (the spool's memory chunks)
// hands over its own bytes: this runs for every message appended, and a
// 64 KiB buffer per message (two, with a bufio.Reader around it) was a
// quarter of Mailferry's CPU at 100k messages, in allocating and
// zeroing them (issue 14).
func bareLFs(r io.Reader) (int64, error) {
	var c lfCounter
	_, err := io.Copy(&c, r)
	return c.n, err
}

// lfCounter is an io.Writer that counts the bare LFs written to it.
type lfCounter struct {
	n      int64
	prevCR bool
}

func (c *lfCounter) Write(p []byte) (int, error) {
	b := p
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.prevCR = b[len(b)-1] == '\r'
			break
		}
		if (i == 0 && !c.prevCR) || (i > 0 && b[i-1] != '\r') {
			c.n++
		}
		c.prevCR = false
		b = b[i+1:]
	}
	return len(p), nil
}

// crlfReader yields r with every bare LF turned into CRLF.
type crlfReader struct {
	r      io.Reader
	buf    []byte
	out    []byte // converted bytes not yet read
	prevCR bool
	err    error
}

func newCRLFReader(r io.Reader) *crlfReader {
	return &crlfReader{r: r, buf: make([]byte, 32<<10)}
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		k, err := c.r.Read(c.buf)
		c.err = err
		c.out = c.out[:0]
		for _, ch := range c.buf[:k] {
			if ch == '\n' && !c.prevCR {
				c.out = append(c.out, '\r')
			}
			c.out = append(c.out, ch)
			c.prevCR = ch == '\r'
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}
