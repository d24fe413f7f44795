package maildir

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/utf7"
	"github.com/mailferry/mailferry/internal/mail"
)

// Folder names on disk follow Dovecot and Courier: each path segment is
// written in IMAP's modified UTF-7 (RFC 3501 section 5.1.3), so "Ärger"
// is stored as "&AMQ-rger" and '&' as "&-". Characters a layout cannot
// hold are written as '\' and two hex digits, as Dovecot's listescape
// plugin does: '.' in Maildir++ names (it is the separator), '/' always,
// '\' itself, a leading '.' in the fs layout (it would hide the folder
// or make it look like Maildir++), and the first letter of a folder
// named cur, new or tmp in the fs layout (they are a maildir's own
// directories).
//
// On reading, a segment that is valid modified UTF-7 is decoded, else it
// is taken as UTF-8 as written by tools that store names raw; then every
// "\xx" escape is undone.

// Layouts of subfolders.
const (
	layoutMaildirPP = "maildir++" // .Archive.2019 beside cur/new/tmp
	layoutFS        = "fs"        // Archive/2019, each a maildir
)

func escapeSegment(s, layout string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '/' || layout == layoutMaildirPP && c == '.' || i == 0 && c == '.':
			fmt.Fprintf(&b, "\\%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	if layout == layoutFS && (out == "cur" || out == "new" || out == "tmp") {
		out = fmt.Sprintf("\\%02x", out[0]) + out[1:]
	}
	enc, err := utf7.Encoding.NewEncoder().String(out)
	if err != nil {
		// Invalid UTF-8 cannot come from an IMAP name; keep the bytes.
		return out
	}
	return enc
}

func unescapeSegment(s string) string {
	if strings.Contains(s, "&") {
		if dec, err := utf7.Encoding.NewDecoder().String(s); err == nil {
			s = dec
		}
	}
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// dirOf is the directory (relative to the root, '/'-separated) that
// holds folder p in the given layout; "" is the root (INBOX).
func dirOf(p mail.Path, layout string) string {
	if p.IsInbox() || len(p) == 0 {
		return ""
	}
	segs := make([]string, len(p))
	for i, s := range p {
		segs[i] = escapeSegment(s, layout)
	}
	if layout == layoutFS {
		return strings.Join(segs, "/")
	}
	return "." + strings.Join(segs, ".")
}

// pathOfPP is the folder path of a Maildir++ directory name (".a.b").
func pathOfPP(name string) mail.Path {
	var p mail.Path
	for _, s := range strings.Split(name[1:], ".") {
		if s == "" {
			// ".a..b" is no Maildir++ name any tool writes; keep it whole
			// rather than invent an empty folder name.
			return mail.Path{unescapeSegment(name[1:])}
		}
		p = append(p, unescapeSegment(s))
	}
	return p
}
