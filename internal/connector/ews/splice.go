package ews

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// splicer streams a GetItem answer to an encoding/xml Decoder, taking the
// base64 text of every t:MimeContent element out of the stream on the
// way. encoding/xml returns an element's text as one CharData token, so
// decoding a 30 MB message with it would hold 40 MB of base64 and the
// decoded copy in memory; the splicer instead decodes the text as it
// arrives and hands the bytes to consume, then puts the body's index
// (0, 1, …) where the text was, so that the Decoder sees
// <t:MimeContent CharacterSet="UTF-8">0</t:MimeContent>.
//
// It understands just enough XML (XML 1.0 §2.4-2.8, §3.1) to find start
// tags: text up to '<', comments, CDATA sections, processing
// instructions and declarations are passed through unread; attribute
// values may hold '>' but not '<' (§3.1 AttValue). The base64 text may
// hold XML white space (xs:base64Binary allows it), which is dropped;
// anything else that is not base64 makes that one body fail, not the
// stream.
type splicer struct {
	r *bufio.Reader
	// consume reads body number i (the decoded bytes) until EOF or as far
	// as it wants; an error it returns is that body's, not the stream's.
	consume func(i int, body io.Reader) error
	// bodyErrs are the bodies that failed, by index.
	bodyErrs map[int]error

	out []byte // bytes ready for the Decoder
	buf []byte // backing store of out
	n   int    // bodies seen
	err error  // sticky stream error
}

// maxTag bounds one tag (name and attributes). EWS tags are short; the
// longest are ItemIds of some hundred bytes.
const maxTag = 1 << 20

func newSplicer(r io.Reader, consume func(int, io.Reader) error) *splicer {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &splicer{r: br, consume: consume, bodyErrs: map[int]error{}}
}

func (s *splicer) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.buf = s.buf[:0]
		s.step()
		s.out = s.buf
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// step moves the text up to the next '<' and the markup that starts
// there to s.buf.
func (s *splicer) step() {
	chunk, err := s.r.ReadSlice('<')
	if len(chunk) > 0 && chunk[len(chunk)-1] == '<' && err == nil {
		s.buf = append(s.buf, chunk...)
		s.markup()
		return
	}
	s.buf = append(s.buf, chunk...)
	if err != nil && err != bufio.ErrBufferFull {
		s.err = err
	}
}

// markup handles what follows a '<' (already in s.buf).
func (s *splicer) markup() {
	b, err := s.r.Peek(1)
	if err != nil {
		s.err = unexpected(err)
		return
	}
	switch b[0] {
	case '!':
		if s.hasPrefix("!--") {
			s.copyUntil("-->")
		} else if s.hasPrefix("![CDATA[") {
			s.copyUntil("]]>")
		} else {
			s.copyUntil(">")
		}
		return
	case '?':
		s.copyUntil("?>")
		return
	case '/':
		s.copyUntil(">")
		return
	}
	s.startTag()
}

func (s *splicer) hasPrefix(p string) bool {
	b, _ := s.r.Peek(len(p))
	return string(b) == p
}

// copyUntil moves bytes to s.buf up to and including end. Comments,
// CDATA sections and declarations are not expected in EWS answers; one
// longer than maxTag fails the stream rather than grow without bound.
func (s *splicer) copyUntil(end string) {
	start := len(s.buf)
	last := end[len(end)-1]
	for {
		chunk, err := s.r.ReadSlice(last)
		s.buf = append(s.buf, chunk...)
		if len(s.buf)-start > maxTag {
			s.err = errors.New("ews: a comment, CDATA section or declaration in the answer is longer than 1 MiB")
			return
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			s.err = unexpected(err)
			return
		}
		if bytes.HasSuffix(s.buf[start:], []byte(end)) {
			return
		}
	}
}

// startTag reads a start tag (after '<'); a MimeContent start tag is
// followed by its body's index instead of its text.
func (s *splicer) startTag() {
	start := len(s.buf)
	inQuote := byte(0)
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			s.err = unexpected(err)
			return
		}
		s.buf = append(s.buf, c)
		if len(s.buf)-start > maxTag {
			s.err = errors.New("ews: a tag in the answer is longer than 1 MiB")
			return
		}
		switch {
		case inQuote != 0:
			if c == inQuote {
				inQuote = 0
			}
		case c == '"' || c == '\'':
			inQuote = c
		case c == '<':
			s.err = errors.New("ews: '<' inside a tag in the answer")
			return
		case c == '>':
			tag := s.buf[start:]
			if !isMimeContent(tag) {
				return
			}
			selfClosing := len(tag) >= 2 && tag[len(tag)-2] == '/'
			if selfClosing {
				// <t:MimeContent/> is an empty body: rewrite it as a
				// start and end tag around the index.
				name := tagName(tag)
				s.buf = append(s.buf[:len(s.buf)-2], '>')
				s.body(true)
				s.buf = append(s.buf, "</"...)
				s.buf = append(s.buf, name...)
				s.buf = append(s.buf, '>')
				return
			}
			s.body(false)
			return
		}
	}
}

// tagName is the qualified name at the start of a tag's bytes.
func tagName(tag []byte) []byte {
	end := 0
	for end < len(tag) && !isXMLSpace(tag[end]) && tag[end] != '/' && tag[end] != '>' {
		end++
	}
	return tag[:end]
}

// isMimeContent reports whether a start tag's local name is MimeContent.
func isMimeContent(tag []byte) bool {
	name := tagName(tag)
	if i := bytes.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name) == "MimeContent"
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// body decodes one MimeContent text (none when empty) through consume,
// and writes its index.
func (s *splicer) body(empty bool) {
	i := s.n
	s.n++
	tr := &base64Text{r: s.r, done: empty}
	err := s.consume(i, base64.NewDecoder(base64.StdEncoding, tr))
	if tr.err == nil && !empty {
		tr.drain()
	}
	if tr.err != nil {
		s.err = tr.err
		return
	}
	var ab *abortError
	if errors.As(err, &ab) {
		s.err = ab.err
		return
	}
	if err != nil {
		s.bodyErrs[i] = err
	}
	s.buf = strconv.AppendInt(s.buf, int64(i), 10)
}

// base64Text reads an element's base64 text up to the '<' that ends it
// (left unread), dropping spaces and tabs; the base64 decoder itself
// skips CR and LF and refuses any other character that is not base64
// (a corrupt body), after which drain skips to the '<'. The text moves
// in chunks found with bytes.IndexByte, not byte by byte.
type base64Text struct {
	r    *bufio.Reader
	done bool
	err  error // the stream failed (it ended inside the text)
}

func (t *base64Text) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n := 0
	for n == 0 && len(p) > 0 {
		if t.done {
			return 0, io.EOF
		}
		if _, err := t.r.Peek(1); err != nil {
			t.err = unexpected(err)
			return 0, t.err
		}
		chunk, _ := t.r.Peek(t.r.Buffered())
		lt := bytes.IndexByte(chunk, '<')
		if lt >= 0 {
			chunk = chunk[:lt]
		}
		k := min(len(chunk), len(p))
		seg := chunk[:k]
		if bytes.IndexByte(seg, ' ') < 0 && bytes.IndexByte(seg, '\t') < 0 {
			n = copy(p, seg)
		} else {
			for _, c := range seg {
				if c != ' ' && c != '\t' {
					p[n] = c
					n++
				}
			}
		}
		_, _ = t.r.Discard(k)
		if lt >= 0 && k == lt {
			t.done = true
		}
	}
	return n, nil
}

// drain skips what is left of the text, up to the '<'.
func (t *base64Text) drain() {
	for {
		b, err := t.r.Peek(1)
		if err != nil {
			t.err = unexpected(err)
			return
		}
		if b[0] == '<' {
			return
		}
		chunk, _ := t.r.Peek(t.r.Buffered())
		if i := bytes.IndexByte(chunk, '<'); i >= 0 {
			_, _ = t.r.Discard(i)
			return
		}
		_, _ = t.r.Discard(len(chunk))
	}
}

// abortError from consume fails the whole stream, not one body (a full
// spool disk is no message's fault).
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

func unexpected(err error) error {
	if err == io.EOF {
		return fmt.Errorf("ews: the answer ended early: %w", io.ErrUnexpectedEOF)
	}
	return err
}
