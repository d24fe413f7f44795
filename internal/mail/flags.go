package mail

import "strings"

// System flags of RFC 3501 section 2.3.2 that survive a copy. \Recent is
// session state and cannot be set by APPEND, so it is not listed.
const (
	FlagSeen     = "\\Seen"
	FlagAnswered = "\\Answered"
	FlagFlagged  = "\\Flagged"
	FlagDeleted  = "\\Deleted"
	FlagDraft    = "\\Draft"
)

// IsSystemFlag reports whether f is a backslash flag.
func IsSystemFlag(f string) bool { return strings.HasPrefix(f, "\\") }

// HasFlag reports whether flags contains f, case-insensitively as RFC 3501
// requires for flag names.
func HasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// CopyableFlags returns the flags of a source message that should be set on
// its copy. System flags other than \Seen \Answered \Flagged \Draft are
// dropped (\Deleted would make the copy vanish at the next expunge;
// \Recent cannot be set). Keywords are kept only if the destination folder
// accepts them: acceptAny is the "\*" of PERMANENTFLAGS, permanent lists
// the keywords it already knows.
func CopyableFlags(flags []string, acceptAny bool, permanent []string) []string {
	var out []string
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, FlagSeen), strings.EqualFold(f, FlagAnswered),
			strings.EqualFold(f, FlagFlagged), strings.EqualFold(f, FlagDraft):
			out = append(out, canonicalSystemFlag(f))
		case IsSystemFlag(f):
			// \Deleted, \Recent and unknown system flags are not copied.
		case acceptAny || HasFlag(permanent, f):
			out = append(out, f)
		}
	}
	return out
}

func canonicalSystemFlag(f string) string {
	for _, c := range []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDraft} {
		if strings.EqualFold(f, c) {
			return c
		}
	}
	return f
}
