package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// Backend registers the maildir: scheme.
func Backend() connector.Backend {
	return connector.Backend{
		Name:        "maildir",
		Schemes:     []string{"maildir"},
		Local:       true,
		Source:      true,
		Destination: true,
		Parse:       Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return Open(ctx, e, o)
		},
	}
}

// Parse reads a maildir: address (see the package documentation).
func Parse(raw string) (connector.Endpoint, error) {
	e, err := localfile.ParseAddress("maildir", raw, "layout")
	if err != nil {
		return e, err
	}
	switch e.Params["layout"] {
	case "", layoutMaildirPP, layoutFS:
	default:
		return e, fmt.Errorf("maildir address %q: layout=%q: use layout=maildir++ (.Archive.2019, the default) or layout=fs (Archive/2019)", raw, e.Params["layout"])
	}
	return e, nil
}

// Conn is an open maildir tree. It is safe for concurrent use.
type Conn struct {
	root localfile.Root
	// layout is how new subfolders are written.
	layout string
	role   connector.Role
	// now is the clock cursors are stamped with (tests move it on).
	now func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per folder directory: renames and keyword changes
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.Destination  = (*Conn)(nil)
	_ connector.FlagSetter   = (*Conn)(nil)
	_ connector.Deleter      = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
)

// Open opens the maildir tree at e.Path. A destination's root is created
// when missing; a source's must exist.
func Open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	if err := connector.RefuseMailbox("Maildir", e, o.Credentials); err != nil {
		return nil, err
	}
	fi, err := os.Stat(e.Path)
	switch {
	case err == nil && !fi.IsDir():
		return nil, connector.Errorf(connector.KindConfig, "give the directory that holds cur/, new/ and tmp/", nil, "maildir %s is a file, not a directory", e.Path)
	case errors.Is(err, fs.ErrNotExist) && o.Role == connector.RoleSource:
		return nil, connector.Errorf(connector.KindConfig, "check the path; a maildir is the directory that holds cur/, new/ and tmp/", nil, "maildir %s does not exist", e.Path)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(e.Path, 0o700); err != nil {
			return nil, connector.Errorf(connector.KindConfig, "create the directory or choose one you can write to", err, "create maildir %s", e.Path)
		}
	case err != nil:
		_, hint := localfile.Describe(err)
		return nil, connector.Errorf(connector.KindConfig, hint, err, "open maildir %s", e.Path)
	}
	if o.Role == connector.RoleDestination {
		if err := initDir(e.Path); err != nil {
			return nil, connector.Errorf(connector.KindConfig, "choose a directory you can write to", err, "create maildir %s", e.Path)
		}
	}
	root, err := localfile.NewRoot(e.Path)
	if err != nil {
		return nil, connector.Errorf(connector.KindConfig, "", err, "open maildir %s", e.Path)
	}
	c := &Conn{root: root, layout: e.Params["layout"], role: o.Role, now: time.Now, locks: map[string]*sync.Mutex{}}
	if c.layout == "" {
		c.layout = layoutMaildirPP
		if _, found, err := c.scan(); err == nil && found[layoutFS] > 0 && found[layoutMaildirPP] == 0 {
			c.layout = layoutFS
		}
	}
	return c, nil
}

// Features: a maildir is a byte-exact store with folders and keywords;
// changes are found by listing the whole folder (CheapChanges false).
func (c *Conn) Features() connector.Features {
	return connector.Features{
		MaxConnections: 4,
		Folders:        true,
		CreateFolders:  true,
		Keywords:       true,
		AppendIDs:      true,
		ByteExact:      true,
	}
}

// Close releases nothing: every call opens and closes its own files.
func (c *Conn) Close() error { return nil }

func (c *Conn) folderLock(dir string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.locks[dir]
	if !ok {
		l = &sync.Mutex{}
		c.locks[dir] = l
	}
	return l
}

// Folders lists INBOX (the root), every Maildir++ subfolder (.a.b) and
// every fs-layout subfolder (a/b), and the parents that hold only
// subfolders (NoSelect). A directory that cannot be read is listed as a
// folder; List then reports why.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	fs, _, err := c.scan()
	if err != nil {
		_, hint := localfile.Describe(err)
		return nil, connector.Errorf(connector.KindConfig, hint, err, "maildir %s: list folders", c.root.Dir)
	}
	return fs, nil
}

func (c *Conn) scan() ([]connector.Folder, map[string]int, error) {
	entries, err := os.ReadDir(c.root.Dir)
	if err != nil {
		return nil, nil, err
	}
	found := map[string]int{}
	byKey := map[string]connector.Folder{}
	add := func(p mail.Path, rel string, layout string) {
		p = p.Canonical()
		if _, dup := byKey[p.Key()]; dup || p.IsInbox() && rel != "" {
			return // the first directory with this path wins (Maildir++ before fs)
		}
		byKey[p.Key()] = connector.Folder{Path: p, Name: rel, Role: mail.RoleFromName(p), Delimiter: '/'}
		found[layout]++
	}
	add(mail.Path{mail.InboxName}, "", "")
	var fsDirs []string
	for _, e := range entries {
		name := e.Name()
		if name == "cur" || name == "new" || name == "tmp" || name == "." || name == ".." {
			continue
		}
		if !c.isDir(filepath.Join(c.root.Dir, name), e) {
			continue
		}
		if strings.HasPrefix(name, ".") {
			if c.holdsMail(filepath.Join(c.root.Dir, name)) {
				add(pathOfPP(name), name, layoutMaildirPP)
			}
			continue
		}
		fsDirs = append(fsDirs, name)
	}
	for _, name := range fsDirs {
		c.walkFS(name, mail.Path{unescapeSegment(name)}, 0, func(p mail.Path, rel string) { add(p, rel, layoutFS) })
	}
	// Parents that exist only as path prefixes.
	for _, f := range byKey {
		for p := f.Path.Parent(); len(p) > 0; p = p.Parent() {
			if _, ok := byKey[p.Key()]; !ok {
				q := append(mail.Path(nil), p...)
				byKey[q.Key()] = connector.Folder{Path: q, Role: mail.RoleFromName(q), Delimiter: '/', NoSelect: true}
			}
		}
	}
	out := make([]connector.Folder, 0, len(byKey))
	for _, f := range byKey {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path.String() < out[j].Path.String() })
	return out, found, nil
}

// isDir follows a symbolic link (only to look: walkFS does not descend
// through links, so a link loop cannot trap it).
func (c *Conn) isDir(full string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink != 0 {
		fi, err := os.Stat(full)
		return err == nil && fi.IsDir() || err != nil && !errors.Is(err, fs.ErrNotExist)
	}
	return false
}

// holdsMail: the directory has cur/ or new/, or cannot be looked into
// (then it is listed so that List can say why).
func (c *Conn) holdsMail(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err == nil && fi.IsDir() || err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

const maxDepth = 64

func (c *Conn) walkFS(rel string, p mail.Path, depth int, add func(mail.Path, string)) {
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	if c.holdsMail(full) {
		add(p, rel)
	}
	if fi, err := os.Lstat(full); err != nil || fi.Mode()&os.ModeSymlink != 0 || depth >= maxDepth {
		if err == nil && fi.Mode()&os.ModeSymlink != 0 && !c.holdsMail(full) {
			add(p, rel) // listed so that List reports where the link leads
		}
		return
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		add(p, rel) // List reports the error
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == "cur" || name == "new" || name == "tmp" {
			continue
		}
		if c.isDir(filepath.Join(full, name), e) {
			c.walkFS(rel+"/"+name, append(append(mail.Path(nil), p...), unescapeSegment(name)), depth+1, add)
		}
	}
}

// folderDir returns the folder's directory, checked to lie inside the
// root.
func (c *Conn) folderDir(f connector.Folder) (string, error) {
	rel := f.Name
	if rel == "" && len(f.Path) > 0 && !f.Path.IsInbox() {
		// A folder known only by its path: try both layouts.
		rel = dirOf(f.Path, c.layout)
		other := dirOf(f.Path, layoutFS)
		if c.layout == layoutFS {
			other = dirOf(f.Path, layoutMaildirPP)
		}
		if _, err := os.Stat(filepath.Join(c.root.Dir, filepath.FromSlash(rel))); err != nil {
			if _, err := os.Stat(filepath.Join(c.root.Dir, filepath.FromSlash(other))); err == nil {
				rel = other
			}
		}
	}
	if rel != "" && (filepath.IsAbs(rel) || strings.Contains("/"+rel+"/", "/../") || strings.Contains("/"+rel+"/", "/./")) {
		return "", connector.Errorf(connector.KindMissingFolder, "", localfile.ErrOutsideRoot, "maildir folder %q", f.Path)
	}
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	res, err := c.root.Check(full)
	if errors.Is(err, fs.ErrNotExist) {
		return "", connector.Errorf(connector.KindMissingFolder, "", err, "maildir folder %q (%s)", f.Path, full)
	}
	if err != nil {
		_, hint := localfile.Describe(err)
		return "", connector.Errorf(connector.KindItem, hint, err, "maildir folder %q (%s)", f.Path, full)
	}
	return res, nil
}

const defaultBatch = 256

// stamps reads what the folder's cursor remembers: cur/, new/ and
// dovecot-keywords (a renamed keyword changes what the letters mean).
func stamps(dir string) (map[string]localfile.Stamp, error) {
	out := map[string]localfile.Stamp{}
	for key, name := range map[string]string{"c": "cur", "n": "new", "k": keywordsFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			out[key] = localfile.Stamp{}
			continue
		}
		if err != nil {
			return nil, err
		}
		out[key] = localfile.StampOf(fi)
	}
	return out, nil
}

func makeCursor(st map[string]localfile.Stamp, at time.Time) connector.Cursor {
	c := localfile.Cursor{}
	for k, s := range st {
		s.Put(c, k)
	}
	c.SetInt("t", at.UnixNano())
	return connector.Cursor(c.String())
}

// isCursor reports whether c is a cursor made by makeCursor.
func isCursor(c connector.Cursor) bool {
	lc, ok := localfile.ParseCursor(string(c))
	if !ok {
		return false
	}
	_, ok = lc.Int("t")
	for _, k := range []string{"c", "n", "k"} {
		_, has := localfile.GetStamp(lc, k)
		ok = ok && has
	}
	return ok
}

// unchanged reports whether since vouches that the folder is as it was:
// every stamp equal, and the cursor taken at least localfile.Settle
// after the newest of them (see Settle for why).
func unchanged(since connector.Cursor, st map[string]localfile.Stamp) bool {
	c, ok := localfile.ParseCursor(string(since))
	if !ok {
		return false
	}
	t, ok := c.Int("t")
	if !ok {
		return false
	}
	for k, s := range st {
		old, ok := localfile.GetStamp(c, k)
		if !ok || old != s {
			return false
		}
		if time.Unix(0, t).Sub(s.Newest()) < localfile.Settle {
			return false
		}
	}
	return true
}

// List lists the messages of new/ and cur/ in directory order. Every
// message is listed, with Since or without (as ChangeNew), unless Since
// vouches that nothing changed; the engine recognises messages it
// copied before by their IDs.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	if f.NoSelect {
		return connector.Listing{}, nil // a parent that exists only as a path prefix
	}
	dir, err := c.folderDir(f)
	if err != nil {
		return connector.Listing{}, err
	}
	start := c.now()
	st, err := stamps(dir)
	if err != nil {
		return connector.Listing{}, c.folderError(f, dir, err)
	}
	listing := connector.Listing{Cursor: makeCursor(st, start)}
	kws, err := readKeywords(dir)
	if err != nil {
		return connector.Listing{}, c.folderError(f, dir, err)
	}
	if opts.ForAppend {
		listing.Accept = accept(kws)
	}
	if opts.Since != "" && opts.StrictSince && !isCursor(opts.Since) {
		// Maildir IDs never go stale, but a cursor that is not a
		// maildir cursor may come with IDs that are not maildir IDs.
		return connector.Listing{}, connector.Errorf(connector.KindItem, "", connector.ErrCursorInvalid, "maildir folder %q (%s)", f.Path, dir)
	}
	if opts.NoMessages {
		n, err := countMessages(dir)
		if err != nil {
			return connector.Listing{}, c.folderError(f, dir, err)
		}
		listing.Status = connector.FolderStatus{Messages: n}
		return listing, nil
	}
	if opts.Since != "" && !opts.AllOld && unchanged(opts.Since, st) {
		n, err := countMessages(dir)
		if err != nil {
			return connector.Listing{}, c.folderError(f, dir, err)
		}
		listing.Status = connector.FolderStatus{Messages: n, Unchanged: true}
		return listing, nil
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultBatch
	}
	var msgs []connector.Message
	for _, sub := range []string{"new", "cur"} {
		subDir, err := c.root.Check(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return connector.Listing{}, c.folderError(f, filepath.Join(dir, sub), err)
		}
		d, err := os.Open(subDir)
		if err != nil {
			return connector.Listing{}, c.folderError(f, dir, err)
		}
		for {
			names, rerr := d.Readdirnames(batch)
			for _, name := range names {
				if strings.HasPrefix(name, ".") {
					continue
				}
				m, ok := c.describe(dir, sub, name, kws)
				if !ok {
					continue
				}
				listing.Status.Messages++
				listing.Status.Size += m.Size
				msgs = append(msgs, m)
				if len(msgs) >= batch {
					if err := ctx.Err(); err != nil {
						d.Close()
						return connector.Listing{}, err
					}
					if err := fn(msgs); err != nil {
						d.Close()
						return connector.Listing{}, err
					}
					msgs = nil
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				d.Close()
				return connector.Listing{}, c.folderError(f, dir, rerr)
			}
		}
		d.Close()
	}
	if len(msgs) > 0 {
		if err := fn(msgs); err != nil {
			return connector.Listing{}, err
		}
	}
	return listing, nil
}

func (c *Conn) folderError(f connector.Folder, dir string, err error) error {
	_, hint := localfile.Describe(err)
	if errors.Is(err, fs.ErrPermission) {
		hint = "make the directory readable (chmod -R u+rX) and run again"
	}
	return connector.Errorf(connector.KindItem, hint, err, "maildir folder %q (%s)", f.Path, dir)
}

func accept(kws []string) connector.FlagAcceptance {
	a := connector.FlagAcceptance{Flags: []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, mail.FlagDeleted, mail.FlagDraft, forwarded}}
	n := 0
	for _, k := range kws {
		if k != "" {
			a.Flags = append(a.Flags, k)
			n++
		}
	}
	a.AnyKeyword = n < maxKeywords
	return a
}

// describe lists one message file. ok is false when the file vanished
// (renamed by a flag change or removed while listing). A file that
// cannot be read is still listed, so that Fetch reports it.
func (c *Conn) describe(dir, sub, name string, kws []string) (connector.Message, bool) {
	n := parseName(name)
	m := connector.Message{ID: connector.ID(n.base)}
	if sub == "cur" || n.hasInfo {
		m.Flags = flagsOf(n.letters, kws)
	}
	full := filepath.Join(dir, sub, name)
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return m, false
	}
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if res, cerr := c.root.Check(full); cerr == nil {
			fi, err = os.Stat(res)
		}
	}
	if err != nil || !fi.Mode().IsRegular() {
		m.Identity = mail.ComputeIdentity(m.Headers, 0)
		return m, true
	}
	m.Size = fi.Size()
	m.InternalDate = fi.ModTime()
	if fh, _, err := c.root.Open(full); err == nil {
		m.Headers = mail.ParseHeaders(localfile.HeaderBlock(fh))
		fh.Close()
	}
	m.Identity = mail.ComputeIdentity(m.Headers, localfile.IdentitySize(m.Headers, m.Size, func() (io.ReadCloser, error) {
		fh, _, err := c.root.Open(full)
		return fh, err
	}))
	return m, true
}

func countMessages(dir string) (int64, error) {
	var n int64
	for _, sub := range []string{"new", "cur"} {
		d, err := os.Open(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		for {
			names, rerr := d.Readdirnames(4096)
			for _, name := range names {
				if !strings.HasPrefix(name, ".") {
					n++
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				d.Close()
				return 0, rerr
			}
		}
		d.Close()
	}
	return n, nil
}

// Statuses counts each folder's files (no file is opened) and says
// Unchanged when the cursor vouches for it.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	for i, f := range folders {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if f.NoSelect {
			continue
		}
		dir, err := c.folderDir(f)
		if err != nil {
			errs[i] = err
			continue
		}
		st, err := stamps(dir)
		if err == nil {
			sts[i].Messages, err = countMessages(dir)
		}
		if err != nil {
			errs[i] = c.folderError(f, dir, err)
			continue
		}
		if i < len(since) && since[i] != "" {
			sts[i].Unchanged = unchanged(since[i], st)
		}
	}
	return sts, errs
}

// index maps the IDs of a folder's messages to their file (sub/name).
type index map[string]string

func buildIndex(dir string) (index, error) {
	idx := index{}
	for _, sub := range []string{"new", "cur"} {
		d, err := os.Open(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for {
			names, rerr := d.Readdirnames(4096)
			for _, name := range names {
				if !strings.HasPrefix(name, ".") {
					idx[parseName(name).base] = sub + "/" + name
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				d.Close()
				return nil, rerr
			}
		}
		d.Close()
	}
	return idx, nil
}

// validID: an ID names a file directly in cur/ or new/.
func validID(id connector.ID) bool {
	s := string(id)
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00") && !strings.HasPrefix(s, ".")
}

// locate finds the file of message m: first where its listed flags put
// it, then by reading the directory (once per call, through idx).
func locate(dir string, m connector.Message, kws []string, idx *index) (string, error) {
	if !validID(m.ID) {
		return "", fs.ErrNotExist
	}
	base := string(m.ID)
	letters, _ := lettersOf(m.Flags, func(k string) (byte, bool) { return keywordLetter(kws, k) })
	for _, g := range []string{"cur/" + curName(base, letters, ""), "new/" + base, "cur/" + curName(base, "", "")} {
		if _, err := os.Lstat(filepath.Join(dir, g)); err == nil {
			return g, nil
		}
	}
	if *idx == nil {
		i, err := buildIndex(dir)
		if err != nil {
			return "", err
		}
		*idx = i
	}
	if rel, ok := (*idx)[base]; ok {
		return rel, nil
	}
	return "", fs.ErrNotExist
}

// Fetch streams each message file as it is stored. A message that is
// gone, unreadable, outside the root, or shorter than its Dovecot
// ",S=" size says, is reported with a KindItem error naming the file.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	dir, err := c.folderDir(f)
	if err != nil {
		return err
	}
	kws, err := readKeywords(dir)
	if err != nil {
		return c.folderError(f, dir, err)
	}
	var idx index
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.fetchOne(dir, f, m, kws, &idx, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) fetchOne(dir string, f connector.Folder, m connector.Message, kws []string, idx *index, fn func(connector.Body, error) error) error {
	rel, err := locate(dir, m, kws, idx)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem, "it was moved or deleted since it was listed; the next pass lists the folder again", err, "maildir %s: message %s", dir, m.ID))
		}
		return fn(connector.Body{Message: m}, localfile.ItemError(err, "maildir %s: message %s", dir, m.ID))
	}
	full := filepath.Join(dir, filepath.FromSlash(rel))
	fh, fi, err := c.root.Open(full)
	if err != nil {
		return fn(connector.Body{Message: m}, localfile.ItemError(err, "maildir %s", full))
	}
	defer fh.Close()
	if n := parseName(filepath.Base(rel)); n.size >= 0 && n.size != fi.Size() {
		return fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem,
			"the file was cut short or changed after delivery; restore it from a backup, or rename it without the S= part to copy it as it is",
			fmt.Errorf("the file has %d bytes but its name says S=%d", fi.Size(), n.size), "maildir %s at byte %d", full, min(fi.Size(), n.size)))
	}
	m.Size = fi.Size()
	r := localfile.NewExactReader(fh, m.Size, "maildir "+full)
	return fn(connector.Body{Message: m, Reader: r, Size: m.Size}, nil)
}
