package graphserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	domain   = "contoso.onmicrosoft.com"
	clientID = "535fb089-9ff3-47b6-9bfb-4f1264799865"
	secret   = "sampleCredentials~1"
	alice    = "alice@contoso.onmicrosoft.com"
	bob      = "bob@contoso.onmicrosoft.com"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	srv   *graphserver.Server
	hc    *http.Client
	token string
}

// setup starts a server with one tenant, one app holding roles, and two
// mailboxes, and gets a Graph token through x/oauth2's clientcredentials.
func setup(t *testing.T, opts *graphserver.Options, roles ...string) *env {
	t.Helper()
	srv := graphserver.Start(t, opts)
	srv.AddTenant(tenantID, domain)
	if roles == nil {
		roles = []string{graphserver.RoleMailReadWrite, graphserver.RoleUserReadAll}
	}
	srv.AddApp(tenantID, clientID, roles...)
	srv.AddClientSecret(clientID, secret, time.Time{})
	srv.AddMailbox(tenantID, alice)
	srv.AddMailbox(tenantID, bob)
	e := &env{srv: srv, hc: srv.Client()}
	// A request the server wrongly holds fails the test instead of hanging it.
	e.hc.Timeout = 20 * time.Second
	e.token = e.graphToken(t)
	return e
}

func (e *env) graphToken(t *testing.T) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: e.srv.TokenURL(tenantID),
		Scopes: []string{"https://graph.microsoft.com/.default"}, AuthStyle: oauth2.AuthStyleInParams}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.hc)
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials token: %v", err)
	}
	return tok.AccessToken
}

// do sends one request to the Graph server; path is relative to the
// server URL ("/v1.0/users/..."), or absolute (a nextLink).
func (e *env) do(t *testing.T, method, path, ctype string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return e.doToken(t, e.token, method, path, ctype, body, hdr...)
}

func (e *env) doToken(t *testing.T, token, method, path, ctype string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// jsonOf decodes a JSON object.
func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

// wantError checks status and Graph's error JSON: error.code, a message,
// and innerError with request-id and date.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	m := jsonOf(t, body)
	e, ok := m["error"].(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("body is not {\"error\":{...}}: %s", body)
	}
	if e["code"] != code {
		t.Fatalf("error.code %v, want %s; body %s", e["code"], code, body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error.message empty: %s", body)
	}
	inner, ok := e["innerError"].(map[string]any)
	if !ok || inner["request-id"] == "" || inner["date"] == nil {
		t.Fatalf("error.innerError lacks request-id/date: %s", body)
	}
	return e
}

func mustStatus(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
}

const sampleMIME = "From: Dana Swope <danas@contoso.com>\r\nTo: Alice <alice@contoso.onmicrosoft.com>\r\nSubject: Holiday hours update\r\nDate: Mon, 4 Sep 2017 10:00:00 +0000\r\nMessage-ID: <4aade2547798441eab5188a7a2436bc1@contoso.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\nThe office closes at noon.\r\n"

func readAll(t *testing.T, resp *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
