package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/service"
)

// The mailbox list of the mailboxes, trial and migrate pages (issue 17,
// item 1): one page at a time, searched, filtered and sorted by the
// database; counts by status that filter when clicked; bulk actions on
// the ticked rows or on everything the filter matches.

// listState is the list of one page.
type listState struct {
	Query service.MailboxQuery
	Page  service.MailboxPage
	// PageName is mailboxes, trial or migrate; Base the page's path.
	PageName, Base string
	// Counts are the project's mailboxes by status (not the filter's);
	// Total all of them.
	Counts    []statusCount
	Total     int
	ReadOnly  bool
	CSRF      string
	ProjectID string
}

// pageNames are the pages that show the list.
var pageNames = map[string]bool{"mailboxes": true, "trial": true, "migrate": true}

// readQuery reads the list's query parameters (of the URL, or of a
// posted form).
func readQuery(r *http.Request) service.MailboxQuery {
	q := service.MailboxQuery{Search: strings.TrimSpace(r.FormValue("q")), Status: service.Status(r.FormValue("status")),
		Sort: r.FormValue("sort"), Desc: r.FormValue("dir") == "desc"}
	q.Page, _ = strconv.Atoi(r.FormValue("page"))
	q.PerPage, _ = strconv.Atoi(r.FormValue("per"))
	if q.Status.Label() == string(q.Status) {
		q.Status = "" // unknown: every status
	}
	switch q.Sort {
	case "address", "status", "updated":
	default:
		q.Sort = ""
	}
	return q
}

// values is the query as URL parameters; pairs of key, value override.
func (l *listState) values(pairs ...string) url.Values {
	v := url.Values{}
	if l.Query.Search != "" {
		v.Set("q", l.Query.Search)
	}
	if l.Query.Status != "" {
		v.Set("status", string(l.Query.Status))
	}
	if l.Query.Sort != "" {
		v.Set("sort", l.Query.Sort)
	}
	if l.Query.Desc {
		v.Set("dir", "desc")
	}
	if l.Page.Page > 1 {
		v.Set("page", strconv.Itoa(l.Page.Page))
	}
	if l.Query.PerPage > 0 && l.Query.PerPage != service.DefaultPageSize {
		v.Set("per", strconv.Itoa(l.Query.PerPage))
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			v.Del(pairs[i])
		} else {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	return v
}

// URL is the page's address with the list's query, pairs overriding.
// Changing the filter goes back to page 1.
func (l *listState) URL(pairs ...string) string {
	hasPage := false
	for i := 0; i+1 < len(pairs); i += 2 {
		hasPage = hasPage || pairs[i] == "page"
	}
	if !hasPage && len(pairs) > 0 {
		pairs = append(pairs, "page", "")
	}
	v := l.values(pairs...)
	if len(v) == 0 {
		return l.Base
	}
	return l.Base + "?" + v.Encode()
}

// QueryString is the list's query for other URLs (status.json).
func (l *listState) QueryString() string { return l.values().Encode() }

// First and Last number the page's rows (1-based).
func (l *listState) First() int {
	if l.Page.Total == 0 {
		return 0
	}
	return (l.Page.Page-1)*l.Page.PerPage + 1
}

func (l *listState) Last() int { return l.First() + len(l.Page.Mailboxes) - 1 }

// Filtered reports whether a search or status filter is on.
func (l *listState) Filtered() bool { return l.Query.Matching() }

// sortChoices are the sort menu's entries.
var sortChoices = []struct{ Value, Label string }{
	{"", "Order added"}, {"address", "Address"}, {"status", "Status"}, {"updated", "Last change"},
}

func (s *Server) loadList(r *http.Request, sess *service.Session, p service.Project) (*listState, error) {
	name := strings.TrimPrefix(r.URL.Path, "/projects/"+p.ID+"/")
	if !pageNames[name] {
		name = r.FormValue("view")
		if !pageNames[name] {
			name = "migrate"
		}
	}
	l := &listState{Query: readQuery(r), PageName: name, Base: "/projects/" + p.ID + "/" + name, ReadOnly: p.State == "finished",
		CSRF: sess.CSRF, ProjectID: p.ID}
	l.Counts, l.Total = sortedCounts(p.Mailboxes)
	var err error
	if l.Page, err = s.svc.MailboxPage(r.Context(), sess.Owner.ID, p.ID, l.Query); err != nil {
		return nil, err
	}
	l.Query.Page = l.Page.Page
	return l, nil
}

// bulkActions are the actions on a selection, in the menu's order.
var bulkActions = []struct{ Value, Label string }{
	{"trial", "Run trial"}, {"full", "Migrate"}, {"delta", "Migrate new items"}, {"retry-errors", "Retry errors"},
	{"stop", "Stop"}, {"remove", "Remove"}, {"ask", "Ask for passwords by email"},
}

// bulkAction runs an action on the ticked mailboxes (scope "selected")
// or on every mailbox the list's filter matches (scope "matching").
func (s *Server) bulkAction(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ctx, owner, project := r.Context(), sess.Owner.ID, r.PathValue("project")
	back := r.PostFormValue("view")
	if !pageNames[back] {
		back = "mailboxes"
	}
	fail := func(status int, msg string) {
		if back == "mailboxes" {
			s.renderMailboxes(w, r, sess, status, mailboxesView{}, msg)
			return
		}
		s.renderLive(w, r, sess, back, status, msg)
	}
	action := r.PostFormValue("action")
	known := false
	for _, a := range bulkActions {
		known = known || a.Value == action
	}
	if !known {
		fail(http.StatusBadRequest, "Choose what to do with the mailboxes: run the trial, migrate, migrate new items, retry errors, stop, remove, or ask for passwords.")
		return
	}
	var ids []string
	if r.PostFormValue("scope") == "matching" {
		var err error
		if ids, err = s.svc.MatchingMailboxIDs(ctx, owner, project, readQuery(r)); err != nil && !isExpected(err) {
			s.portalFail(w, r, sess, err)
			return
		}
	} else {
		ids = r.PostForm["mailbox_id"]
	}
	if len(ids) == 0 {
		fail(http.StatusBadRequest, "Nothing was done: tick the mailboxes to act on, or choose “All that match the filter”.")
		return
	}
	n := len(ids)
	var err error
	switch action {
	case "ask":
		n, err = s.sendPasswordLinks(r, sess, ids)
		var rl *service.RateLimitError
		if errors.As(err, &rl) {
			fail(http.StatusTooManyRequests, "Nothing was sent: a user was already sent 3 links within the last hour. The newest link still works; try again in an hour.")
			return
		}
	case "stop":
		n, err = s.svc.StopMailboxes(ctx, owner, project, ids)
	case "remove":
		n, err = s.svc.DeleteMailboxes(ctx, owner, project, ids)
	default:
		var p service.Pass
		p, err = s.svc.StartPass(ctx, owner, project, service.PassInput{Kind: service.PassKind(action), MailboxIDs: ids})
		n = len(p.Mailboxes)
	}
	if isExpected(err) {
		msg := userMessage(err) + "."
		if action == "remove" && n > 0 {
			msg = fmt.Sprintf("%s removed; then: %s", plural(n, "1 mailbox was", "%d mailboxes were"), msg)
		}
		fail(statusFor(err), msg)
		return
	}
	if errors.Is(err, service.ErrNotFound) {
		fail(http.StatusBadRequest, "Nothing was done: some of the ticked mailboxes are no longer in this project. Reload the page and try again.")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	l := &listState{Query: readQuery(r), Base: "/projects/" + project + "/" + back}
	l.Page.Page = l.Query.Page
	target := back
	if action == "full" || action == "delta" || action == "retry-errors" {
		target = "migrate"
	} else if action == "trial" {
		target = "trial"
	}
	l.Base = "/projects/" + project + "/" + target
	http.Redirect(w, r, l.URL("notice", "bulk-"+action, "n", strconv.Itoa(n), "page", strconv.Itoa(l.Page.Page)), http.StatusSeeOther)
}

// PrevURL and NextURL are the neighbouring pages.
func (l *listState) PrevURL() string { return l.URL("page", strconv.Itoa(max(l.Page.Page-1, 1))) }

func (l *listState) NextURL() string { return l.URL("page", strconv.Itoa(l.Page.Page+1)) }
