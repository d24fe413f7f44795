package pop3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// index is what a session knows of its maildrop: every message's number,
// ID and size, in maildrop order.
type index struct {
	// uidl: IDs are the server's unique-ids (RFC 1939 §7 UIDL). Otherwise
	// they are content IDs (see contentID).
	uidl  bool
	msgs  []entry
	byID  map[connector.ID]int // ID -> position in msgs
	total int64
}

type entry struct {
	num  int // message number in this session
	id   connector.ID
	size int64 // as LIST reports it
}

// complete reports whether every message of the index has its ID.
func (x *index) complete() bool { return x.uidl || len(x.byID) == len(x.msgs) }

func (x *index) add(num int, id connector.ID, size int64) {
	x.byID[id] = len(x.msgs)
	x.msgs = append(x.msgs, entry{num: num, id: id, size: size})
	x.total += size
}

// uniqueID returns id, or id with "#2", "#3"… appended when the maildrop
// already has a message with that ID. RFC 1939 §7 makes unique-ids unique,
// but servers can be configured to repeat them (Dovecot's
// pop3_uidl_duplicates = allow), and two messages with identical headers
// and size have the same content ID. Numbering the repeats in maildrop
// order keeps every ID unique and stable as long as the maildrop is.
func (x *index) uniqueID(id connector.ID) connector.ID {
	if _, dup := x.byID[id]; !dup {
		return id
	}
	for k := 2; ; k++ {
		alt := connector.ID(string(id) + "#" + strconv.Itoa(k))
		if _, dup := x.byID[alt]; !dup {
			return alt
		}
	}
}

// readIndex reads LIST and UIDL (pipelined when the server allows). A
// server without UIDL answers -ERR and gets an index without IDs, which
// scanContent fills in.
func (s *session) readIndex() (*index, error) {
	uidls := map[int]string{}
	haveUIDL := false
	x := &index{byID: map[connector.ID]int{}}
	type listed struct {
		num  int
		size int64
	}
	var list []listed
	err := s.exchange([]string{"UIDL", "LIST"}, true, nil, func(i int, st status, body *dotReader) error {
		if i == 0 {
			if !st.ok {
				return nil // no UIDL: content IDs
			}
			haveUIDL = true
			return body.lines(func(line string) error {
				num, uid, err := parseUIDLLine(line)
				if err != nil {
					return err
				}
				uidls[num] = uid
				return nil
			})
		}
		if !st.ok {
			return &serverError{code: st.code, text: st.text}
		}
		return body.lines(func(line string) error {
			num, size, err := parseListLine(line)
			if err != nil {
				return err
			}
			list = append(list, listed{num, size})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	x.uidl = haveUIDL
	for _, m := range list {
		var id connector.ID
		if haveUIDL {
			uid, ok := uidls[m.num]
			if !ok {
				return nil, &protocolError{msg: fmt.Sprintf("message %d is in LIST but not in UIDL", m.num)}
			}
			id = x.uniqueID(connector.ID(uid))
			x.add(m.num, id, m.size)
		} else {
			x.msgs = append(x.msgs, entry{num: m.num, size: m.size})
			x.total += m.size
		}
	}
	return x, nil
}

// parseUIDLLine reads "msg-number SP unique-id" (RFC 1939 §7). A
// unique-id is 1 to 70 characters in 0x21-0x7E; longer or odd ones are
// accepted, up to what an ID may hold, since being strict would only
// stop a migration over a server's harmless quirk.
func parseUIDLLine(line string) (int, string, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, "", &protocolError{msg: fmt.Sprintf("bad UIDL line %q", truncate(line, 80))}
	}
	num, err := strconv.Atoi(f[0])
	if err != nil || num <= 0 {
		return 0, "", &protocolError{msg: fmt.Sprintf("bad message number in UIDL line %q", truncate(line, 80))}
	}
	if len(f[1]) > connector.MaxIDLen-16 {
		return 0, "", &protocolError{msg: fmt.Sprintf("unique-id of message %d is %d octets long (RFC 1939 allows 70)", num, len(f[1]))}
	}
	return num, f[1], nil
}

// parseListLine reads a scan listing, "msg-number SP size" (RFC 1939 §5),
// ignoring whatever a server adds after it (§5 allows that).
func parseListLine(line string) (int, int64, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, 0, &protocolError{msg: fmt.Sprintf("bad LIST line %q", truncate(line, 80))}
	}
	num, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || num <= 0 || size < 0 {
		return 0, 0, &protocolError{msg: fmt.Sprintf("bad LIST line %q", truncate(line, 80))}
	}
	return num, size, nil
}

// contentID identifies a message on a server without UIDL by its header
// block and size: "hdr-" and 24 base64url characters (144 bits of
// SHA-256).
//
// Why: without UIDL a message has only its number, and numbers are
// reassigned in every session whenever a message before it is removed
// (RFC 1939 §8), so they cannot carry a message from one pass to the
// next. The header block is fixed once a message is delivered and holds
// the trace fields each relay added (Received: with the receiving
// server's queue id and time), Message-ID and Date; with the size it
// tells apart any two messages except true duplicates, which uniqueID
// numbers. Reading it costs a TOP n 0 per message, not a download.
func contentID(headerSum []byte, size int64) connector.ID {
	h := sha256.New()
	h.Write(headerSum)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:])
	return connector.ID("hdr-" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18]))
}

// maxHeaderKeep bounds the header bytes kept per message for parsing
// (Received:, Date:, Message-ID…); longer header blocks are hashed whole
// but only their start is parsed.
const maxHeaderKeep = 256 << 10

// readHeader reads a TOP n 0 (or RETR) reply up to and including the
// empty line that ends the header (RFC 5322 §2.1), or all of it if there
// is none. It returns the kept part and the SHA-256 of the whole header
// block. keep is reused.
func readHeader(body *dotReader, keep []byte, h hash.Hash) ([]byte, []byte, error) {
	keep = keep[:0]
	h.Reset()
	bol := true
	for {
		chunk, err := body.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return keep, h.Sum(nil), nil
			}
			return keep, nil, err
		}
		h.Write(chunk)
		if room := maxHeaderKeep - len(keep); room > 0 {
			keep = append(keep, chunk[:min(room, len(chunk))]...)
		}
		if bol && (len(chunk) == 1 && chunk[0] == '\n' || len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n') {
			return keep, h.Sum(nil), nil
		}
		bol = chunk[len(chunk)-1] == '\n'
	}
}
