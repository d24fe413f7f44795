package imap

import (
	"bufio"
	"bytes"
	"errors"
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

// bareLFs counts the LFs in r not preceded by CR.
func bareLFs(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n int64
	prevCR := false
	buf := make([]byte, 64<<10)
	for {
		k, err := br.Read(buf)
		b := buf[:k]
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				prevCR = b[len(b)-1] == '\r'
				break
			}
			if (i == 0 && !prevCR) || (i > 0 && b[i-1] != '\r') {
				n++
			}
			prevCR = false
			b = b[i+1:]
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
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
