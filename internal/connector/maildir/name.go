package maildir

import (
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/mail"
)

// The flag letters of the Maildir specification (cr.yp.to/proto/maildir.html,
// "info" of form 2). Dovecot maps D F R S T to \Draft \Flagged \Answered
// \Seen \Deleted; P ("passed": resent, forwarded or bounced) has no IMAP
// system flag, and Mailferry maps it to the $Forwarded keyword as mutt
// and mbsync do.
const forwarded = "$Forwarded"

var letterFlags = []struct {
	letter byte
	flag   string
}{
	{'D', mail.FlagDraft},
	{'F', mail.FlagFlagged},
	{'P', forwarded},
	{'R', mail.FlagAnswered},
	{'S', mail.FlagSeen},
	{'T', mail.FlagDeleted},
}

// fileName is a message file name taken apart.
type fileName struct {
	// base is the unique part, before the last ':' (the whole name when
	// there is none); it is the message's ID and never changes when
	// flags do.
	base string
	// hasInfo: the name has a ":2," info part.
	hasInfo bool
	// letters are the flag letters of the info part (standard upper-case
	// letters and Dovecot's a–z keyword letters).
	letters string
	// extra is Dovecot's ",<non-standard fields>" after the letters,
	// kept as found when flags change.
	extra string
	// size is Dovecot's ",S=<size>" field of the base (the file size),
	// -1 when absent; vsize its ",W=" (size with CRLF line ends).
	size, vsize int64
}

// parseName reads a Maildir file name. It never fails: a name without a
// ":2," part (a message in new/, or from a tool with its own info
// format) has no flags.
func parseName(name string) fileName {
	n := fileName{base: name, size: -1, vsize: -1}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		n.base = name[:i]
		info := name[i+1:]
		if rest, ok := strings.CutPrefix(info, "2,"); ok {
			n.hasInfo = true
			n.letters, n.extra, _ = strings.Cut(rest, ",")
			if n.extra != "" || strings.HasSuffix(rest, ",") {
				n.extra = "," + n.extra
			}
		}
	}
	// Dovecot's extensions of the base: ",S=<size>" and ",W=<vsize>".
	fields := strings.Split(n.base, ",")
	for _, f := range fields[1:] {
		if v, ok := strings.CutPrefix(f, "S="); ok {
			if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
				n.size = s
			}
		}
		if v, ok := strings.CutPrefix(f, "W="); ok {
			if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
				n.vsize = s
			}
		}
	}
	return n
}

// curName is the file name in cur/ for base with these letters, keeping
// Dovecot's non-standard fields.
func curName(base, letters, extra string) string {
	return base + ":2," + letters + extra
}

// flagsOf turns flag letters into IMAP flags; keywords maps Dovecot's
// letters a–z to keyword names (a letter without a name is dropped: no
// name can be given to it).
func flagsOf(letters string, keywords []string) []string {
	var out []string
	seen := map[byte]bool{}
	for i := 0; i < len(letters); i++ {
		c := letters[i]
		if seen[c] {
			continue
		}
		seen[c] = true
		switch {
		case c >= 'a' && c <= 'z':
			if k := int(c - 'a'); k < len(keywords) && keywords[k] != "" && !mail.HasFlag(out, keywords[k]) {
				out = append(out, keywords[k])
			}
		default:
			for _, lf := range letterFlags {
				if lf.letter == c && !mail.HasFlag(out, lf.flag) {
					out = append(out, lf.flag)
				}
			}
		}
	}
	return out
}

// lettersOf turns IMAP flags into sorted flag letters. keyword returns
// the letter of a keyword (assigning one when needed); ok false means it
// cannot be stored. \Recent and unknown system flags have no letter.
func lettersOf(flags []string, keyword func(string) (byte, bool)) (string, error) {
	var set [128]bool
	for _, f := range flags {
		done := false
		for _, lf := range letterFlags {
			if strings.EqualFold(f, lf.flag) {
				set[lf.letter], done = true, true
			}
		}
		if done || mail.IsSystemFlag(f) {
			continue
		}
		c, ok := keyword(f)
		if !ok {
			return "", &keywordsFullError{keyword: f}
		}
		set[c] = true
	}
	var b strings.Builder
	for c := range set {
		if set[c] {
			b.WriteByte(byte(c))
		}
	}
	return b.String(), nil
}

type keywordsFullError struct{ keyword string }

func (e *keywordsFullError) Error() string {
	return "keyword " + strconv.Quote(e.keyword) + " cannot be stored: the folder's dovecot-keywords file already names the 26 keywords (letters a–z) a Maildir file name can carry"
}
