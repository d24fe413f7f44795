package ewsserver

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	ntlmssp "github.com/Azure/go-ntlmssp"
)

func getFolderDoc() string {
	return soap("", `<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>`)
}

func ntlmClient(s *Server) *http.Client {
	return &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: &http.Transport{TLSClientConfig: s.TLSConfig()}}}
}

func ntlmPost(t *testing.T, c *http.Client, s *Server, user, pass string) resp {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL(), strings.NewReader(getFolderDoc()))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.SetBasicAuth(user, pass) // the Negotiator turns these into NTLM
	return do(t, c, req)
}

// go-ntlmssp, the client the connector uses, logs in with NTLMv2 as a UPN
// and as DOMAIN\user; the connection then stays authenticated, as on IIS.
func TestNTLMWithGoNTLMSSP(t *testing.T) {
	s := start(t, nil)
	c := ntlmClient(s)
	for _, login := range []string{alice, `EXAMPLE\alice`, `example\ALICE`} {
		r := ntlmPost(t, c, s, login, alicePW)
		if r.status != 200 || code(r.msg(t, 0)) != "NoError" {
			t.Fatalf("%s: HTTP %d\n%s", login, r.status, r.body)
		}
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; last.AuthScheme == "Basic" || last.Account != alice {
		t.Fatalf("last request %+v", last)
	}
	if n := s.Count("GetFolder"); n != 3 {
		t.Fatalf("Count(GetFolder) = %d, want 3 (401 handshakes are not counted)", n)
	}
}

func TestNTLMWrongPasswordIs401(t *testing.T) {
	s := start(t, nil)
	r := ntlmPost(t, ntlmClient(s), s, alice, "wrong")
	if r.status != http.StatusUnauthorized {
		t.Fatalf("HTTP %d, want 401", r.status)
	}
	if r := ntlmPost(t, ntlmClient(s), s, "nobody@example.com", "x"); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: HTTP %d", r.status)
	}
}

// The server's NTLM challenge is what [MS-NLMP] 2.2.1.2 specifies, and a
// Type 3 message computed by go-ntlmssp for it verifies only with the
// right password.
func TestNTLMv2Verification(t *testing.T) {
	ch := newChallenge()
	type2 := challengeMessage(ch, "MAILFERRY", "EXCH01", fixedNow())
	for _, tc := range []struct {
		pass string
		want bool
	}{{"Secret-1", true}, {"secret-1", false}, {"", false}} {
		type3, err := ntlmssp.NewAuthenticateMessage(type2, `MAILFERRY\bob`, "Secret-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := parseAuthenticate(type3)
		if err != nil {
			t.Fatal(err)
		}
		if a.user != "bob" || a.domain != "MAILFERRY" {
			t.Fatalf("parsed user %q domain %q", a.user, a.domain)
		}
		if got := verifyNTLMv2(a, ch, tc.pass); got != tc.want {
			t.Errorf("password %q: verified %v", tc.pass, got)
		}
		// The same response does not verify against another challenge.
		if verifyNTLMv2(a, newChallenge(), "Secret-1") {
			t.Error("response verified against a different challenge")
		}
	}
}

func TestBasicAuth(t *testing.T) {
	s := start(t, nil)
	if r := post(t, s, alice, alicePW, getFolderDoc()); r.status != 200 {
		t.Fatalf("right password: HTTP %d", r.status)
	}
	if r := post(t, s, `EXAMPLE\alice`, alicePW, getFolderDoc()); r.status != 200 {
		t.Fatalf("DOMAIN\\user: HTTP %d", r.status)
	}
	r := post(t, s, alice, "wrong", getFolderDoc())
	if r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d", r.status)
	}
	if got := strings.Join(r.header.Values("WWW-Authenticate"), ","); !strings.Contains(got, "NTLM") || !strings.Contains(got, "Basic") {
		t.Fatalf("WWW-Authenticate %q", got)
	}
	if r := post(t, s, "", "", getFolderDoc()); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous: HTTP %d", r.status)
	}
	if len(s.Requests()) != 2 {
		t.Fatalf("unauthenticated requests were logged as EWS requests: %+v", s.Requests())
	}
}

// OWA answers so that a client can derive the EWS URL from it.
func TestOWA(t *testing.T) {
	s := start(t, nil)
	c := client(s)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Get(s.OWAURL())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "/owa/auth/logon.aspx") {
		t.Fatalf("GET /owa: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = client(s).Get(s.OWAURL())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("following /owa: %d", res.StatusCode)
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/EWS/Exchange.asmx") {
		t.Fatalf("URL %s", s.URL())
	}
	// IIS matches paths without regard to case.
	req, _ := http.NewRequest("POST", strings.Replace(s.URL(), "/EWS/Exchange.asmx", "/ews/exchange.asmx", 1), strings.NewReader(getFolderDoc()))
	req.Header.Set("Content-Type", "text/xml")
	req.SetBasicAuth(alice, alicePW)
	if r := do(t, client(s), req); r.status != 200 {
		t.Fatalf("lower-case path: %d", r.status)
	}
}

func impersonate(header, addr string) string {
	return `<t:ExchangeImpersonation><t:ConnectingSID><t:` + header + `>` + addr + `</t:` + header + `></t:ConnectingSID></t:ExchangeImpersonation>`
}

// The ApplicationImpersonation right lets one account act on any mailbox,
// named by PrimarySmtpAddress, SmtpAddress or PrincipalName; without it the
// answer is ErrorImpersonateUserDenied; an unknown mailbox is
// ErrorNonExistentMailbox. X-AnchorMailbox is recorded.
func TestImpersonation(t *testing.T) {
	s := start(t, nil)
	mb := s.Mailbox(alice)
	if _, err := mb.CreateFolder(mb.DistinguishedFolderID("inbox"), "Only-Alice-Has-This", ""); err != nil {
		t.Fatal(err)
	}
	list := `<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindFolder>`
	for _, h := range []string{"PrimarySmtpAddress", "SmtpAddress", "PrincipalName"} {
		r := post(t, s, admin, adminPW, soap(impersonate(h, "Alice@Example.com"), list), "X-AnchorMailbox", alice)
		if r.status != 200 || !strings.Contains(r.body, "Only-Alice-Has-This") {
			t.Fatalf("%s: HTTP %d\n%s", h, r.status, r.body)
		}
	}
	last := s.Requests()[len(s.Requests())-1]
	if last.Account != admin || last.Impersonated != alice || last.AnchorMailbox != alice {
		t.Fatalf("request log %+v", last)
	}
	if err := s.AddUser("carol@example.com", UserOptions{Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	wantFault(t, post(t, s, "carol@example.com", "pw", soap(impersonate("PrimarySmtpAddress", alice), list)), "ErrorImpersonateUserDenied")
	wantFault(t, post(t, s, admin, adminPW, soap(impersonate("PrimarySmtpAddress", "ghost@example.com"), list)), "ErrorNonExistentMailbox")
	// The admin has no mailbox of its own.
	r := post(t, s, admin, adminPW, soap("", list))
	if code(r.msg(t, 0)) != "ErrorMissingEmailAddress" {
		t.Fatalf("admin without mailbox:\n%s", r.body)
	}
}

// RequestServerVersion: Exchange2010 through Exchange2016 are accepted;
// a missing header or Exchange2007 is ErrorInvalidServerVersion; a value
// outside the enumeration fails schema validation.
func TestRequestServerVersion(t *testing.T) {
	s := start(t, nil)
	doc := getFolderDoc()
	for _, v := range []string{"Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013", "Exchange2013_SP1", "Exchange2016"} {
		if r := post(t, s, alice, alicePW, strings.Replace(doc, "Exchange2013_SP1", v, 1)); r.status != 200 {
			t.Fatalf("%s: HTTP %d", v, r.status)
		}
	}
	wantFault(t, post(t, s, alice, alicePW, strings.Replace(doc, "Exchange2013_SP1", "Exchange2007_SP1", 1)), "ErrorInvalidServerVersion")
	wantFault(t, post(t, s, alice, alicePW, strings.Replace(doc, `<t:RequestServerVersion Version="Exchange2013_SP1"/>`, "", 1)), "ErrorInvalidServerVersion")
	wantFault(t, post(t, s, alice, alicePW, strings.Replace(doc, "Exchange2013_SP1", "Exchange2019", 1)), "ErrorSchemaValidation")
	// item:Flag came with Exchange 2013.
	get := soap("", `<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Flag"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="x"/></m:ItemIds></m:GetItem>`)
	wantFault(t, post(t, s, alice, alicePW, strings.Replace(get, "Exchange2013_SP1", "Exchange2010_SP2", 1)), "ErrorIncorrectSchemaVersion")
}

// Many NTLM clients at once each complete their own handshake.
func TestNTLMConcurrentClients(t *testing.T) {
	s := start(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ntlmClient(s)
			req, _ := http.NewRequest("POST", s.URL(), strings.NewReader(getFolderDoc()))
			req.Header.Set("Content-Type", "text/xml")
			req.SetBasicAuth(alice, alicePW)
			res, err := c.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				errs <- res.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
