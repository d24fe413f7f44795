package graph

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// The three delta queries a cursor follows.
type chain int

const (
	chainCreated chain = iota
	chainUpdated
	chainDeleted
)

// graphMessage is the part of the message resource a listing reads.
type graphMessage struct {
	ID      string `json:"id"`
	Removed *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
	ReceivedDateTime  string `json:"receivedDateTime"`
	InternetMessageID string `json:"internetMessageId"`
	Subject           string `json:"subject"`
	IsRead            *bool  `json:"isRead"`
	IsDraft           *bool  `json:"isDraft"`
	Flag              *struct {
		FlagStatus string `json:"flagStatus"`
	} `json:"flag"`
	Categories             []string  `json:"categories"`
	InternetMessageHeaders []header  `json:"internetMessageHeaders"`
	ExtendedProperties     []extProp `json:"singleValueExtendedProperties"`
}

type messagePage struct {
	Value     []graphMessage `json:"value"`
	NextLink  string         `json:"@odata.nextLink"`
	DeltaLink string         `json:"@odata.deltaLink"`
}

func expandProps(ids ...string) string {
	var f []string
	for _, id := range ids {
		f = append(f, "id eq '"+id+"'")
	}
	return "singleValueExtendedProperties($filter=" + strings.Join(f, " or ") + ")"
}

// deltaStart is the first request of a delta query of folder id.
func (c *Conn) deltaStart(folderID string, ch chain) string {
	q := url.Values{}
	switch ch {
	case chainCreated:
		q.Set("changeType", "created")
		q.Set("$select", "id,receivedDateTime,internetMessageId,subject,isRead,isDraft,flag,categories,internetMessageHeaders")
		q.Set("$expand", expandProps(propSize, propLastVerb, propIdentity))
	case chainUpdated:
		q.Set("changeType", "updated")
		q.Set("$select", "id,isRead,isDraft,flag,categories")
		q.Set("$expand", expandProps(propLastVerb))
	case chainDeleted:
		q.Set("changeType", "deleted")
		q.Set("$select", "id")
	}
	return c.user + "/mailFolders/" + url.PathEscape(folderID) + "/messages/delta?" + q.Encode()
}

// errDeltaExpired is a delta or skip token Graph no longer knows (410
// SyncStateNotFound, message-delta).
var errDeltaExpired = errors.New("delta token expired")

func (c *Conn) page(ctx context.Context, link string, size int) (messagePage, error) {
	if !strings.HasPrefix(link, "/") && !c.sameOrigin(link) {
		return messagePage{}, fmt.Errorf("graph: a delta link leaves the service root")
	}
	var p messagePage
	err := c.getJSON(ctx, link, &p, "Prefer", "odata.maxpagesize="+strconv.Itoa(size))
	if st, _ := apiStatus(err); st == http.StatusGone {
		return p, errDeltaExpired
	}
	if err == nil && p.NextLink == "" && p.DeltaLink == "" {
		err = fmt.Errorf("graph: a delta page with neither nextLink nor deltaLink")
	}
	return p, err
}

// lister is one List call.
type lister struct {
	c         *Conn
	f         connector.Folder
	opts      connector.ListOptions
	fn        func([]connector.Message) error
	size      int
	delivered bool
	// describeNone: NoMessages; pages are read for their links only.
	describeNone bool
	// newIDs holds what a delta listing listed as ChangeNew, so that the
	// updated query and AllOld do not list it again; a full listing
	// needs none (and would hold one entry per message).
	track   bool
	newIDs  map[uint64]struct{}
	removed map[uint64]struct{}
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// List streams folder f's messages. Without Since it starts the three
// delta queries (updated and deleted first, so that no change after the
// listing began is missed) and lists every message as ChangeNew. With
// Since it follows the stored delta links: created messages are
// ChangeNew and, with Changes, updated ones ChangeFlags and deleted or
// moved-out ones ChangeRemoved. An expired token (410) on the first
// request of a query makes the listing a full one with Reset; one that
// expires after messages were handed out fails the listing with a
// transient error, so that the retry starts over from the same Since.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var listing connector.Listing
	var st struct {
		TotalItemCount int64 `json:"totalItemCount"`
	}
	if err := c.getJSON(ctx, c.user+"/mailFolders/"+url.PathEscape(f.Name)+"?$select=totalItemCount", &st); err != nil {
		return listing, c.sortError(err, accessRead, connector.KindMissingFolder, connector.KindConfig, "open folder %q", f.Path.String())
	}
	listing.Status.Messages = st.TotalItemCount
	if opts.ForAppend {
		listing.Accept = connector.FlagAcceptance{AnyKeyword: true, Flags: []string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered, mail.FlagDraft}}
	}
	size := opts.Batch
	if size <= 0 {
		size = c.set.pageSize
	}
	size = min(max(size, 10), maxDeltaPage)
	l := &lister{c: c, f: f, opts: opts, fn: fn, size: size, newIDs: map[uint64]struct{}{}, removed: map[uint64]struct{}{}}

	if opts.NoMessages {
		// Only the cursor is wanted: the queries are followed without
		// describing (or handing out) what they list.
		l.fn = func([]connector.Message) error { return nil }
		l.describeNone = true
		l.opts.AllOld = false
	}

	var cur cursor
	var err error
	if opts.Since != "" {
		old, ok := decodeCursor(opts.Since, f.Name, func(s string) bool { return c.sameOrigin(s) })
		if !ok && opts.StrictSince {
			return listing, connector.Errorf(connector.KindConfig, "", connector.ErrCursorInvalid, "list folder %q: the stored cursor is not one of this folder's delta links", f.Path.String())
		}
		if ok {
			l.track = true
			cur, err = l.delta(ctx, old)
			if errors.Is(err, errDeltaExpired) && !l.delivered {
				if opts.StrictSince {
					return listing, connector.Errorf(connector.KindConfig, "", fmt.Errorf("%w: %w", connector.ErrCursorInvalid, err), "list folder %q: Graph no longer knows the stored delta token (410 syncStateNotFound)", f.Path.String())
				}
				ok = false
			}
		}
		if !ok {
			listing.Reset = true
			l = &lister{c: c, f: f, opts: opts, fn: l.fn, describeNone: l.describeNone, size: size, newIDs: map[uint64]struct{}{}, removed: map[uint64]struct{}{}}
			l.opts.AllOld = false
			cur, err = l.full(ctx)
		}
	} else {
		cur, err = l.full(ctx)
	}
	if errors.Is(err, errDeltaExpired) {
		err = connector.Errorf(connector.KindTransient, "", err, "list folder %q: the delta token expired during the listing; the next try lists the folder in full", f.Path.String())
	}
	if err != nil {
		return listing, c.sortError(err, accessRead, connector.KindMissingFolder, connector.KindConfig, "list folder %q", f.Path.String())
	}
	listing.Cursor = cur.encode()
	return listing, nil
}

// full starts all three queries; only the created one's messages are
// handed out.
func (l *lister) full(ctx context.Context) (cursor, error) {
	k := cursor{Folder: l.f.Name}
	var err error
	if k.Updated, err = l.run(ctx, chainUpdated, l.c.deltaStart(l.f.Name, chainUpdated), nil, nil); err != nil {
		return k, err
	}
	if k.Deleted, err = l.run(ctx, chainDeleted, l.c.deltaStart(l.f.Name, chainDeleted), nil, nil); err != nil {
		return k, err
	}
	k.Created, err = l.run(ctx, chainCreated, l.c.deltaStart(l.f.Name, chainCreated), nil, l.handleNew)
	return k, err
}

// delta follows the stored links. The first page of every query to be
// followed is read before anything is handed out, so that an expired
// token is found while a full listing can still replace this one.
func (l *lister) delta(ctx context.Context, old cursor) (cursor, error) {
	k := old
	first := map[chain]*messagePage{}
	links := map[chain]string{chainCreated: old.Created}
	if l.opts.Changes {
		links[chainUpdated], links[chainDeleted] = old.Updated, old.Deleted
	}
	for _, ch := range []chain{chainCreated, chainUpdated, chainDeleted} {
		link, ok := links[ch]
		if !ok {
			continue
		}
		p, err := l.c.page(ctx, link, l.pageSize(ch))
		if err != nil {
			return k, err
		}
		first[ch] = &p
	}
	var err error
	if k.Created, err = l.run(ctx, chainCreated, "", first[chainCreated], l.handleNew); err != nil {
		return k, err
	}
	if l.opts.Changes {
		if k.Updated, err = l.run(ctx, chainUpdated, "", first[chainUpdated], l.handleUpdated); err != nil {
			return k, err
		}
		if k.Deleted, err = l.run(ctx, chainDeleted, "", first[chainDeleted], l.handleDeleted); err != nil {
			return k, err
		}
	}
	if l.opts.AllOld {
		if err := l.allOld(ctx); err != nil {
			return k, err
		}
	}
	return k, nil
}

// pageSize asks for large pages where messages come with a few small
// properties only (the updated and deleted queries), so that starting
// them costs few requests; created messages come with their headers.
func (l *lister) pageSize(ch chain) int {
	if ch == chainCreated {
		return l.size
	}
	return maxDeltaPage
}

// maxDeltaPage is the largest page asked for; Graph may send fewer.
const maxDeltaPage = 1000

// run follows a query from link (or from an already read first page) to
// its deltaLink, handing each page to handle (nil: read and drop).
func (l *lister) run(ctx context.Context, ch chain, link string, first *messagePage, handle func(context.Context, []graphMessage) error) (string, error) {
	for {
		var p messagePage
		if first != nil {
			p, first = *first, nil
		} else {
			var err error
			if p, err = l.c.page(ctx, link, l.pageSize(ch)); err != nil {
				return "", err
			}
		}
		if handle != nil && len(p.Value) > 0 {
			if err := handle(ctx, p.Value); err != nil {
				return "", err
			}
		}
		if p.DeltaLink != "" {
			if !l.c.sameOrigin(p.DeltaLink) {
				return "", fmt.Errorf("graph: a delta link leaves the service root")
			}
			return p.DeltaLink, nil
		}
		link = p.NextLink
	}
}

// deliver hands msgs out in batches of at most ListOptions.Batch (Graph
// pages are at least 10 long and may be longer than asked for).
func (l *lister) deliver(msgs []connector.Message) error {
	n := l.opts.Batch
	if n <= 0 {
		n = len(msgs)
	}
	for len(msgs) > 0 {
		k := min(n, len(msgs))
		l.delivered = true
		if err := l.fn(msgs[:k:k]); err != nil {
			return err
		}
		msgs = msgs[k:]
	}
	return nil
}

func (l *lister) handleNew(ctx context.Context, page []graphMessage) error {
	var msgs []connector.Message
	var removed []connector.Message
	for _, g := range page {
		if g.Removed != nil {
			removed = append(removed, l.removal(g.ID)...)
			continue
		}
		if l.track {
			l.newIDs[idHash(g.ID)] = struct{}{}
		}
		msgs = append(msgs, connector.Message{ID: connector.ID(g.ID), Change: connector.ChangeNew})
	}
	if l.describeNone {
		return nil
	}
	if err := l.c.describe(ctx, page, msgs); err != nil {
		return err
	}
	// Messages that vanished before they could be described are dropped.
	kept := msgs[:0]
	for _, m := range msgs {
		if m.ID != "" {
			kept = append(kept, m)
		}
	}
	if l.opts.Changes {
		kept = append(kept, removed...)
	}
	return l.deliver(kept)
}

func (l *lister) removal(id string) []connector.Message {
	h := idHash(id)
	if _, dup := l.removed[h]; dup {
		return nil
	}
	l.removed[h] = struct{}{}
	return []connector.Message{{ID: connector.ID(id), Change: connector.ChangeRemoved}}
}

func (l *lister) handleUpdated(_ context.Context, page []graphMessage) error {
	var msgs []connector.Message
	for _, g := range page {
		if _, isNew := l.newIDs[idHash(g.ID)]; isNew {
			continue // already listed as new, with its current flags
		}
		if g.Removed != nil {
			msgs = append(msgs, l.removal(g.ID)...)
			continue
		}
		msgs = append(msgs, connector.Message{ID: connector.ID(g.ID), Change: connector.ChangeFlags, Flags: flagsOf(g)})
	}
	return l.deliver(msgs)
}

func (l *lister) handleDeleted(_ context.Context, page []graphMessage) error {
	var msgs []connector.Message
	for _, g := range page {
		if g.Removed != nil {
			msgs = append(msgs, l.removal(g.ID)...)
		}
	}
	return l.deliver(msgs)
}

// allOld lists every message of the folder with its flags (ListOptions.
// AllOld), except those just listed as new.
func (l *lister) allOld(ctx context.Context) error {
	q := url.Values{}
	q.Set("$select", "id,isRead,isDraft,flag,categories")
	q.Set("$expand", expandProps(propLastVerb))
	q.Set("$top", strconv.Itoa(l.size))
	link := l.c.user + "/mailFolders/" + url.PathEscape(l.f.Name) + "/messages?" + q.Encode()
	for link != "" {
		if !strings.HasPrefix(link, "/") && !l.c.sameOrigin(link) {
			return fmt.Errorf("graph: a message page link leaves the service root")
		}
		var p messagePage
		if err := l.c.getJSON(ctx, link, &p); err != nil {
			return err
		}
		var msgs []connector.Message
		for _, g := range p.Value {
			h := idHash(g.ID)
			if _, isNew := l.newIDs[h]; isNew {
				continue
			}
			if _, gone := l.removed[h]; gone {
				continue
			}
			msgs = append(msgs, connector.Message{ID: connector.ID(g.ID), Change: connector.ChangeFlags, Flags: flagsOf(g)})
		}
		if err := l.deliver(msgs); err != nil {
			return err
		}
		link = p.NextLink
	}
	return nil
}

// flagsOf maps Graph's properties to IMAP flags: isRead ↔ \Seen,
// flag.flagStatus "flagged" ↔ \Flagged ("complete" is not \Flagged),
// isDraft ↔ \Draft, PidTagLastVerbExecuted reply/reply-all ↔ \Answered,
// categories ↔ keywords.
func flagsOf(g graphMessage) []string {
	var fl []string
	if g.IsRead != nil && *g.IsRead {
		fl = append(fl, mail.FlagSeen)
	}
	if g.Flag != nil && strings.EqualFold(g.Flag.FlagStatus, "flagged") {
		fl = append(fl, mail.FlagFlagged)
	}
	if v, ok := propValue(g.ExtendedProperties, propLastVerb); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && (n == verbReply || n == verbReplyAll) {
			fl = append(fl, mail.FlagAnswered)
		}
	}
	if g.IsDraft != nil && *g.IsDraft {
		fl = append(fl, mail.FlagDraft)
	}
	for _, c := range g.Categories {
		if k, ok := keywordFromCategory(c); ok {
			fl = append(fl, k)
		}
	}
	return fl
}

// describe fills msgs[i] from page's i-th non-removed message: date,
// flags, size and identity. The identity is, in this order, the one this
// connector stored when it wrote the copy, the one internetMessageHeaders
// gives, or the one of the MIME's own header block read by a peek
// (up to four at once). A message gone by then has its ID cleared.
func (c *Conn) describe(ctx context.Context, page []graphMessage, msgs []connector.Message) error {
	var peekIdx []int
	i := 0
	for _, g := range page {
		if g.Removed != nil {
			continue
		}
		m := &msgs[i]
		if t, err := time.Parse(time.RFC3339, g.ReceivedDateTime); err == nil {
			m.InternalDate = t
		}
		m.Flags = flagsOf(g)
		if v, ok := propValue(g.ExtendedProperties, propSize); ok {
			m.Size, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		m.Headers = mail.Headers{MessageID: g.InternetMessageID, Subject: g.Subject}
		if v, ok := propValue(g.ExtendedProperties, propIdentity); ok {
			if id, size, ok := parseIdentity(v); ok && (size > 0 || m.Size > 0) {
				m.Identity = id
				if size > 0 {
					m.Size = size
				}
				i++
				continue
			}
		}
		if h, ok := headersFromGraph(g.InternetMessageHeaders); ok {
			m.Headers = h
			m.Identity = mail.ComputeIdentity(h, m.Size)
			i++
			continue
		}
		peekIdx = append(peekIdx, i)
		i++
	}
	if len(peekIdx) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(peekIdx))
	sem := make(chan struct{}, c.api.lim.connCap)
	for j, idx := range peekIdx {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m := &msgs[idx]
			block, size, err := c.peek(ctx, string(m.ID))
			if st, _ := apiStatus(err); st == http.StatusNotFound {
				m.ID = "" // deleted since the page was read
				return
			}
			if err != nil {
				errs[j] = err
				return
			}
			m.Size = size
			m.Headers = mail.ParseHeaders(block)
			m.Identity = mail.ComputeIdentity(m.Headers, size)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
