package imap

import (
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// A message's ID is "<uidvalidity>.<uid>" in decimal: a UID names a
// message only together with its folder's UIDVALIDITY (RFC 3501 section
// 2.3.1.1), so an ID from before a renumbering can never name another
// message. Only this package reads IDs; everyone else stores them.
func makeID(uidValidity, uid uint32) connector.ID {
	return connector.ID(strconv.FormatUint(uint64(uidValidity), 10) + "." + strconv.FormatUint(uint64(uid), 10))
}

// parseID reads an ID made by makeID; ok is false for anything else.
func parseID(id connector.ID) (uidValidity, uid uint32, ok bool) {
	v, u, found := strings.Cut(string(id), ".")
	if !found {
		return 0, 0, false
	}
	vv, err1 := strconv.ParseUint(v, 10, 32)
	uu, err2 := strconv.ParseUint(u, 10, 32)
	if err1 != nil || err2 != nil || vv == 0 || uu == 0 {
		return 0, 0, false
	}
	return uint32(vv), uint32(uu), true
}

// cursor is a folder's change state (RFC 3501 section 2.3.1.1, RFC 7162):
//
//	imap1;from=F;messages=M;modseq=H;uidnext=N;uidvalidity=V
//
// V, N, M and H are the folder's UIDVALIDITY, UIDNEXT, MESSAGES and
// HIGHESTMODSEQ when it was listed (H is 0 without CONDSTORE); every UID
// below F was listed, so a delta listing asks for F:* only. F is N, or
// more when a message that arrived while the folder was listed was
// listed too. A STATUS that shows V, N, M and a non-zero H unchanged
// proves that nothing, flags included, changed (Statuses: Unchanged).
//
// The store's schema migration 00010 builds these from the columns of
// the state that releases before the connector model kept (from is the
// old watermark plus one), so their fields are written in this order
// with these names; keep them so.
type cursor struct {
	uidValidity, uidNext, from uint32
	messages                   int64
	modSeq                     uint64
}

const cursorPrefix = "imap1"

func (c cursor) String() string {
	var b strings.Builder
	b.WriteString(cursorPrefix)
	b.WriteString(";from=" + strconv.FormatUint(uint64(c.from), 10))
	b.WriteString(";messages=" + strconv.FormatInt(c.messages, 10))
	b.WriteString(";modseq=" + strconv.FormatUint(c.modSeq, 10))
	b.WriteString(";uidnext=" + strconv.FormatUint(uint64(c.uidNext), 10))
	b.WriteString(";uidvalidity=" + strconv.FormatUint(uint64(c.uidValidity), 10))
	return b.String()
}

// parseCursor reads a cursor made by String (or by the schema
// migration); ok is false for anything else, which List treats as no
// longer valid.
func parseCursor(s connector.Cursor) (c cursor, ok bool) {
	parts := strings.Split(string(s), ";")
	if len(parts) < 2 || parts[0] != cursorPrefix {
		return c, false
	}
	seen := 0
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(p, "=")
		if !found {
			return c, false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, false
		}
		small := n <= 1<<32-1
		switch k {
		case "from":
			c.from, ok = uint32(n), small
		case "messages":
			c.messages, ok = int64(n), n <= 1<<62
		case "modseq":
			c.modSeq, ok = n, true
		case "uidnext":
			c.uidNext, ok = uint32(n), small
		case "uidvalidity":
			c.uidValidity, ok = uint32(n), small
		default:
			ok = false
		}
		if !ok {
			return cursor{}, false
		}
		seen++
	}
	if seen != 5 || c.uidValidity == 0 {
		return cursor{}, false
	}
	if c.from == 0 {
		c.from = 1
	}
	return c, true
}
