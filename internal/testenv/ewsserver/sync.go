package ewsserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sort"
	"strconv"
	"strings"
)

// SyncFolderItems (web-service-reference/syncfolderitems-operation).
//
// The SyncState says which items the client knows and at which version,
// like the ICS state Exchange keeps (it grows with the folder, as
// Exchange's does). It is opaque: base64 of a versioned binary encoding
// with a MAC under a key of this server, so a truncated, altered or
// foreign state is ErrorInvalidSyncStateData. It is deterministic: a
// folder without changes gives back the state it was given.

type syncState struct {
	mbx    uint16
	folder uint32
	known  map[uint32]uint64 // item number -> version the client has
}

const syncStateVersion = 1

func (s *Server) encodeSyncState(st *syncState) string {
	nums := make([]uint32, 0, len(st.known))
	for n := range st.known {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	b := []byte{syncStateVersion}
	b = binary.BigEndian.AppendUint16(b, st.mbx)
	b = binary.BigEndian.AppendUint32(b, st.folder)
	b = binary.AppendUvarint(b, uint64(len(nums)))
	prev := uint32(0)
	for _, n := range nums {
		b = binary.AppendUvarint(b, uint64(n-prev))
		b = binary.AppendUvarint(b, st.known[n])
		prev = n
	}
	mac := hmac.New(sha256.New, s.syncKey)
	mac.Write(b)
	b = append(b, mac.Sum(nil)[:8]...)
	return base64.StdEncoding.EncodeToString(b)
}

var errBadSyncState = errors.New("invalid sync state")

func (s *Server) decodeSyncState(str string) (*syncState, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(str))
	if err != nil || len(b) < 1+2+4+1+8 || b[0] != syncStateVersion {
		return nil, errBadSyncState
	}
	body, sum := b[:len(b)-8], b[len(b)-8:]
	mac := hmac.New(sha256.New, s.syncKey)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:8], sum) {
		return nil, errBadSyncState
	}
	st := &syncState{mbx: binary.BigEndian.Uint16(body[1:]), folder: binary.BigEndian.Uint32(body[3:]), known: map[uint32]uint64{}}
	rest := body[7:]
	count, n := binary.Uvarint(rest)
	if n <= 0 {
		return nil, errBadSyncState
	}
	rest = rest[n:]
	prev := uint32(0)
	for i := uint64(0); i < count; i++ {
		d, n1 := binary.Uvarint(rest)
		if n1 <= 0 {
			return nil, errBadSyncState
		}
		v, n2 := binary.Uvarint(rest[n1:])
		if n2 <= 0 {
			return nil, errBadSyncState
		}
		rest = rest[n1+n2:]
		prev += uint32(d)
		st.known[prev] = v
	}
	if len(rest) != 0 {
		return nil, errBadSyncState
	}
	return st, nil
}

type syncChange struct {
	kind string // Create, Update, Delete, ReadFlagChange
	num  uint32
	it   *item  // nil for Delete
	id   string // for Delete
}

func (s *Server) syncFolderItems(c *reqCtx, w *xw) *soapFault {
	sh, fault := c.shape(c.op.child(nsMessages, "ItemShape"), false)
	if fault != nil {
		return fault
	}
	invalid := sh.invalid
	if invalid == "" && (sh.mime || sh.fields["item:MimeContent"]) {
		// Treated like FindItem: clients fetch MIME with GetItem.
		invalid = "item:MimeContent"
	}
	errBody := func(w *xw) {
		w.empty("m:SyncState")
		w.leaf("m:IncludesLastItemInRange", "true")
	}
	if c.forced != nil {
		c.message(w, nil, nil, errBody)
		return nil
	}
	if invalid != "" {
		c.message(w, invalidPropertyError(invalid), nil, errBody)
		return nil
	}
	f, ierr := c.folderRef(c.op.child(nsMessages, "SyncFolderId").children[0])
	if ierr != nil {
		if ierr.code == "ErrorFolderNotFound" {
			ierr = &itemError{code: "ErrorSyncFolderNotFound", text: "The folder to synchronize could not be found."}
		}
		c.message(w, ierr, nil, errBody)
		return nil
	}
	st := &syncState{mbx: f.mbx.num, folder: f.num, known: map[uint32]uint64{}}
	if sn := c.op.child(nsMessages, "SyncState"); sn != nil && sn.value() != "" {
		got, err := s.decodeSyncState(sn.value())
		if err != nil || got.mbx != f.mbx.num || got.folder != f.num {
			c.message(w, newItemError("ErrorInvalidSyncStateData"), nil, errBody)
			return nil
		}
		st = got
	}
	max, _ := strconv.Atoi(c.op.child(nsMessages, "MaxChangesReturned").value())
	if ig := c.op.child(nsMessages, "Ignore"); ig != nil {
		for _, ref := range ig.children {
			if it, e := c.itemRef(ref); e == nil && it.folder == f {
				st.known[it.num] = it.version
			}
		}
	}
	var changes []syncChange
	for _, it := range f.sortedItems() {
		v, ok := st.known[it.num]
		switch {
		case !ok:
			changes = append(changes, syncChange{kind: "Create", num: it.num, it: it})
		case it.version > v && it.contentVersion > v:
			changes = append(changes, syncChange{kind: "Update", num: it.num, it: it})
		case it.version > v:
			changes = append(changes, syncChange{kind: "ReadFlagChange", num: it.num, it: it})
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].it.version < changes[j].it.version })
	var deletes []syncChange
	for num := range st.known {
		if _, ok := f.items[num]; !ok {
			deletes = append(deletes, syncChange{kind: "Delete", num: num, id: f.mbx.tombstones[num]})
		}
	}
	sort.Slice(deletes, func(i, j int) bool { return deletes[i].num < deletes[j].num })
	changes = append(changes, deletes...)
	last := len(changes) <= max
	if !last {
		changes = changes[:max]
	}
	for _, ch := range changes {
		if ch.kind == "Delete" {
			delete(st.known, ch.num)
		} else {
			st.known[ch.num] = ch.it.version
		}
	}
	state := s.encodeSyncState(st)
	c.message(w, nil, func(w *xw) {
		w.leaf("m:SyncState", state)
		w.leaf("m:IncludesLastItemInRange", strconv.FormatBool(last))
		w.open("m:Changes")
		for _, ch := range changes {
			w.open("t:" + ch.kind)
			switch ch.kind {
			case "Delete":
				w.empty("t:ItemId", "Id", ch.id)
			case "ReadFlagChange":
				w.empty("t:ItemId", "Id", ch.it.id, "ChangeKey", ch.it.changeKey)
				w.leaf("t:IsRead", strconv.FormatBool(ch.it.isRead()))
			default:
				c.writeItem(w, ch.it, sh)
			}
			w.close("t:" + ch.kind)
		}
		w.close("m:Changes")
	}, errBody)
	return nil
}
