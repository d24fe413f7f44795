package mbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// Backend registers the mbox: scheme.
func Backend() connector.Backend {
	return connector.Backend{
		Name:        "mbox",
		Schemes:     []string{"mbox"},
		Local:       true,
		Source:      true,
		Destination: true,
		Parse:       Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return Open(ctx, e, o)
		},
	}
}

// Parse reads an mbox: address (see the package documentation).
func Parse(raw string) (connector.Endpoint, error) {
	return localfile.ParseAddress("mbox", raw)
}

// Conn is an open mbox file or tree. It is safe for concurrent use.
type Conn struct {
	root localfile.Root
	// single is the file's name inside root when the address names one
	// mbox file (the only folder, INBOX); "" for a tree.
	single string
	role   connector.Role
	now    func() time.Time

	mu      sync.Mutex
	writers map[string]*writer
	closed  bool
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.Destination  = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
	_ connector.FolderNoter  = (*Conn)(nil)
)

// Open opens e.Path: an existing file is one folder, an existing
// directory a tree. A destination that does not exist yet is created: a
// file when the path ends in ".mbox", else a tree directory.
func Open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	if err := connector.RefuseMailbox("mbox", e, o.Credentials); err != nil {
		return nil, err
	}
	fi, err := os.Stat(e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && o.Role == connector.RoleSource:
		return nil, connector.Errorf(connector.KindConfig, "check the path: give an mbox file or a directory of mbox files", err, "mbox %s", e.Path)
	case errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(strings.ToLower(e.Path), ".mbox"):
		if err := os.MkdirAll(filepath.Dir(e.Path), 0o700); err != nil {
			return nil, connector.Errorf(connector.KindConfig, "choose a directory you can write to", err, "create mbox %s", e.Path)
		}
		f, cerr := os.OpenFile(e.Path, os.O_CREATE|os.O_WRONLY, 0o600)
		if cerr != nil {
			return nil, connector.Errorf(connector.KindConfig, "choose a directory you can write to", cerr, "create mbox %s", e.Path)
		}
		f.Close()
		fi, err = os.Stat(e.Path)
	case errors.Is(err, fs.ErrNotExist):
		if err = os.MkdirAll(e.Path, 0o700); err != nil {
			return nil, connector.Errorf(connector.KindConfig, "choose a directory you can write to", err, "create mbox tree %s", e.Path)
		}
		fi, err = os.Stat(e.Path)
	}
	if err != nil {
		_, hint := localfile.Describe(err)
		return nil, connector.Errorf(connector.KindConfig, hint, err, "mbox %s", e.Path)
	}
	c := &Conn{role: o.Role, now: time.Now, writers: map[string]*writer{}}
	dir := e.Path
	if fi.Mode().IsRegular() {
		dir, c.single = filepath.Dir(e.Path), filepath.Base(e.Path)
	} else if !fi.IsDir() {
		return nil, connector.Errorf(connector.KindConfig, "give an mbox file or a directory of mbox files", nil, "mbox %s is neither a file nor a directory", e.Path)
	}
	if c.root, err = localfile.NewRoot(dir); err != nil {
		return nil, connector.Errorf(connector.KindConfig, "", err, "mbox %s", e.Path)
	}
	if c.single == "" && o.Role == connector.RoleDestination {
		if _, err := c.CreateFolder(ctx, mail.Path{mail.InboxName}, mail.RoleInbox); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Features: a single file has no folder tree.
func (c *Conn) Features() connector.Features {
	return connector.Features{
		MaxConnections: 4,
		Folders:        c.single == "",
		CreateFolders:  c.single == "",
		Keywords:       true,
		CheapChanges:   true,
		// A cursor lists what was appended after it; a rewritten file is
		// refused (StrictSince) or listed whole with Reset.
		ExactNew:  true,
		AppendIDs: true,
		ByteExact: true,
	}
}

// Folders lists the one folder of a file, or a tree's folders. A
// directory of the tree that cannot be read fails it with its path (its
// folders cannot be known); FoldersNoted lists the rest instead.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	fs, notes, err := c.FoldersNoted(ctx)
	if err == nil && len(notes) > 0 {
		err = notes[0].Err
	}
	if err != nil {
		return nil, err
	}
	return fs, nil
}

// FoldersNoted implements connector.FolderNoter: the folders of the
// tree that can be read, and a note for each directory that cannot.
func (c *Conn) FoldersNoted(ctx context.Context) ([]connector.Folder, []connector.FolderNote, error) {
	if c.single != "" {
		return []connector.Folder{c.inbox()}, nil, nil
	}
	fs, notes, err := c.scanTree()
	if err != nil {
		_, hint := localfile.Describe(err)
		if errors.Is(err, os.ErrPermission) {
			hint = "make the directory readable (chmod -R u+rX) and run again"
		}
		return nil, nil, connector.Errorf(connector.KindConfig, hint, err, "mbox tree %s", c.root.Dir)
	}
	return fs, notes, nil
}

func (c *Conn) inbox() connector.Folder {
	return connector.Folder{Path: mail.Path{mail.InboxName}, Name: c.single, Role: mail.RoleInbox, Delimiter: '/'}
}

// fileOfFolder returns a folder's file, checked to lie inside the root;
// "" for a folder without one (NoSelect).
func (c *Conn) fileOfFolder(f connector.Folder) (string, error) {
	rel := f.Name
	if c.single != "" {
		rel = c.single
	} else if rel == "" && !f.NoSelect && len(f.Path) > 0 {
		rel = fileOf(f.Path)
	}
	if rel == "" {
		return "", nil
	}
	if filepath.IsAbs(rel) || strings.Contains("/"+rel+"/", "/../") {
		return "", connector.Errorf(connector.KindMissingFolder, "", localfile.ErrOutsideRoot, "mbox folder %q", f.Path)
	}
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	res, err := c.root.Check(full)
	if errors.Is(err, fs.ErrNotExist) {
		return "", connector.Errorf(connector.KindMissingFolder, "", err, "mbox folder %q (%s)", f.Path, full)
	}
	if err != nil {
		_, hint := localfile.Describe(err)
		return "", connector.Errorf(connector.KindItem, hint, err, "mbox %s", full)
	}
	return res, nil
}

func folderError(file string, err error) error {
	_, hint := localfile.Describe(err)
	var re *errRead
	if errors.As(err, &re) {
		return connector.Errorf(connector.KindItem, "the disk or file system returned an error; copy the file elsewhere (e.g. with ddrescue) and read the copy", re.err, "mbox %s at byte %d", file, re.off)
	}
	return connector.Errorf(connector.KindItem, hint, err, "mbox %s", file)
}

// openRead opens a folder's file and returns how far it may be read:
// its size, or the size a Mailferry writer last made durable when its
// journal says so (a writer is busy or crashed; bytes past that point
// may be half a message).
func (c *Conn) openRead(file string) (*os.File, os.FileInfo, int64, error) {
	fh, fi, err := c.root.Open(file)
	if err != nil {
		return nil, nil, 0, err
	}
	limit := fi.Size()
	if committed, ok := readJournal(journalOf(file)); ok && committed < limit {
		limit = committed
	}
	return fh, fi, limit, nil
}

const defaultBatch = 256

// message turns a scanned message into a listed one.
func message(m *msgInfo, ch connector.Change) connector.Message {
	h := mail.ParseHeaders(m.Header)
	return connector.Message{
		ID:           m.ID(),
		Change:       ch,
		Size:         m.Served,
		InternalDate: m.Date,
		Flags:        m.Flags,
		Headers:      h,
		Identity:     mail.ComputeIdentity(h, m.CRLFSize),
	}
}

// cursor remembers the file's stamp, how far it was read, the last
// message's ID (to check that later bytes were only appended), the
// message count and bytes, and when it was taken.
func makeCursor(st localfile.Stamp, end int64, last connector.ID, n, size int64, at time.Time) connector.Cursor {
	c := localfile.Cursor{}
	st.Put(c, "f")
	c.SetInt("e", end)
	c["l"] = string(last)
	c.SetInt("n", n)
	c.SetInt("b", size)
	c.SetInt("t", at.UnixNano())
	return connector.Cursor(c.String())
}

// List scans the folder's file. With a Since cursor whose last message
// is still there, unchanged and still ending where the cursor's reading
// ended, only the bytes after that point are scanned (new messages,
// ChangeNew); otherwise the whole file is listed, and Reset is set when a
// cursor was given (offsets before it may have moved). Flags in an mbox
// change only by rewriting it, which moves offsets, so an unchanged part
// needs no ChangeFlags; AllOld lists it as ChangeFlags all the same.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var listing connector.Listing
	if opts.ForAppend {
		listing.Accept = connector.FlagAcceptance{AnyKeyword: true, Flags: []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, mail.FlagDeleted, mail.FlagDraft}}
	}
	file, err := c.fileOfFolder(f)
	if err != nil || file == "" {
		return listing, err
	}
	start := c.now()
	fh, fi, limit, err := c.openRead(file)
	if err != nil {
		return listing, folderError(file, err)
	}
	defer fh.Close()
	st := localfile.StampOf(fi)
	from, oldN, oldB := int64(0), int64(0), int64(0)
	var last connector.ID
	if opts.Since != "" {
		if end, l, n, b, ok := appendedOnly(fh, opts.Since, st, limit); ok {
			from, last, oldN, oldB = end, l, n, b
		} else if opts.StrictSince {
			// Offsets before the cursor may have moved: the IDs recorded
			// under it name nothing any more.
			return listing, connector.Errorf(connector.KindItem, "", fmt.Errorf("%w: the file was rewritten or replaced since", connector.ErrCursorInvalid),
				"mbox %s", file)
		} else {
			listing.Reset = true
		}
	}
	if opts.NoMessages && !opts.AllOld {
		// Only the cursor is wanted: the scan goes on from where a
		// cursor's reading ended, or over the whole file, delivering
		// nothing.
		fn = func([]connector.Message) error { return nil }
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultBatch
	}
	var msgs []connector.Message
	count, size := oldN, oldB
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(msgs)
		msgs = nil
		return err
	}
	scanFrom := from
	if opts.AllOld && from > 0 {
		scanFrom = 0
	}
	err = scan(fh, scanFrom, limit, false, func(m *msgInfo) error {
		ch := connector.ChangeNew
		if m.Offset < from {
			ch = connector.ChangeFlags
		} else {
			count++
			size += m.Served
			last = m.ID()
		}
		msgs = append(msgs, message(m, ch))
		if len(msgs) >= batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		var re *errRead
		if errors.As(err, &re) {
			return connector.Listing{}, folderError(file, err)
		}
		return connector.Listing{}, err
	}
	listing.Status = connector.FolderStatus{Messages: count, Size: size}
	listing.Cursor = makeCursor(st, limit, last, count, size, start)
	return listing, nil
}

// appendedOnly checks a cursor against the file: same inode, not
// shorter, and the cursor's last message still there, unchanged, and
// ending where the cursor stopped reading (so the bytes after it are new
// messages, and a full scan would split the file the same way).
func appendedOnly(fh *os.File, since connector.Cursor, st localfile.Stamp, limit int64) (end int64, last connector.ID, n, b int64, ok bool) {
	c, ok := localfile.ParseCursor(string(since))
	if !ok {
		return 0, "", 0, 0, false
	}
	old, ok1 := localfile.GetStamp(c, "f")
	end, ok2 := c.Int("e")
	n, ok3 := c.Int("n")
	b, ok4 := c.Int("b")
	last = connector.ID(c["l"])
	if !ok1 || !ok2 || !ok3 || !ok4 || old.Ino != st.Ino || limit < end {
		return 0, "", 0, 0, false
	}
	if last == "" {
		return end, last, n, b, end == 0
	}
	off, ok := parseID(last)
	if !ok || off >= end {
		return 0, "", 0, 0, false
	}
	m, err := scanOne(fh, off, limit)
	if err != nil || m.ID() != last || m.End != end {
		return 0, "", 0, 0, false
	}
	return end, last, n, b, true
}

// Fetch rescans each message at its offset, checks that it is the one
// listed (same hash), and serves its bytes unquoted. A message that
// changed, or has a Problem, is reported with a KindItem error naming
// the file and byte offset.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	file, err := c.fileOfFolder(f)
	if err != nil {
		return err
	}
	if file == "" {
		for _, m := range msgs {
			if err := fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem, "", fs.ErrNotExist, "mbox folder %q holds no messages", f.Path)); err != nil {
				return err
			}
		}
		return nil
	}
	fh, _, limit, err := c.openRead(file)
	if err != nil {
		return folderError(file, err)
	}
	defer fh.Close()
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchOne(fh, file, limit, m, fn); err != nil {
			return err
		}
	}
	return nil
}

func fetchOne(fh *os.File, file string, limit int64, m connector.Message, fn func(connector.Body, error) error) error {
	off, ok := parseID(m.ID)
	changed := func(err error) error {
		return fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem, "the file was changed since it was listed; the next pass lists it again", err, "mbox %s at byte %d: message %s", file, off, m.ID))
	}
	if !ok || off >= limit {
		return changed(fs.ErrNotExist)
	}
	info, err := scanOne(fh, off, limit)
	if err != nil {
		var re *errRead
		if errors.As(err, &re) {
			return fn(connector.Body{Message: m}, folderError(file, err))
		}
		return changed(err)
	}
	if info.ID() != m.ID {
		return changed(errors.New("another message is there now"))
	}
	if info.Problem != "" {
		return fn(connector.Body{Message: m}, connector.Errorf(connector.KindItem, problemHint(info), errors.New(info.Problem), "mbox %s at byte %d", file, info.Offset))
	}
	m.Size = info.Served
	r := newUnquoter(ioSection(fh, info.ContentStart, info.End), info.Served)
	return fn(connector.Body{Message: m, Reader: r, Size: info.Served}, nil)
}

func problemHint(m *msgInfo) string {
	switch {
	case strings.HasPrefix(m.Problem, "the file does not start"):
		return "if the file holds one message, copy it as EML (eml:/dir); else put a line such as \"From unknown Thu Jan  1 00:00:00 1970\" before it"
	case strings.HasPrefix(m.Problem, "the \"From \" line"):
		return "correct the date of that \"From \" line (e.g. \"From sender Thu Jan  1 00:00:00 2004\") and run again"
	}
	return "restore the file from a backup; the messages before this one were copied"
}

// Statuses counts each folder's messages: from the cursor when the file
// is exactly as it was (same inode, size, mtime and ctime, and the cursor
// taken at least localfile.Settle after them), else by scanning it.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	for i, f := range folders {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		var cur connector.Cursor
		if i < len(since) {
			cur = since[i]
		}
		sts[i], errs[i] = c.status(f, cur)
	}
	return sts, errs
}

func (c *Conn) status(f connector.Folder, since connector.Cursor) (connector.FolderStatus, error) {
	file, err := c.fileOfFolder(f)
	if err != nil || file == "" {
		return connector.FolderStatus{}, err
	}
	fh, fi, limit, err := c.openRead(file)
	if err != nil {
		return connector.FolderStatus{}, folderError(file, err)
	}
	defer fh.Close()
	st := localfile.StampOf(fi)
	if cur, ok := localfile.ParseCursor(string(since)); ok {
		old, ok1 := localfile.GetStamp(cur, "f")
		end, ok2 := cur.Int("e")
		n, ok3 := cur.Int("n")
		b, ok4 := cur.Int("b")
		t, ok5 := cur.Int("t")
		if ok1 && ok2 && ok3 && ok4 && ok5 && old == st && end == limit && time.Unix(0, t).Sub(st.Newest()) >= localfile.Settle {
			return connector.FolderStatus{Messages: n, Size: b, Unchanged: true}, nil
		}
	}
	var out connector.FolderStatus
	err = scan(fh, 0, limit, false, func(m *msgInfo) error {
		out.Messages++
		out.Size += m.Served
		return nil
	})
	if err != nil {
		return connector.FolderStatus{}, folderError(file, err)
	}
	return out, nil
}
