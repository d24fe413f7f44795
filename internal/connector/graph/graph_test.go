package graph

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func TestParse(t *testing.T) {
	good := map[string]struct{ user, tenant, redacted string }{
		"graph://contoso.onmicrosoft.com/alice@contoso.com":              {"alice@contoso.com", "contoso.onmicrosoft.com", "graph://contoso.onmicrosoft.com/alice@contoso.com"},
		"graph://5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f/alice@contoso.com": {"alice@contoso.com", "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f", ""},
		"graph://alice@contoso.com":                                      {"alice@contoso.com", "", "graph://alice@contoso.com"},
		"GRAPH://contoso.com/bob%23EXT%23@contoso.com/":                  {"bob#EXT#@contoso.com", "contoso.com", ""},
	}
	for raw, want := range good {
		e, err := Parse(raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", raw, err)
			continue
		}
		if e.User != want.user || e.Params["tenant"] != want.tenant || e.Scheme != "graph" || e.Host != "graph.microsoft.com" || e.Port != 443 {
			t.Errorf("Parse(%q) = %+v", raw, e)
		}
		if want.redacted != "" && e.Redacted != want.redacted {
			t.Errorf("Parse(%q).Redacted = %q", raw, e.Redacted)
		}
	}
	for _, raw := range []string{
		"graph://", "graph://contoso.com/", "graph://alice", "graph://contoso.com/a/b",
		"graph://contoso.com/alice@contoso.com?token_url=https://evil.example/",
		"graph://user:hunter2@contoso.com/alice@contoso.com", "imaps://alice@contoso.com",
	} {
		_, err := Parse(raw)
		if err == nil {
			t.Errorf("Parse(%q) accepted it", raw)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) shows the password: %v", raw, err)
		}
	}
}

func TestOpenWithSecretAndCertificate(t *testing.T) {
	e := newEnv(t, nil)
	c := e.open(t, connector.RoleSource, nil)
	if c.inboxID == "" {
		t.Fatal("no inbox id after open")
	}
	// Tenant from the mailbox's domain, credentials without a tenant.
	ep, _ := Parse("graph://" + alice)
	cc, err := open(context.Background(), ep, e.options(connector.RoleSource), e.shared, e.settings())
	if err != nil {
		t.Fatalf("open with the tenant from the mailbox domain: %v", err)
	}
	cc.Close()

	// Every connection, to the token endpoint and to Graph, goes
	// through OpenOptions.Dial.
	var dials atomic.Int32
	dc := e.open(t, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) {
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	})
	if _, err := dc.Folders(context.Background()); err != nil || dials.Load() == 0 {
		t.Fatalf("dials %d, err %v", dials.Load(), err)
	}
	refused := func(o *connector.OpenOptions, _ *settings) {
		o.Dial = func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("not allowed")}
		}
	}
	if _, err := e.openErr(t, alice, connector.RoleSource, refused); err == nil {
		t.Fatal("opened although every dial was refused")
	}

	cert, pemData := newCert(t)
	e.srv.AddClientCertificate(appID, cert)
	c2 := e.open(t, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) {
		o.Credentials.OAuth.ClientSecret = ""
		o.Credentials.OAuth.CertificatePEM = pemData
	})
	if _, err := c2.Folders(context.Background()); err != nil {
		t.Fatalf("folders with a certificate's token: %v", err)
	}
	if e.srv.TokenRequests().ClientCredentials < 3 {
		t.Fatalf("client credentials grants %d", e.srv.TokenRequests().ClientCredentials)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newEnv(t, nil, graphserver.RoleMailRead)
	e.srv.AddUserWithoutMailbox(tenantID, "nomail@contoso.onmicrosoft.com")
	cases := []struct {
		name    string
		mailbox string
		role    connector.Role
		change  func(*connector.OpenOptions, *settings)
		kind    connector.Kind
		hint    string
	}{
		{"no such user", "nobody@contoso.onmicrosoft.com", connector.RoleSource, nil, connector.KindNoAccount, "mailbox"},
		{"user without mailbox", "nomail@contoso.onmicrosoft.com", connector.RoleSource, nil, connector.KindNoAccount, "Exchange Online"},
		{"read-only app as destination", alice, connector.RoleDestination, nil, connector.KindPermission, "Mail.ReadWrite"},
		{"wrong secret", alice, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) { o.Credentials.OAuth.ClientSecret = "nope-nope" }, connector.KindAuth, "secret"},
		{"no credentials", alice, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) { o.Credentials.OAuth = nil }, connector.KindConfig, "client id"},
		{"plain http service", alice, connector.RoleSource, func(o *connector.OpenOptions, _ *settings) { o.ServiceURL = "http://graph.example" }, connector.KindConfig, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.openErr(t, tc.mailbox, tc.role, tc.change)
			if connector.KindOf(err) != tc.kind {
				t.Fatalf("kind %v (%v), want %v", connector.KindOf(err), err, tc.kind)
			}
			if !strings.Contains(connector.HintOf(err), tc.hint) {
				t.Errorf("hint %q lacks %q", connector.HintOf(err), tc.hint)
			}
			if strings.Contains(err.Error(), appSecret) || strings.Contains(connector.HintOf(err), appSecret) {
				t.Error("error shows the secret")
			}
		})
	}
	// Reading works with Mail.Read.
	if _, err := e.openErr(t, alice, connector.RoleSource, nil); err != nil {
		t.Fatalf("Mail.Read source: %v", err)
	}
}

func TestFoldersAndRoles(t *testing.T) {
	e := newEnv(t, &graphserver.Options{PageSize: 3}) // small pages: the nextLinks are followed
	e.srv.AddFolder(alice, "inbox", "Projects")
	e.srv.AddFolder(alice, "Inbox/Projects", "2026")
	e.srv.AddFolder(alice, "msgfolderroot", "Receipts")
	e.srv.AddHiddenFolder(alice, "msgfolderroot", "Hidden Stuff")
	for i := range 5 {
		e.srv.AddFolder(alice, "Receipts", "year "+string(rune('A'+i)))
	}
	c := e.open(t, connector.RoleSource, nil)
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]connector.Folder{}
	for _, f := range fs {
		got[f.Path.String()] = f
	}
	for path, role := range map[string]mail.Role{
		"INBOX": mail.RoleInbox, "Sent Items": mail.RoleSent, "Drafts": mail.RoleDrafts,
		"Deleted Items": mail.RoleTrash, "Junk Email": mail.RoleJunk, "Archive": mail.RoleArchive,
		"INBOX/Projects": mail.RoleNone, "INBOX/Projects/2026": mail.RoleNone, "Receipts/year E": mail.RoleNone,
	} {
		f, ok := got[path]
		if !ok {
			t.Errorf("folder %q missing (have %v)", path, keys(got))
			continue
		}
		if f.Role != role || !f.RoleFromServer {
			t.Errorf("%q: role %q (from server %v), want %q", path, f.Role, f.RoleFromServer, role)
		}
		if f.Name != e.srv.FolderID(alice, strings.Replace(path, "INBOX", "Inbox", 1)) {
			t.Errorf("%q: Name %q is not the folder id", path, f.Name)
		}
	}
	if _, ok := got["Hidden Stuff"]; ok {
		t.Error("hidden folder listed")
	}
	if len(got) != len(e.srv.Folders(alice))-1 {
		t.Errorf("listed %d folders, server has %d (one hidden)", len(got), len(e.srv.Folders(alice)))
	}
}

func keys(m map[string]connector.Folder) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCreateFolder(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddHiddenFolder(alice, "msgfolderroot", "Secret")
	c := e.open(t, connector.RoleDestination, nil)
	ctx := context.Background()
	f, err := c.CreateFolder(ctx, mail.Path{"Work", "2026", "Q1"}, mail.RoleNone)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path.String() != "Work/2026/Q1" || f.Name != e.srv.FolderID(alice, "Work/2026/Q1") {
		t.Fatalf("created %+v", f)
	}
	again, err := c.CreateFolder(ctx, mail.Path{"Work", "2026", "Q1"}, mail.RoleNone)
	if err != nil || again.Name != f.Name {
		t.Fatalf("second create: %+v %v", again, err)
	}
	sub, err := c.CreateFolder(ctx, mail.Path{"Inbox", "Lists"}, mail.RoleNone)
	if err != nil || sub.Name != e.srv.FolderID(alice, "Inbox/Lists") || sub.Path.String() != "INBOX/Lists" {
		t.Fatalf("inbox child: %+v %v", sub, err)
	}
	// Created by someone else after this Conn read the tree: 409
	// ErrorFolderExists is looked up, not an error; so is a hidden one.
	other := e.srv.AddFolder(alice, "msgfolderroot", "Later")
	got, err := c.CreateFolder(ctx, mail.Path{"later"}, mail.RoleNone)
	if err != nil || got.Name != other {
		t.Fatalf("existing folder created meanwhile: %+v %v", got, err)
	}
	hidden, err := c.CreateFolder(ctx, mail.Path{"Secret", "Inner"}, mail.RoleNone)
	if err != nil || hidden.Name != e.srv.FolderID(alice, "Secret/Inner") {
		t.Fatalf("under a hidden folder: %+v %v", hidden, err)
	}
	if n := e.srv.RequestCount(graphserver.RouteCreateFolder) + e.srv.RequestCount(graphserver.RouteCreateChildFolder); n != 7 {
		t.Errorf("folder creations sent %d, want 7 (Work, 2026, Q1, Lists, Later=409, Secret=409, Inner)", n)
	}
	inbox, err := c.CreateFolder(ctx, mail.Path{"INBOX"}, mail.RoleInbox)
	if err != nil || inbox.Role != mail.RoleInbox {
		t.Fatalf("INBOX: %+v %v", inbox, err)
	}
}

func TestSeedListFetchIdentity(t *testing.T) {
	e := newEnv(t, nil)
	raws := [][]byte{
		msg(1, ""),
		[]byte("Date: Tue, 3 Nov 2026 08:00:00 +0000\r\nFrom: cron@example.com\r\nTo: alice@contoso.onmicrosoft.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nno message-id here\r\n"),
		msg(3, "X-Long: "+strings.Repeat("folded ", 30)+"\r\n\tcontinued\r\n"),
	}
	recv := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ids := map[string]int{}
	for i, r := range raws {
		id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: r, IsRead: i == 0, FlagStatus: []string{"flagged", "notFlagged", "complete"}[i], Received: recv.Add(time.Duration(i) * time.Hour)})
		ids[id] = i
	}
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")
	byID, all, l := listAll(t, c, inbox, connector.ListOptions{})
	if len(all) != 3 || l.Status.Messages != 3 || l.Cursor == "" || l.Reset {
		t.Fatalf("listed %d, status %+v, cursor %q", len(all), l.Status, l.Cursor)
	}
	wantFlags := []string{"\\Flagged \\Seen", "", ""}
	for id, m := range byID {
		i, ok := ids[string(id)]
		if !ok {
			t.Fatalf("unknown id %s", id)
		}
		if m.Change != connector.ChangeNew {
			t.Errorf("msg %d: change %v", i, m.Change)
		}
		if m.Identity != identityOf(raws[i]) {
			t.Errorf("msg %d: identity differs from the MIME's", i)
		}
		if !m.InternalDate.Equal(recv.Add(time.Duration(i) * time.Hour)) {
			t.Errorf("msg %d: date %v", i, m.InternalDate)
		}
		if sortedFlags(m.Flags) != wantFlags[i] {
			t.Errorf("msg %d: flags %q, want %q", i, m.Flags, wantFlags[i])
		}
		if m.Size != int64(len(raws[i])) && m.Size != 0 {
			t.Errorf("msg %d: size %d, MIME has %d", i, m.Size, len(raws[i]))
		}
	}
	bodies := fetchAll(t, c, inbox, all)
	for id, b := range bodies {
		if string(b) != string(raws[ids[string(id)]]) {
			t.Errorf("body of %d differs", ids[string(id)])
		}
	}
	if len(bodies) != 3 {
		t.Fatalf("fetched %d", len(bodies))
	}
}
