package graphserver_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func TestSmallAttachmentPost(t *testing.T) {
	e := setup(t, nil)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME)})
	resp, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages/"+id+"/attachments", "application/json",
		[]byte(`{"@odata.type":"#microsoft.graph.fileAttachment","name":"menu.txt","contentType":"text/plain","contentBytes":"YmFnZWxz"}`))
	mustStatus(t, resp, b, 201)
	if m := jsonOf(t, b); m["size"] != float64(6) || m["name"] != "menu.txt" || m["@odata.type"] != "#microsoft.graph.fileAttachment" {
		t.Fatalf("attachment: %s", b)
	}
	got, _ := e.srv.Message(alice, id)
	if len(got.Attachments) != 1 || string(got.Attachments[0].Content) != "bagels" || got.Attachments[0].Via != "post" {
		t.Fatalf("stored: %+v", got.Attachments)
	}
}

// upload PUTs data to an upload URL in chunks of size chunk.
func upload(t *testing.T, e *env, uploadURL string, data []byte, chunk int) *http.Response {
	t.Helper()
	var last *http.Response
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		req, _ := http.NewRequest("PUT", uploadURL, bytes.NewReader(data[off:end]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)))
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
		want := http.StatusOK
		if end == len(data) {
			want = http.StatusCreated
		}
		if resp.StatusCode != want {
			t.Fatalf("chunk at %d: status %d, want %d", off, resp.StatusCode, want)
		}
	}
	return last
}

func TestUploadSession(t *testing.T) {
	e := setup(t, &graphserver.Options{MinUploadSessionSize: 1000, MaxUploadChunk: 4096})
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME)})
	session := func(size int) map[string]any {
		resp, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages/"+id+"/attachments/createUploadSession", "application/json",
			[]byte(fmt.Sprintf(`{"AttachmentItem":{"attachmentType":"file","name":"flower.jpg","size":%d,"contentType":"image/jpeg"}}`, size)))
		mustStatus(t, resp, b, 201)
		m := jsonOf(t, b)
		if r, _ := m["nextExpectedRanges"].([]any); len(r) != 1 || r[0] != "0-" || m["expirationDateTime"] == nil {
			t.Fatalf("session: %s", b)
		}
		return m
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 700) // 11,200 bytes
	us := session(len(data))
	uploadURL := us["uploadUrl"].(string)

	// The bearer token must not be sent to the upload URL.
	req, _ := http.NewRequest("PUT", uploadURL, bytes.NewReader(data[:100]))
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-99/%d", len(data)))
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("PUT with Authorization: %d, want 401", resp.StatusCode)
	}
	// Out of order: 416.
	req, _ = http.NewRequest("PUT", uploadURL, bytes.NewReader(data[100:200]))
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 100-199/%d", len(data)))
	resp, err = e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("out of order: %d", resp.StatusCode)
	}
	// A chunk above the limit: 413.
	req, _ = http.NewRequest("PUT", uploadURL, bytes.NewReader(data[:5000]))
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-4999/%d", len(data)))
	resp, err = e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized chunk: %d", resp.StatusCode)
	}
	last := upload(t, e, uploadURL, data, 4096)
	if loc := last.Header.Get("Location"); !strings.Contains(loc, "/Attachments('") {
		t.Fatalf("final PUT Location %q", loc)
	}
	got, _ := e.srv.Message(alice, id)
	if len(got.Attachments) != 1 || !bytes.Equal(got.Attachments[0].Content, data) || got.Attachments[0].Via != "uploadSession" || got.Attachments[0].Name != "flower.jpg" {
		t.Fatalf("stored attachment: %d", len(got.Attachments))
	}
	if n := e.srv.RequestCount(graphserver.RouteUploadChunk); n != 3+3 {
		t.Fatalf("upload PUTs counted %d, want 6", n)
	}
	// The session is gone after the last byte.
	req, _ = http.NewRequest("PUT", uploadURL, bytes.NewReader(data[:10]))
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-9/%d", len(data)))
	resp, err = e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("after completion: %d", resp.StatusCode)
	}
	// Size rules.
	resp2, b := e.do(t, "POST", "/v1.0/users/"+alice+"/messages/"+id+"/attachments/createUploadSession", "application/json",
		[]byte(`{"AttachmentItem":{"attachmentType":"file","name":"tiny","size":10}}`))
	wantError(t, resp2, b, 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")
	resp2, b = e.do(t, "POST", "/v1.0/users/"+alice+"/messages/"+id+"/attachments/createUploadSession", "application/json",
		[]byte(fmt.Sprintf(`{"AttachmentItem":{"attachmentType":"file","name":"huge","size":%d}}`, 151<<20)))
	wantError(t, resp2, b, 400, "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize")
	// Cancel: DELETE on the upload URL.
	us = session(2000)
	req, _ = http.NewRequest("DELETE", us["uploadUrl"].(string), nil)
	resp, err = e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
}

func TestBatch(t *testing.T) {
	e := setup(t, nil)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME)})
	mime64 := base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(sampleMIME))))
	body := fmt.Sprintf(`{"requests":[
  {"id":"1","method":"GET","url":"/users/%[1]s/mailFolders/inbox"},
  {"id":"2","method":"GET","url":"/users/%[1]s/messages/%[2]s?$select=subject"},
  {"id":"3","method":"PATCH","url":"/users/%[1]s/messages/%[2]s","headers":{"Content-Type":"application/json"},"body":{"isRead":true}},
  {"id":"4","method":"GET","url":"/users/%[1]s/messages/%[2]s/$value"},
  {"id":"5","method":"POST","url":"/users/%[1]s/mailFolders/inbox/messages","headers":{"Content-Type":"text/plain"},"body":"%[3]s"}
]}`, alice, id, mime64)
	resp, b := e.do(t, "POST", "/v1.0/$batch", "application/json", []byte(body))
	mustStatus(t, resp, b, 200)
	rs, _ := jsonOf(t, b)["responses"].([]any)
	if len(rs) != 5 {
		t.Fatalf("responses: %s", b)
	}
	byID := map[string]map[string]any{}
	for _, r := range rs {
		m := r.(map[string]any)
		byID[m["id"].(string)] = m
	}
	for id, want := range map[string]float64{"1": 200, "2": 200, "3": 200, "4": 200, "5": 201} {
		if byID[id]["status"] != want {
			t.Fatalf("request %s: %v", id, byID[id])
		}
	}
	if raw, _ := base64.StdEncoding.DecodeString(byID["4"]["body"].(string)); string(raw) != sampleMIME {
		t.Fatalf("$value in a batch must come back base64: %v", byID["4"]["body"])
	}
	if got, _ := e.srv.Message(alice, id); !got.IsRead {
		t.Fatal("PATCH in batch not applied")
	}
	if n := len(e.srv.Messages(alice, "inbox")); n != 2 {
		t.Fatalf("MIME POST in batch: inbox has %d", n)
	}
	// dependsOn: a failed request fails its dependents with 424.
	body = fmt.Sprintf(`{"requests":[
  {"id":"a","method":"GET","url":"/users/%[1]s/messages/nope"},
  {"id":"b","dependsOn":["a"],"method":"GET","url":"/users/%[1]s/mailFolders/inbox"}
]}`, alice)
	resp, b = e.do(t, "POST", "/v1.0/$batch", "application/json", []byte(body))
	mustStatus(t, resp, b, 200)
	rs, _ = jsonOf(t, b)["responses"].([]any)
	if rs[0].(map[string]any)["status"] != float64(404) || rs[1].(map[string]any)["status"] != float64(424) {
		t.Fatalf("dependsOn: %s", b)
	}
	var many []string
	for i := 0; i < 21; i++ {
		many = append(many, fmt.Sprintf(`{"id":"%d","method":"GET","url":"/users/%s"}`, i, alice))
	}
	for name, bad := range map[string]string{
		"21 requests":      `{"requests":[` + strings.Join(many, ",") + `]}`,
		"duplicate id":     `{"requests":[{"id":"1","method":"GET","url":"/me"},{"id":"1","method":"GET","url":"/me"}]}`,
		"body, no type":    `{"requests":[{"id":"1","method":"POST","url":"/me/messages","body":{}}]}`,
		"unknown depends":  `{"requests":[{"id":"1","dependsOn":["9"],"method":"GET","url":"/me"}]}`,
		"absolute url":     `{"requests":[{"id":"1","method":"GET","url":"https://graph.microsoft.com/v1.0/me"}]}`,
		"unknown property": `{"requests":[{"id":"1","method":"GET","url":"/me","verb":"x"}]}`,
	} {
		resp, b := e.do(t, "POST", "/v1.0/$batch", "application/json", []byte(bad))
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
}
