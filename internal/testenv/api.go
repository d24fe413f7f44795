package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// API calls a running `mailferry serve` the way a client does: with the
// token as a bearer credential, body sent as contentType. A JSON answer is
// decoded into out (a non-JSON one into out when it is a *string). It
// returns the HTTP status and fails the test on transport errors.
func API(t testing.TB, base, token, method, path, contentType string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			if s, ok := out.(*string); ok {
				*s = string(data)
			} else {
				t.Fatalf("%s %s: status %d, not JSON: %s", method, path, resp.StatusCode, data)
			}
		}
	}
	return resp.StatusCode
}
