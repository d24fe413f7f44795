package gmailimap_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// The example of Google's XOAUTH2 page ("Initial client response"),
// with its line break removed.
const (
	docUser  = "someuser@example.com"
	docToken = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
	docB64   = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
	// capturedChallenge is Gmail's answer to a refused token, as
	// captured in google/gmail-oauth2-tools issue 78 and MailKit issue
	// 377: {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}.
	capturedChallenge = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="
)

func docVerifier(user, token string) error {
	if user == docUser && token == docToken {
		return nil
	}
	return errors.New("bad token")
}

func startDoc(t *testing.T, opts *gmailimap.Options) *gmailimap.Server {
	t.Helper()
	if opts == nil {
		opts = &gmailimap.Options{}
	}
	opts.Verify = docVerifier
	s := gmailimap.Start(t, opts)
	if err := s.AddAccount(docUser, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCapabilities checks the lists against those captured from
// imap.gmail.com, minus what this server does not implement.
func TestCapabilities(t *testing.T) {
	s := start(t, nil)
	rc := dial(t, s)
	u := rc.ok("CAPABILITY")
	if want := "* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=OAUTHBEARER"; u[0] != want {
		t.Fatalf("before login:\n%s\nwant\n%s", u[0], want)
	}
	u, st := rc.do("LOGIN " + alice + " " + alicePw)
	want := "* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584"
	if len(u) != 1 || u[0] != want || st != "OK "+alice+" authenticated (Success)" {
		t.Fatalf("LOGIN: %q %q\nwant %q", u, st, want)
	}
	if u := rc.ok("CAPABILITY"); u[0] != want {
		t.Fatalf("after login: %q", u[0])
	}
}

// TestAdvertisedMeansImplemented runs a command of every capability the
// server advertises, so that none is advertised without working.
func TestAdvertisedMeansImplemented(t *testing.T) {
	s := start(t, nil)
	seed(t, s, gmailimap.Message{Raw: rawMsg("x1", "one"), Labels: []string{`\Inbox`}})
	rc := dial(t, s)
	for _, cmd := range []string{
		"XYZZY", // XYZZY
		`ID ("name" "mailferry-test" "contact" "test@example.com")`,                                    // ID
		"AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+alicePw)), // SASL-IR, AUTH=PLAIN
		"NAMESPACE",          // NAMESPACE
		`XLIST "" "*"`,       // XLIST
		"ENABLE CONDSTORE",   // ENABLE, CONDSTORE
		`GETQUOTAROOT INBOX`, // QUOTA
		`LIST (SPECIAL-USE) "" "*" RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))`, // LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN
		"SELECT INBOX",
		"UID SEARCH RETURN (COUNT ALL) ALL",           // ESEARCH
		"UID FETCH 1 (X-GM-MSGID X-GM-LABELS MODSEQ)", // X-GM-EXT-1, CONDSTORE
		`UID COPY 1 "[Gmail]/Starred"`,                // UIDPLUS
		`UID MOVE 1 "[Gmail]/Important"`,              // MOVE
		"UNSELECT",                                    // UNSELECT
		"STATUS INBOX (APPENDLIMIT)",                  // APPENDLIMIT
	} {
		rc.ok(cmd)
	}
	// LITERAL-: a non-synchronizing literal of at most 4096 octets.
	rc.send("b1 APPEND INBOX {" + itoa(len(rawMsg("x2", "lit"))) + "+}")
	rc.send(string(rawMsg("x2", "lit")))
	if _, st := rc.until("b1"); !strings.HasPrefix(st, "OK [APPENDUID ") {
		t.Fatalf("LITERAL- APPEND: %q", st)
	}
	// IDLE.
	rc.send("b2 IDLE")
	if l := rc.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	rc.send("DONE")
	if _, st := rc.until("b2"); st != "OK IDLE terminated (Success)" {
		t.Fatalf("IDLE end: %q", st)
	}
	// AUTH=XOAUTH2 and AUTH=OAUTHBEARER are covered by their own tests.
}

// TestXOAUTH2DocumentedExample logs in with the exact client response of
// Google's XOAUTH2 page, with and without SASL-IR.
func TestXOAUTH2DocumentedExample(t *testing.T) {
	s := startDoc(t, nil)
	rc := dial(t, s)
	u, st := rc.do("AUTHENTICATE XOAUTH2 " + docB64)
	if st != "OK "+docUser+" authenticated (Success)" || len(grep(u, "* CAPABILITY IMAP4rev1")) != 1 {
		t.Fatalf("XOAUTH2: %q %q", u, st)
	}
	rc.ok("SELECT INBOX")

	rc2 := dial(t, s)
	rc2.send("a AUTHENTICATE XOAUTH2")
	if l := rc2.line(); l != "+ " {
		t.Fatalf("want an empty challenge, got %q", l)
	}
	rc2.send(docB64)
	if _, st := rc2.until("a"); !strings.HasPrefix(st, "OK ") {
		t.Fatalf("without initial response: %q", st)
	}
	if st := s.Stats(); st.Logins != 2 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestXOAUTH2RefusedTokenChallenge checks the error flow of the XOAUTH2
// page: a base64 JSON challenge, the client's empty response, then NO.
func TestXOAUTH2RefusedTokenChallenge(t *testing.T) {
	s := startDoc(t, nil)
	rc := dial(t, s)
	bad := base64.StdEncoding.EncodeToString([]byte("user=" + docUser + "\x01auth=Bearer wrong\x01\x01"))
	rc.send("a AUTHENTICATE XOAUTH2 " + bad)
	if l := rc.line(); l != "+ "+capturedChallenge {
		t.Fatalf("challenge %q, want Gmail's %q", l, capturedChallenge)
	}
	rc.send("")
	if _, st := rc.until("a"); st != "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" {
		t.Fatalf("after the empty response: %q", st)
	}
	// A client that answers the challenge with data is counted.
	rc.send("b AUTHENTICATE XOAUTH2 " + bad)
	rc.line()
	rc.send("eyJ9")
	rc.until("b")
	if st := s.Stats(); st.Refused != 2 || st.NonEmptyAfterChallenge != 1 || st.Logins != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestXOAUTH2ExactBytes refuses every response that is not exactly
// "user=" user "\x01auth=Bearer " token "\x01\x01".
func TestXOAUTH2ExactBytes(t *testing.T) {
	s := startDoc(t, nil)
	rc := dial(t, s)
	for i, raw := range []string{
		"user=" + docUser + "\x01auth=Bearer " + docToken + "\x01",               // one trailing ^A
		"user=" + docUser + "\x01auth=bearer " + docToken + "\x01\x01",           // scheme case
		"user=" + docUser + "\x01auth=Bearer  " + docToken + "\x01\x01",          // two spaces
		"user=" + docUser + "\x01host=x\x01auth=Bearer " + docToken + "\x01\x01", // extra field
		"auth=Bearer " + docToken + "\x01user=" + docUser + "\x01\x01",           // order
		"user=" + docUser + "\x01auth=Bearer " + docToken + "\x01\x01\x01",       // extra ^A
		"user=" + docUser + "\x02auth=Bearer " + docToken + "\x02\x02",           // wrong separator
	} {
		tag := string(rune('a' + i))
		rc.send(tag + " AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte(raw)))
		if _, st := rc.until(tag); st != "BAD Invalid SASL argument. (Failure)" {
			t.Errorf("%q: %q", raw, st)
		}
	}
	if st := s.Stats(); st.Malformed != 7 || st.Logins != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOAuthBearer logs in with RFC 7628's OAUTHBEARER, which Gmail also
// advertises.
func TestOAuthBearer(t *testing.T) {
	s := startDoc(t, nil)
	rc := dial(t, s)
	resp := "n,a=" + docUser + ",\x01host=imap.gmail.com\x01port=993\x01auth=Bearer " + docToken + "\x01\x01"
	rc.ok("AUTHENTICATE OAUTHBEARER " + base64.StdEncoding.EncodeToString([]byte(resp)))

	rc2 := dial(t, s)
	bad := "n,a=" + docUser + ",\x01auth=Bearer nope\x01\x01"
	rc2.send("a AUTHENTICATE OAUTHBEARER " + base64.StdEncoding.EncodeToString([]byte(bad)))
	if l := rc2.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want a challenge, got %q", l)
	}
	rc2.send("AQ==") // RFC 7628 section 3.2.3: the client sends %x01
	if _, st := rc2.until("a"); st != "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" {
		t.Fatalf("refused: %q", st)
	}
	if st := s.Stats(); st.NonEmptyAfterChallenge != 0 || st.Logins != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLoginNeedsAppPassword checks LOGIN and AUTHENTICATE PLAIN: only an
// app password works, and an account without one gets Gmail's alert.
func TestLoginNeedsAppPassword(t *testing.T) {
	s := start(t, nil)
	if err := s.AddAccount("bob@gmail.com", nil); err != nil {
		t.Fatal(err)
	}
	rc := dial(t, s)
	for cmd, want := range map[string]string{
		"LOGIN bob@gmail.com secret":                          "NO [ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)",
		"LOGIN " + alice + " wrong":                           "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
		"LOGIN nobody@gmail.com x":                            "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
		"SELECT INBOX":                                        "BAD Command not valid in this state",
		"AUTHENTICATE CRAM-MD5":                               "NO [AUTHENTICATIONFAILED] Unsupported authentication mechanism (Failure)",
		"AUTHENTICATE PLAIN " + b64("\x00"+alice+"\x00wrong"): "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
	} {
		if _, st := rc.do(cmd); st != want {
			t.Errorf("%s: %q, want %q", cmd, st, want)
		}
	}
	// A literal password (RFC 3501 section 4.3) works.
	rc.send("p LOGIN " + alice + " {" + itoa(len(alicePw)) + "}")
	if l := rc.line(); l != "+ go ahead" {
		t.Fatalf("continuation %q", l)
	}
	rc.send(alicePw)
	if _, st := rc.until("p"); st != "OK "+alice+" authenticated (Success)" {
		t.Fatalf("LOGIN with a literal: %q", st)
	}
	rc.ok("SELECT INBOX")
	if u, st := rc.do("LOGOUT"); strings.Join(u, "|") != "* BYE LOGOUT Requested" || st != "OK 73 good day (Success)" {
		t.Fatalf("LOGOUT: %q %q", u, st)
	}
	if !rc.eof() {
		t.Fatal("connection still open after LOGOUT")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// xoauth2 is a SASL client for these tests only.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

// TestGoogleTokensFromTheTestTokenEndpoint logs in with an access token
// obtained from graphserver's Google token endpoint by refresh token,
// and is refused, with a 401 challenge, once the token expired.
func TestGoogleTokensFromTheTestTokenEndpoint(t *testing.T) {
	gs := graphserver.Start(t, nil)
	s := gmailimap.Start(t, &gmailimap.Options{Verify: gs.CheckIMAPToken})
	if err := s.AddAccount("carol@gmail.com", nil); err != nil {
		t.Fatal(err)
	}
	gs.AddGoogleClient("app.apps.googleusercontent.com", "secret")
	rt := gs.MintGoogleRefreshToken("app.apps.googleusercontent.com", "carol@gmail.com", graphserver.ScopeGoogleMail)
	cfg := oauth2.Config{ClientID: "app.apps.googleusercontent.com", ClientSecret: "secret",
		Endpoint: oauth2.Endpoint{TokenURL: gs.GoogleTokenURL(), AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, gs.Client())
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		t.Fatal(err)
	}

	c, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps().Has(imap.Cap("AUTH=XOAUTH2")) || !c.Caps().Has(imap.Cap("X-GM-EXT-1")) {
		t.Fatalf("caps %v", c.Caps())
	}
	if err := c.Authenticate(xoauth2{"carol@gmail.com", tok.AccessToken}); err != nil {
		t.Fatalf("XOAUTH2 with a Google token: %v", err)
	}
	if _, err := c.Select("[Gmail]/All Mail", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// A token for another user is refused with status 400.
	if err := s.AddAccount("dave@gmail.com", nil); err != nil {
		t.Fatal(err)
	}
	rc := dial(t, s)
	rc.send("a AUTHENTICATE XOAUTH2 " + b64("user=dave@gmail.com\x01auth=Bearer "+tok.AccessToken+"\x01\x01"))
	ch := decodeChallenge(t, rc.line())
	if ch["status"] != "400" || ch["scope"] != "https://mail.google.com/" || ch["schemes"] != "Bearer" {
		t.Fatalf("challenge %v", ch)
	}
	rc.send("")
	rc.until("a")

	// An expired token is refused with status 401: refresh and retry.
	gs.ExpireAccessTokens()
	rc.send("b AUTHENTICATE XOAUTH2 " + b64("user=carol@gmail.com\x01auth=Bearer "+tok.AccessToken+"\x01\x01"))
	if ch := decodeChallenge(t, rc.line()); ch["status"] != "401" {
		t.Fatalf("expired: %v", ch)
	}
	rc.send("")
	if _, st := rc.until("b"); st != "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" {
		t.Fatalf("expired: %q", st)
	}
}

func decodeChallenge(t *testing.T, line string) map[string]string {
	t.Helper()
	js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "+ "))
	if err != nil || !strings.HasPrefix(line, "+ ") {
		t.Fatalf("challenge line %q: %v", line, err)
	}
	var m map[string]string
	if err := json.Unmarshal(js, &m); err != nil || len(m) != 3 {
		t.Fatalf("challenge %s: %v", js, err)
	}
	return m
}
