package ewsserver

import (
	"strconv"
	"strings"
	"testing"
)

// The documented FindFolder request (Shallow, Default shape, inbox) is
// accepted and answered in the documented shape.
func TestFindFolderShallowDocumentedRequest(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	inbox := mb.DistinguishedFolderID("inbox")
	if _, err := mb.CreateFolder(inbox, "TestFolder", ""); err != nil {
		t.Fatal(err)
	}
	r := ok(t, s, testdata(t, "findfolder-shallow.xml"))
	m := r.msg(t, 0)
	if m.local != "FindFolderResponseMessage" || class(m) != "Success" || code(m) != "NoError" {
		t.Fatalf("unexpected message:\n%s", r.body)
	}
	rf := find(m, "RootFolder")
	if attr(rf, "TotalItemsInView") != "1" || attr(rf, "IncludesLastItemInRange") != "true" {
		t.Fatalf("RootFolder attributes: %v", rf.attrs)
	}
	f := find(rf, "Folders", "Folder")
	var names []string
	for _, c := range f.children {
		names = append(names, c.local)
	}
	// Default shape: FolderId, DisplayName, TotalCount, ChildFolderCount, UnreadCount.
	if got := strings.Join(names, ","); got != "FolderId,DisplayName,TotalCount,ChildFolderCount,UnreadCount" {
		t.Fatalf("Default folder shape = %s", got)
	}
	if find(f, "DisplayName").value() != "TestFolder" || attr(find(f, "FolderId"), "ChangeKey") == "" {
		t.Fatalf("folder: %s", r.body)
	}
	if s.Count("FindFolder") != 1 {
		t.Fatalf("Count(FindFolder) = %d", s.Count("FindFolder"))
	}
}

// Deep traversal from msgfolderroot lists the IPM subtree with the element
// Exchange uses per folder class, pages with IndexedPageFolderView, and
// reports folder sizes through PR_MESSAGE_SIZE_EXTENDED.
func TestFindFolderDeepFromMsgFolderRoot(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	inbox := mb.DistinguishedFolderID("inbox")
	sub, _ := mb.CreateFolder(inbox, "Projects", "")
	if _, err := mb.AddItem(sub, SeedItem{MIME: []byte(testMIME)}); err != nil {
		t.Fatal(err)
	}
	r := ok(t, s, testdata(t, "findfolder-deep.xml", "MAX", "100", "OFFSET", "0"))
	rf := find(r.msg(t, 0), "RootFolder")
	folders := find(rf, "Folders").children
	byName := map[string]*node{}
	for _, f := range folders {
		byName[find(f, "DisplayName").value()] = f
	}
	for name, want := range map[string][2]string{
		"Inbox": {"Folder", "IPF.Note"}, "Calendar": {"CalendarFolder", "IPF.Appointment"},
		"Contacts": {"ContactsFolder", "IPF.Contact"}, "Tasks": {"TasksFolder", "IPF.Task"},
		"Sent Items": {"Folder", "IPF.Note"}, "Projects": {"Folder", "IPF.Note"},
	} {
		f := byName[name]
		if f == nil {
			t.Fatalf("no %s in deep listing:\n%s", name, r.body)
		}
		if f.local != want[0] || find(f, "FolderClass").value() != want[1] {
			t.Errorf("%s: element %s class %s, want %v", name, f.local, find(f, "FolderClass").value(), want)
		}
	}
	if byName["Recoverable Items"] != nil {
		t.Error("Deep traversal from msgfolderroot must not show folders outside the IPM subtree")
	}
	proj := byName["Projects"]
	if attr(find(proj, "ParentFolderId"), "Id") != inbox {
		t.Error("ParentFolderId of Projects is not the Inbox")
	}
	ep := find(proj, "ExtendedProperty")
	if ep == nil || find(ep, "Value").value() != strconv.Itoa(len(testMIME)) || attr(find(ep, "ExtendedFieldURI"), "PropertyTag") != "0xe08" {
		t.Errorf("PR_MESSAGE_SIZE_EXTENDED of Projects: %v", ep)
	}
	total, _ := strconv.Atoi(attr(rf, "TotalItemsInView"))
	if total != len(folders) || attr(rf, "IncludesLastItemInRange") != "true" {
		t.Fatalf("TotalItemsInView %d for %d folders", total, len(folders))
	}
	// The same listing in pages of 5.
	var paged []string
	for off := 0; ; {
		r := ok(t, s, testdata(t, "findfolder-deep.xml", "MAX", "5", "OFFSET", strconv.Itoa(off)))
		rf := find(r.msg(t, 0), "RootFolder")
		for _, f := range find(rf, "Folders").children {
			paged = append(paged, attr(find(f, "FolderId"), "Id"))
		}
		next, _ := strconv.Atoi(attr(rf, "IndexedPagingOffset"))
		if attr(rf, "IncludesLastItemInRange") == "true" {
			break
		}
		if next <= off {
			t.Fatalf("IndexedPagingOffset %d did not advance from %d", next, off)
		}
		off = next
	}
	if len(paged) != total {
		t.Fatalf("paged listing has %d folders, unpaged %d", len(paged), total)
	}
	for i, f := range folders {
		if attr(find(f, "FolderId"), "Id") != paged[i] {
			t.Fatalf("paged order differs at %d", i)
		}
	}
}

// GetFolder answers the distinguished ids of Exchange 2013 SP1 and refuses
// "archive", which only later (Exchange Online) schemas have.
func TestGetFolderDistinguishedIDs(t *testing.T) {
	s := start(t, nil)
	r := ok(t, s, testdata(t, "getfolder.xml"))
	want := []string{"Inbox", "Sent Items", "Drafts", "Deleted Items", "Junk Email", "Top of Information Store", ""}
	for i, name := range want {
		m := r.msg(t, i)
		if code(m) != "NoError" {
			t.Fatalf("message %d: %s", i, code(m))
		}
		if got := find(m, "Folders", "Folder", "DisplayName").value(); got != name {
			t.Errorf("folder %d is %q, want %q", i, got, name)
		}
	}
	doc := strings.Replace(testdata(t, "getfolder.xml"), `Id="junkemail"`, `Id="archive"`, 1)
	wantFault(t, post(t, s, alice, alicePW, doc), "ErrorSchemaValidation")
}

// The mailbox size and quota are readable: PR_MESSAGE_SIZE_EXTENDED per
// folder and the quota properties on the root folder, in KiB.
func TestGetFolderQuotaAndSize(t *testing.T) {
	s := start(t, nil)
	if err := s.AddUser("q@example.com", UserOptions{Password: "pw", QuotaBytes: 2 << 20, MaxMessageBytes: 35 << 20}); err != nil {
		t.Fatal(err)
	}
	mb := s.Mailbox("q@example.com")
	if _, err := mb.AddItem(mb.DistinguishedFolderID("inbox"), SeedItem{MIME: []byte(testMIME)}); err != nil {
		t.Fatal(err)
	}
	r := post(t, s, "q@example.com", "pw", testdata(t, "getfolder-quota.xml"))
	props := func(i int) map[string]string {
		out := map[string]string{}
		for _, ep := range find(r.msg(t, i), "Folders", "Folder").all(nsTypes, "ExtendedProperty") {
			out[attr(find(ep, "ExtendedFieldURI"), "PropertyTag")] = find(ep, "Value").value()
		}
		return out
	}
	root := props(0)
	if root["0x341a"] != "2048" || root["0x341b"] != "2048" || root["0x341c"] != "2048" || root["0x666d"] != "35840" {
		t.Errorf("root quota properties: %v\n%s", root, r.body)
	}
	inbox := props(1)
	if inbox["0xe08"] != strconv.Itoa(len(testMIME)) {
		t.Errorf("inbox size %v, want %d", inbox, len(testMIME))
	}
	if _, ok := inbox["0x341b"]; ok {
		t.Error("quota reported on a folder other than the root")
	}
}

// CreateFolder as documented creates two folders; a duplicate name under
// the same parent (in any case) is ErrorFolderExists; a missing parent is
// ErrorParentFolderNotFound.
func TestCreateFolder(t *testing.T) {
	s := start(t, nil)
	r := ok(t, s, testdata(t, "createfolder.xml"))
	for i := 0; i < 2; i++ {
		if m := r.msg(t, i); code(m) != "NoError" || attr(find(m, "Folders", "Folder", "FolderId"), "Id") == "" {
			t.Fatalf("message %d:\n%s", i, r.body)
		}
	}
	mb := s.Mailbox(alice)
	id, found := mb.FolderID("Folder1")
	if !found {
		t.Fatal("Folder1 not stored")
	}
	for _, fi := range mb.Folders() {
		if fi.ID == id && fi.FolderClass != "IPF.Note" {
			t.Errorf("Folder1 class %q, want IPF.Note", fi.FolderClass)
		}
	}
	r = ok(t, s, strings.Replace(testdata(t, "createfolder.xml"), "Folder2", "folder1", 1))
	if m := r.msg(t, 0); code(m) != "ErrorFolderExists" || class(m) != "Error" || find(m, "MessageText").value() == "" || find(m, "Folders") == nil {
		t.Fatalf("duplicate:\n%s", r.body)
	}
	bad := strings.Replace(testdata(t, "createfolder.xml"), `<t:DistinguishedFolderId Id="msgfolderroot"/>`, `<t:FolderId Id="`+newID(idKindFolder, 9, 9)+`"/>`, 1)
	r = ok(t, s, bad)
	if code(r.msg(t, 0)) != "ErrorParentFolderNotFound" {
		t.Fatalf("missing parent:\n%s", r.body)
	}
}
