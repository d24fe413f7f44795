package mbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

func ioSection(f *os.File, from, to int64) io.Reader { return io.NewSectionReader(f, from, to-from) }

// The journal makes appends crash-safe. Beside the file F it is the
// hidden file ".F.mailferry-journal" holding the size of F up to which
// every byte is durable and complete. It is written (and fsynced) when a
// writer opens F, and after every fsync of F; Close removes it. A writer
// that opens F and finds a journal from a crash cuts F back to that size
// (what lies beyond is at most a message whose append never returned,
// which the engine sends again); a reader reads F only up to it.
func journalOf(file string) string {
	return filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".mailferry-journal")
}

const journalMagic = "mailferry mbox journal 1\n"

func readJournal(name string) (int64, bool) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(data), journalMagic)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
	return n, err == nil && n >= 0
}

// writer appends to one file; one per file per Conn, holding an
// exclusive flock(2) on it for as long as the Conn is open.
type writer struct {
	mu        chanMutex
	path      string
	f         *os.File
	journal   *os.File
	size      int64 // where the next message goes
	committed int64 // durable and recorded in the journal
	// pad is written before the next message when the file does not
	// end with an empty line (a file another program wrote): without it
	// the next "From " line would not be a separator.
	pad string
}

// chanMutex is a mutex whose Lock can give up when ctx ends.
type chanMutex chan struct{}

func (m chanMutex) lock(ctx context.Context) error {
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (m chanMutex) unlock() { <-m }

func (c *Conn) writerFor(file string) (*writer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, connector.Errorf(connector.KindConfig, "", errors.New("closed"), "mbox %s", file)
	}
	if w, ok := c.writers[file]; ok {
		return w, nil
	}
	w, err := openWriter(file)
	if err != nil {
		return nil, err
	}
	c.writers[file] = w
	return w, nil
}

func openWriter(file string) (*writer, error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_, hint := localfile.Describe(err)
		return nil, connector.Errorf(connector.KindConfig, hint, err, "mbox %s: open for writing", file)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, connector.Errorf(connector.KindConfig, "close the other program (a mail client, or another Mailferry copy to the same file) and run again", err, "mbox %s is locked by another program", file)
	}
	w := &writer{mu: make(chanMutex, 1), path: file, f: f}
	fail := func(err error) (*writer, error) {
		w.release()
		return nil, connector.Errorf(connector.KindTransient, "", err, "mbox %s: open for writing", file)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	w.size = fi.Size()
	if committed, ok := readJournal(journalOf(file)); ok && committed < w.size {
		// A crash during an append: cut the partial message off.
		if err := f.Truncate(committed); err != nil {
			return fail(err)
		}
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		w.size = committed
	}
	if w.pad, err = padFor(f, w.size); err != nil {
		return fail(err)
	}
	if w.journal, err = os.OpenFile(journalOf(file), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fail(err)
	}
	if err := w.record(w.size); err != nil {
		return fail(err)
	}
	if err := localfile.SyncDir(filepath.Dir(file)); err != nil {
		return fail(err)
	}
	return w, nil
}

// padFor says what must precede a new message at size: nothing at the
// start or after an empty line, "\n" after a complete line, "\n\n" after
// a cut one.
func padFor(f *os.File, size int64) (string, error) {
	if size == 0 {
		return "", nil
	}
	tail := make([]byte, min(size, 3))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return "", err
	}
	switch {
	case bytes.HasSuffix(tail, []byte("\n\n")) || bytes.HasSuffix(tail, []byte("\n\r\n")) || size == 1 && tail[0] == '\n':
		return "", nil
	case bytes.HasSuffix(tail, []byte("\n")):
		return "\n", nil
	}
	return "\n\n", nil
}

// record writes the journal: everything up to committed is durable.
func (w *writer) record(committed int64) error {
	data := journalMagic + strconv.FormatInt(committed, 10) + "\n"
	if _, err := w.journal.WriteAt([]byte(data), 0); err != nil {
		return err
	}
	if err := w.journal.Truncate(int64(len(data))); err != nil {
		return err
	}
	if err := w.journal.Sync(); err != nil {
		return err
	}
	w.committed = committed
	return nil
}

// release closes the files and drops the lock, leaving the journal.
func (w *writer) release() {
	if w.journal != nil {
		w.journal.Close()
	}
	w.f.Close()
}

// sync makes everything appended durable and records it.
func (w *writer) sync() error {
	if w.committed >= w.size {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	return w.record(w.size)
}

// close syncs, removes the journal and releases the file.
func (w *writer) close() error {
	err := w.sync()
	if err == nil {
		err = os.Remove(journalOf(w.path))
		if err == nil {
			err = localfile.SyncDir(filepath.Dir(w.path))
		}
	}
	w.release()
	return err
}

// Close makes every append durable and closes the files.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for p, w := range c.writers {
		w.mu <- struct{}{}
		if err := w.close(); err != nil {
			errs = append(errs, fmt.Errorf("mbox %s: %w", p, err))
		}
		delete(c.writers, p)
	}
	return errors.Join(errs...)
}

// CreateFolder creates the folder's file (and its parents' files and
// ".sbd" directories, as Thunderbird lays them out). In a single file
// every folder is that file: the whole mailbox lands in it.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	if c.single != "" {
		return c.inbox(), nil
	}
	if len(p) == 0 {
		p = mail.Path{mail.InboxName}
	}
	p = p.Canonical()
	var rel string
	for i := 1; i <= len(p); i++ {
		rel = fileOf(p[:i])
		full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "check that the tree is writable", err, "mbox tree %s: create folder %q", c.root.Dir, p[:i])
		}
		f, err := os.OpenFile(full, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "check that the tree is writable", err, "mbox tree %s: create folder %q", c.root.Dir, p[:i])
		}
		f.Close()
		if _, err := c.root.Check(full); err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "remove the symbolic link or choose another destination", err, "mbox tree %s: folder %q", c.root.Dir, p[:i])
		}
	}
	return connector.Folder{Path: p, Name: rel, Role: mail.RoleFromName(p), Delimiter: '/'}, nil
}

type pending struct {
	w   *writer
	end int64
	id  connector.ID
}

// Wait makes the message durable (one fsync covers every append made
// before it: a group commit) and returns its ID.
func (p *pending) Wait() (connector.AppendResult, error) {
	p.w.mu <- struct{}{}
	defer p.w.mu.unlock()
	if p.w.committed < p.end {
		if err := p.w.sync(); err != nil {
			e := connector.Errorf(connector.KindTransient, "check that the disk has room", err, "mbox %s: make the message durable", p.w.path)
			e.Uncertain = true
			return connector.AppendResult{}, e
		}
	}
	return connector.AppendResult{ID: p.id}, nil
}

// Append writes one message at the end of the folder's file: the "From "
// line with the INTERNALDATE, the X-Mailferry-Mbox line and the flag
// lines, the body with mboxrd quoting, and the empty line that ends it.
// It then reads the message back with the same scanner List uses, so the
// ID it returns is the one List gives, and a message that would not read
// back exactly is cut off again and refused. Wait makes it durable.
func (c *Conn) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	file, err := c.fileOfFolder(f)
	if err != nil {
		return nil, err
	}
	if file == "" {
		return nil, connector.Errorf(connector.KindMissingFolder, "", fs.ErrNotExist, "mbox folder %q has no file", f.Path)
	}
	w, err := c.writerFor(file)
	if err != nil {
		return nil, err
	}
	if err := w.mu.lock(ctx); err != nil {
		return nil, err
	}
	defer w.mu.unlock()
	date := req.InternalDate
	if date.IsZero() {
		date = c.now()
	}
	start := w.size
	id, end, err := w.write(start, date, req)
	if err != nil {
		if terr := w.f.Truncate(start); terr != nil {
			// The file could not be cut back: stop using it.
			err = errors.Join(err, terr)
		}
		return nil, err
	}
	w.size, w.pad = end, ""
	return &pending{w: w, end: end, id: id}, nil
}

func (w *writer) write(start int64, date time.Time, req connector.AppendRequest) (connector.ID, int64, error) {
	cw := &countingWriter{w: io.NewOffsetWriter(w.f, start)}
	out := bufio.NewWriterSize(cw, bufSize)
	in := bufio.NewReaderSize(io.LimitReader(req.Body, req.Size), bufSize)
	eol := "\n"
	if head, _ := in.Peek(4096); len(head) > 0 {
		if i := bytes.IndexByte(head, '\n'); i > 0 && head[i-1] == '\r' {
			eol = "\r\n" // the flag lines follow the message's own line ends
		}
	}
	msgStart := start + int64(len(w.pad))
	out.WriteString(w.pad)
	from := formatFromLine(date)
	out.WriteString(from)
	lines := flagLines(req.Flags, eol)
	marker := fmt.Sprintf("%s v=1 flag-lines=%d final-newline=1%s", markerName, len(lines), eol)
	markerDigit := msgStart + int64(len(from)) + int64(len(marker)-len(eol)-1)
	out.WriteString(marker)
	for _, l := range lines {
		out.WriteString(l)
	}
	n, last, err := quoteCopy(out, in)
	if err != nil {
		return "", 0, fmt.Errorf("mbox %s: write message: %w", w.path, err)
	}
	if n != req.Size {
		return "", 0, connector.Errorf(connector.KindItem, "", io.ErrUnexpectedEOF, "mbox %s: the message body ended after %d of %d bytes", w.path, n, req.Size)
	}
	if n > 0 && last == '\n' {
		out.WriteString("\n")
	} else {
		out.WriteString("\n\n")
	}
	if err := out.Flush(); err != nil {
		return "", 0, connector.Errorf(connector.KindTransient, "check that the disk has room", err, "mbox %s: write message", w.path)
	}
	end := start + cw.n
	if !(n > 0 && last == '\n') {
		if _, err := w.f.WriteAt([]byte{'0'}, markerDigit); err != nil {
			return "", 0, connector.Errorf(connector.KindTransient, "", err, "mbox %s: write message", w.path)
		}
	}
	m, err := scanOne(w.f, msgStart, end)
	if err != nil || m.End != end || m.Served != req.Size || m.Problem != "" || !m.ours {
		return "", 0, connector.Errorf(connector.KindItem, "", fmt.Errorf("the message did not read back as written (%v)", err), "mbox %s at byte %d", w.path, msgStart)
	}
	return m.ID(), end, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
