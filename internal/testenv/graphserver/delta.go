package graphserver

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// deltaMark is what a $deltatoken stands for: a folder's state at the end
// of a round, and the options of the initial request (delta-query-
// overview: state tokens encode the query parameters).
type deltaMark struct {
	user       *mbx
	folder     *folder
	seq        uint64
	sel        []string
	expandEP   []extPropID
	changeType string
	since      time.Time // $filter=receivedDateTime ge|gt since
	sinceGT    bool
}

// deltaRound is what a $skiptoken stands for: the rest of a round.
type deltaRound struct {
	mark    deltaMark // options; seq is the new baseline at the round's end
	pending []deltaItem
}

type deltaItem struct {
	id      string
	removed bool
}

// ExpireDeltaTokens forgets every delta and skip token of a mailbox, as
// when Exchange's delta token cache evicts them: the next request with one
// gets 410 SyncStateNotFound.
func (s *Server) ExpireDeltaTokens(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	for k, m := range s.mail.deltaMarks {
		if m.user == u {
			delete(s.mail.deltaMarks, k)
		}
	}
	for k, r := range s.mail.deltaRounds {
		if r.mark.user == u {
			delete(s.mail.deltaRounds, k)
		}
	}
}

func errSyncState() *graphError {
	return newError(http.StatusGone, "SyncStateNotFound", "The sync state generation is not found; the delta token has expired or is invalid. Synchronize again without a token.")
}

// handleDelta serves messages/delta (message-delta, delta-query-messages):
// the first request lists the folder, later pages follow @odata.nextLink
// ($skiptoken) to an @odata.deltaLink ($deltatoken), whose next use returns
// what was created, updated or deleted since.
func (s *Server) handleDelta(c *reqCtx) *graphError {
	vals := c.r.URL.Query()
	skip, delta := vals.Get("$skiptoken"), vals.Get("$deltatoken")
	pref := parsePrefer(c.r.Header)
	pageSize, gerr := maxPageSize(pref)
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, gerr := c.resolveFolder()
	if gerr != nil {
		return gerr
	}
	var round *deltaRound
	switch {
	case skip != "" || delta != "":
		// Only the token (and custom options) may accompany a state token.
		for k := range vals {
			if strings.HasPrefix(k, "$") && k != "$skiptoken" && k != "$deltatoken" {
				return newError(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The query parameter '%s' must not be combined with a state token; it is encoded in the token.", k)
			}
		}
		if skip != "" {
			round = s.mail.deltaRounds[skip]
			if round == nil || round.mark.folder != f {
				return errSyncState()
			}
			delete(s.mail.deltaRounds, skip)
		} else {
			mk := s.mail.deltaMarks[delta]
			if mk == nil || mk.folder != f {
				return errSyncState()
			}
			round = s.startRound(*mk)
		}
	default:
		q, gerr := parseQuery(vals, "$select $top $expand $filter $orderby ", messageProps, msgType)
		if gerr != nil {
			return gerr
		}
		var since time.Time
		var sinceGT bool
		if q.filter != "" {
			var ok bool
			if since, sinceGT, ok = deltaFilter(q.filter); !ok {
				return newError(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The only $filter supported with delta is receivedDateTime ge or gt a value.")
			}
		}
		if q.orderby != "" && !strings.EqualFold(strings.Join(strings.Fields(q.orderby), " "), "receivedDateTime desc") {
			return newError(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The only $orderby supported with delta is receivedDateTime desc.")
		}
		if q.top > 0 && (pageSize == 0 || q.top < pageSize) {
			pageSize = q.top
		}
		round = s.startRound(deltaMark{user: c.u, folder: f, seq: 0, sel: q.sel, expandEP: q.expandEP, changeType: q.changeType, since: since, sinceGT: sinceGT})
		// The initial round lists what exists: no @removed entries, and
		// changeType applies only to later rounds.
		var keep []deltaItem
		for _, it := range round.pending {
			if !it.removed {
				keep = append(keep, it)
			}
		}
		round.pending = keep
	}
	if pageSize == 0 {
		pageSize = s.opts.DeltaPageSize
	}
	if _, ok := pref["odata.maxpagesize"]; ok {
		c.w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(pageSize))
	}
	n := min(pageSize, len(round.pending))
	page, rest := round.pending[:n], round.pending[n:]
	q := &query{sel: round.mark.sel, expandEP: round.mark.expandEP}
	items := []obj{}
	for _, it := range page {
		m := c.u.messages[it.id]
		if it.removed || m == nil || m.folder != f {
			items = append(items, obj{{"@odata.type", "#microsoft.graph.message"}, {"id", it.id}, {"@removed", obj{{"reason", "deleted"}}}})
			continue
		}
		items = append(items, append(obj{{"@odata.type", "#microsoft.graph.message"}}, c.messageJSON(m, q)...))
	}
	link := c.base() + "/users/" + url.PathEscape(c.u.upn) + "/mailFolders('" + f.id + "')/messages/delta?"
	o := obj{{"@odata.context", c.context("Collection(message)")}}
	if len(rest) > 0 {
		tok := "S" + newID(20)
		s.mail.deltaRounds[tok] = &deltaRound{mark: round.mark, pending: rest}
		o.set("@odata.nextLink", link+"$skiptoken="+tok)
	} else {
		tok := "D" + newID(20)
		mk := round.mark
		s.mail.deltaMarks[tok] = &mk
		o.set("@odata.deltaLink", link+"$deltatoken="+tok)
	}
	o.set("value", items)
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// startRound lists the changes after mk.seq and moves the baseline to now.
// Items changed during the round have a later sequence number and come in
// the next round (replays are allowed by delta-query-overview).
func (s *Server) startRound(mk deltaMark) *deltaRound {
	f := mk.folder
	var items []deltaItem
	type seqItem struct {
		deltaItem
		seq  uint64
		recv time.Time
	}
	var all []seqItem
	for _, m := range f.messages {
		if m.seq > mk.seq {
			if !mk.since.IsZero() && (m.received.Before(mk.since) || (mk.sinceGT && m.received.Equal(mk.since))) {
				continue
			}
			isNew := m.createdSeq > mk.seq
			switch mk.changeType {
			case "created":
				if mk.seq > 0 && !isNew {
					continue
				}
			case "updated":
				if mk.seq > 0 && isNew {
					continue
				}
			case "deleted":
				if mk.seq > 0 {
					continue
				}
			}
			all = append(all, seqItem{deltaItem{id: m.id}, m.seq, m.received})
		}
	}
	if mk.changeType == "" || mk.changeType == "deleted" {
		for _, t := range f.tombstones {
			if t.seq > mk.seq && mk.seq > 0 {
				all = append(all, seqItem{deltaItem{id: t.id, removed: true}, t.seq, time.Time{}})
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	for _, it := range all {
		items = append(items, it.deltaItem)
	}
	mk.seq = s.mail.seq
	return &deltaRound{mark: mk, pending: items}
}

// deltaFilter parses the one documented delta filter,
// receivedDateTime ge|gt {value}.
func deltaFilter(f string) (time.Time, bool, bool) {
	fs := strings.Fields(f)
	if len(fs) != 3 || !strings.EqualFold(fs[0], "receivedDateTime") || (!strings.EqualFold(fs[1], "ge") && !strings.EqualFold(fs[1], "gt")) {
		return time.Time{}, false, false
	}
	t, err := time.Parse(time.RFC3339Nano, fs[2])
	if err != nil {
		return time.Time{}, false, false
	}
	return t, strings.EqualFold(fs[1], "gt"), true
}
