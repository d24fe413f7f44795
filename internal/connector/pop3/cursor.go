package pop3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// A POP3 cursor is the set of message IDs a listing covered. POP3 has no
// UIDNEXT or MODSEQ: the only way to tell new messages from old ones is
// to remember every ID seen (RFC 1939 §7: "the unique-id of a message is
// an arbitrary server-determined string", with no order).
//
// Format: a prefix naming the kind of IDs, then the IDs' hashes:
//
//	"pop3-uidl-1:" or "pop3-content-1:"
//	base64url, unpadded, of the sorted, distinct 64-bit hashes
//	(the first 8 bytes of SHA-256 of each ID), big-endian
//
// That is 8 bytes, 10⅔ characters, per message whatever the length of the
// server's unique-ids: 100,000 messages make a cursor of about 1 MB. The
// chance that a new message's hash equals one of n seen ones is n/2^64
// (5·10⁻¹⁵ for n = 100,000), which would make it look old; a larger hash
// would cost more than that risk is worth. A hash cannot be turned back
// into an ID, which is why the connector does not report removals
// (Features.ReportsRemovals is false; AllOld lists what is left instead).
//
// The kind matters because UIDL and content IDs are unrelated: a cursor
// of the other kind (the server gained or lost UIDL), or one that cannot
// be read, makes the next listing a full one with Listing.Reset set.
const (
	cursorUIDL    = "pop3-uidl-1:"
	cursorContent = "pop3-content-1:"
)

// seen is a decoded cursor.
type seen []uint64 // sorted, distinct

func idHash(id connector.ID) uint64 {
	sum := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(sum[:8])
}

// parseCursor decodes c, which must be of the kind the session's IDs are;
// ok is false when it is not, or is malformed.
func parseCursor(c connector.Cursor, uidl bool) (seen, bool) {
	prefix := cursorContent
	if uidl {
		prefix = cursorUIDL
	}
	rest, found := strings.CutPrefix(string(c), prefix)
	if !found {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw)%8 != 0 {
		return nil, false
	}
	s := make(seen, len(raw)/8)
	for i := range s {
		s[i] = binary.BigEndian.Uint64(raw[i*8:])
		if i > 0 && s[i] <= s[i-1] {
			return nil, false // not written by makeCursor
		}
	}
	return s, true
}

func (s seen) has(id connector.ID) bool {
	_, found := slices.BinarySearch(s, idHash(id))
	return found
}

// equalIDs reports whether s holds exactly the hashes of ids.
func (s seen) equalIDs(ids []connector.ID) bool {
	return slices.Equal(s, hashesOf(ids))
}

func hashesOf(ids []connector.ID) seen {
	h := make(seen, len(ids))
	for i, id := range ids {
		h[i] = idHash(id)
	}
	slices.Sort(h)
	return slices.Compact(h)
}

// makeCursor encodes the set of ids.
func makeCursor(uidl bool, ids []connector.ID) connector.Cursor {
	h := hashesOf(ids)
	raw := make([]byte, 8*len(h))
	for i, v := range h {
		binary.BigEndian.PutUint64(raw[i*8:], v)
	}
	prefix := cursorContent
	if uidl {
		prefix = cursorUIDL
	}
	return connector.Cursor(prefix + base64.RawURLEncoding.EncodeToString(raw))
}
