package mbox

import (
	"bufio"
	"bytes"
	"io"
)

// fromMatch follows the start of a line against ^>*From , one byte at a
// time, so that a run of '>' of any length is handled without holding
// it: mboxrd (RFC 4155, appendix; the "mboxrd" of qmail's mbox(5)) adds
// one '>' to every such line when writing and removes one from every
// ^>+From  line when reading.
type fromMatch struct {
	run int64 // '>' seen
	n   int   // bytes of "From " matched after them
}

// step takes the next byte: 1 when the line is a (quoted) From line,
// -1 when it is not, 0 while undecided.
func (m *fromMatch) step(b byte) int {
	if m.n == 0 && b == '>' {
		m.run++
		return 0
	}
	if b == fromPrefix[m.n] {
		m.n++
		if m.n == len(fromPrefix) {
			return 1
		}
		return 0
	}
	return -1
}

// unquoter serves a message's stored bytes as they were before mboxrd
// quoting, limited to n bytes (the served size the scanner computed;
// the separator's blank line after it is left out that way).
type unquoter struct {
	br       *bufio.Reader
	left     int64
	inLine   bool
	m        fromMatch
	gt       int64  // '>' still to emit
	pending  []byte // other bytes still to emit
	pendBuf  [8]byte
	finalErr error
}

func newUnquoter(r io.Reader, n int64) *unquoter {
	return &unquoter{br: bufio.NewReaderSize(r, bufSize), left: n}
}

func (u *unquoter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && u.left > 0 {
		switch {
		case u.gt > 0:
			p[n] = '>'
			n++
			u.gt--
			u.left--
		case len(u.pending) > 0:
			p[n] = u.pending[0]
			u.pending = u.pending[1:]
			n++
			u.left--
		case u.finalErr != nil:
			return n, u.finalErr
		case !u.inLine:
			b, err := u.br.ReadByte()
			if err != nil {
				// Undecided at the end: what was held is served as is.
				u.gt, u.pending = u.m.run, append(u.pendBuf[:0], fromPrefix[:u.m.n]...)
				u.m = fromMatch{}
				u.inLine = true
				u.finalErr = unexpected(err)
				continue
			}
			switch u.m.step(b) {
			case 1:
				u.gt = u.m.run - 1 // the quoting '>' is dropped
				u.pending = append(u.pendBuf[:0], fromPrefix...)
				u.m, u.inLine = fromMatch{}, true
			case -1:
				u.gt = u.m.run
				u.pending = append(append(u.pendBuf[:0], fromPrefix[:u.m.n]...), b)
				u.m = fromMatch{}
				u.inLine = b != '\n'
			}
		default:
			if _, err := u.br.Peek(1); err != nil {
				u.finalErr = unexpected(err)
				continue
			}
			chunk, _ := u.br.Peek(min(u.br.Buffered(), len(p)-n, int(min(u.left, 1<<30))))
			k := len(chunk)
			if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
				k, u.inLine = i+1, false
			}
			copy(p[n:], chunk[:k])
			u.br.Discard(k)
			n += k
			u.left -= int64(k)
		}
	}
	if n == 0 && u.left == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// unexpected: the file ended before the served size was reached (it was
// cut while being read).
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// quoteCopy copies a message body from r to w with mboxrd quoting: one
// '>' before every line that matches ^>*From . It returns the bytes read
// from r and the last of them.
func quoteCopy(w *bufio.Writer, r *bufio.Reader) (int64, byte, error) {
	var read int64
	var last byte
	var m fromMatch
	inLine := false
	flushHeld := func(quote bool, extra []byte) error {
		if quote {
			w.WriteByte('>')
		}
		for i := int64(0); i < m.run; i++ {
			if err := w.WriteByte('>'); err != nil {
				return err
			}
		}
		w.Write(fromPrefix[:m.n])
		_, err := w.Write(extra)
		m = fromMatch{}
		return err
	}
	for {
		if !inLine {
			b, err := r.ReadByte()
			if err == io.EOF {
				return read, last, flushHeld(false, nil)
			}
			if err != nil {
				return read, last, err
			}
			read++
			last = b
			switch m.step(b) {
			case 1:
				if err := flushHeld(true, nil); err != nil {
					return read, last, err
				}
				inLine = true
			case -1:
				if err := flushHeld(false, []byte{b}); err != nil {
					return read, last, err
				}
				inLine = b != '\n'
			}
			continue
		}
		if _, err := r.Peek(1); err != nil {
			if err == io.EOF {
				return read, last, nil
			}
			return read, last, err
		}
		chunk, _ := r.Peek(r.Buffered())
		k := len(chunk)
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			k, inLine = i+1, false
		}
		if _, err := w.Write(chunk[:k]); err != nil {
			return read, last, err
		}
		last = chunk[k-1]
		r.Discard(k)
		read += int64(k)
	}
}
