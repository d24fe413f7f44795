package ewsserver

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func prop(tag, ptype, value string) string {
	return fmt.Sprintf(`
          <t:ExtendedProperty>
            <t:ExtendedFieldURI PropertyTag="%s" PropertyType="%s"/>
            <t:Value>%s</t:Value>
          </t:ExtendedProperty>`, tag, ptype, value)
}

func createdID(t *testing.T, r resp, i int) string {
	t.Helper()
	m := r.msg(t, i)
	if code(m) != "NoError" {
		t.Fatalf("CreateItem message %d: %s\n%s", i, code(m), r.body)
	}
	id := find(m, "Items", "Message", "ItemId")
	if id == nil || attr(id, "Id") == "" || attr(id, "ChangeKey") == "" {
		t.Fatalf("no ItemId with ChangeKey:\n%s", r.body)
	}
	return attr(id, "Id")
}

// Draft state as on Exchange: CreateItem from MIME without PR_MESSAGE_FLAGS
// makes a draft; 0x0E07 = 1 makes a read non-draft, 0 an unread
// non-draft. The MIME is stored byte for byte.
func TestCreateItemDraftState(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	// Bytes a MIME parser would normalise: bare LF, trailing spaces, no final newline.
	raw := "Subject: odd  \nX-Test: a\r\n\r\nbody\r\nno newline at end"
	cases := []struct {
		name        string
		props       string
		flags       int32
		read, draft bool
	}{
		{"no flags", "", msgFlagUnsent | msgFlagRead, true, true},
		{"read", prop("0x0E07", "Integer", "1"), 1, true, false},
		{"unread", prop("0x0E07", "Integer", "0"), 0, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ok(t, s, testdata(t, "createitem-mime.xml", "MIME", b64(raw), "PROPS", tc.props))
			it, found := mb.Item(createdID(t, r, 0))
			if !found {
				t.Fatal("item not stored")
			}
			if !bytes.Equal(it.MIME, []byte(raw)) {
				t.Fatalf("MIME changed: %q", it.MIME)
			}
			if it.IsDraft != tc.draft || it.IsRead != tc.read || it.MessageFlags != tc.flags {
				t.Fatalf("draft %v read %v flags %d, want %v %v %d", it.IsDraft, it.IsRead, it.MessageFlags, tc.draft, tc.read, tc.flags)
			}
			if it.FolderPath[0] != "Inbox" || it.Origin != "CreateItem" {
				t.Fatalf("stored in %v by %s", it.FolderPath, it.Origin)
			}
		})
	}
}

// A full import request: MIME, PR_MESSAGE_FLAGS, PR_MESSAGE_DELIVERY_TIME,
// PidTagFlagStatus and t:Flag in schema order; GetItem of two ids returns
// both with base64 MIME and the properties asked for.
func TestCreateItemImportAndGetItem(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	props := prop("0x0E07", "Integer", "1") + prop("0x0E06", "SystemTime", "2021-03-04T05:06:07Z") + `
          <t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>`
	r := ok(t, s, testdata(t, "createitem-mime.xml", "MIME", b64(testMIME), "PROPS", props))
	id1 := createdID(t, r, 0)
	r = ok(t, s, testdata(t, "createitem-mime.xml", "MIME", b64(testMIME+"2"), "PROPS", prop("0x0E07", "Integer", "0")+prop("0x1090", "Integer", "1")))
	id2 := createdID(t, r, 0)
	it, _ := mb.Item(id1)
	if !it.Received.Equal(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)) || it.FlagStatus != FlagFlagged || it.Subject != "Grüße" {
		t.Fatalf("stored %+v", it)
	}
	r = ok(t, s, testdata(t, "getitem-mime.xml", "ID1", id1, "ID2", id2))
	for i, want := range []struct {
		mime, read, flag, flags, status string
	}{{testMIME, "true", "Flagged", "1", "2"}, {testMIME + "2", "false", "Complete", "0", "1"}} {
		msg := find(r.msg(t, i), "Items", "Message")
		mc := find(msg, "MimeContent")
		got, err := base64.StdEncoding.DecodeString(mc.value())
		if err != nil || string(got) != want.mime || attr(mc, "CharacterSet") != "UTF-8" {
			t.Fatalf("item %d MIME %q", i, got)
		}
		if find(msg, "IsRead").value() != want.read || find(msg, "Flag", "FlagStatus").value() != want.flag ||
			find(msg, "IsDraft").value() != "false" || find(msg, "Size").value() != strconv.Itoa(len(want.mime)) {
			t.Fatalf("item %d:\n%s", i, r.body)
		}
		ext := map[string]string{}
		for _, ep := range msg.all(nsTypes, "ExtendedProperty") {
			ext[attr(find(ep, "ExtendedFieldURI"), "PropertyTag")] = find(ep, "Value").value()
		}
		if ext["0xe07"] != want.flags || ext["0x1090"] != want.status {
			t.Fatalf("item %d extended properties %v", i, ext)
		}
		// Schema order inside the item: MimeContent first, IsRead last.
		if msg.children[0].local != "MimeContent" || msg.children[len(msg.children)-1].local != "IsRead" {
			t.Fatalf("item %d element order:\n%s", i, r.body)
		}
	}
	if i := find(r.msg(t, 0), "Items", "Message", "DateTimeReceived").value(); i != "2021-03-04T05:06:07Z" {
		t.Fatalf("DateTimeReceived %s", i)
	}
}

// Elements out of ItemType order, an unknown element, a missing required
// element, a wrong namespace and a value outside its type are all
// ErrorSchemaValidation faults.
func TestSchemaValidation(t *testing.T) {
	s := start(t, nil)
	mime := b64(testMIME)
	good := testdata(t, "createitem-mime.xml", "MIME", mime, "PROPS", prop("0x0E07", "Integer", "1"))
	cases := map[string]string{
		// t:ExtendedProperty must come after t:MimeContent (ItemType).
		"out of order": strings.Replace(testdata(t, "createitem-mime.xml", "MIME", mime, "PROPS", ""),
			`<t:MimeContent CharacterSet="UTF-8">`+mime+`</t:MimeContent>`,
			strings.TrimSpace(prop("0x0E07", "Integer", "1"))+`<t:MimeContent CharacterSet="UTF-8">`+mime+`</t:MimeContent>`, 1),
		// t:IsRead (MessageType) comes after t:Flag (ItemType).
		"IsRead before Flag": testdata(t, "createitem-mime.xml", "MIME", mime, "PROPS",
			`<t:IsRead>true</t:IsRead><t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>`),
		"unknown element":   strings.Replace(good, "<m:Items>", "<m:Bogus/><m:Items>", 1),
		"missing Items":     soap("", `<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId></m:CreateItem>`),
		"types namespace":   strings.Replace(good, `xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"`, `xmlns:m="http://schemas.microsoft.com/exchange/services/2006/types"`, 1),
		"no namespace":      soap("", `<GetFolder><FolderShape><BaseShape>IdOnly</BaseShape></FolderShape><FolderIds><DistinguishedFolderId Id="inbox"/></FolderIds></GetFolder>`),
		"wrong 2006 year":   strings.Replace(good, "services/2006/types", "services/2007/types", 1),
		"bad enum":          strings.Replace(good, `MessageDisposition="SaveOnly"`, `MessageDisposition="SaveOnlyy"`, 1),
		"bad integer":       strings.Replace(good, "PropertyTag=\"0x0E07\"", "PropertyTag=\"0xZZ\"", 1),
		"unknown attribute": strings.Replace(good, `MessageDisposition="SaveOnly"`, `MessageDisposition="SaveOnly" Foo="1"`, 1),
		"text in element":   strings.Replace(good, "<m:Items>", "<m:Items>stray", 1),
		"not XML":           "<soap:Envelope",
		"DTD":               `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>` + good[strings.Index(good, "<soap:Envelope"):],
		"max changes 513":   testdata(t, "syncfolderitems.xml", "SYNCSTATE", "", "MAX", "513"),
		"https envelope":    testdata(t, "https-envelope-namespace.xml", "MIME", mime),
		"unknown operation": soap("", `<m:FindEverything/>`),
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			r := post(t, s, alice, alicePW, doc)
			wantFault(t, r, "ErrorSchemaValidation")
			mx := find(r.root, "Body", "Fault", "detail", "MessageXml")
			if find(mx, "Violation").value() == "" || find(mx, "LineNumber") == nil {
				t.Fatalf("no violation detail:\n%s", r.body)
			}
		})
	}
	if n := len(s.Mailbox(alice).Items(s.Mailbox(alice).DistinguishedFolderID("inbox"))); n != 0 {
		t.Fatalf("a rejected request stored %d items", n)
	}
	// The valid request is accepted.
	createdID(t, ok(t, s, good), 0)
}

// What is valid EWS but not implemented is refused, never ignored.
func TestNotImplementedIsRefused(t *testing.T) {
	s := start(t, nil)
	for name, doc := range map[string]string{
		"Subject on CreateItem": testdata(t, "createitem-mime.xml", "MIME", b64(testMIME), "PROPS", "")[0:0] +
			soap("", `<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:MimeContent>`+b64(testMIME)+`</t:MimeContent><t:Subject>x</t:Subject></t:Message></m:Items></m:CreateItem>`),
		"operation":   soap("", `<m:MoveItem><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId><m:ItemIds><t:ItemId Id="x"/></m:ItemIds></m:MoveItem>`),
		"Restriction": soap("", `<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>`),
		"FieldURI":    soap("", `<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="folder:PermissionSet"/></t:AdditionalProperties></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>`),
	} {
		t.Run(name, func(t *testing.T) {
			r := post(t, s, alice, alicePW, doc)
			wantFault(t, r, "ErrorNotImplementedInTestServer")
			if !strings.Contains(r.body, "LIMITS.md") {
				t.Fatalf("fault does not point to LIMITS.md:\n%s", r.body)
			}
		})
	}
}

// Per-item errors: an over-size message fails alone; the quota stops the
// batch (ErrorQuotaExceeded, then ErrorBatchProcessingStopped warnings);
// bad base64 and a missing MessageDisposition are per-item errors.
func TestCreateItemPerItemErrors(t *testing.T) {
	s := start(t, nil)
	if err := s.AddUser("small@example.com", UserOptions{Password: "pw", MaxMessageBytes: 200, QuotaBytes: 400}); err != nil {
		t.Fatal(err)
	}
	msg := func(mime string) string {
		return `<t:Message><t:MimeContent CharacterSet="UTF-8">` + b64(mime) + `</t:MimeContent>` + prop("0x0E07", "Integer", "1") + `</t:Message>`
	}
	big := testMIME + strings.Repeat("x", 300)
	doc := soap("", `<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>`+
		msg(testMIME)+msg(big)+msg(testMIME)+msg(testMIME)+msg(testMIME)+`</m:Items></m:CreateItem>`)
	r := post(t, s, "small@example.com", "pw", doc)
	var got []string
	for _, m := range r.msgs() {
		got = append(got, class(m)+":"+code(m))
		if code(m) != "NoError" && (find(m, "MessageText").value() == "" || find(m, "Items") == nil) {
			t.Fatalf("error message lacks MessageText or Items:\n%s", r.body)
		}
	}
	want := "Success:NoError,Error:ErrorMessageSizeExceeded,Success:NoError,Error:ErrorQuotaExceeded,Warning:ErrorBatchProcessingStopped"
	if strings.Join(got, ",") != want {
		t.Fatalf("got %s\nwant %s", strings.Join(got, ","), want)
	}
	r = ok(t, s, soap("", `<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:MimeContent>%%%not base64</t:MimeContent></t:Message></m:Items></m:CreateItem>`))
	if code(r.msg(t, 0)) != "ErrorMimeContentInvalidBase64String" {
		t.Fatalf("bad base64:\n%s", r.body)
	}
	r = ok(t, s, soap("", `<m:CreateItem><m:Items>`+msg(testMIME)+`</m:Items></m:CreateItem>`))
	if code(r.msg(t, 0)) != "ErrorMessageDispositionRequired" {
		t.Fatalf("no disposition:\n%s", r.body)
	}
}

// Sending is never silent: SendOnly is recorded in Sent (and would fail
// the test through Options.TB, which this test replaces).
func TestCreateItemSendIsRecorded(t *testing.T) {
	rec := &recordingTB{TB: t}
	s := New(&Options{TB: rec})
	_ = s.AddUser(alice, UserOptions{Password: alicePW})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	r := ok(t, s, strings.Replace(testdata(t, "createitem-mime.xml", "MIME", b64(testMIME), "PROPS", ""), "SaveOnly", "SendOnly", 1))
	if code(r.msg(t, 0)) != "NoError" {
		t.Fatal(r.body)
	}
	if sent := s.Sent(); len(sent) != 1 || string(sent[0].MIME) != testMIME || sent[0].Disposition != "SendOnly" {
		t.Fatalf("Sent() = %+v", sent)
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "SEND") {
		t.Fatalf("TB.Errorf calls: %q", rec.errors)
	}
	if n := len(s.Mailbox(alice).AllItems()); n != 0 {
		t.Fatalf("SendOnly stored %d items", n)
	}
}

type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// UpdateItem sets the read flag and the follow-up flag; the change key
// rules of ItemId (AutoResolve needs one, NeverOverwrite refuses a stale
// one) apply; PR_MESSAGE_FLAGS cannot turn a draft into a non-draft.
func TestUpdateItem(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	id, _ := mb.AddItem(mb.DistinguishedFolderID("inbox"), SeedItem{MIME: []byte(testMIME)})
	it, _ := mb.Item(id)
	r := ok(t, s, testdata(t, "updateitem-isread.xml", "CONFLICT", "AutoResolve", "ID", id, "CK", it.ChangeKey))
	m := r.msg(t, 0)
	newCK := attr(find(m, "Items", "Message", "ItemId"), "ChangeKey")
	if code(m) != "NoError" || newCK == "" || newCK == it.ChangeKey {
		t.Fatalf("update:\n%s", r.body)
	}
	it2, _ := mb.Item(id)
	if !it2.IsRead || it2.FlagStatus != FlagFlagged || it2.ChangeKey != newCK {
		t.Fatalf("after update %+v", it2)
	}
	// Stale change key with NeverOverwrite.
	r = ok(t, s, testdata(t, "updateitem-isread.xml", "CONFLICT", "NeverOverwrite", "ID", id, "CK", it.ChangeKey))
	if code(r.msg(t, 0)) != "ErrorIrresolvableConflict" {
		t.Fatalf("stale key:\n%s", r.body)
	}
	// AutoResolve without a change key.
	doc := strings.Replace(testdata(t, "updateitem-isread.xml", "CONFLICT", "AutoResolve", "ID", id, "CK", ""), ` ChangeKey=""`, "", 1)
	if r = ok(t, s, doc); code(r.msg(t, 0)) != "ErrorChangeKeyRequiredForWriteOperations" {
		t.Fatalf("no key:\n%s", r.body)
	}
	// A draft stays a draft when PR_MESSAGE_FLAGS is set afterwards.
	draft, _ := mb.AddItem(mb.DistinguishedFolderID("drafts"), SeedItem{MIME: []byte(testMIME), IsDraft: true})
	dk, _ := mb.Item(draft)
	upd := soap("", `<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="`+draft+`" ChangeKey="`+dk.ChangeKey+`"/><t:Updates>
	  <t:SetItemField><t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/><t:Message>`+prop("0x0E07", "Integer", "1")+`</t:Message></t:SetItemField>
	</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`)
	if r = ok(t, s, upd); code(r.msg(t, 0)) != "NoError" {
		t.Fatal(r.body)
	}
	if d, _ := mb.Item(draft); !d.IsDraft || !d.IsRead {
		t.Fatalf("draft after setting PR_MESSAGE_FLAGS=1: draft %v read %v", d.IsDraft, d.IsRead)
	}
}

// DeleteItem: HardDelete removes, MoveToDeletedItems moves to Deleted
// Items, an unknown id is ErrorItemNotFound and a malformed one
// ErrorInvalidIdMalformed.
func TestDeleteItem(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	inbox := mb.DistinguishedFolderID("inbox")
	a, _ := mb.AddItem(inbox, SeedItem{MIME: []byte(testMIME)})
	b, _ := mb.AddItem(inbox, SeedItem{MIME: []byte(testMIME)})
	if r := ok(t, s, testdata(t, "deleteitem.xml", "TYPE", "HardDelete", "ID", a)); code(r.msg(t, 0)) != "NoError" {
		t.Fatal(r.body)
	}
	if _, found := mb.Item(a); found {
		t.Fatal("hard-deleted item still there")
	}
	if r := ok(t, s, testdata(t, "deleteitem.xml", "TYPE", "MoveToDeletedItems", "ID", b)); code(r.msg(t, 0)) != "NoError" {
		t.Fatal(r.body)
	}
	if items := mb.Items(mb.DistinguishedFolderID("deleteditems")); len(items) != 1 || len(mb.Items(inbox)) != 0 {
		t.Fatalf("MoveToDeletedItems: deleted items %d", len(items))
	}
	if r := ok(t, s, testdata(t, "deleteitem.xml", "TYPE", "HardDelete", "ID", a)); code(r.msg(t, 0)) != "ErrorItemNotFound" {
		t.Fatal(r.body)
	}
	if r := ok(t, s, testdata(t, "deleteitem.xml", "TYPE", "HardDelete", "ID", "AAMk-not-an-id")); code(r.msg(t, 0)) != "ErrorInvalidIdMalformed" {
		t.Fatal(r.body)
	}
}
