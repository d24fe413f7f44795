package xoauth2imap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
	"github.com/mailferry/mailferry/internal/testenv/xoauth2imap"
)

// The test vector of Google's and Microsoft's XOAUTH2 pages.
const (
	vectorUser  = "user"
	vectorToken = "mF_9.B5f-4.1JqM"
	vectorB64   = "dXNlcj11c2VyAWF1dGg9QmVhcmVyIG1GXzkuQjVmLTQuMUpxTQEB"
)

func staticVerifier(user, token string) error {
	if user == vectorUser && token == vectorToken {
		return nil
	}
	return errors.New("bad token")
}

// rawConn is a line-level IMAP connection for checking exact bytes.
type rawConn struct {
	t *testing.T
	c *tls.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *xoauth2imap.Server) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", s.Addr, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	if g := rc.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return rc
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := rc.c.Write([]byte(s + "\r\n")); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// untilTagged reads untagged lines and returns the tagged one.
func (rc *rawConn) untilTagged(tag string) string {
	rc.t.Helper()
	for {
		l := rc.line()
		if strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

func TestDocumentedVectorLogsIn(t *testing.T) {
	raw, err := base64.StdEncoding.DecodeString(vectorB64)
	if err != nil {
		t.Fatal(err)
	}
	user, token, err := xoauth2imap.ParseResponse(raw)
	if err != nil || user != vectorUser || token != vectorToken {
		t.Fatalf("vector parses to %q %q %v", user, token, err)
	}
	s := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: staticVerifier})
	s.AddUser(vectorUser)
	rc := dial(t, s)
	rc.send("a CAPABILITY")
	capLine := rc.line()
	if !strings.Contains(capLine, "AUTH=XOAUTH2") || strings.Contains(capLine, "AUTH=PLAIN") || !strings.Contains(capLine, "SASL-IR") {
		t.Fatalf("capabilities %q", capLine)
	}
	rc.untilTagged("a")
	rc.send("b LOGIN user password")
	if l := rc.untilTagged("b"); !strings.HasPrefix(l, "b NO") {
		t.Fatalf("LOGIN: %q", l)
	}
	rc.send("c AUTHENTICATE PLAIN AHVzZXIAcGFzcw==")
	if l := rc.untilTagged("c"); !strings.HasPrefix(l, "c NO") {
		t.Fatalf("PLAIN: %q", l)
	}
	rc.send("d AUTHENTICATE XOAUTH2 " + vectorB64)
	if l := rc.untilTagged("d"); !strings.HasPrefix(l, "d OK") {
		t.Fatalf("XOAUTH2: %q", l)
	}
	rc.send("e SELECT INBOX")
	if l := rc.untilTagged("e"); !strings.HasPrefix(l, "e OK") {
		t.Fatalf("SELECT after login: %q", l)
	}
	if st := s.Stats(); st.Logins != 1 || st.LoginCommands != 1 || st.OtherMechs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWithoutInitialResponse(t *testing.T) {
	s := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: staticVerifier})
	s.AddUser(vectorUser)
	rc := dial(t, s)
	rc.send("a AUTHENTICATE XOAUTH2")
	if l := rc.line(); l != "+ " {
		t.Fatalf("want an empty continuation, got %q", l)
	}
	rc.send(vectorB64)
	if l := rc.untilTagged("a"); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("got %q", l)
	}
}

func TestRefusedTokenGetsJSONChallengeThenNO(t *testing.T) {
	s := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: staticVerifier})
	s.AddUser(vectorUser)
	rc := dial(t, s)
	bad := base64.StdEncoding.EncodeToString([]byte("user=user\x01auth=Bearer wrong\x01\x01"))
	rc.send("a AUTHENTICATE XOAUTH2 " + bad)
	l := rc.line()
	if !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want the error challenge, got %q", l)
	}
	js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
	if err != nil {
		t.Fatal(err)
	}
	var ch map[string]string
	if err := json.Unmarshal(js, &ch); err != nil || ch["status"] != "401" || ch["schemes"] != "bearer" || ch["scope"] != "https://mail.google.com/" || len(ch) != 3 {
		t.Fatalf("challenge %s", js)
	}
	rc.send("") // the empty response the protocol requires
	if l := rc.untilTagged("a"); !strings.HasPrefix(l, "a NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("got %q", l)
	}
	// A client that answers the challenge with data is counted.
	rc.send("b AUTHENTICATE XOAUTH2 " + bad)
	rc.line()
	rc.send("eyJ9")
	rc.untilTagged("b")
	if st := s.Stats(); st.Refused != 2 || st.NonEmptyAfter != 1 || st.Logins != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMalformedResponsesAreRefused(t *testing.T) {
	s := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: staticVerifier})
	s.AddUser(vectorUser)
	rc := dial(t, s)
	for i, raw := range []string{
		"user=user\x01auth=Bearer mF_9.B5f-4.1JqM\x01",         // one trailing \x01
		"user=user\x01auth=bearer mF_9.B5f-4.1JqM\x01\x01",     // scheme case
		"user=user\x01auth=Bearer  mF_9.B5f-4.1JqM\x01\x01",    // two spaces
		"user=user\x01host=x\x01auth=Bearer mF_9\x01\x01",      // extra field
		"auth=Bearer mF_9.B5f-4.1JqM\x01user=user\x01\x01",     // wrong order
		"user=\x01auth=Bearer mF_9.B5f-4.1JqM\x01\x01",         // empty user
		"user=user\x01auth=Bearer mF_9.B5f-4.1JqM\x01\x01\x01", // extra \x01
	} {
		tag := string(rune('a' + i))
		rc.send(tag + " AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte(raw)))
		if l := rc.untilTagged(tag); !strings.HasPrefix(l, tag+" BAD") {
			t.Errorf("%q: %q", raw, l)
		}
	}
	if st := s.Stats(); st.Malformed != 7 || st.Logins != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// xoauth2Client is a minimal sasl.Client for these tests only.
type xoauth2Client struct{ user, token string }

func (c xoauth2Client) Start() (string, []byte, error) {
	return xoauth2imap.Mechanism, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c xoauth2Client) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }

// TestTokensFromTheTestTokenEndpoint logs in with tokens minted by
// graphserver (Google refresh, Microsoft delegated and app-only) and uses
// the mailbox afterwards.
func TestTokensFromTheTestTokenEndpoint(t *testing.T) {
	gs := graphserver.Start(t, nil)
	is := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: gs.CheckIMAPToken})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, gs.Client())

	gs.AddGoogleClient("g.apps.googleusercontent.com", "gs")
	rt := gs.MintGoogleRefreshToken("g.apps.googleusercontent.com", "carol@gmail.com", graphserver.ScopeGoogleMail)
	gcfg := oauth2.Config{ClientID: "g.apps.googleusercontent.com", ClientSecret: "gs", Endpoint: oauth2.Endpoint{TokenURL: gs.GoogleTokenURL(), AuthStyle: oauth2.AuthStyleInParams}}
	gtok, err := gcfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		t.Fatal(err)
	}
	is.AddUser("carol@gmail.com")

	c, err := imapclient.DialTLS(is.Addr, &imapclient.Options{TLSConfig: is.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps().Has(imap.Cap("AUTH=XOAUTH2")) {
		t.Fatalf("caps %v", c.Caps())
	}
	if err := c.Authenticate(xoauth2Client{"carol@gmail.com", gtok.AccessToken}); err != nil {
		t.Fatalf("XOAUTH2 with a Google token: %v", err)
	}
	msg := "Subject: hi\r\n\r\nhello\r\n"
	ap := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := ap.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := ap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("select: %v %v", sel, err)
	}

	// Microsoft delegated token for another user: refused, with the
	// Outlook scope in the challenge.
	gs.AddTenant("t1", "contoso.onmicrosoft.com")
	gs.AddApp("t1", "app1")
	mrt := gs.MintRefreshToken("app1", "alice@contoso.onmicrosoft.com", graphserver.ScopeIMAPAccessAsUser)
	mcfg := oauth2.Config{ClientID: "app1", Endpoint: oauth2.Endpoint{TokenURL: gs.TokenURL("t1"), AuthStyle: oauth2.AuthStyleInParams}}
	mtok, err := mcfg.TokenSource(ctx, &oauth2.Token{RefreshToken: mrt}).Token()
	if err != nil {
		t.Fatal(err)
	}
	is.AddUser("alice@contoso.onmicrosoft.com")
	is.AddUser("bob@contoso.onmicrosoft.com")
	rc := dial(t, is)
	rc.send("a AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=bob@contoso.onmicrosoft.com\x01auth=Bearer "+mtok.AccessToken+"\x01\x01")))
	l := rc.line()
	js, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
	if !strings.Contains(string(js), `"scope":"https://outlook.office.com/IMAP.AccessAsUser.All"`) || !strings.Contains(string(js), `"status":"400"`) {
		t.Fatalf("challenge %q", js)
	}
	rc.send("")
	rc.untilTagged("a")
	rc.send("b AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=alice@contoso.onmicrosoft.com\x01auth=Bearer "+mtok.AccessToken+"\x01\x01")))
	if l := rc.untilTagged("b"); !strings.HasPrefix(l, "b OK") {
		t.Fatalf("alice: %q", l)
	}
	// An expired token is refused with status 401 (the client should
	// refresh and reconnect).
	gs.ExpireAccessTokens()
	c2, err := imapclient.DialTLS(is.Addr, &imapclient.Options{TLSConfig: is.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Authenticate(xoauth2Client{"carol@gmail.com", gtok.AccessToken}); err == nil {
		t.Fatal("expired token logged in")
	}
}
