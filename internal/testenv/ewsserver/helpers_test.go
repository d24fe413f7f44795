package ewsserver

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	alice    = "alice@example.com"
	alicePW  = "Alice-pw1"
	admin    = "svc-migrate@example.com"
	adminPW  = "Admin-pw1"
	testMIME = "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nHello\r\n"
)

// start runs a server with alice and an admin that may impersonate.
func start(t *testing.T, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	opts.TB = t
	s := New(opts)
	if err := s.AddUser(alice, UserOptions{Password: alicePW, Logins: []string{`EXAMPLE\alice`}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(admin, UserOptions{Password: adminPW, CanImpersonate: true, NoMailbox: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func client(s *Server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig()}}
}

// soap wraps a body in an envelope with RequestServerVersion
// Exchange2013_SP1 and the given further header entries.
func soap(headers, body string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2013_SP1"/>` + headers + `
  </soap:Header>
  <soap:Body>` + body + `</soap:Body>
</soap:Envelope>`
}

type resp struct {
	status int
	header http.Header
	body   string
	root   *node
}

// post sends a SOAP request with Basic authentication.
func post(t *testing.T, s *Server, user, pass, doc string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL(), strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(t, client(s), req)
}

func do(t *testing.T, c *http.Client, req *http.Request) resp {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := resp{status: res.StatusCode, header: res.Header, body: string(b)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/xml") {
		root, err := parseXML(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("response is not XML: %v\n%s", err, b)
		}
		r.root = root
	}
	return r
}

// ok posts as alice and fails unless the answer is HTTP 200.
func ok(t *testing.T, s *Server, doc string) resp {
	t.Helper()
	r := post(t, s, alice, alicePW, doc)
	if r.status != 200 {
		t.Fatalf("HTTP %d:\n%s", r.status, r.body)
	}
	return r
}

// find walks local names from n; "*" matches any element.
func find(n *node, path ...string) *node {
	for _, p := range path {
		if n == nil {
			return nil
		}
		var next *node
		for _, c := range n.children {
			if c.local == p || p == "*" {
				next = c
				break
			}
		}
		n = next
	}
	return n
}

// msgs returns the response messages of a response.
func (r resp) msgs() []*node {
	rm := find(r.root, "Body", "*", "ResponseMessages")
	if rm == nil {
		return nil
	}
	return rm.children
}

func (r resp) msg(t *testing.T, i int) *node {
	t.Helper()
	m := r.msgs()
	if i >= len(m) {
		t.Fatalf("no response message %d in\n%s", i, r.body)
	}
	return m[i]
}

func code(m *node) string { return find(m, "ResponseCode").value() }

func class(m *node) string { v, _ := m.attr("ResponseClass"); return v }

// faultCode returns the EWS code of a SOAP fault response.
func (r resp) faultCode() string {
	return find(r.root, "Body", "Fault", "detail", "ResponseCode").value()
}

func wantFault(t *testing.T, r resp, want string) {
	t.Helper()
	if r.status != 500 || r.root == nil || r.faultCode() != want {
		t.Fatalf("want HTTP 500 fault %s, got HTTP %d:\n%s", want, r.status, r.body)
	}
	if fc := find(r.root, "Body", "Fault", "faultcode").value(); fc != "a:"+want {
		t.Fatalf("faultcode %q, want a:%s", fc, want)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// testdata reads testdata/name and replaces {{KEY}} placeholders.
func testdata(t *testing.T, name string, kv ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{{"+kv[i]+"}}", kv[i+1])
	}
	return s
}

func attr(n *node, name string) string { v, _ := n.attr(name); return v }

func fixedNow() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC) }
