package pop3

import (
	"context"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// Statuses implements connector.StatusReader. The inbox's counters come
// from STAT (RFC 1939 §5), or from UIDL and LIST when a cursor is given:
// the status is Unchanged only when the maildrop holds exactly the IDs of
// the cursor. That needs UIDL. STAT alone cannot prove it: a message
// removed and another of the same size added leave both numbers as they
// were. So on a server without UIDL the status is never Unchanged, since
// proving it would mean reading every message's header, which is what a
// listing does anyway.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	var want []int
	for i, f := range folders {
		if errs[i] = checkFolder(f); errs[i] == nil {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return sts, errs
	}
	err := c.withSession(ctx, "read the status of the inbox on "+c.addr, func(s *session) error {
		for _, i := range want {
			var cur connector.Cursor
			if i < len(since) {
				cur = since[i]
			}
			st, err := s.folderStatus(cur)
			if err != nil {
				return err
			}
			sts[i] = st
		}
		return nil
	})
	if err != nil {
		for _, i := range want {
			errs[i] = err
		}
	}
	return sts, errs
}

func (s *session) folderStatus(cur connector.Cursor) (connector.FolderStatus, error) {
	if cur == "" && s.idx == nil {
		return s.stat()
	}
	if s.idx == nil {
		x, err := s.readIndex()
		if err != nil {
			return connector.FolderStatus{}, err
		}
		s.idx = x
	}
	x := s.idx
	st := connector.FolderStatus{Messages: int64(len(x.msgs)), Size: x.total}
	if cur != "" && x.complete() {
		if seen, ok := parseCursor(cur, x.uidl); ok {
			ids := make([]connector.ID, len(x.msgs))
			for i, e := range x.msgs {
				ids[i] = e.id
			}
			st.Unchanged = seen.equalIDs(ids)
		}
	}
	return st, nil
}

// stat sends STAT; its answer is "+OK count size" (RFC 1939 §5, the
// "drop listing").
func (s *session) stat() (connector.FolderStatus, error) {
	st, err := s.cmd("STAT")
	if err != nil {
		return connector.FolderStatus{}, err
	}
	f := strings.Fields(st.text)
	if len(f) >= 2 {
		n, err1 := strconv.ParseInt(f[0], 10, 64)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil && n >= 0 && size >= 0 {
			return connector.FolderStatus{Messages: n, Size: size}, nil
		}
	}
	return connector.FolderStatus{}, &protocolError{msg: "bad STAT answer " + strconv.Quote(truncate(st.text, 80))}
}
