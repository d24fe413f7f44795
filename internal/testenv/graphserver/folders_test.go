package graphserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func values(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["value"].([]any)
	if !ok {
		t.Fatalf("no value array: %v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

func TestGetUserAndMissingMailboxes(t *testing.T) {
	e := setup(t, nil)
	id := e.srv.AddUserWithoutMailbox(tenantID, "nomail@contoso.onmicrosoft.com")
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice, "", nil)
	mustStatus(t, resp, body, 200)
	if m := jsonOf(t, body); m["userPrincipalName"] != alice || m["id"] == "" || m["mail"] != alice {
		t.Fatalf("user: %v", m)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+id+"?$select=id,mail", "", nil)
	mustStatus(t, resp, body, 200)
	if m := jsonOf(t, body); m["mail"] != nil || m["id"] != id || m["displayName"] != nil {
		t.Fatalf("$select: %v", m)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/ghost@contoso.onmicrosoft.com", "", nil)
	wantError(t, resp, body, 404, "Request_ResourceNotFound")
	resp, body = e.do(t, "GET", "/v1.0/users/ghost@contoso.onmicrosoft.com/mailFolders", "", nil)
	wantError(t, resp, body, 404, "ErrorInvalidUser")
	resp, body = e.do(t, "GET", "/v1.0/users/nomail@contoso.onmicrosoft.com/mailFolders", "", nil)
	wantError(t, resp, body, 404, "MailboxNotEnabledForRESTAPI")
	// An app-only token cannot use /me.
	resp, body = e.do(t, "GET", "/v1.0/me/mailFolders", "", nil)
	wantError(t, resp, body, 400, "BadRequest")
}

func TestListMailFoldersPagesAndHidesHidden(t *testing.T) {
	e := setup(t, nil)
	for i := 0; i < 5; i++ {
		e.srv.AddFolder(alice, "msgfolderroot", fmt.Sprintf("Project %d", i))
	}
	e.srv.AddHiddenFolder(alice, "msgfolderroot", "Hidden stuff")
	// 8 well-known + 5 visible: the default page of 10, then a nextLink.
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	mustStatus(t, resp, body, 200)
	m := jsonOf(t, body)
	first := values(t, m)
	next, _ := m["@odata.nextLink"].(string)
	if len(first) != 10 || !strings.Contains(next, "$skip=10") {
		t.Fatalf("page 1: %d folders, nextLink %q", len(first), next)
	}
	for _, f := range first {
		for _, k := range []string{"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount", "isHidden"} {
			if _, ok := f[k]; !ok {
				t.Fatalf("folder lacks %s: %v", k, f)
			}
		}
		if _, ok := f["wellKnownName"]; ok {
			t.Fatalf("v1.0 must not have the beta-only wellKnownName: %v", f)
		}
	}
	resp, body = e.do(t, "GET", next, "", nil)
	mustStatus(t, resp, body, 200)
	m = jsonOf(t, body)
	if rest := values(t, m); len(rest) != 3 || m["@odata.nextLink"] != nil {
		t.Fatalf("page 2: %v", m)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders?includeHiddenFolders=true&$top=50", "", nil)
	mustStatus(t, resp, body, 200)
	all := values(t, jsonOf(t, body))
	hidden := 0
	for _, f := range all {
		if f["isHidden"] == true {
			hidden++
		}
	}
	if len(all) != 14 || hidden != 1 {
		t.Fatalf("with hidden: %d folders, %d hidden", len(all), hidden)
	}
	// beta documents wellKnownName.
	resp, body = e.do(t, "GET", "/beta/users/"+alice+"/mailFolders/inbox", "", nil)
	mustStatus(t, resp, body, 200)
	if m := jsonOf(t, body); m["wellKnownName"] != "inbox" || m["displayName"] != "Inbox" {
		t.Fatalf("beta inbox: %v", m)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders?$select=displayName,sizeInBytes", "", nil)
	if e := wantError(t, resp, body, 400, "BadRequest"); !strings.Contains(e["message"].(string), "sizeInBytes") {
		t.Fatalf("message should name the property: %v", e)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders?$foo=1", "", nil)
	wantError(t, resp, body, 400, "BadRequest")
}

func TestChildFoldersAndWellKnownNames(t *testing.T) {
	e := setup(t, nil)
	inbox := e.srv.FolderID(alice, "inbox")
	sub := e.srv.AddFolder(alice, "Inbox", "Receipts")
	e.srv.AddFolder(alice, "Inbox/Receipts", "2024")
	for _, path := range []string{
		"/v1.0/users/" + alice + "/mailFolders/Inbox/childFolders",
		"/v1.0/users/" + alice + "/mailFolders/" + inbox + "/childFolders",
		"/v1.0/users/" + alice + "/mailFolders('" + inbox + "')/childFolders",
	} {
		resp, body := e.do(t, "GET", path, "", nil)
		mustStatus(t, resp, body, 200)
		vs := values(t, jsonOf(t, body))
		if len(vs) != 1 || vs[0]["id"] != sub || vs[0]["childFolderCount"] != float64(1) || vs[0]["parentFolderId"] != inbox {
			t.Fatalf("%s: %v", path, vs)
		}
	}
	resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/childFolders/"+sub+"/childFolders", "", nil)
	mustStatus(t, resp, body, 200)
	if vs := values(t, jsonOf(t, body)); len(vs) != 1 || vs[0]["displayName"] != "2024" {
		t.Fatalf("nested: %v", vs)
	}
	for _, wk := range []string{"inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive", "msgfolderroot", "SentItems"} {
		resp, body := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/"+wk, "", nil)
		mustStatus(t, resp, body, 200)
	}
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/AAMkAGnotthere=", "", nil)
	wantError(t, resp, body, 404, "ErrorItemNotFound")
	// A folder is reached under its own parent only.
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/sentitems/childFolders/"+sub, "", nil)
	wantError(t, resp, body, 404, "ErrorItemNotFound")
}

func TestCreateFoldersIsStrict(t *testing.T) {
	e := setup(t, nil)
	resp, body := e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"Clients","isHidden":false}`))
	mustStatus(t, resp, body, 201)
	id := jsonOf(t, body)["id"].(string)
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders/"+id+"/childFolders", "application/json", []byte(`{"displayName":"Acme"}`))
	mustStatus(t, resp, body, 201)
	if got := e.srv.FolderID(alice, "Clients/Acme"); got == "" {
		t.Fatal("child folder not stored")
	}
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"clients"}`))
	wantError(t, resp, body, 409, "ErrorFolderExists")
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"X","color":"red"}`))
	wantError(t, resp, body, 400, "RequestBodyRead")
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "text/plain", []byte(`{"displayName":"X"}`))
	wantError(t, resp, body, 415, "UnsupportedMediaType")
	resp, body = e.do(t, "POST", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{}`))
	wantError(t, resp, body, 400, "ErrorInvalidRequest")
	resp, body = e.do(t, "PUT", "/v1.0/users/"+alice+"/mailFolders", "application/json", []byte(`{"displayName":"X"}`))
	wantError(t, resp, body, 405, "ErrorInvalidRequest")
	resp, body = e.do(t, "GET", "/v1.0/users/"+alice+"/mailBoxes", "", nil)
	wantError(t, resp, body, 400, "BadRequest")
	if n := e.srv.RequestCount(graphserver.RouteCreateFolder); n != 5 {
		t.Fatalf("RequestCount(create folder) = %d, want 5", n)
	}
}

func TestDelegatedTokenReachesOnlyItsOwnMailbox(t *testing.T) {
	e := setup(t, nil)
	e.srv.AddApp(tenantID, "native-app")
	rt := e.srv.MintRefreshToken("native-app", alice, "https://graph.microsoft.com/Mail.ReadWrite", "offline_access")
	status, m := postForm(t, e, e.srv.TokenURL(tenantID), map[string][]string{"client_id": {"native-app"}, "grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, m)
	}
	tok := m["access_token"].(string)
	resp, b := e.doToken(t, tok, "GET", "/v1.0/me/mailFolders/inbox", "", nil)
	mustStatus(t, resp, b, 200)
	resp, b = e.doToken(t, tok, "POST", "/v1.0/me/mailFolders", "application/json", []byte(`{"displayName":"Mine"}`))
	mustStatus(t, resp, b, 201)
	resp, b = e.doToken(t, tok, "GET", "/v1.0/users/"+bob+"/mailFolders", "", nil)
	wantError(t, resp, b, 403, "ErrorAccessDenied")
}
