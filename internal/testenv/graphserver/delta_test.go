package graphserver_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// deltaRound follows nextLinks to the deltaLink and returns the items and
// the deltaLink, checking each page against maxPage.
func deltaRound(t *testing.T, e *env, first string, maxPage int) ([]map[string]any, string) {
	t.Helper()
	var items []map[string]any
	link := first
	for pages := 0; pages < 100; pages++ {
		resp, b := e.do(t, "GET", link, "", nil, "Prefer", fmt.Sprintf("odata.maxpagesize=%d", maxPage))
		mustStatus(t, resp, b, 200)
		if got := resp.Header.Get("Preference-Applied"); got != fmt.Sprintf("odata.maxpagesize=%d", maxPage) {
			t.Fatalf("Preference-Applied %q", got)
		}
		m := jsonOf(t, b)
		vs := values(t, m)
		if len(vs) > maxPage {
			t.Fatalf("page of %d items, max %d", len(vs), maxPage)
		}
		items = append(items, vs...)
		next, _ := m["@odata.nextLink"].(string)
		dl, _ := m["@odata.deltaLink"].(string)
		switch {
		case next != "" && dl == "":
			if !strings.Contains(next, "$skiptoken=") {
				t.Fatalf("nextLink without $skiptoken: %s", next)
			}
			link = next
		case dl != "" && next == "":
			if !strings.Contains(dl, "$deltatoken=") {
				t.Fatalf("deltaLink without $deltatoken: %s", dl)
			}
			return items, dl
		default:
			t.Fatalf("page must have exactly one of nextLink and deltaLink: %s", b)
		}
	}
	t.Fatal("no deltaLink after 100 pages")
	return nil, ""
}

func subjects(items []map[string]any) string {
	var s []string
	for _, it := range items {
		if _, removed := it["@removed"]; removed {
			s = append(s, "removed")
			continue
		}
		s = append(s, fmt.Sprint(it["subject"]))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func TestDeltaRoundsFollowTheDocumentedProtocol(t *testing.T) {
	e := setup(t, nil)
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(fmt.Sprintf("Subject: s%d\r\n\r\nbody\r\n", i))})
	}
	e.srv.SeedMessage(alice, "sentitems", graphserver.Seed{MIME: []byte("Subject: elsewhere\r\n\r\nx\r\n")})
	first := "/v1.0/users/" + alice + "/mailFolders/inbox/messages/delta?$select=subject,isRead"
	items, dl := deltaRound(t, e, first, 2)
	if got := subjects(items); got != "s0,s1,s2,s3,s4" {
		t.Fatalf("initial round: %s", got)
	}
	for _, it := range items {
		if it["@odata.type"] != "#microsoft.graph.message" || it["id"] == nil || it["isRead"] == nil {
			t.Fatalf("item: %v", it)
		}
		if _, ok := it["body"]; ok {
			t.Fatalf("$select from the first request not kept: %v", it)
		}
	}
	if n := e.srv.RequestCount(graphserver.RouteDelta); n != 3 {
		t.Fatalf("5 items at 2 a page: %d requests, want 3", n)
	}

	// Unchanged folder: an empty page with a new deltaLink.
	items, dl2 := deltaRound(t, e, dl, 2)
	if len(items) != 0 || dl2 == dl {
		t.Fatalf("unchanged: %d items, same link %v", len(items), dl2 == dl)
	}
	// One read, one deleted, one new: exactly those come back.
	e.srv.SetRead(alice, ids[1], true)
	e.srv.DeleteMessage(alice, ids[2])
	e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte("Subject: s5\r\n\r\nnew\r\n")})
	items, dl3 := deltaRound(t, e, dl2, 2)
	if got := subjects(items); got != "removed,s1,s5" {
		t.Fatalf("changes: %s", got)
	}
	for _, it := range items {
		if r, ok := it["@removed"].(map[string]any); ok && (r["reason"] != "deleted" || it["id"] != ids[2]) {
			t.Fatalf("@removed entry: %v", it)
		}
	}
	// A moved-out message is removed from this folder.
	e.srv.MoveMessage(alice, ids[3], "archive")
	items, _ = deltaRound(t, e, dl3, 10)
	if got := subjects(items); got != "removed" {
		t.Fatalf("after move: %s", got)
	}

	// Options cannot be combined with a state token.
	resp, b := e.do(t, "GET", dl3+"&$select=subject", "", nil)
	wantError(t, resp, b, 400, "ErrorInvalidUrlQuery")
	// Expired tokens: 410 SyncStateNotFound, then a fresh round works.
	e.srv.ExpireDeltaTokens(alice)
	resp, b = e.do(t, "GET", dl3, "", nil)
	wantError(t, resp, b, 410, "SyncStateNotFound")
	resp, b = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta?$deltatoken=garbage", "", nil)
	wantError(t, resp, b, 410, "SyncStateNotFound")
	items, _ = deltaRound(t, e, first, 50)
	if got := subjects(items); got != "s0,s1,s4,s5" {
		t.Fatalf("fresh round: %s", got)
	}
}

func TestDeltaChangeTypeAndFilter(t *testing.T) {
	e := setup(t, nil)
	a := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte("Subject: a\r\n\r\nx\r\n")})
	_, dl := deltaRound(t, e, "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta?changeType=created&$select=subject", 5)
	e.srv.SetRead(alice, a, true)
	e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte("Subject: b\r\n\r\nx\r\n")})
	items, _ := deltaRound(t, e, dl, 5)
	if got := subjects(items); got != "b" {
		t.Fatalf("changeType=created: %s", got)
	}
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta?$filter=subject%20eq%20'a'", "", nil)
	wantError(t, resp, b, 400, "ErrorInvalidUrlQuery")
	resp, b = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta?$search=a", "", nil)
	wantError(t, resp, b, 400, "BadRequest")
	resp, b = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta", "", nil, "Prefer", "odata.maxpagesize=zero")
	wantError(t, resp, b, 400, "ErrorInvalidRequest")
}
