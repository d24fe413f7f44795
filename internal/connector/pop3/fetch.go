package pop3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mailferry/mailferry/internal/connector"
)

// Fetch implements connector.Source with RETR (RFC 1939 §7), pipelined a
// few messages ahead when the server offers PIPELINING.
//
// The bytes delivered for a message are exactly those between the +OK
// line of RETR and the terminating "." line, with byte-stuffing undone
// (see dotReader): the CRLF before the terminator is the message's last
// line ending. A message stored without a final line break therefore
// arrives with one: POP3 cannot say otherwise (RFC 1939 §3 makes the
// server add it). Servers send CRLF line endings; bare LFs or CRs a
// server passes through are kept as sent.
//
// Each body is read completely before fn sees it, so that Body.Size is
// exact: the size LIST reports is the server's count, which may differ
// from the bytes RETR sends (Dovecot counts a message without a final
// line break without the CRLF it then sends; other servers count their
// own line-ending convention, RFC 1939 §11). Up to 1 MiB is held in
// memory, larger bodies in a temporary file in OpenOptions.SpoolDir, so
// memory does not grow with message size.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	if err := checkFolder(f); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	return c.withSession(ctx, "fetch from "+c.addr, func(s *session) error {
		return s.fetch(msgs, fn)
	})
}

func (s *session) fetch(msgs []connector.Message, fn func(connector.Body, error) error) error {
	x, err := s.ensureIndex(nil)
	if err != nil {
		return err
	}
	var found []entry
	var want []connector.Message
	for _, m := range msgs {
		pos, ok := x.byID[m.ID]
		if !ok {
			err := &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("fetch message %s", m.ID), Hint: hintVanished,
				Err: errors.New("the message is not in the mailbox (any more)")}
			if err := fn(connector.Body{Message: m}, err); err != nil {
				return callback(err)
			}
			continue
		}
		found = append(found, x.msgs[pos])
		want = append(want, m)
	}
	cmds := make([]string, len(found))
	for i, e := range found {
		cmds[i] = "RETR " + strconv.Itoa(e.num)
	}
	return s.exchange(cmds, true, retrAhead(found), func(i int, st status, body *dotReader) error {
		m := want[i]
		if !st.ok {
			kind, hint := kindOfCode(st.code)
			err := &connector.Error{Kind: kind, Op: fmt.Sprintf("fetch message %s", m.ID), Hint: hint,
				Err: &serverError{code: st.code, text: st.text}}
			if kind != connector.KindItem {
				return err // the session or the server, not this message
			}
			return callback(fn(connector.Body{Message: m}, err))
		}
		defer s.body.reset()
		if err := s.body.start(found[i].size); err != nil {
			return err
		}
		if _, err := body.WriteTo(&s.body); err != nil {
			return err
		}
		r, size := s.body.open()
		return callback(fn(connector.Body{Message: m, Reader: r, Size: size}, nil))
	})
}

// retrAhead lets RETR commands run ahead while the messages they ask
// for, by their LIST sizes, add up to at most retrBytesAhead beyond the
// one being read: enough to keep a link with a long round trip busy
// with small messages, while a large one is asked for only once the
// ones before it are read, so that little is sent in vain when the
// caller stops early.
func retrAhead(msgs []entry) func(oldest, next int) bool {
	sum := make([]int64, len(msgs)+1) // sum[i] = size of msgs[:i]
	for i, e := range msgs {
		sum[i+1] = sum[i] + e.size
	}
	return func(oldest, next int) bool { return sum[next+1]-sum[oldest+1] <= retrBytesAhead }
}

// spoolMemory is the largest body held in memory.
const spoolMemory = 1 << 20

// bodySpool holds one message body so that its size is known before it
// is handed on. The session reuses it for every message.
type bodySpool struct {
	dir  string
	mem  []byte
	file *os.File
	size int64
}

// start prepares for a body of about hint bytes (the LIST size): one
// that will not fit in memory goes to a file from its first byte.
func (b *bodySpool) start(hint int64) error {
	b.reset()
	if hint > spoolMemory {
		return b.toFile()
	}
	if int64(cap(b.mem)) < hint {
		b.mem = make([]byte, 0, hint)
	}
	return nil
}

func (b *bodySpool) toFile() error {
	f, err := os.CreateTemp(b.dir, "mailferry-pop3-*")
	if err != nil {
		return fmt.Errorf("spool a message to disk: %w", err)
	}
	b.file = f
	if _, err := f.Write(b.mem); err != nil {
		return fmt.Errorf("spool a message to disk: %w", err)
	}
	b.mem = b.mem[:0]
	return nil
}

func (b *bodySpool) Write(p []byte) (int, error) {
	if b.file == nil && len(b.mem)+len(p) > spoolMemory {
		if err := b.toFile(); err != nil {
			return 0, err
		}
	}
	b.size += int64(len(p))
	if b.file != nil {
		n, err := b.file.Write(p)
		if err != nil {
			err = fmt.Errorf("spool a message to disk: %w", err)
		}
		return n, err
	}
	b.mem = append(b.mem, p...)
	return len(p), nil
}

// open returns a reader of the whole body and its size.
func (b *bodySpool) open() (io.Reader, int64) {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size), b.size
	}
	return bytes.NewReader(b.mem), b.size
}

// reset forgets the body: the memory is kept for the next one, the file
// removed.
func (b *bodySpool) reset() {
	if b.file != nil {
		name := b.file.Name()
		_ = b.file.Close()
		_ = os.Remove(name)
		b.file = nil
	}
	if cap(b.mem) > spoolMemory {
		b.mem = nil
	}
	b.mem = b.mem[:0]
	b.size = 0
}
