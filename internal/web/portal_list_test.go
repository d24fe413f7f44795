package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

// manyMailboxes creates a project of owner with n mailboxes
// u0000@old.example … and returns its ID.
func (e *portalEnv) manyMailboxes(t testing.TB, owner string, n int) string {
	t.Helper()
	ctx := context.Background()
	o, err := e.svc.EnsureOwner(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "Big move", Source: service.Endpoint{Host: "mail.old.example"}, DestinationPreset: "new-mail"})
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]service.MailboxInput, n)
	for i := range ins {
		ins[i] = service.MailboxInput{SourceEmail: fmt.Sprintf("u%04d@old.example", i), SourcePassword: "Secret-s",
			DestEmail: fmt.Sprintf("u%04d@new.example", i), DestPassword: "Secret-d"}
	}
	if _, err := e.svc.AddMailboxes(ctx, o.ID, p.ID, ins); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

var rowRe = regexp.MustCompile(`<tr id="row-[0-9a-f]+"`)

func rowCount(body string) int { return len(rowRe.FindAllString(body, -1)) }

// The mailbox, trial and migrate pages show one page of mailboxes at a
// time, searched, filtered and sorted by the server; bulk actions work on
// the ticked rows or on everything the filter matches; status.json sends
// only the regions the page does not have; another user can do none of
// it.
func TestPortalManyMailboxes(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	id := e.manyMailboxes(t, "owner@example.com", 120)
	owner := ownerID(t, e, "owner@example.com")
	b := e.newBrowser()
	b.login("owner@example.com")
	pp := "/projects/" + id

	for _, page := range []string{"mailboxes", "trial", "migrate"} {
		code, body := b.get(pp + "/" + page)
		if code != 200 || rowCount(body) != 50 || !strings.Contains(body, "Showing 1–50 of 120 mailboxes") || !strings.Contains(body, `id="page-next"`) {
			t.Errorf("%s page 1: %d, %d rows", page, code, rowCount(body))
		}
		checkLabels(t, page, body)
		_, body = b.get(pp + "/" + page + "?page=3")
		if rowCount(body) != 20 || !strings.Contains(body, "Showing 101–120 of 120") || !strings.Contains(body, "u0119@old.example") ||
			strings.Contains(body, "u0099@old.example") {
			t.Errorf("%s page 3: %d rows", page, rowCount(body))
		}
	}
	// Past the end: the last page.
	if _, body := b.get(pp + "/mailboxes?page=99"); !strings.Contains(body, "Showing 101–120") {
		t.Error("page 99 is not the last page")
	}
	// Search by address (source or destination), case-insensitively;
	// LIKE's wildcards are taken literally.
	if _, body := b.get(pp + "/mailboxes?q=U001"); rowCount(body) != 10 || !strings.Contains(body, "Showing 1–10 of 10 matching") {
		t.Errorf("search U001: %d rows", rowCount(body))
	}
	if _, body := b.get(pp + "/mailboxes?q=" + url.QueryEscape("u00_")); rowCount(body) != 0 || !strings.Contains(body, "No mailbox matches") {
		t.Errorf("search u00_ matched %d rows: _ must not be a wildcard", rowCount(body))
	}
	// Sort descending by address.
	if _, body := b.get(pp + "/mailboxes?sort=address&dir=desc"); strings.Index(body, "u0119@old.example") > strings.Index(body, "u0118@old.example") {
		t.Error("sort by address, descending: u0119 is not first")
	}

	// Bulk: the trial for ticked rows.
	mbs, err := e.svc.MailboxPage(ctx, owner, id, service.MailboxQuery{PerPage: 3})
	must(t, err)
	sel := url.Values{"action": {"trial"}, "scope": {"selected"}, "view": {"mailboxes"}, "mailbox_id": {mbs.Mailboxes[0].ID, mbs.Mailboxes[1].ID}}
	if code, body := b.post(pp+"/bulk", sel); code != 200 || !strings.Contains(body, "The trial has started for 2 mailboxes") {
		t.Errorf("bulk trial: %d", code)
	}
	// The header counts by status, and the filter by status.
	code, body := b.get(pp + "/trial?status=queued")
	if code != 200 || rowCount(body) != 2 || !strings.Contains(body, `data-filter="queued"`) || !strings.Contains(body, "Queued <strong>2</strong>") ||
		!strings.Contains(body, "Not started <strong>118</strong>") {
		t.Errorf("filter queued: %d, %d rows", code, rowCount(body))
	}
	// Stop everything that matches the filter "queued".
	if code, body := b.post(pp+"/bulk", url.Values{"action": {"stop"}, "scope": {"matching"}, "status": {"queued"}, "view": {"trial"}}); code != 200 ||
		!strings.Contains(body, "2 mailboxes stopping") {
		t.Errorf("bulk stop: %d", code)
	}
	if p, _ := e.svc.Project(ctx, owner, id); p.Mailboxes[service.StatusStopped] != 2 || p.Mailboxes[service.StatusQueued] != 0 {
		t.Errorf("after the bulk stop: %v", p.Mailboxes)
	}
	// Remove every mailbox matching a search.
	if code, body := b.post(pp+"/bulk", url.Values{"action": {"remove"}, "scope": {"matching"}, "q": {"u011"}, "view": {"mailboxes"}}); code != 200 ||
		!strings.Contains(body, "10 mailboxes removed") || !strings.Contains(body, "No mailbox matches") || !strings.Contains(body, `<span class="count">110</span>`) {
		t.Errorf("bulk remove: %d", code)
	}
	// Nothing ticked: nothing done, and the page says what to do.
	if code, body := b.post(pp+"/bulk", url.Values{"action": {"full"}, "scope": {"selected"}, "view": {"migrate"}}); code != 400 || !strings.Contains(body, "tick the mailboxes") {
		t.Errorf("bulk with nothing ticked: %d", code)
	}

	// status.json: everything the first time; with the page's hashes,
	// only what changed (here: nothing).
	var first statusBody
	getJSON(t, b, pp+"/status.json?view=migrate&page=2", &first)
	if len(first.Rows) != 50 || len(first.Regions) != 53 || first.Total != 110 || first.Page != 2 {
		t.Fatalf("status.json: %d rows, %d regions, total %d, page %d", len(first.Rows), len(first.Regions), first.Total, first.Page)
	}
	var hashes []string
	for _, r := range first.Regions {
		hashes = append(hashes, r.Hash)
	}
	code, raw := b.get(pp + "/status.json?view=migrate&page=2&known=" + strings.Join(hashes, ","))
	var again statusBody
	if err := json.Unmarshal([]byte(raw), &again); code != 200 || err != nil {
		t.Fatalf("status.json with known: %d %v", code, err)
	}
	if len(again.Regions) != 0 || len(again.Mailboxes) != 0 || len(again.Rows) != 50 {
		t.Errorf("unchanged page: %d regions, %d mailboxes sent", len(again.Regions), len(again.Mailboxes))
	}
	if len(raw) > 5000 {
		t.Errorf("an unchanged page's status.json is %d bytes", len(raw))
	}
	// One mailbox changes: only its row (and the counts) come back.
	changed := first.Rows[0]
	must(t, e.svc.FinishMailboxPass(ctx, e.newestPassAny(t, id), strings.TrimPrefix(changed, "row-"), service.Outcome{Status: service.StatusFailed, Detail: "x"}))
	getJSON(t, b, pp+"/status.json?view=migrate&page=2&known="+strings.Join(hashes, ","), &again)
	if _, ok := again.Regions[changed]; !ok || len(again.Mailboxes) > 1 {
		t.Errorf("after one change: regions %v", keys(again.Regions))
	}

	// Another user: 404 for the list and the bulk actions.
	other := e.newBrowser()
	other.login("other@example.com")
	if code, _ := other.get(pp + "/mailboxes?page=2"); code != 404 {
		t.Errorf("another user's list: %d", code)
	}
	other.get("/migrations")
	if code, _ := other.post(pp+"/bulk", url.Values{"action": {"remove"}, "scope": {"matching"}, "view": {"mailboxes"}}); code != 404 {
		t.Errorf("another user's bulk remove: %d", code)
	}
	if p, _ := e.svc.Project(ctx, owner, id); p.Mailboxes[service.StatusNotStarted]+p.Mailboxes[service.StatusStopped]+p.Mailboxes[service.StatusFailed] != 110 {
		t.Errorf("another user changed the project: %v", p.Mailboxes)
	}
}

func keys(m map[string]region) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// newestPassAny returns the newest pass of the project in any state.
func (e *portalEnv) newestPassAny(t *testing.T, projectID string) string {
	t.Helper()
	var id string
	if err := e.db.QueryRow(`SELECT id FROM passes WHERE project_id = $1 ORDER BY created_ns DESC LIMIT 1`, projectID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
