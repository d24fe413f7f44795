package mail

import "strings"

// Path is a folder path as a list of segments, independent of any server's
// hierarchy delimiter and personal-namespace prefix. A segment may contain
// any character, including '/' or '.', because servers differ in which
// characters they reserve; connectors translate segments on the way in and
// out.
type Path []string

// InboxName is the canonical spelling of the inbox. RFC 3501 section 5.1
// makes "INBOX" case-insensitive, so every connector reports it this way.
const InboxName = "INBOX"

// ParsePath splits a user-facing path that uses '/' as separator, the
// convention MigrationWiz's folder rules use whatever the server does.
// Leading and trailing slashes and empty segments are ignored.
func ParsePath(s string) Path {
	var p Path
	for _, seg := range strings.Split(s, "/") {
		if seg != "" {
			p = append(p, seg)
		}
	}
	return p
}

// String joins the segments with '/', the separator of folder rules and of
// everything Mailferry shows to users.
func (p Path) String() string { return strings.Join(p, "/") }

// Key returns a string usable as a map key that keeps segment boundaries
// even when a segment contains '/'.
func (p Path) Key() string { return strings.Join(p, "\x00") }

// IsInbox reports whether p is the top-level inbox.
func (p Path) IsInbox() bool { return len(p) == 1 && strings.EqualFold(p[0], InboxName) }

// Equal reports whether two paths have the same segments. The inbox is
// compared case-insensitively, everything else exactly.
func (p Path) Equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] == q[i] {
			continue
		}
		if i == 0 && strings.EqualFold(p[0], InboxName) && strings.EqualFold(q[0], InboxName) {
			continue
		}
		return false
	}
	return true
}

// Parent returns the path without its last segment.
func (p Path) Parent() Path {
	if len(p) == 0 {
		return nil
	}
	return p[:len(p)-1]
}

// Canonical returns a copy with the inbox spelled as InboxName so that
// "Inbox/Sub" and "INBOX/Sub" are the same folder.
func (p Path) Canonical() Path {
	q := append(Path(nil), p...)
	if len(q) > 0 && strings.EqualFold(q[0], InboxName) {
		q[0] = InboxName
	}
	return q
}
