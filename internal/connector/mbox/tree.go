package mbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/mail"
)

// A folder tree of mbox files, as mail programs export it:
//   - Thunderbird (and Mailferry when writing): the file "Name" holds the
//     folder's messages and the directory "Name.sbd/" its subfolders;
//     "Inbox" is INBOX; ".msf" index files lie beside.
//   - Apple Mail: the directory "Name.mbox/" holds the file "mbox" (and
//     table_of_contents, Info.plist) and, nested, "Sub.mbox/" subfolders.
//   - Plain: "Name.mbox" files, and plain directories as parents.
// A file is a folder when it is named *.mbox, has a .msf or .sbd
// sibling, is empty, or starts with "From "; index and metadata files
// (see isMetaName) and dot-files are not. Names are decoded from the
// %XX escapes Mailferry writes (see escapeName).

// isMetaName: files mail programs keep beside their mbox files.
func isMetaName(name string) bool {
	l := strings.ToLower(name)
	switch l {
	case "table_of_contents", "info.plist", "msgfilterrules.dat", "popstate.dat", "folders.json", "filterlog.html", "junklog.html":
		return true
	}
	switch strings.ToLower(path.Ext(l)) {
	case ".msf", ".dat", ".json", ".html", ".htm", ".plist", ".sqlite", ".mab", ".lock", ".log", ".txt", ".xml", ".js", ".rdf", ".bak", ".emlx", ".eml":
		return true
	}
	return false
}

// special: names a tree reader would not take as a plain folder file.
func special(name string) bool {
	l := strings.ToLower(name)
	return isMetaName(name) || l == "mbox" || strings.HasSuffix(l, ".sbd") || strings.HasSuffix(l, ".mbox")
}

// escapeName makes a folder name a file name: '%' is written "%25",
// '/' "%2F", a leading '.' "%2E" (dot-files are hidden and skipped), and
// when the result would still look like something else (an index file,
// a ".sbd" or ".mbox" name, Apple's "mbox"), its last '.' (or, without
// one, its first letter) is escaped too.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c == '/' || c == 0 || i == 0 && c == '.' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	if special(out) {
		if i := strings.LastIndexByte(out, '.'); i > 0 {
			out = out[:i] + "%2E" + out[i+1:]
		} else {
			out = fmt.Sprintf("%%%02X", out[0]) + out[1:]
		}
	}
	return out
}

// unescapeName undoes escapeName: every "%XX" (upper-case hex) is a byte.
func unescapeName(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]) {
			b.WriteByte(hexVal(s[i+1])<<4 | hexVal(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func hexVal(c byte) byte {
	if c >= 'A' {
		return c - 'A' + 10
	}
	return c - '0'
}

// fileOf is the file (relative, '/'-separated) Mailferry writes folder p
// to, in the Thunderbird layout.
func fileOf(p mail.Path) string {
	segs := make([]string, len(p))
	for i, s := range p {
		if i == 0 && strings.EqualFold(s, mail.InboxName) {
			segs[i] = "Inbox"
		} else {
			segs[i] = escapeName(s)
		}
	}
	for i := 0; i < len(segs)-1; i++ {
		segs[i] += ".sbd"
	}
	return strings.Join(segs, "/")
}

const maxDepth = 64

// scanTree lists the folders under root.
func (c *Conn) scanTree() ([]connector.Folder, []connector.FolderNote, error) {
	byKey := map[string]connector.Folder{}
	var order []string
	add := func(p mail.Path, rel string, noSelect bool) {
		p = p.Canonical()
		if len(p) == 1 && strings.EqualFold(p[0], "inbox") {
			p = mail.Path{mail.InboxName}
		}
		if old, dup := byKey[p.Key()]; dup {
			if old.NoSelect && !noSelect {
				old.NoSelect, old.Name = false, rel
				byKey[p.Key()] = old
				return
			}
			if noSelect {
				return
			}
			// Two files for one folder ("Work" and "Work.mbox"): the second
			// keeps its file name so that neither is lost.
			p = append(p.Parent(), path.Base(rel))
			if _, dup := byKey[p.Key()]; dup {
				return
			}
		}
		byKey[p.Key()] = connector.Folder{Path: p, Name: rel, Role: mail.RoleFromName(p), Delimiter: '/', NoSelect: noSelect}
		order = append(order, p.Key())
	}
	// The root may itself be an Apple Mail folder (Inbox.mbox/mbox).
	if fi, err := os.Stat(filepath.Join(c.root.Dir, "mbox")); err == nil && fi.Mode().IsRegular() {
		add(mail.Path{mail.InboxName}, "mbox", false)
	}
	var notes []connector.FolderNote
	note := func(p mail.Path, dir string, err error) {
		_, hint := localfile.Describe(err)
		if errors.Is(err, os.ErrPermission) {
			hint = "make the directory readable (chmod -R u+rX) and run again"
		}
		notes = append(notes, connector.FolderNote{Path: p.Canonical(), Err: connector.Errorf(connector.KindItem, hint, err, "mbox directory %s", dir)})
	}
	if err := c.walk("", nil, 0, add, note); err != nil {
		return nil, nil, err
	}
	// Parents that exist only as path prefixes.
	for _, k := range append([]string(nil), order...) {
		f := byKey[k]
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
	return out, notes, nil
}

func (c *Conn) walk(rel string, parent mail.Path, depth int, add func(mail.Path, string, bool), note func(mail.Path, string, error)) error {
	full := filepath.Join(c.root.Dir, filepath.FromSlash(rel))
	entries, err := os.ReadDir(full)
	if err != nil && rel != "" {
		// Without the directory its folders are unknown: a note that
		// names it, rather than a tree with folders silently missing;
		// the rest of the tree is read.
		note(parent, full, err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read directory %s: %w", full, err)
	}
	siblings := map[string]bool{}
	for _, e := range entries {
		siblings[e.Name()] = true
	}
	join := func(name string) string {
		if rel == "" {
			return name
		}
		return rel + "/" + name
	}
	child := func(name string) mail.Path {
		return append(append(mail.Path(nil), parent...), unescapeName(name))
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(full, name)
		fi, err := os.Stat(p) // follows links; the folder's own checks refuse ones leading out
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				add(child(strings.TrimSuffix(name, ".mbox")), join(name), false) // List says why
			}
			continue
		}
		lower := strings.ToLower(name)
		switch {
		case fi.IsDir() && depth >= maxDepth:
		case fi.IsDir() && strings.HasSuffix(lower, ".sbd"):
			if e.Type()&os.ModeSymlink != 0 {
				continue // not followed: a link loop would never end
			}
			if err := c.walk(join(name), child(name[:len(name)-4]), depth+1, add, note); err != nil {
				return err
			}
		case fi.IsDir() && strings.HasSuffix(lower, ".mbox"):
			folder := child(name[:len(name)-5])
			if mfi, err := os.Stat(filepath.Join(p, "mbox")); err == nil && mfi.Mode().IsRegular() {
				add(folder, join(name)+"/mbox", false)
			} else {
				add(folder, "", true)
			}
			if e.Type()&os.ModeSymlink == 0 {
				if err := c.walk(join(name), folder, depth+1, add, note); err != nil {
					return err
				}
			}
		case fi.IsDir():
			if e.Type()&os.ModeSymlink == 0 {
				if err := c.walk(join(name), child(name), depth+1, add, note); err != nil {
					return err
				}
			}
		case fi.Mode().IsRegular() && name == "mbox" && (rel == "" || strings.HasSuffix(strings.ToLower(rel), ".mbox")):
			// An Apple Mail folder's messages: listed with its package.
		case fi.Mode().IsRegular() && isMailFile(p, name, siblings):
			folder := name
			if strings.HasSuffix(lower, ".mbox") && len(name) > 5 {
				folder = name[:len(name)-5]
			}
			add(child(folder), join(name), false)
		}
	}
	return nil
}

// isMailFile decides whether a regular file in a tree is an mbox folder.
func isMailFile(full, name string, siblings map[string]bool) bool {
	if isMetaName(name) {
		return false
	}
	if siblings[name+".msf"] || siblings[name+".sbd"] || strings.HasSuffix(strings.ToLower(name), ".mbox") {
		return true
	}
	f, err := os.Open(full)
	if err != nil {
		return path.Ext(name) == "" // an unreadable folder is listed so that List says why
	}
	defer f.Close()
	head := make([]byte, len(fromPrefix))
	n, _ := io.ReadFull(f, head)
	return n == 0 || string(head[:n]) == string(fromPrefix)
}
