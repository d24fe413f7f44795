package ews

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// A folder's cursor is the SyncState of SyncFolderItems
// (web-service-reference/syncfolderitems-operation) after the last
// listing, with the number of messages the folder held then:
// "e1.<count>.<SyncState>". The count answers Listing.Status for a
// folder in which nothing changed without a second call.
const cursorPrefix = "e1."

type cursor struct {
	count int64
	state string
}

func (k cursor) String() string {
	return cursorPrefix + strconv.FormatInt(k.count, 10) + "." + k.state
}

// parseCursor reads a cursor; ok is false for one this connector did
// not make (the listing is then a full one, with Reset).
func parseCursor(c connector.Cursor) (cursor, bool) {
	s, ok := strings.CutPrefix(string(c), cursorPrefix)
	if !ok {
		return cursor{}, false
	}
	n, state, ok := strings.Cut(s, ".")
	if !ok || state == "" {
		return cursor{}, false
	}
	count, err := strconv.ParseInt(n, 10, 64)
	if err != nil || count < 0 {
		return cursor{}, false
	}
	return cursor{count: count, state: state}, true
}

// defaultListBatch is how many messages a listing hands over at once.
const defaultListBatch = 256

// acceptFlags are the flags an EWS folder stores: IsRead, the follow-up
// flag, and the last verb (replied or forwarded). Keywords (EWS
// Categories) are not copied, and \Draft cannot be set (see append.go).
var acceptFlags = []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, "$Forwarded"}

// List reads a folder with SyncFolderItems: from no SyncState for a full
// listing, from the cursor's SyncState for a delta. Using the same
// operation for both makes the cursor exactly consistent with what was
// listed: the server's SyncState covers every change it returned, and
// mail that arrives while a long folder is being read is either in the
// listing or in the next delta, never lost between a FindItem snapshot
// and a separate sync. Each call returns at most 512 changes
// (MaxChangesReturned) and is repeated until IncludesLastItemInRange; a
// folder in which nothing changed costs one call.
//
// Create changes are ChangeNew; Update and ReadFlagChange are ChangeFlags
// and Delete is ChangeRemoved (with opts.Changes). A SyncState the
// server no longer accepts (ErrorInvalidSyncStateData) or a cursor this
// connector cannot read gives a full listing with Listing.Reset, or,
// with opts.StrictSince, an error wrapping connector.ErrCursorInvalid
// before anything is delivered. opts.NoMessages still pages through
// SyncFolderItems (EWS has no other way to get a SyncState) but hands
// nothing over and reads no headers.
// opts.AllOld adds every other message of the folder, flags only, read
// with FindItem pages (see allOld).
//
// New messages carry their header block's identity fields, read from
// PR_TRANSPORT_MESSAGE_HEADERS or, where the item has none, from the
// head of its MIME (see headers.go).
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	what := c.folderOp("list", f)
	var lst connector.Listing
	if opts.ForAppend {
		lst.Accept = connector.FlagAcceptance{Flags: append([]string(nil), acceptFlags...)}
	}
	if !f.IsMail() {
		return lst, &connector.Error{Kind: connector.KindConfig, Op: what,
			Err: fmt.Errorf("it is a %s folder, not a mail folder", f.Class), Hint: "Only mail folders are copied."}
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultListBatch
	}
	since, ok := parseCursor(opts.Since)
	if opts.Since != "" && !ok {
		if opts.StrictSince {
			return lst, &connector.Error{Kind: connector.KindConfig, Op: what, Hint: hintForeignCursor,
				Err: fmt.Errorf("%w: the stored cursor was not made by the EWS connector", connector.ErrCursorInvalid)}
		}
		lst.Reset = true
	}
	l := &lister{c: c, f: f, what: what, opts: opts, fn: fn, batch: batch}
	for {
		err := l.run(ctx, since)
		var ie *invalidStateError
		if errors.As(err, &ie) && opts.StrictSince && !l.delivered {
			return lst, &connector.Error{Kind: connector.KindConfig, Op: what, Hint: hintForeignCursor,
				Err: fmt.Errorf("%w: Exchange no longer accepts the folder's SyncState (%v)", connector.ErrCursorInvalid, ie.err)}
		}
		if errors.As(err, &ie) && !l.delivered {
			// web-service-reference/syncfolderitems-operation: the error
			// answer to an invalid SyncState; start again from nothing.
			since = cursor{}
			lst.Reset = true
			*l = lister{c: c, f: f, what: what, opts: opts, fn: fn, batch: batch}
			continue
		}
		if err != nil {
			return lst, err
		}
		break
	}
	if opts.AllOld && since.state != "" && !opts.NoMessages {
		if err := l.allOld(ctx); err != nil {
			return lst, err
		}
	}
	if err := l.flush(); err != nil {
		return lst, err
	}
	lst.Cursor = connector.Cursor(cursor{count: max(l.count, 0), state: l.state}.String())
	lst.Status = connector.FolderStatus{Messages: max(l.count, 0)}
	if since.state == "" {
		lst.Status.Size = l.size
	}
	return lst, nil
}

// hintForeignCursor is shown only if a caller does not handle
// ErrCursorInvalid itself (the engine compares the folder in full).
const hintForeignCursor = "Run the pass again with a full rescan of this folder."

// invalidStateError is ErrorInvalidSyncStateData.
type invalidStateError struct{ err error }

func (e *invalidStateError) Error() string { return e.err.Error() }
func (e *invalidStateError) Unwrap() error { return e.err }

// lister is one List call in progress.
type lister struct {
	c     *Conn
	f     connector.Folder
	what  string
	opts  connector.ListOptions
	fn    func([]connector.Message) error
	batch int

	pending   []connector.Message
	delivered bool
	count     int64
	size      int64
	state     string
	// newIDs are the messages listed as new, which allOld must not list
	// again.
	newIDs map[string]bool
}

func (l *lister) emit(m connector.Message) error {
	if l.opts.NoMessages {
		return nil
	}
	l.pending = append(l.pending, m)
	if len(l.pending) >= l.batch {
		return l.flush()
	}
	return nil
}

func (l *lister) flush() error {
	if len(l.pending) == 0 {
		return nil
	}
	out := l.pending
	l.pending = nil
	l.delivered = true
	return l.fn(out)
}

// run pages through SyncFolderItems from since.
func (l *lister) run(ctx context.Context, since cursor) error {
	l.state, l.count = since.state, since.count
	full := since.state == ""
	for {
		var resp syncFolderItemsResp
		err := l.c.cl.call(ctx, l.what, &syncFolderItemsReq{
			Shape:      idOnly(listProps...),
			Folder:     folderRef{ID: l.f.Name},
			SyncState:  l.state,
			MaxChanges: maxSyncChanges,
		}, &resp)
		if err != nil {
			return err
		}
		if len(resp.Messages) != 1 {
			return protocolErr(l.what, "SyncFolderItems answered %d messages for one folder", len(resp.Messages))
		}
		m := resp.Messages[0]
		if m.Code == "ErrorInvalidSyncStateData" && l.state != "" {
			return &invalidStateError{err: messageErr(m.respStatus, l.what)}
		}
		if err := messageErr(m.respStatus, l.what); err != nil {
			return err
		}
		if err := l.changes(ctx, m.Changes.Changes, full); err != nil {
			return err
		}
		if m.SyncState == "" {
			return protocolErr(l.what, "SyncFolderItems returned no SyncState")
		}
		l.state = m.SyncState
		if m.Last {
			return nil
		}
		if len(m.Changes.Changes) == 0 {
			return protocolErr(l.what, "SyncFolderItems returned no change and not the last one")
		}
	}
}

// changes turns one page of changes into messages.
func (l *lister) changes(ctx context.Context, changes []syncChange, full bool) error {
	var created []connector.Message
	var readChanged []string
	seenRead := map[string]bool{}
	for _, ch := range changes {
		switch ch.XMLName.Local {
		case "Create":
			it, ok := firstItem(ch)
			if !ok {
				continue
			}
			m := messageOf(it)
			m.Change = connector.ChangeNew
			created = append(created, m)
		case "Update":
			if !l.opts.Changes {
				continue
			}
			it, ok := firstItem(ch)
			if !ok {
				continue
			}
			m := messageOf(it)
			m.Change = connector.ChangeFlags
			m.Headers, m.Identity = mail.Headers{}, mail.Identity{}
			if err := l.emit(m); err != nil {
				return err
			}
		case "ReadFlagChange":
			if l.opts.Changes && ch.ItemID != nil && !seenRead[ch.ItemID.ID] {
				seenRead[ch.ItemID.ID] = true
				readChanged = append(readChanged, ch.ItemID.ID)
			}
		case "Delete":
			l.count--
			if l.opts.Changes && ch.ItemID != nil {
				if err := l.emit(connector.Message{ID: connector.ID(ch.ItemID.ID), Change: connector.ChangeRemoved}); err != nil {
					return err
				}
			}
		}
	}
	if len(created) > 0 && l.opts.NoMessages {
		// Only the cursor and the count are wanted: no GetItem for the
		// headers. Sizes are still in the sync's item shape.
		for _, m := range created {
			l.count++
			l.size += m.Size
		}
		created = nil
	}
	if len(created) > 0 {
		kept, err := l.c.withHeaders(ctx, l.what, created)
		if err != nil {
			return err
		}
		for _, m := range kept {
			l.count++
			l.size += m.Size
			if !full && l.opts.AllOld {
				if l.newIDs == nil {
					l.newIDs = map[string]bool{}
				}
				l.newIDs[string(m.ID)] = true
			}
			if err := l.emit(m); err != nil {
				return err
			}
		}
	}
	if len(readChanged) > 0 && !l.opts.NoMessages {
		ms, err := l.c.flagsOf(ctx, l.what, readChanged)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := l.emit(m); err != nil {
				return err
			}
		}
	}
	return nil
}

func firstItem(ch syncChange) (itemXML, bool) {
	if len(ch.Items) == 0 || ch.Items[0].ID.ID == "" {
		return itemXML{}, false
	}
	return ch.Items[0], true
}

// messageOf reads the metadata a listing asked for (listProps).
func messageOf(it itemXML) connector.Message {
	m := connector.Message{ID: connector.ID(it.ID.ID), Flags: flagsOf(it)}
	if it.Size != nil {
		m.Size = *it.Size
	}
	if t, ok := parseEWSTime(it.Received); ok {
		m.InternalDate = t
	}
	return m
}

// flagsOf maps an item's properties to IMAP flags: IsRead → \Seen,
// Flag/FlagStatus Flagged → \Flagged (a completed follow-up is not
// flagged), IsDraft → \Draft, PR_LAST_VERB_EXECUTED 102/103 → \Answered
// and 104 → $Forwarded, or, where the verb is missing, the same read
// from PR_ICON_INDEX.
func flagsOf(it itemXML) []string {
	var fl []string
	if it.IsRead != nil && *it.IsRead {
		fl = append(fl, mail.FlagSeen)
	}
	verb, ok := findExtInt(it.Extended, propLastVerb.Tag)
	if !ok {
		if icon, ok := findExtInt(it.Extended, propIconIndex.Tag); ok {
			switch icon {
			case iconReplied:
				verb = verbReplyToSender
			case iconForwarded:
				verb = verbForward
			}
		}
	}
	switch verb {
	case verbReplyToSender, verbReplyToAll:
		fl = append(fl, mail.FlagAnswered)
	}
	if it.Flag != nil && it.Flag.Status == "Flagged" {
		fl = append(fl, mail.FlagFlagged)
	}
	if it.IsDraft != nil && *it.IsDraft {
		fl = append(fl, mail.FlagDraft)
	}
	if verb == verbForward {
		fl = append(fl, "$Forwarded")
	}
	return fl
}

// flagsOf reads the current flags of items with GetItem.
func (c *Conn) flagsOf(ctx context.Context, what string, ids []string) ([]connector.Message, error) {
	var out []connector.Message
	for start := 0; start < len(ids); start += headerBatch {
		chunk := ids[start:min(start+headerBatch, len(ids))]
		var resp getItemResp
		if err := c.cl.call(ctx, what, &getItemReq{Shape: idOnly(flagProps...), ItemIDs: refs(chunk)}, &resp); err != nil {
			return nil, err
		}
		for i, m := range resp.Messages {
			if i >= len(chunk) {
				break
			}
			if !m.ok() || len(m.Items.Items) == 0 {
				if err := listItemErr(m.respStatus, what); err != nil {
					return nil, err
				}
				continue // gone since: the next listing reports its removal
			}
			fl := flagsOf(m.Items.Items[0])
			out = append(out, connector.Message{ID: connector.ID(chunk[i]), Change: connector.ChangeFlags, Flags: fl})
		}
	}
	return out, nil
}

// listItemErr is nil for an item that vanished between the sync and the
// GetItem that reads more of it, and the error otherwise.
func listItemErr(st respStatus, what string) error {
	if st.ok() {
		return nil
	}
	if k, _ := kindOfCode(st.Code); k == connector.KindItem {
		return nil
	}
	return messageErr(st, what)
}

func refs(ids []string) []itemRef {
	out := make([]itemRef, len(ids))
	for i, id := range ids {
		out[i] = itemRef{ID: id}
	}
	return out
}

// allOld lists, flags only, every message of the folder that this
// listing did not report as new, with FindItem pages
// (IndexedPageItemView) until IncludesLastItemInRange. A server whose
// EWSFindCountLimit is lower than the page asked for returns a partial
// page; the next one starts at its IndexedPagingOffset
// (ews-throttling-in-exchange: "the application should make another
// FindItem … with the new offset").
func (l *lister) allOld(ctx context.Context) error {
	return l.c.findItems(ctx, l.what, l.f, func(it itemXML) error {
		if l.newIDs[it.ID.ID] {
			return nil
		}
		m := messageOf(it)
		m.Change = connector.ChangeFlags
		return l.emit(m)
	})
}

// findItems pages through FindItem, oldest first.
func (c *Conn) findItems(ctx context.Context, what string, f connector.Folder, each func(itemXML) error) error {
	offset := 0
	// Mail that arrives during paging can push an item of one page onto
	// the next; the ids of the page before are enough to skip it there.
	var prev map[string]bool
	for {
		req := &findItemReq{
			Traversal: "Shallow",
			Shape:     idOnly(listProps...),
			View:      pageView{Max: pageSize, Offset: offset, BasePoint: "Beginning"},
			SortOrder: &sortOrder{},
			Parents:   []folderRef{{ID: f.Name}},
		}
		req.SortOrder.Order.Order = "Ascending"
		req.SortOrder.Order.Field = prop{Field: "item:DateTimeReceived"}
		var resp findItemResp
		if err := c.cl.call(ctx, what, req, &resp); err != nil {
			return err
		}
		if len(resp.Messages) != 1 {
			return protocolErr(what, "FindItem answered %d messages for one folder", len(resp.Messages))
		}
		m := resp.Messages[0]
		if err := messageErr(m.respStatus, what); err != nil {
			return err
		}
		got := m.Root.Items.Items
		page := make(map[string]bool, len(got))
		for _, it := range got {
			if it.ID.ID == "" || prev[it.ID.ID] || page[it.ID.ID] {
				continue
			}
			page[it.ID.ID] = true
			if err := each(it); err != nil {
				return err
			}
		}
		prev = page
		if m.Root.Last {
			return nil
		}
		next := m.Root.Offset
		if next <= offset {
			if len(got) == 0 {
				return protocolErr(what, "FindItem returned an empty page that is not the last one")
			}
			next = offset + len(got)
		}
		offset = next
	}
}
