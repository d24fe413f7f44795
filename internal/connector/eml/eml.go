package eml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// Backend registers the eml: scheme (a source only).
func Backend() connector.Backend {
	return connector.Backend{
		Name:    "eml",
		Schemes: []string{"eml"},
		Local:   true,
		Source:  true,
		Parse:   Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return Open(ctx, e, o)
		},
	}
}

// Parse reads an eml: address (see the package documentation).
func Parse(raw string) (connector.Endpoint, error) {
	return localfile.ParseAddress("eml", raw)
}

// Conn is an open tree of .eml files. It is safe for concurrent use:
// every call opens and closes its own files.
type Conn struct {
	root localfile.Root
	// single is the file's name when the address names one .eml file.
	single string
	now    func() time.Time
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
)

// Open opens the tree (or the single file) at e.Path, which must exist.
func Open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	if err := connector.RefuseMailbox("EML", e, o.Credentials); err != nil {
		return nil, err
	}
	if o.Role == connector.RoleDestination {
		return nil, connector.Errorf(connector.KindConfig, "write to maildir: or mbox: instead", nil, "eml %s: an EML tree can only be read", e.Path)
	}
	fi, err := os.Stat(e.Path)
	if err != nil {
		_, hint := localfile.Describe(err)
		if errors.Is(err, fs.ErrNotExist) {
			hint = "check the path: give a directory of .eml files"
		}
		return nil, connector.Errorf(connector.KindConfig, hint, err, "eml %s", e.Path)
	}
	c := &Conn{now: time.Now}
	dir := e.Path
	switch {
	case fi.Mode().IsRegular():
		dir, c.single = filepath.Dir(e.Path), filepath.Base(e.Path)
	case !fi.IsDir():
		return nil, connector.Errorf(connector.KindConfig, "give a directory of .eml files", nil, "eml %s is neither a file nor a directory", e.Path)
	}
	if c.root, err = localfile.NewRoot(dir); err != nil {
		return nil, connector.Errorf(connector.KindConfig, "", err, "eml %s", e.Path)
	}
	return c, nil
}

// Features: a read-only tree with folders, listed whole every time.
func (c *Conn) Features() connector.Features {
	return connector.Features{MaxConnections: 4, Folders: c.single == ""}
}

// Close releases nothing.
func (c *Conn) Close() error { return nil }

func isEML(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.EqualFold(path.Ext(name), ".eml")
}

const maxDepth = 64

// Folders: the root's files are INBOX (with those of a top-level
// directory named Inbox, in any case), every directory below is a folder
// named by its path, and directories without .eml files anywhere below
// are not folders. A directory that cannot be read is listed; List says
// why.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	inbox := connector.Folder{Path: mail.Path{mail.InboxName}, Role: mail.RoleInbox, Delimiter: '/'}
	if c.single != "" {
		return []connector.Folder{inbox}, nil
	}
	var out []connector.Folder
	if _, err := c.walk("", nil, 0, &out); err != nil {
		_, hint := localfile.Describe(err)
		return nil, connector.Errorf(connector.KindConfig, hint, err, "eml tree %s", c.root.Dir)
	}
	out = append(out, inbox)
	sort.Slice(out, func(i, j int) bool { return out[i].Path.String() < out[j].Path.String() })
	return out, nil
}

// walk lists the folders below rel and reports whether rel holds .eml
// files anywhere below.
func (c *Conn) walk(rel string, p mail.Path, depth int, out *[]connector.Folder) (bool, error) {
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	entries, err := os.ReadDir(full)
	if err != nil {
		if rel == "" {
			return false, err
		}
		*out = append(*out, folder(p, rel, false)) // List reports the error
		return true, nil
	}
	mailHere, below := false, false
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if e.IsDir() && depth < maxDepth {
			cp := append(append(mail.Path(nil), p...), name)
			if rel == "" && strings.EqualFold(name, mail.InboxName) {
				cp = mail.Path{mail.InboxName} // merged into INBOX
			}
			h, err := c.walk(join(rel, name), cp, depth+1, out)
			if err != nil {
				return false, err
			}
			below = below || h
			continue
		}
		if isEML(name) {
			mailHere = true
		}
	}
	if rel != "" && !p.IsInbox() && (mailHere || below) {
		*out = append(*out, folder(p, rel, !mailHere))
	}
	return mailHere || below, nil
}

func folder(p mail.Path, rel string, noSelect bool) connector.Folder {
	return connector.Folder{Path: p, Name: rel, Role: mail.RoleFromName(p), Delimiter: '/', NoSelect: noSelect}
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// dirsOf lists the directories (relative) whose files a folder holds.
func (c *Conn) dirsOf(f connector.Folder) ([]string, error) {
	if f.Path.IsInbox() || len(f.Path) == 0 {
		dirs := []string{""}
		if c.single == "" {
			if entries, err := os.ReadDir(c.root.Dir); err == nil {
				for _, e := range entries {
					if e.IsDir() && strings.EqualFold(e.Name(), mail.InboxName) {
						dirs = append(dirs, e.Name())
					}
				}
			}
		}
		return dirs, nil
	}
	rel := f.Name
	if rel == "" {
		rel = f.Path.String()
	}
	if filepath.IsAbs(rel) || strings.Contains("/"+rel+"/", "/../") || strings.Contains("/"+rel+"/", "/./") {
		return nil, connector.Errorf(connector.KindMissingFolder, "", localfile.ErrOutsideRoot, "eml folder %q", f.Path)
	}
	return []string{rel}, nil
}

type entry struct {
	rel string // the ID
	fi  os.FileInfo
	err error
}

// files lists a folder's .eml files, sorted by name.
func (c *Conn) files(f connector.Folder) ([]entry, error) {
	dirs, err := c.dirsOf(f)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, d := range dirs {
		full := filepath.Join(c.root.Dir, filepath.FromSlash(d))
		if _, err := c.root.Check(full); err != nil {
			return nil, folderError(f, full, err)
		}
		var names []string
		if c.single != "" {
			names = []string{c.single}
		} else {
			entries, err := os.ReadDir(full)
			if err != nil {
				return nil, folderError(f, full, err)
			}
			for _, e := range entries {
				if isEML(e.Name()) && !e.IsDir() {
					names = append(names, e.Name())
				}
			}
		}
		for _, n := range names {
			e := entry{rel: join(d, n)}
			e.fi, e.err = os.Stat(filepath.Join(full, n))
			if errors.Is(e.err, fs.ErrNotExist) {
				continue // removed while listing
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

func folderError(f connector.Folder, dir string, err error) error {
	_, hint := localfile.Describe(err)
	if errors.Is(err, fs.ErrPermission) {
		hint = "make the directory readable (chmod -R u+rX) and run again"
	}
	if errors.Is(err, fs.ErrNotExist) {
		return connector.Errorf(connector.KindMissingFolder, "", err, "eml folder %q (%s)", f.Path, dir)
	}
	return connector.Errorf(connector.KindItem, hint, err, "eml folder %q (%s)", f.Path, dir)
}

// state digests what the cursor remembers of a folder: every file's
// name, inode, size, mtime and ctime; newest is the latest time stamp.
func state(files []entry) (digest string, newest time.Time) {
	h := sha256.New()
	for _, e := range files {
		var st localfile.Stamp
		if e.fi != nil {
			st = localfile.StampOf(e.fi)
		}
		fmt.Fprintf(h, "%s\x00%d %d %d %d\n", e.rel, st.Ino, st.Size, st.Mtime, st.Ctime)
		if t := st.Newest(); t.After(newest) {
			newest = t
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), newest
}

func makeCursor(digest string, n int64, at time.Time) connector.Cursor {
	c := localfile.Cursor{"d": digest}
	c.SetInt("n", n)
	c.SetInt("t", at.UnixNano())
	return connector.Cursor(c.String())
}

// isCursor reports whether c is a cursor made by makeCursor.
func isCursor(c connector.Cursor) bool {
	lc, ok := localfile.ParseCursor(string(c))
	if !ok || len(lc["d"]) != 32 {
		return false
	}
	_, ok1 := lc.Int("n")
	_, ok2 := lc.Int("t")
	return ok1 && ok2
}

func unchanged(since connector.Cursor, digest string, newest time.Time) bool {
	c, ok := localfile.ParseCursor(string(since))
	if !ok {
		return false
	}
	t, ok := c.Int("t")
	return ok && c["d"] == digest && time.Unix(0, t).Sub(newest) >= localfile.Settle
}

const defaultBatch = 256

// List lists the folder's .eml files (IDs: paths relative to the root),
// every one as ChangeNew unless Since vouches that nothing changed.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	start := c.now()
	files, err := c.files(f)
	if err != nil {
		return connector.Listing{}, err
	}
	digest, newest := state(files)
	listing := connector.Listing{Cursor: makeCursor(digest, int64(len(files)), start)}
	listing.Status.Messages = int64(len(files))
	for _, e := range files {
		if e.fi != nil {
			listing.Status.Size += e.fi.Size()
		}
	}
	if opts.Since != "" && opts.StrictSince && !isCursor(opts.Since) {
		// EML IDs (paths) never go stale, but a cursor that is not an
		// EML cursor may come with IDs that are not paths.
		return connector.Listing{}, connector.Errorf(connector.KindItem, "", connector.ErrCursorInvalid, "eml folder %q", f.Path)
	}
	if opts.NoMessages {
		return listing, nil
	}
	if opts.Since != "" && !opts.AllOld && unchanged(opts.Since, digest, newest) {
		listing.Status.Unchanged = true
		return listing, nil
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultBatch
	}
	var msgs []connector.Message
	for _, e := range files {
		msgs = append(msgs, c.describe(e))
		if len(msgs) >= batch {
			if err := ctx.Err(); err != nil {
				return connector.Listing{}, err
			}
			if err := fn(msgs); err != nil {
				return connector.Listing{}, err
			}
			msgs = nil
		}
	}
	if len(msgs) > 0 {
		if err := fn(msgs); err != nil {
			return connector.Listing{}, err
		}
	}
	return listing, nil
}

// describe lists one file. One that cannot be read is listed all the
// same (Fetch then says why).
func (c *Conn) describe(e entry) connector.Message {
	m := connector.Message{ID: connector.ID(e.rel)}
	if e.fi == nil {
		m.Identity = mail.ComputeIdentity(m.Headers, 0)
		return m
	}
	m.Size = e.fi.Size()
	m.InternalDate = e.fi.ModTime()
	if fh, _, err := c.root.Open(filepath.Join(c.root.Dir, filepath.FromSlash(e.rel))); err == nil {
		block := localfile.HeaderBlock(fh)
		fh.Close()
		m.Headers = mail.ParseHeaders(block)
		if t, ok := localfile.ReceivedDate(block); ok {
			m.InternalDate = t
		}
	}
	full := filepath.Join(c.root.Dir, filepath.FromSlash(e.rel))
	m.Identity = mail.ComputeIdentity(m.Headers, localfile.IdentitySize(m.Headers, m.Size, func() (io.ReadCloser, error) {
		fh, _, err := c.root.Open(full)
		return fh, err
	}))
	return m
}

// Fetch serves each file as stored.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	dirs, err := c.dirsOf(f)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.fetchOne(dirs, m, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) fetchOne(dirs []string, m connector.Message, fn func(connector.Body, error) error) error {
	rel := string(m.ID)
	dir, name := path.Split(rel)
	ok := isEML(name) && !strings.Contains("/"+rel+"/", "/../")
	inFolder := false
	for _, d := range dirs {
		inFolder = inFolder || strings.TrimSuffix(dir, "/") == d
	}
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	if !ok || !inFolder {
		return fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem, "", fs.ErrNotExist, "eml %s: no such message in this folder", full))
	}
	fh, fi, err := c.root.Open(full)
	if err != nil {
		return fn(connector.Body{Message: m}, localfile.ItemError(err, "eml %s", full))
	}
	defer fh.Close()
	m.Size = fi.Size()
	return fn(connector.Body{Message: m, Reader: localfile.NewExactReader(fh, m.Size, "eml "+full), Size: m.Size}, nil)
}

// Statuses reads the folders' directories and file stamps (no file is
// opened) and says Unchanged when the cursor vouches for it.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	for i, f := range folders {
		files, err := c.files(f)
		if err != nil {
			errs[i] = err
			continue
		}
		digest, newest := state(files)
		sts[i].Messages = int64(len(files))
		for _, e := range files {
			if e.fi != nil {
				sts[i].Size += e.fi.Size()
			}
		}
		if i < len(since) && since[i] != "" {
			sts[i].Unchanged = unchanged(since[i], digest, newest)
		}
	}
	return sts, errs
}
