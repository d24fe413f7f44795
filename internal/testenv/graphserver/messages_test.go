package graphserver_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func TestGetMessageAndExactMIME(t *testing.T) {
	e := setup(t, nil)
	recv := time.Date(2017, 9, 4, 10, 0, 5, 0, time.UTC)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME), IsRead: true, FlagStatus: "flagged", Categories: []string{"Red category"}, Received: recv})
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/messages/"+id, "", nil)
	mustStatus(t, resp, body, 200)
	m := jsonOf(t, body)
	flag, _ := m["flag"].(map[string]any)
	if m["subject"] != "Holiday hours update" || m["isDraft"] != false || m["isRead"] != true || flag["flagStatus"] != "flagged" ||
		m["receivedDateTime"] != "2017-09-04T10:00:05Z" || m["sentDateTime"] != "2017-09-04T10:00:00Z" ||
		m["internetMessageId"] != "<4aade2547798441eab5188a7a2436bc1@contoso.com>" || m["parentFolderId"] != e.srv.FolderID(alice, "inbox") {
		t.Fatalf("message: %s", body)
	}
	if cats, _ := m["categories"].([]any); len(cats) != 1 || cats[0] != "Red category" {
		t.Fatalf("categories: %v", m["categories"])
	}
	if _, ok := m["internetMessageHeaders"]; ok {
		t.Fatal("internetMessageHeaders is not in the default property set")
	}
	// $select and the PR_MESSAGE_FLAGS expansion.
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/"+id+"?$select=isRead,isDraft&$expand=singleValueExtendedProperties($filter=id%20eq%20'Integer%200x0E07'%20or%20id%20eq%20'SystemTime%200x0E06')", "", nil)
	mustStatus(t, resp, body, 200)
	m = jsonOf(t, body)
	if _, ok := m["subject"]; ok {
		t.Fatalf("$select ignored: %s", body)
	}
	props, _ := m["singleValueExtendedProperties"].([]any)
	if len(props) != 2 || props[0].(map[string]any)["value"] != "1" || props[1].(map[string]any)["value"] != "2017-09-04T10:00:05Z" {
		t.Fatalf("extended properties: %s", body)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/messages/"+id+"?$select=subject,fooBar", "", nil)
	wantError(t, resp, body, 400, "BadRequest")
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/sentitems/messages/"+id, "", nil)
	wantError(t, resp, body, 404, "ErrorItemNotFound")

	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/messages/"+id+"/$value", "", nil)
	mustStatus(t, resp, body, 200)
	if resp.Header.Get("Content-Type") != "text/plain" || string(body) != sampleMIME {
		t.Fatalf("$value: %q %q", resp.Header.Get("Content-Type"), body)
	}
}

func TestLargeMIMEIsServedExactly(t *testing.T) {
	e := setup(t, nil)
	payload := make([]byte, 6<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	raw := []byte("Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(payload) + "\r\n")
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: raw})
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/messages/"+id+"/$value", "", nil)
	mustStatus(t, resp, body, 200)
	if !bytes.Equal(body, raw) || resp.ContentLength != int64(len(raw)) {
		t.Fatalf("got %d bytes (Content-Length %d), want %d", len(body), resp.ContentLength, len(raw))
	}
}

func TestMIMEPostIsAlwaysADraft(t *testing.T) {
	e := setup(t, nil)
	enc := []byte(base64.StdEncoding.EncodeToString([]byte(sampleMIME)))
	resp, body := e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders/inbox/messages", "text/plain", enc)
	mustStatus(t, resp, body, 201)
	m := jsonOf(t, body)
	if m["isDraft"] != true || m["subject"] != "Holiday hours update" {
		t.Fatalf("created: %s", body)
	}
	id := m["id"].(string)
	got, ok := e.srv.Message(alice, id)
	if !ok || !got.IsDraft || got.WritePath != graphserver.WriteMIMEDraft || string(got.MIME) != sampleMIME || got.FolderName != "Inbox" {
		t.Fatalf("stored: %+v", got)
	}
	// The draft state cannot be changed afterwards: isDraft is ignored,
	// and so is clearing mfUnsent in PR_MESSAGE_FLAGS.
	resp, body = e.do(t, "PATCH", "/v1.0/users/"+alice+"/messages/"+id, "application/json",
		[]byte(`{"isDraft":false,"singleValueExtendedProperties":[{"id":"Integer 0x0E07","value":"1"}]}`))
	mustStatus(t, resp, body, 200)
	if got, _ := e.srv.Message(alice, id); !got.IsDraft || !got.IsRead {
		t.Fatalf("after PATCH: draft %v read %v", got.IsDraft, got.IsRead)
	}
	// POST /messages goes to Drafts.
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "text/plain", enc)
	mustStatus(t, resp, body, 201)
	if got, _ := e.srv.Message(alice, jsonOf(t, body)["id"].(string)); got.FolderName != "Drafts" {
		t.Fatalf("POST /messages stored in %q", got.FolderName)
	}
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "text/plain", []byte("not base64!"))
	wantError(t, resp, body, 400, "ErrorMimeContentInvalidBase64String")
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "message/rfc822", []byte(sampleMIME))
	wantError(t, resp, body, 415, "UnsupportedMediaType")
}

func TestJSONMessageWithExtendedPropertiesIsNotADraft(t *testing.T) {
	e := setup(t, nil)
	body := `{
  "subject": "Quarterly numbers",
  "body": {"contentType": "HTML", "content": "<p>See attached.</p>"},
  "from": {"emailAddress": {"name": "Dana Swope", "address": "danas@contoso.com"}},
  "toRecipients": [{"emailAddress": {"address": "alice@contoso.onmicrosoft.com"}}],
  "internetMessageId": "<q3@contoso.com>",
  "internetMessageHeaders": [{"name": "x-mailferry-source", "value": "imap"}],
  "categories": ["Blue category"],
  "flag": {"flagStatus": "complete"},
  "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "q3.csv", "contentType": "text/csv", "contentBytes": "YSxiCjEsMgo="}],
  "singleValueExtendedProperties": [
    {"id": "Integer 0x0E07", "value": "1"},
    {"id": "SystemTime 0x0E06", "value": "2021-03-04T05:06:07Z"},
    {"id": "SystemTime 0x0039", "value": "2021-03-04T05:00:00Z"}
  ]
}`
	resp, b := e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders/inbox/messages", "application/json", []byte(body))
	mustStatus(t, resp, b, 201)
	m := jsonOf(t, b)
	if m["isDraft"] != false || m["isRead"] != true || m["receivedDateTime"] != "2021-03-04T05:06:07Z" || m["sentDateTime"] != "2021-03-04T05:00:00Z" || m["hasAttachments"] != true {
		t.Fatalf("created: %s", b)
	}
	got, _ := e.srv.Message(alice, m["id"].(string))
	if got.WritePath != graphserver.WriteJSON || got.IsDraft || got.FlagStatus != "complete" || len(got.Attachments) != 1 ||
		string(got.Attachments[0].Content) != "a,b\n1,2\n" || got.InternetMessageHeaders["x-mailferry-source"] != "imap" {
		t.Fatalf("stored: %+v", got)
	}
	if !bytes.Contains(got.MIME, []byte("Message-ID: <q3@contoso.com>\r\n")) || !bytes.Contains(got.MIME, []byte("x-mailferry-source: imap\r\n")) || !bytes.Contains(got.MIME, []byte(`filename="q3.csv"`)) {
		t.Fatalf("rebuilt MIME:\n%s", got.MIME)
	}
	// Without PR_MESSAGE_FLAGS it is a draft.
	resp, b = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders/inbox/messages", "application/json", []byte(`{"subject":"x"}`))
	mustStatus(t, resp, b, 201)
	if jsonOf(t, b)["isDraft"] != true {
		t.Fatalf("no flags: %s", b)
	}
	for name, bad := range map[string]string{
		"unknown property":     `{"subject":"x","colour":"red"}`,
		"wrong type":           `{"isRead":"yes"}`,
		"unknown nested":       `{"toRecipients":[{"emailAddress":{"address":"a@b","phone":"1"}}]}`,
		"bad extended id":      `{"singleValueExtendedProperties":[{"id":"Integer0x0E07","value":"1"}]}`,
		"bad extended value":   `{"singleValueExtendedProperties":[{"id":"SystemTime 0x0E06","value":"yesterday"}]}`,
		"wrong type for flags": `{"singleValueExtendedProperties":[{"id":"String 0x0E07","value":"1"}]}`,
		"non-x header":         `{"internetMessageHeaders":[{"name":"Received","value":"from x"}]}`,
		"abstract attachment":  `{"attachments":[{"name":"a","contentBytes":"YQ=="}]}`,
	} {
		resp, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "application/json", []byte(bad))
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d %s", name, resp.StatusCode, b)
		}
	}
}

func TestPatchMessage(t *testing.T) {
	e := setup(t, nil)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME)})
	resp, b := e.do(t, "PATCH", "/v1.0/users/"+alice+"/messages/"+id, "application/json",
		[]byte(`{"isRead":true,"flag":{"flagStatus":"flagged","dueDateTime":{"dateTime":"2026-04-01T00:00:00","timeZone":"UTC"}},"categories":["A","B"]}`))
	mustStatus(t, resp, b, 200)
	got, _ := e.srv.Message(alice, id)
	if !got.IsRead || got.FlagStatus != "flagged" || strings.Join(got.Categories, ",") != "A,B" || string(got.MIME) != sampleMIME {
		t.Fatalf("after PATCH: %+v", got)
	}
	resp, b = e.do(t, "PATCH", "/v1.0/users/"+alice+"/messages/"+id, "application/json", []byte(`{"subject":"changed"}`))
	wantError(t, resp, b, 400, "ErrorInvalidPropertyUpdateSentMessage")
	resp, b = e.do(t, "PATCH", "/v1.0/users/"+alice+"/messages/"+id, "application/json", []byte(`{"flag":{"flagStatus":"maybe"}}`))
	wantError(t, resp, b, 400, "RequestBodyRead")
	resp, b = e.do(t, "DELETE", "/v1.0/users/"+alice+"/messages/"+id, "", nil)
	mustStatus(t, resp, b, 204)
	if _, ok := e.srv.Message(alice, id); ok {
		t.Fatal("deleted message still under its id")
	}
	if n := len(e.srv.Messages(alice, "deleteditems")); n != 1 {
		t.Fatalf("Deleted Items holds %d messages, want 1", n)
	}
}

func TestImportMimeIsBetaPermissionAndTenantGated(t *testing.T) {
	e := setup(t, nil)
	enc := []byte(base64.StdEncoding.EncodeToString([]byte(sampleMIME)))
	path := "/beta/users/" + alice + "/mailFolders/inbox/importMime"
	resp, b := e.do(t, "POST", path, "text/plain", enc)
	wantError(t, resp, b, 403, "ErrorAccessDenied") // Mail.ReadWrite is not enough
	e.srv.SetAppRoles(clientID, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.token = e.graphToken(t)
	resp, b = e.do(t, "POST", path, "text/plain", enc)
	wantError(t, resp, b, 400, "BadRequest") // the tenant has it off
	e.srv.SetImportMime(tenantID, true)
	resp, b = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders/inbox/importMime", "text/plain", enc)
	wantError(t, resp, b, 400, "BadRequest") // beta only
	resp, b = e.do(t, "POST", path, "text/plain", enc)
	mustStatus(t, resp, b, 201)
	m := jsonOf(t, b)
	got, _ := e.srv.Message(alice, m["id"].(string))
	if m["isDraft"] != false || got.IsDraft || got.WritePath != graphserver.WriteImportMIME || string(got.MIME) != sampleMIME {
		t.Fatalf("imported: %s / %+v", b, got)
	}
	if n := e.srv.RequestCount(graphserver.RouteImportMime); n != 3 {
		t.Fatalf("RequestCount(importMime) = %d, want 3 (v1.0 is an unknown segment)", n)
	}
}

func TestRequestBodyLimitIs413(t *testing.T) {
	e := setup(t, &graphserver.Options{MaxRequestBody: 64 << 10})
	raw := "Subject: big\r\n\r\n" + strings.Repeat("x", 64<<10) + "\r\n"
	resp, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "text/plain", []byte(base64.StdEncoding.EncodeToString([]byte(raw))))
	wantError(t, resp, b, 413, "RequestEntityTooLarge")
	if n := len(e.srv.Messages(alice, "drafts")); n != 0 {
		t.Fatalf("%d drafts stored after a 413", n)
	}
}

func TestListMessagesPages(t *testing.T) {
	e := setup(t, nil)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 12; i++ {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(fmt.Sprintf("Subject: m%d\r\n\r\nx\r\n", i)), Received: base.Add(time.Duration(i) * time.Hour)})
	}
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages?$select=subject", "", nil)
	mustStatus(t, resp, b, 200)
	m := jsonOf(t, b)
	vs := values(t, m)
	if len(vs) != 10 || vs[0]["subject"] != "m11" || m["@odata.nextLink"] == nil {
		t.Fatalf("page 1: %s", b)
	}
	resp, b = e.do(t, "GET", m["@odata.nextLink"].(string), "", nil)
	mustStatus(t, resp, b, 200)
	if vs := values(t, jsonOf(t, b)); len(vs) != 2 || vs[1]["subject"] != "m0" {
		t.Fatalf("page 2: %s", b)
	}
}
