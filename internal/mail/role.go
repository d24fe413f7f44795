package mail

import "strings"

// Role is the special use of a folder (RFC 6154), plus Inbox.
type Role string

// The roles Mailferry maps between servers. The string values are the
// SPECIAL-USE attributes so they can be shown and stored as-is.
const (
	RoleNone    Role = ""
	RoleInbox   Role = "\\Inbox"
	RoleSent    Role = "\\Sent"
	RoleDrafts  Role = "\\Drafts"
	RoleTrash   Role = "\\Trash"
	RoleJunk    Role = "\\Junk"
	RoleArchive Role = "\\Archive"
	RoleAll     Role = "\\All"
	RoleFlagged Role = "\\Flagged"
)

// RoleFromAttr returns the role for a SPECIAL-USE attribute, or RoleNone.
func RoleFromAttr(attr string) Role {
	switch strings.ToLower(attr) {
	case "\\sent":
		return RoleSent
	case "\\drafts":
		return RoleDrafts
	case "\\trash":
		return RoleTrash
	case "\\junk":
		return RoleJunk
	case "\\archive":
		return RoleArchive
	case "\\all":
		return RoleAll
	case "\\flagged":
		return RoleFlagged
	}
	return RoleNone
}

// roleOfName knows the names servers and clients give special folders when
// the server offers no SPECIAL-USE, gathered from Outlook, Exchange, Apple
// Mail, Thunderbird and Gmail (domain-facts §2). name is lower case.
func roleOfName(name string) Role {
	switch name {
	case "sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "gesendet", "gesendete objekte":
		return RoleSent
	case "drafts", "draft", "[gmail]/drafts", "entwürfe":
		return RoleDrafts
	case "trash", "deleted items", "deleted messages", "[gmail]/trash", "[gmail]/bin", "papierkorb", "gelöschte elemente":
		return RoleTrash
	case "junk", "junk e-mail", "junk email", "spam", "bulk mail", "[gmail]/spam", "junk-e-mail":
		return RoleJunk
	case "archive", "archives", "archiv":
		return RoleArchive
	case "[gmail]/all mail":
		return RoleAll
	case "[gmail]/starred":
		return RoleFlagged
	}
	return RoleNone
}

// RoleFromName guesses a role from a folder's path when the server gave no
// SPECIAL-USE attribute. Only top-level folders (and Gmail's "[Gmail]/X")
// qualify: "Projects/Sent" is an ordinary folder.
func RoleFromName(p Path) Role {
	if p.IsInbox() {
		return RoleInbox
	}
	if len(p) > 2 || len(p) == 0 {
		return RoleNone
	}
	if len(p) == 2 && !strings.EqualFold(p[0], "[Gmail]") && !strings.EqualFold(p[0], "[Google Mail]") {
		return RoleNone
	}
	name := strings.ToLower(p.String())
	name = strings.Replace(name, "[google mail]/", "[gmail]/", 1)
	return roleOfName(name)
}
