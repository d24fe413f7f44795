package ewsserver

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func seed(t *testing.T, mb *Mailbox, folder string, n int) []string {
	t.Helper()
	var ids []string
	base := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		id, err := mb.AddItem(folder, SeedItem{MIME: []byte(fmt.Sprintf("Subject: m%02d\r\n\r\nbody %d\r\n", i, i)), Received: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// The documented paged FindItem: pages of 6 from offset 0 and then from
// IndexedPagingOffset until IncludesLastItemInRange, as on the "Perform
// paged searches" page (8 items: offsets 6 and 8).
func TestFindItemPaging(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	ids := seed(t, mb, mb.DistinguishedFolderID("inbox"), 8)
	r := ok(t, s, testdata(t, "finditem-paged.xml", "OFFSET", "0"))
	rf := find(r.msg(t, 0), "RootFolder")
	if attr(rf, "IndexedPagingOffset") != "6" || attr(rf, "TotalItemsInView") != "8" || attr(rf, "IncludesLastItemInRange") != "false" {
		t.Fatalf("first page: %v", rf.attrs)
	}
	first := find(rf, "Items").children
	if len(first) != 6 || find(first[0], "Subject").value() != "m07" {
		t.Fatalf("first page (newest first):\n%s", r.body)
	}
	r = ok(t, s, testdata(t, "finditem-paged.xml", "OFFSET", "6"))
	rf = find(r.msg(t, 0), "RootFolder")
	if attr(rf, "IndexedPagingOffset") != "8" || attr(rf, "IncludesLastItemInRange") != "true" || len(find(rf, "Items").children) != 2 {
		t.Fatalf("second page:\n%s", r.body)
	}
	seen := map[string]bool{}
	for _, pg := range []string{"0", "6"} {
		r := ok(t, s, testdata(t, "finditem-paged.xml", "OFFSET", pg))
		for _, m := range find(r.msg(t, 0), "RootFolder", "Items").children {
			seen[attr(find(m, "ItemId"), "Id")] = true
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("paging missed %s", id)
		}
	}
	// Bad paging parameters.
	for off, want := range map[string]string{"-1": "ErrorInvalidIndexedPagingParameters"} {
		if r := ok(t, s, testdata(t, "finditem-paged.xml", "OFFSET", off)); code(r.msg(t, 0)) != want {
			t.Fatalf("offset %s:\n%s", off, r.body)
		}
	}
	doc := strings.Replace(testdata(t, "finditem-paged.xml", "OFFSET", "0"), `MaxEntriesReturned="6"`, `MaxEntriesReturned="0"`, 1)
	if r := ok(t, s, doc); code(r.msg(t, 0)) != "ErrorInvalidPagingMaxRows" {
		t.Fatal(r.body)
	}
}

// EWSFindCountLimit caps a page: a client asking for more gets a partial
// page and must go on from IndexedPagingOffset.
func TestFindItemFindCountLimit(t *testing.T) {
	s := start(t, &Options{FindCountLimit: 3})
	mb := s.Mailbox(alice)
	seed(t, mb, mb.DistinguishedFolderID("inbox"), 5)
	doc := strings.Replace(testdata(t, "finditem-paged.xml", "OFFSET", "0"), `MaxEntriesReturned="6"`, `MaxEntriesReturned="1000"`, 1)
	rf := find(ok(t, s, doc).msg(t, 0), "RootFolder")
	if len(find(rf, "Items").children) != 3 || attr(rf, "IncludesLastItemInRange") != "false" || attr(rf, "IndexedPagingOffset") != "3" || attr(rf, "TotalItemsInView") != "5" {
		t.Fatalf("capped page: %v", rf.attrs)
	}
	// A request versioned Exchange2010 gets ErrorServerBusy instead.
	r := ok(t, s, strings.Replace(doc, "Exchange2013_SP1", "Exchange2010", 1))
	if code(r.msg(t, 0)) != "ErrorServerBusy" {
		t.Fatal(r.body)
	}
}

type syncResult struct {
	state string
	last  bool
	kinds []string // "Create:<id>", ...
}

func syncOnce(t *testing.T, s *Server, state string, max int) syncResult {
	t.Helper()
	st := ""
	if state != "" {
		st = "\n      <SyncState>" + state + "</SyncState>"
	}
	r := ok(t, s, testdata(t, "syncfolderitems.xml", "SYNCSTATE", st, "MAX", strconv.Itoa(max)))
	m := r.msg(t, 0)
	if code(m) != "NoError" {
		t.Fatalf("SyncFolderItems: %s\n%s", code(m), r.body)
	}
	res := syncResult{state: find(m, "SyncState").value(), last: find(m, "IncludesLastItemInRange").value() == "true"}
	for _, ch := range find(m, "Changes").children {
		var id string
		if ch.local == "Delete" || ch.local == "ReadFlagChange" {
			id = attr(find(ch, "ItemId"), "Id")
		} else {
			id = attr(find(ch, "Message", "ItemId"), "Id")
		}
		res.kinds = append(res.kinds, ch.local+":"+id)
	}
	return res
}

// A SyncFolderItems sequence: the first sync (no SyncState) pages through
// every item; an unchanged folder answers no changes in one call with the
// same state; then a new item, a read-flag change, a flag change and a
// deletion come as Create, ReadFlagChange, Update and Delete.
func TestSyncFolderItemsDeltas(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	inbox := mb.DistinguishedFolderID("inbox")
	ids := seed(t, mb, inbox, 5)
	var got []string
	state := ""
	calls := 0
	for {
		res := syncOnce(t, s, state, 2)
		calls++
		got = append(got, res.kinds...)
		state = res.state
		if res.last {
			break
		}
		if calls > 10 {
			t.Fatal("sync does not end")
		}
	}
	if calls != 3 || len(got) != 5 {
		t.Fatalf("initial sync: %d calls, changes %v", calls, got)
	}
	sort.Strings(got)
	for _, id := range ids {
		if i := sort.SearchStrings(got, "Create:"+id); i == len(got) || got[i] != "Create:"+id {
			t.Fatalf("no Create for %s in %v", id, got)
		}
	}
	// Unchanged: one call, no changes, the same opaque state.
	before := s.Count("SyncFolderItems")
	res := syncOnce(t, s, state, 512)
	if len(res.kinds) != 0 || !res.last || res.state != state || s.Count("SyncFolderItems") != before+1 {
		t.Fatalf("unchanged folder: %+v", res)
	}
	// Changes.
	newID := seed(t, mb, inbox, 1)[0]
	if err := mb.SetRead(ids[0], true); err != nil {
		t.Fatal(err)
	}
	if err := mb.SetFlag(ids[1], FlagFlagged); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteItem(ids[2]); err != nil {
		t.Fatal(err)
	}
	res = syncOnce(t, s, state, 512)
	// In the order the changes happened; deletions last.
	want := []string{"Create:" + newID, "ReadFlagChange:" + ids[0], "Update:" + ids[1], "Delete:" + ids[2]}
	if strings.Join(res.kinds, " ") != strings.Join(want, " ") || !res.last {
		t.Fatalf("delta %v\nwant  %v", res.kinds, want)
	}
	// Replaying the old state gives the same delta again (states are
	// cursors, not sessions).
	if again := syncOnce(t, s, state, 512); strings.Join(again.kinds, " ") != strings.Join(res.kinds, " ") {
		t.Fatalf("replay %v", again.kinds)
	}
	if after := syncOnce(t, s, res.state, 512); len(after.kinds) != 0 {
		t.Fatalf("after the delta: %v", after.kinds)
	}
}

// A truncated, altered or other folder's SyncState is
// ErrorInvalidSyncStateData, answered in the documented shape.
func TestSyncFolderItemsInvalidState(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	seed(t, mb, mb.DistinguishedFolderID("inbox"), 1)
	state := syncOnce(t, s, "", 10).state
	bad := []string{state[:len(state)-4], "AEbJ94eMOAAA=", strings.ToLower(state), "not base64!"}
	for _, b := range bad {
		r := ok(t, s, testdata(t, "syncfolderitems.xml", "SYNCSTATE", "<SyncState>"+b+"</SyncState>", "MAX", "10"))
		m := r.msg(t, 0)
		if code(m) != "ErrorInvalidSyncStateData" || find(m, "SyncState") == nil || find(m, "IncludesLastItemInRange").value() != "true" {
			t.Fatalf("state %q:\n%s", b, r.body)
		}
	}
	// The inbox's state used for Sent Items.
	doc := strings.Replace(testdata(t, "syncfolderitems.xml", "SYNCSTATE", "<SyncState>"+state+"</SyncState>", "MAX", "10"), `Id="inbox"`, `Id="sentitems"`, 1)
	if code(ok(t, s, doc).msg(t, 0)) != "ErrorInvalidSyncStateData" {
		t.Fatal("another folder's state accepted")
	}
}

// Injected faults: ErrorServerBusy with BackOffMilliseconds for the next N
// requests of an operation, HTTP 503, HTTP 401, ErrorTooManyObjectsOpened
// per message, and ErrorItemSave for single items.
func TestInjectedFaults(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	ids := seed(t, mb, mb.DistinguishedFolderID("inbox"), 3)
	s.Inject(Fault{Op: "GetFolder", Count: 2, Code: "ErrorServerBusy", BackOff: 1500 * time.Millisecond})
	for i := 0; i < 2; i++ {
		r := post(t, s, alice, alicePW, getFolderDoc())
		wantFault(t, r, "ErrorServerBusy")
		v := find(r.root, "Body", "Fault", "detail", "MessageXml", "Value")
		if attr(v, "Name") != "BackOffMilliseconds" || v.value() != "1500" {
			t.Fatalf("no back-off hint:\n%s", r.body)
		}
	}
	if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 200 {
		t.Fatalf("third request: %d", r.status)
	}
	// Another operation is not affected by an Op-specific fault.
	s.Inject(Fault{Op: "FindItem", Count: 1, HTTPStatus: 503, BackOff: 2 * time.Second})
	if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 200 {
		t.Fatalf("GetFolder during a FindItem fault: %d", r.status)
	}
	r := post(t, s, alice, alicePW, testdata(t, "finditem-paged.xml", "OFFSET", "0"))
	if r.status != 503 || r.header.Get("Retry-After") != "2" {
		t.Fatalf("503: %d %q", r.status, r.header.Get("Retry-After"))
	}
	s.Inject(Fault{Count: 1, HTTPStatus: 401})
	if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 401 {
		t.Fatalf("401 fault: %d", r.status)
	}
	s.Inject(Fault{Op: "GetItem", Count: 1, Code: "ErrorTooManyObjectsOpened", Scope: FaultMessages})
	get := testdata(t, "getitem-mime.xml", "ID1", ids[0], "ID2", ids[1])
	r = ok(t, s, get)
	if len(r.msgs()) != 2 || code(r.msg(t, 0)) != "ErrorTooManyObjectsOpened" || code(r.msg(t, 1)) != "ErrorTooManyObjectsOpened" {
		t.Fatalf("per-message fault:\n%s", r.body)
	}
	s.Inject(Fault{Op: "CreateItem", Count: 1, Code: "ErrorItemSave", Scope: FaultItems})
	msg := `<t:Message><t:MimeContent>` + b64(testMIME) + `</t:MimeContent>` + prop("0x0E07", "Integer", "1") + `</t:Message>`
	r = ok(t, s, soap("", `<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>`+msg+msg+`</m:Items></m:CreateItem>`))
	if code(r.msg(t, 0)) != "ErrorItemSave" || code(r.msg(t, 1)) != "NoError" {
		t.Fatalf("item fault:\n%s", r.body)
	}
	if n := len(mb.Items(mb.DistinguishedFolderID("inbox"))); n != 4 {
		t.Fatalf("inbox has %d items, want 3 seeded + 1 created", n)
	}
	s.ClearFaults()
	if r := ok(t, s, get); code(r.msg(t, 0)) != "NoError" {
		t.Fatal(r.body)
	}
}

// EWSMaxConcurrency: with requests held in progress, one more from the
// same account is ErrorExceededConnectionCount; MaxInFlight tells a test
// how far a client went.
func TestConcurrencyLimit(t *testing.T) {
	s := start(t, &Options{MaxConcurrency: 2})
	release := s.Block("GetFolder")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 200 {
				t.Errorf("held request: %d", r.status)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.InFlight(alice) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("requests never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	// Bounded, so that a broken limit fails instead of hanging on Block.
	req, _ := http.NewRequest("POST", s.URL(), strings.NewReader(getFolderDoc()))
	req.Header.Set("Content-Type", "text/xml")
	req.SetBasicAuth(alice, alicePW)
	c := client(s)
	c.Timeout = 5 * time.Second
	res, err := c.Do(req)
	if err != nil {
		release()
		t.Fatalf("request over the limit was not refused: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("over the limit: HTTP %d", res.StatusCode)
	}
	wantFault(t, post(t, s, alice, alicePW, getFolderDoc()), "ErrorExceededConnectionCount")
	// Another account has its own budget.
	if err := s.AddUser("dave@example.com", UserOptions{Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if r := post(t, s, "dave@example.com", "pw", testdata(t, "finditem-paged.xml", "OFFSET", "0")); r.status != 200 {
		t.Fatalf("other account: %d", r.status)
	}
	release()
	wg.Wait()
	if got := s.MaxInFlight(alice); got != 2 {
		t.Fatalf("MaxInFlight = %d", got)
	}
	if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 200 {
		t.Fatalf("after release: %d", r.status)
	}
}
