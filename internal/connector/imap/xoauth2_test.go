package imap_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
	"github.com/mailferry/mailferry/internal/testenv/xoauth2imap"
)

const (
	oaTenant = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
	oaDomain = "contoso.onmicrosoft.com"
	oaApp    = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
	oaSecret = "imap~app.Secret-0123"
	oaAlice  = "alice@" + oaDomain
)

// oauthIMAP opens the IMAP connector on is for user with the token
// source the registry's backend builds from cred.
func oauthIMAP(t *testing.T, gs *graphserver.Server, is *xoauth2imap.Server, user string, cred *connector.OAuth) (*imapconn.Conn, error) {
	t.Helper()
	ts, err := tokens(t, gs, is.Addr, user, cred)
	if err != nil {
		return nil, err
	}
	return openWithTokens(t, is, user, ts)
}

func tokens(t *testing.T, gs *graphserver.Server, addr, user string, cred *connector.OAuth) (*oauth.Source, error) {
	t.Helper()
	e, err := imapconn.Parse("imaps://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	e.User = user
	return imapconn.TokenSource(e, connector.OpenOptions{Credentials: connector.Credentials{OAuth: cred}, RootCAs: gs.CertPool})
}

func openWithTokens(t *testing.T, is *xoauth2imap.Server, user string, ts *oauth.Source) (*imapconn.Conn, error) {
	t.Helper()
	return openWithTokensN(t, is, user, ts, 1)
}

func openWithTokensN(t *testing.T, is *xoauth2imap.Server, user string, ts *oauth.Source, conns int) (*imapconn.Conn, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(is.Addr)
	p, _ := strconv.Atoi(port)
	c, err := imapconn.Open(context.Background(), imapconn.Config{Host: host, Port: p, Security: imapconn.SecurityTLS,
		RootCAs: is.CertPool, Username: user, Tokens: ts, MaxConnections: conns})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// Microsoft 365 app-only IMAP: a client-credentials token for
// outlook.office365.com logs in with the exact XOAUTH2 bytes (the test
// server checks them), mail can be written and read, and a token the
// server stops accepting is replaced by a fresh one on the next
// session instead of failing the copy.
func TestXOAuth2AppOnlyLoginAndRefresh(t *testing.T) {
	gs := graphserver.Start(t, nil)
	gs.AddTenant(oaTenant, oaDomain)
	gs.AddApp(oaTenant, oaApp, graphserver.RoleIMAPAccessAsApp)
	gs.AddClientSecret(oaApp, oaSecret, time.Time{})
	gs.GrantIMAPMailbox(oaApp, oaAlice)
	is := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: gs.CheckIMAPToken})
	is.AddUser(oaAlice)
	cred := &connector.OAuth{ClientID: oaApp, ClientSecret: oaSecret, TokenURL: gs.TokenURL("{tenant}")}

	ts, err := tokens(t, gs, is.Addr, oaAlice, cred)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openWithTokens(t, is, oaAlice, ts)
	if err != nil {
		t.Fatalf("open with app credentials: %v", err)
	}
	ctx := context.Background()
	inbox := connector.Folder{Path: mail.Path{"INBOX"}, Name: "INBOX"}
	raw := []byte("Message-ID: <x1@example.com>\r\nFrom: a@example.com\r\nSubject: oauth\r\n\r\nhello\r\n")
	pa, err := c.Append(ctx, inbox, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), Flags: []string{mail.FlagSeen}})
	if err == nil {
		_, err = pa.Wait()
	}
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if st := is.Stats(); st.Logins < 1 || st.Malformed != 0 || st.LoginCommands != 0 {
		t.Fatalf("server stats %+v: want XOAUTH2 logins of the exact form, no LOGIN", st)
	}
	c.Close()

	// The server no longer accepts the token (expired early or
	// revoked): the next session's login is refused once, the token is
	// replaced and the login succeeds.
	gs.ExpireAccessTokens()
	before := is.Stats()
	c2, err := openWithTokens(t, is, oaAlice, ts)
	if err != nil {
		t.Fatalf("reopen after expiry: %v", err)
	}
	var n int
	if _, err := c2.List(ctx, inbox, connector.ListOptions{}, func(ms []connector.Message) error { n += len(ms); return nil }); err != nil || n != 1 {
		t.Fatalf("list after a new token: %d messages, %v", n, err)
	}
	after := is.Stats()
	if after.Logins-before.Logins < 1 || after.Refused-before.Refused != 1 || ts.Fetches() != 2 {
		t.Errorf("want the old token refused once, then a login with a new one: %+v -> %+v, %d token requests", before, after, ts.Fetches())
	}
}

// A token that cannot log in (the app lacks the mailbox permission) is
// a KindAuth error that carries the server's decoded challenge and a
// hint naming the grant, never the secret; a wrong secret is the token
// endpoint's error; a server without AUTH=XOAUTH2 is a clear KindConfig
// error, and no password login is tried.
func TestXOAuth2Refusals(t *testing.T) {
	gs := graphserver.Start(t, nil)
	gs.AddTenant(oaTenant, oaDomain)
	gs.AddApp(oaTenant, oaApp, graphserver.RoleIMAPAccessAsApp)
	gs.AddClientSecret(oaApp, oaSecret, time.Time{})
	is := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: gs.CheckIMAPToken})
	is.AddUser(oaAlice)
	cred := &connector.OAuth{ClientID: oaApp, ClientSecret: oaSecret, TokenURL: gs.TokenURL("{tenant}")}

	_, err := oauthIMAP(t, gs, is, oaAlice, cred)
	if connector.KindOf(err) != connector.KindAuth || !strings.Contains(err.Error(), "outlook.office365.com") ||
		!strings.Contains(connector.HintOf(err), "IMAP.AccessAsApp") || strings.Contains(err.Error(), oaSecret) {
		t.Fatalf("no mailbox permission: %v (kind %v, hint %q)", err, connector.KindOf(err), connector.HintOf(err))
	}
	if st := is.Stats(); st.NonEmptyAfter != 0 {
		t.Errorf("the client answered the error challenge with something other than an empty line: %+v", st)
	}

	bad := *cred
	bad.ClientSecret = "wrong"
	_, err = oauthIMAP(t, gs, is, oaAlice, &bad)
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong secret: %v", err)
	}

	// A server that offers only passwords.
	mem := testenv.StartMemServer(t)
	mem.AddUser(t, oaAlice, "pw")
	gs.GrantIMAPMailbox(oaApp, oaAlice)
	host, port, _ := net.SplitHostPort(mem.Addr)
	p, _ := strconv.Atoi(port)
	ts, err := tokens(t, gs, mem.Addr, oaAlice, cred)
	if err != nil {
		t.Fatal(err)
	}
	_, err = imapconn.Open(context.Background(), imapconn.Config{Host: host, Port: p, Security: imapconn.SecurityNone, AllowPlaintext: true, Username: oaAlice, Tokens: ts})
	if connector.KindOf(err) != connector.KindConfig || !strings.Contains(err.Error(), "XOAUTH2") {
		t.Fatalf("server without XOAUTH2: %v", err)
	}
}

// Gmail: a Google refresh token gives tokens for https://mail.google.com/.
func TestXOAuth2GmailRefreshToken(t *testing.T) {
	gs := graphserver.Start(t, nil)
	const client, secret, carol = "g.apps.googleusercontent.com", "g-secret", "carol@gmail.com"
	gs.AddGoogleClient(client, secret)
	rt := gs.MintGoogleRefreshToken(client, carol, graphserver.ScopeGoogleMail)
	is := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: gs.CheckIMAPToken})
	is.AddUser(carol)
	c, err := oauthIMAP(t, gs, is, carol, &connector.OAuth{Provider: connector.OAuthGoogle, ClientID: client, ClientSecret: secret, RefreshToken: rt, TokenURL: gs.GoogleTokenURL()})
	if err != nil {
		t.Fatalf("Gmail with a refresh token: %v", err)
	}
	if _, err := c.Folders(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With several connections and LITERAL+ the connector appends over its
// own pipelined connections; they log in with XOAUTH2 too (no password
// is ever tried), answering the server's continuation with the initial
// response since this server has no SASL-IR.
func TestXOAuth2PipelinedAppends(t *testing.T) {
	gs := graphserver.Start(t, nil)
	gs.AddTenant(oaTenant, oaDomain)
	gs.AddApp(oaTenant, oaApp, graphserver.RoleIMAPAccessAsApp)
	gs.AddClientSecret(oaApp, oaSecret, time.Time{})
	gs.GrantIMAPMailbox(oaApp, oaAlice)
	is := xoauth2imap.Start(t, &xoauth2imap.Options{Verify: gs.CheckIMAPToken})
	is.AddUser(oaAlice)
	ts, err := tokens(t, gs, is.Addr, oaAlice, &connector.OAuth{ClientID: oaApp, ClientSecret: oaSecret, TokenURL: gs.TokenURL("{tenant}")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := openWithTokensN(t, is, oaAlice, ts, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	inbox := connector.Folder{Path: mail.Path{"INBOX"}, Name: "INBOX"}
	var pending []connector.PendingAppend
	for i := range 6 {
		raw := []byte("Message-ID: <p" + strconv.Itoa(i) + "@example.com>\r\nFrom: a@example.com\r\n\r\nbody\r\n")
		pa, err := c.Append(ctx, inbox, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		pending = append(pending, pa)
	}
	for i, pa := range pending {
		if _, err := pa.Wait(); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if st := is.Stats(); st.LoginCommands != 0 || st.OtherMechs != 0 || st.Malformed != 0 || st.Logins < 2 {
		t.Fatalf("server stats %+v: want only XOAUTH2 logins, on more than one connection", st)
	}
	var n int
	if _, err := c.List(ctx, inbox, connector.ListOptions{}, func(ms []connector.Message) error { n += len(ms); return nil }); err != nil || n != 6 {
		t.Fatalf("listed %d, %v", n, err)
	}
}
