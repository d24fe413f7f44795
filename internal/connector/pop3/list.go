package pop3

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/mailferry/mailferry/internal/connector"
)

// callbackError carries an error returned by the caller's callback
// through the session code, so that it is returned as it was, not
// classified as a server problem.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

func callback(err error) error {
	if err == nil {
		return nil
	}
	return callbackError{err}
}

// List implements connector.Conn for the inbox, the only folder.
//
// Messages come in maildrop order. Every message not in opts.Since is
// ChangeNew, with its size from LIST and its identity headers and received
// date from its header block (TOP n 0, pipelined when the server offers
// PIPELINING). POP3 has no flags, so opts.Changes adds nothing; AllOld
// adds every message of Since still present, as ChangeFlags with ID and
// size only, so that a caller can tell which are gone. The Listing's
// Cursor holds every message present (see cursor.go).
//
// A message whose header the server refuses to send is listed with its
// ID and size only (no headers, zero date), so that the Fetch that
// follows reports it as failed instead of it going missing silently.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var lst connector.Listing
	if err := checkFolder(f); err != nil {
		return lst, err
	}
	err := c.withSession(ctx, "list the inbox of "+c.addr, func(s *session) error {
		var err error
		lst, err = s.list(opts, fn)
		return err
	})
	return lst, err
}

func (s *session) list(opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var lst connector.Listing
	if s.idx == nil {
		x, err := s.readIndex()
		if err != nil {
			return lst, err
		}
		s.idx = x
	}
	x := s.idx
	lst.Status = connector.FolderStatus{Messages: int64(len(x.msgs)), Size: x.total}
	var since seen
	full := opts.Since == ""
	if !full {
		var ok bool
		if since, ok = parseCursor(opts.Since, x.uidl); !ok {
			if opts.StrictSince {
				// Not a cursor of this kind (the server gained or lost
				// UIDL, or it is another connector's): the IDs recorded
				// under it are not this session's.
				return lst, callback(connector.Errorf(connector.KindItem, "", connector.ErrCursorInvalid, "list the inbox"))
			}
			full, lst.Reset = true, true
		}
	}
	if opts.NoMessages && x.complete() {
		ids := make([]connector.ID, len(x.msgs))
		for i, e := range x.msgs {
			ids[i] = e.id
		}
		lst.Cursor = makeCursor(x.uidl, ids)
		return lst, nil
	}
	isNew := func(id connector.ID) bool { return full || !since.has(id) }
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultListBatch
	}
	out := make([]connector.Message, 0, batch)
	flush := func(force bool) error {
		if len(out) == 0 || !force && len(out) < batch {
			return nil
		}
		err := fn(out)
		out = make([]connector.Message, 0, batch)
		return callback(err)
	}
	old := func(e entry) connector.Message {
		return connector.Message{ID: e.id, Change: connector.ChangeFlags, Size: e.size}
	}

	if !x.complete() {
		// No UIDL: the IDs come from the headers, so read them all, and
		// report the new messages from the same replies.
		_, err := s.ensureIndex(func(e entry, block []byte, refused error) error {
			switch {
			case isNew(e.id):
				m := connector.Message{ID: e.id, Change: connector.ChangeNew, Size: e.size}
				metadata(&m, block)
				out = append(out, m)
			case opts.AllOld:
				out = append(out, old(e))
			default:
				return nil
			}
			return flush(false)
		})
		if err != nil {
			return lst, err
		}
	} else {
		var chunk []entry
		var fresh []entry // the new ones of chunk, whose headers are read
		process := func() error {
			metas := make(map[int]connector.Message, len(fresh))
			err := s.readHeaders(fresh, func(i int, block, _ []byte, _ error) error {
				m := connector.Message{ID: fresh[i].id, Change: connector.ChangeNew, Size: fresh[i].size}
				metadata(&m, block)
				metas[fresh[i].num] = m
				return nil
			})
			if err != nil {
				return err
			}
			for _, e := range chunk {
				if m, ok := metas[e.num]; ok {
					out = append(out, m)
				} else {
					out = append(out, old(e))
				}
			}
			chunk, fresh = chunk[:0], fresh[:0]
			return flush(true)
		}
		for _, e := range x.msgs {
			switch {
			case isNew(e.id):
				fresh = append(fresh, e)
			case !opts.AllOld:
				continue
			}
			chunk = append(chunk, e)
			if len(chunk) == batch {
				if err := process(); err != nil {
					return lst, err
				}
			}
		}
		if len(chunk) > 0 {
			if err := process(); err != nil {
				return lst, err
			}
		}
	}
	if err := flush(true); err != nil {
		return lst, err
	}
	ids := make([]connector.ID, len(x.msgs))
	for i, e := range x.msgs {
		ids[i] = e.id
	}
	lst.Cursor = makeCursor(x.uidl, ids)
	return lst, nil
}

// headerCommand reads a message's header block: TOP n 0 (RFC 1939 §7),
// or on a server without TOP the whole message, of which only the header
// is kept.
func (s *session) headerCommand(num int) string {
	if s.top {
		return "TOP " + strconv.Itoa(num) + " 0"
	}
	return "RETR " + strconv.Itoa(num)
}

// readHeaders reads the header blocks of msgs, pipelined, and calls fn
// with each in order: block is valid only during fn, sum is its SHA-256;
// refused is the server's -ERR, with block and sum nil.
func (s *session) readHeaders(msgs []entry, fn func(i int, block, sum []byte, refused error) error) error {
	if len(msgs) == 0 {
		return nil
	}
	cmds := make([]string, len(msgs))
	for i, e := range msgs {
		cmds[i] = s.headerCommand(e.num)
	}
	var ahead func(oldest, next int) bool
	if !s.top {
		ahead = retrAhead(msgs)
	}
	keep := make([]byte, 0, 16<<10)
	h := sha256.New()
	return s.exchange(cmds, true, ahead, func(i int, st status, body *dotReader) error {
		if !st.ok {
			return fn(i, nil, nil, &serverError{code: st.code, text: st.text})
		}
		block, sum, err := readHeader(body, keep, h)
		if err != nil {
			return err
		}
		keep = block[:0]
		return fn(i, block, sum, nil)
	})
}

// scanContent gives every message of a server without UIDL its content
// ID (see contentID), reading every header block; onHeader, when not
// nil, sees each message with its ID and header.
//
// A message whose header the server refuses gets an ID that only this
// session can resolve ("hdr-unreadable-<number>-<session nonce>"): its
// number means another message in another session, and fetching the
// wrong message under its ID must never happen. It is then listed anew,
// and fails anew, in every pass, which is the truth.
func (s *session) scanContent(onHeader func(e entry, block []byte, refused error) error) error {
	x := s.idx
	pending := x.msgs
	x.msgs, x.byID, x.total = make([]entry, 0, len(pending)), make(map[connector.ID]int, len(pending)), 0
	var nonce string
	err := s.readHeaders(pending, func(i int, block, sum []byte, refused error) error {
		e := pending[i]
		if refused != nil {
			if nonce == "" {
				var b [6]byte
				_, _ = rand.Read(b[:])
				nonce = hex.EncodeToString(b[:])
			}
			e.id = connector.ID(fmt.Sprintf("hdr-unreadable-%d-%s", e.num, nonce))
		} else {
			e.id = x.uniqueID(contentID(sum, e.size))
		}
		x.add(e.num, e.id, e.size)
		if onHeader == nil {
			return nil
		}
		return onHeader(e, block, refused)
	})
	if err != nil {
		// A half-built index would give later messages other IDs.
		s.idx = nil
		return err
	}
	return nil
}
