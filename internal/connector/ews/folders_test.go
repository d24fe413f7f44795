package ews

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

func byPathKey(fs []connector.Folder) map[string]connector.Folder {
	out := map[string]connector.Folder{}
	for _, f := range fs {
		out[f.Path.Key()] = f
	}
	return out
}

// The well-known folders carry their roles from the server, Archive its
// role from the name, non-mail folders their class; subfolders of the
// inbox live under INBOX; nothing outside the message folder root
// (Recoverable Items) is listed.
func TestFoldersRolesAndClasses(t *testing.T) {
	s := ewsserver.New(&ewsserver.Options{TB: t})
	if err := s.AddUser(alice, ewsserver.UserOptions{Password: pw, SystemFolders: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	mb := s.Mailbox(alice)
	top, _ := mb.FolderID()
	if _, err := mb.CreateFolder(top, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.CreateFolder(inboxID(s), "Projects", ""); err != nil {
		t.Fatal(err)
	}
	cal, _ := mb.FolderID("Calendar")
	if _, err := mb.CreateFolder(cal, "Holidays", "IPF.Appointment"); err != nil {
		t.Fatal(err)
	}
	c := open(t, s, "")
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byPathKey(fs)
	want := map[string]struct {
		role      mail.Role
		fromServe bool
		class     string
	}{
		"INBOX":                        {mail.RoleInbox, true, ""},
		"INBOX\x00Projects":            {"", false, ""},
		"Sent Items":                   {mail.RoleSent, true, ""},
		"Drafts":                       {mail.RoleDrafts, true, ""},
		"Deleted Items":                {mail.RoleTrash, true, ""},
		"Junk Email":                   {mail.RoleJunk, true, ""},
		"Archive":                      {mail.RoleArchive, false, ""},
		"Outbox":                       {"", false, ""},
		"Calendar":                     {"", false, "IPF.Appointment"},
		"Calendar\x00Holidays":         {"", false, "IPF.Appointment"},
		"Contacts":                     {"", false, "IPF.Contact"},
		"Tasks":                        {"", false, "IPF.Task"},
		"Notes":                        {"", false, "IPF.StickyNote"},
		"Journal":                      {"", false, "IPF.Journal"},
		"Sync Issues":                  {"", false, ""},
		"Sync Issues\x00Conflicts":     {"", false, ""},
		"Conversation Action Settings": {"", false, "IPF.Configuration"},
	}
	for key, w := range want {
		f, ok := got[key]
		if !ok {
			t.Errorf("%q not listed", strings.ReplaceAll(key, "\x00", "/"))
			continue
		}
		if f.Role != w.role || f.RoleFromServer != w.fromServe || f.Class != w.class {
			t.Errorf("%q: role %q (from server %v) class %q; want %q (%v) %q", f.Path, f.Role, f.RoleFromServer, f.Class, w.role, w.fromServe, w.class)
		}
		if f.Delimiter != 0 || f.NoSelect || f.Name == "" {
			t.Errorf("%q: delimiter %q noselect %v name %q", f.Path, f.Delimiter, f.NoSelect, f.Name)
		}
	}
	for _, f := range fs {
		if strings.Contains(f.Path.String(), "Recoverable") || strings.Contains(f.Path.String(), "Top of Information Store") {
			t.Errorf("listed %q, which is not below the message folder root", f.Path)
		}
	}
	if !fs[0].Path.IsInbox() {
		t.Errorf("the inbox is not listed first: %q", fs[0].Path)
	}
}

// Folder names are taken as they are: '/' and every other character
// stay inside their segment, both ways.
func TestHostileFolderNames(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	paths := []mail.Path{
		{"hello? sausage", "êé", "Hello, 世界"},
		{"a/b", "c/d"},
		{"Co.2019", "Q1"},
		{"INBOX", "sub/with/slashes"},
		{" leading and trailing "},
		{"percent %41 and & and <tag>"},
		{"tab\there"},
		{"Inbox"},
	}
	made := map[string]string{}
	for _, p := range paths {
		f, err := c.CreateFolder(context.Background(), p, "")
		if err != nil {
			t.Fatalf("create %q: %v", p, err)
		}
		if !f.Path.Equal(p.Canonical()) && !p.IsInbox() {
			t.Errorf("create %q returned path %q", p, f.Path)
		}
		made[f.Path.Key()] = f.Name
	}
	// A new connection lists exactly what was made, by id.
	c2 := open(t, s, "")
	fs, err := c2.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byPathKey(fs)
	for key, id := range made {
		if f, ok := got[key]; !ok || f.Name != id {
			t.Errorf("%q: listed %+v, made as %s", strings.ReplaceAll(key, "\x00", "/"), f, id)
		}
	}
	if id, ok := s.Mailbox(alice).FolderID("a/b", "c/d"); !ok || made[mail.Path{"a/b", "c/d"}.Key()] != id {
		t.Errorf("a/b/c/d is not the two folders \"a/b\" and \"c/d\" on the server")
	}
}

// CreateFolder of an existing folder returns it, whether this connection
// made it (cache) or another did (ErrorFolderExists, then a lookup);
// Exchange compares names without regard to case; missing parents are
// created.
func TestCreateFolderIdempotent(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	ctx := context.Background()
	a, err := c.CreateFolder(ctx, mail.Path{"Clients", "Acme", "2020"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Mailbox(alice).FolderID("Clients", "Acme", "2020"); !ok || id != a.Name {
		t.Fatalf("server has %q (%v), created %q", id, ok, a.Name)
	}
	b, err := c.CreateFolder(ctx, mail.Path{"Clients", "Acme", "2020"}, "")
	if err != nil || b.Name != a.Name {
		t.Fatalf("again on the same connection: %+v %v", b, err)
	}
	before := s.Count("CreateFolder")
	c2 := open(t, s, "")
	d, err := c2.CreateFolder(ctx, mail.Path{"clients", "ACME", "2020"}, "")
	if err != nil || d.Name != a.Name {
		t.Fatalf("again on a new connection, other case: %+v %v", d, err)
	}
	if !d.Path.Equal(mail.Path{"Clients", "Acme", "2020"}) {
		t.Errorf("returned path %q, want the existing names", d.Path)
	}
	var exists int
	for _, r := range s.Requests() {
		for _, code := range r.Codes {
			if code == "ErrorFolderExists" {
				exists++
			}
		}
	}
	if s.Count("CreateFolder") == before || exists == 0 {
		t.Errorf("the new connection did not meet ErrorFolderExists (CreateFolder calls %d→%d)", before, s.Count("CreateFolder"))
	}
	in, err := c2.CreateFolder(ctx, mail.Path{"Inbox"}, "")
	if err != nil || in.Name != inboxID(s) || in.Role != mail.RoleInbox {
		t.Errorf("creating Inbox: %+v %v", in, err)
	}
	sent, err := c2.CreateFolder(ctx, mail.Path{"Sent Items"}, mail.RoleSent)
	if err != nil || sent.Name != s.Mailbox(alice).DistinguishedFolderID("sentitems") || sent.Role != mail.RoleSent || !sent.RoleFromServer {
		t.Errorf("creating Sent Items: %+v %v", sent, err)
	}
	cal, err := c2.CreateFolder(ctx, mail.Path{"Calendar"}, "")
	if err != nil || cal.IsMail() {
		t.Errorf("a name that exists as a calendar is returned as mail: %+v %v", cal, err)
	}
}

// More folders than one FindFolder page (the server's FindCountLimit)
// are all listed.
func TestFoldersPaged(t *testing.T) {
	s := server(t, &ewsserver.Options{FindCountLimit: 5})
	mb := s.Mailbox(alice)
	top, _ := mb.FolderID()
	for i := range 12 {
		if _, err := mb.CreateFolder(top, fmt.Sprintf("F%02d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	c := open(t, s, "")
	before := s.Count("FindFolder")
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byPathKey(fs)
	for i := range 12 {
		if _, ok := got[fmt.Sprintf("F%02d", i)]; !ok {
			t.Errorf("F%02d not listed", i)
		}
	}
	if calls := s.Count("FindFolder") - before; calls < 5 {
		t.Errorf("%d folders listed in %d FindFolder calls with a limit of 5 per call", len(fs), calls)
	}
}

// Statuses reads many folders' counters in one GetFolder.
func TestStatuses(t *testing.T) {
	s := server(t, nil)
	seed(t, s, inboxID(s), msg(1, ""), msg(2, ""), msg(3, ""))
	c := open(t, s, "")
	f, err := c.CreateFolder(context.Background(), mail.Path{"Empty"}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := folderByPath(t, c, "INBOX")
	gone := connector.Folder{Path: mail.Path{"Gone"}, Name: "AAAAgone"}
	before := s.Count("GetFolder")
	sts, errs := c.Statuses(context.Background(), []connector.Folder{in, f, gone}, nil)
	if s.Count("GetFolder")-before != 1 {
		t.Errorf("%d GetFolder calls for three folders", s.Count("GetFolder")-before)
	}
	if errs[0] != nil || sts[0].Messages != 3 || sts[0].Size != int64(len(msg(1, ""))*3) {
		t.Errorf("inbox: %+v %v", sts[0], errs[0])
	}
	if errs[1] != nil || sts[1].Messages != 0 {
		t.Errorf("empty: %+v %v", sts[1], errs[1])
	}
	if errs[2] == nil {
		t.Errorf("a folder that does not exist has status %+v", sts[2])
	}
	for _, st := range sts {
		if st.Unchanged {
			t.Errorf("Unchanged set without a cursor")
		}
	}
}

// Quota reads the mailbox's limit and adds up what is used; without a
// quota it says it does not know. The largest message is a feature.
func TestQuotaAndLimits(t *testing.T) {
	s := server(t, nil, func(s *ewsserver.Server) {
		if err := s.AddUser("full@example.com", ewsserver.UserOptions{Password: pw, QuotaBytes: 10 << 20, MaxMessageBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	})
	c := open(t, s, "")
	if _, ok, err := c.Quota(context.Background()); ok || err != nil {
		t.Errorf("mailbox without quota: ok %v err %v", ok, err)
	}
	mb := s.Mailbox("full@example.com")
	if _, err := mb.AddItem(mb.DistinguishedFolderID("inbox"), ewsserver.SeedItem{MIME: msg(1, "")}); err != nil {
		t.Fatal(err)
	}
	cf, err := Open(context.Background(), endpoint(t, s, ""), options(s, "full@example.com", pw))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	q, ok, err := cf.Quota(context.Background())
	if err != nil || !ok || q.Limit != 10<<20 || q.Used != mb.SizeBytes() {
		t.Errorf("quota %+v ok %v err %v; want limit %d used %d", q, ok, err, 10<<20, mb.SizeBytes())
	}
	if got := cf.Features().MaxMessageSize; got != 1<<20 {
		t.Errorf("MaxMessageSize %d", got)
	}
	feat := connector.FeaturesOf(cf)
	if !feat.SetFlags || !feat.Delete || !feat.Quota || !feat.Status || feat.Warm || !feat.ReportsRemovals || !feat.CheapChanges || !feat.AppendIDs || feat.Keywords || feat.ByteExact {
		t.Errorf("features %+v", feat)
	}
}
