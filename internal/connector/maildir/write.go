package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	gomaildir "github.com/emersion/go-maildir"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// initDir makes dir a maildir (cur/, new/, tmp/), keeping what exists.
func initDir(dir string) error { return gomaildir.Dir(dir).Init() }

// CreateFolder creates p and its parents as maildirs in the connector's
// layout; Maildir++ and fs subfolders get the empty maildirfolder file
// Courier and Dovecot put there. INBOX is the root.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	if len(p) == 0 || p.IsInbox() {
		if err := initDir(c.root.Dir); err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "", err, "maildir %s: create INBOX", c.root.Dir)
		}
		return connector.Folder{Path: mail.Path{mail.InboxName}, Role: mail.RoleInbox, Delimiter: '/'}, nil
	}
	p = p.Canonical()
	var rel string
	for i := 1; i <= len(p); i++ {
		rel = dirOf(p[:i], c.layout)
		full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
		if rel == "" {
			continue // INBOX/child: the root is INBOX
		}
		// fs layout: INBOX's children live under a plain INBOX/ directory.
		err := os.MkdirAll(filepath.Dir(full), 0o700)
		if err == nil {
			err = initDir(full)
		}
		if err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "check that the maildir is writable", err, "maildir %s: create folder %q", c.root.Dir, p[:i])
		}
		if _, err := c.root.Check(full); err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "remove the symbolic link or choose another destination", err, "maildir %s: folder %q", c.root.Dir, p[:i])
		}
		if err := os.WriteFile(filepath.Join(full, "maildirfolder"), nil, 0o600); err != nil {
			return connector.Folder{}, connector.Errorf(connector.KindConfig, "", err, "maildir %s: create folder %q", c.root.Dir, p[:i])
		}
	}
	if err := localfile.SyncDir(c.root.Dir); err != nil {
		return connector.Folder{}, connector.Errorf(connector.KindTransient, "", err, "maildir %s: create folder %q", c.root.Dir, p)
	}
	return connector.Folder{Path: p, Name: rel, Role: mail.RoleFromName(p), Delimiter: '/'}, nil
}

type done struct {
	res connector.AppendResult
	err error
}

func (d done) Wait() (connector.AppendResult, error) { return d.res, d.err }

// staged is a message written to tmp/ and not yet moved into cur/.
type staged struct {
	msg  *gomaildir.Message
	file io.WriteCloser // go-maildir's: Close renames tmp/<key> to cur/<key>:2,<flags>
	tmp  string
}

// Append writes the message to tmp/, fsyncs it, sets its mtime to the
// INTERNALDATE (Dovecot's convention), and renames it into cur/ with its
// flags in the name (go-maildir's Dir.Create), then fsyncs cur/. A crash
// before the rename leaves only a file in tmp/, which no reader lists;
// after it, the whole message.
func (c *Conn) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	dir, err := c.folderDir(f)
	if err != nil {
		return nil, err
	}
	s, err := c.stage(dir, req)
	if err != nil {
		return nil, err
	}
	id, err := s.commit(dir)
	if err != nil && id == "" {
		return nil, err
	}
	return done{res: connector.AppendResult{ID: id}, err: err}, nil
}

func (c *Conn) letters(dir string, flags []string) (string, error) {
	l := c.folderLock(dir)
	l.Lock()
	defer l.Unlock()
	kws, err := ensureKeywords(dir, flags)
	if err != nil {
		return "", connector.Errorf(connector.KindTransient, "", err, "maildir %s: store keywords", dir)
	}
	letters, err := lettersOf(flags, func(k string) (byte, bool) { return keywordLetter(kws, k) })
	if err != nil {
		return "", connector.Errorf(connector.KindItem, "keep fewer keywords in this folder, or copy to IMAP instead", err, "maildir %s", dir)
	}
	return letters, nil
}

// stage is the first half of Append: the message complete and durable
// in tmp/.
func (c *Conn) stage(dir string, req connector.AppendRequest) (*staged, error) {
	letters, err := c.letters(dir, req.Flags)
	if err != nil {
		return nil, err
	}
	fl := make([]gomaildir.Flag, len(letters))
	for i := range letters {
		fl[i] = gomaildir.Flag(letters[i])
	}
	msg, w, err := gomaildir.Dir(dir).Create(fl)
	if err != nil {
		return nil, connector.Errorf(connector.KindTransient, "check that the maildir is writable and the disk has room", err, "maildir %s: create message", dir)
	}
	// go-maildir's writer is its *os.File in tmp/: it can be synced and
	// named, which Create's io.WriteCloser does not show.
	file, ok := w.(interface {
		Name() string
		Sync() error
	})
	if !ok {
		w.Close()
		return nil, fmt.Errorf("maildir: go-maildir's writer has changed shape (%T)", w)
	}
	s := &staged{msg: msg, file: w, tmp: file.Name()}
	fail := func(err error) (*staged, error) {
		s.abort()
		return nil, err
	}
	n, err := io.CopyN(w, req.Body, req.Size)
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(fmt.Errorf("maildir %s: write message: %w", dir, err))
	}
	if n < req.Size {
		return fail(connector.Errorf(connector.KindItem, "", io.ErrUnexpectedEOF, "maildir %s: the message body ended after %d of %d bytes", dir, n, req.Size))
	}
	if err := file.Sync(); err != nil {
		return fail(connector.Errorf(connector.KindTransient, "check that the disk has room", err, "maildir %s: write message", dir))
	}
	if !req.InternalDate.IsZero() {
		if err := os.Chtimes(s.tmp, req.InternalDate, req.InternalDate); err != nil {
			return fail(connector.Errorf(connector.KindTransient, "", err, "maildir %s: set the received date", dir))
		}
	}
	return s, nil
}

// abort removes a staged message. go-maildir's Close renames tmp/ into
// cur/; removing the tmp file first makes that rename fail, so a partial
// message never appears in cur/, not even for an instant.
func (s *staged) abort() {
	os.Remove(s.tmp)
	s.file.Close()
}

// commit is the second half of Append: rename into cur/ and make the
// rename durable. id is set once the message is in cur/ (an error then
// leaves it stored but perhaps not yet durable).
func (s *staged) commit(dir string) (connector.ID, error) {
	if err := s.file.Close(); err != nil {
		os.Remove(s.tmp)
		return "", connector.Errorf(connector.KindTransient, "", err, "maildir %s: store message", dir)
	}
	id := connector.ID(s.msg.Key())
	if err := localfile.SyncDir(filepath.Join(dir, "cur")); err != nil {
		e := connector.Errorf(connector.KindTransient, "", err, "maildir %s: make the message durable", dir)
		e.Uncertain = true
		return id, e
	}
	return id, nil
}

// SetFlags renames each message's file to carry the new flags (into cur/
// when it was in new/), keeping Dovecot's non-standard fields. IDs that
// are gone are skipped.
func (c *Conn) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	dir, err := c.folderDir(f)
	if err != nil {
		return err
	}
	letters, err := c.letters(dir, flags)
	if err != nil {
		return err
	}
	l := c.folderLock(dir)
	l.Lock()
	defer l.Unlock()
	idx, err := buildIndex(dir)
	if err != nil {
		return c.folderError(f, dir, err)
	}
	for _, id := range ids {
		rel, ok := idx[string(id)]
		if !ok || !validID(id) {
			continue
		}
		n := parseName(filepath.Base(rel))
		to := "cur/" + curName(n.base, letters, n.extra)
		if to == rel {
			continue
		}
		err := os.Rename(filepath.Join(dir, filepath.FromSlash(rel)), filepath.Join(dir, filepath.FromSlash(to)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.Errorf(connector.KindTransient, "", err, "maildir %s: set flags of %s", dir, id)
		}
	}
	for _, sub := range []string{"cur", "new"} {
		if err := localfile.SyncDir(filepath.Join(dir, sub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.Errorf(connector.KindTransient, "", err, "maildir %s: set flags", dir)
		}
	}
	return nil
}

// Delete removes exactly these messages' files; gone IDs are skipped.
func (c *Conn) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	dir, err := c.folderDir(f)
	if err != nil {
		return err
	}
	l := c.folderLock(dir)
	l.Lock()
	defer l.Unlock()
	idx, err := buildIndex(dir)
	if err != nil {
		return c.folderError(f, dir, err)
	}
	for _, id := range ids {
		rel, ok := idx[string(id)]
		if !ok || !validID(id) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.Errorf(connector.KindTransient, "", err, "maildir %s: delete %s", dir, id)
		}
	}
	for _, sub := range []string{"cur", "new"} {
		if err := localfile.SyncDir(filepath.Join(dir, sub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.Errorf(connector.KindTransient, "", err, "maildir %s: delete", dir)
		}
	}
	return nil
}
