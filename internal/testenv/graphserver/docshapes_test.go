package graphserver_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// sameShape checks that every key of doc is in got with the same JSON
// kind, recursively (arrays compare their first elements). Extra keys in
// got are allowed: the documentation's examples are shortened.
func sameShape(t *testing.T, where string, doc, got any) {
	t.Helper()
	kind := func(v any) string { return fmt.Sprintf("%T", v) }
	if kind(doc) != kind(got) {
		t.Errorf("%s: documented %s (%v), served %s (%v)", where, kind(doc), doc, kind(got), got)
		return
	}
	switch d := doc.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, dv := range d {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s: documented key %q missing", where, k)
				continue
			}
			sameShape(t, where+"."+k, dv, gv)
		}
	case []any:
		g := got.([]any)
		if len(d) > 0 {
			if len(g) == 0 {
				t.Errorf("%s: documented a non-empty array, served empty", where)
				return
			}
			sameShape(t, where+"[0]", d[0], g[0])
		}
	}
}

func docExample(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Source   string `json:"source"`
		Response any    `json:"response"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Source == "" {
		t.Fatalf("%s: %v (every example names its documentation page)", name, err)
	}
	return f.Response
}

func anyJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return v
}

// TestResponsesHaveTheDocumentedShapes replays the requests of the
// documentation's examples and compares the response shapes.
func TestResponsesHaveTheDocumentedShapes(t *testing.T) {
	e := setup(t, nil)
	from := "From: Dana Swope <danas@contoso.com>\r\nSubject: Holiday hours update\r\n\r\nx\r\n"
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(from)})
	for i := 0; i < 3; i++ {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(from)})
	}
	served := map[string]func() []byte{
		"client-credentials-token.json": func() []byte {
			resp, err := e.hc.PostForm(e.srv.TokenURL(tenantID), url.Values{"client_id": {clientID}, "client_secret": {secret}, "scope": {"https://graph.microsoft.com/.default"}, "grant_type": {"client_credentials"}})
			return readAll(t, resp, err)
		},
		"client-credentials-error.json": func() []byte {
			resp, err := e.hc.PostForm(e.srv.TokenURL(tenantID), url.Values{"client_id": {clientID}, "client_secret": {secret}, "scope": {"https://foo.microsoft.com/.default"}, "grant_type": {"client_credentials"}})
			return readAll(t, resp, err)
		},
		"graph-error.json": func() []byte {
			_, b := e.do(t, "GET", "/v1.0/users/"+alice+"/messages/nope", "", nil)
			return b
		},
		"throttling-429.json": func() []byte {
			e.srv.InjectFault(graphserver.Fault{Status: 429})
			_, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
			return b
		},
		"user-list-mailfolders.json": func() []byte {
			_, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
			return b
		},
		"delta-query-messages.json": func() []byte {
			_, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta?$select=subject,sender,isRead", "", nil, "Prefer", "odata.maxpagesize=2")
			return b
		},
		"delta-query-messages-removed.json": func() []byte {
			items, dl := deltaRound(t, e, "/v1.0/users/"+alice+"/mailFolders/inbox/messages/delta", 10)
			if len(items) == 0 {
				t.Fatal("no items")
			}
			e.srv.DeleteMessage(alice, id)
			_, b := e.do(t, "GET", dl, "", nil)
			return b
		},
		"user-post-messages-mime.json": func() []byte {
			_, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages", "text/plain", []byte(base64.StdEncoding.EncodeToString([]byte(sampleMIME))))
			return b
		},
		"attachment-createuploadsession.json": func() []byte {
			_, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages/"+e.srv.Messages(alice, "inbox")[0].ID+"/attachments/createUploadSession", "application/json",
				[]byte(`{"AttachmentItem":{"attachmentType":"file","name":"flower","size":3483322}}`))
			return b
		},
		"json-batching.json": func() []byte {
			_, b := e.do(t, "POST", "/v1.0/$batch", "application/json", []byte(`{"requests":[{"id":"1","method":"GET","url":"/users/`+alice+`/mailFolders"}]}`))
			return b
		},
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if filepath.Ext(de.Name()) != ".json" {
			continue
		}
		fn, ok := served[de.Name()]
		if !ok {
			t.Errorf("testdata/%s has no replay in this test", de.Name())
			continue
		}
		sameShape(t, de.Name(), docExample(t, de.Name()), anyJSON(t, fn()))
	}
}
