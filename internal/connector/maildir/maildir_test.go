package maildir

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile"
	"github.com/mailferry/mailferry/internal/connector/localfile/filetest"
	"github.com/mailferry/mailferry/internal/mail"
)

func open(t *testing.T, raw string, role connector.Role) *Conn {
	t.Helper()
	r, err := connector.NewRegistry(Backend())
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := r.Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%q): %v", raw, err)
	}
	var c connector.Conn
	if role == connector.RoleSource {
		c, err = r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{})
	} else {
		c, err = r.OpenDestination(filetest.Ctx(t), e, connector.OpenOptions{})
	}
	if err != nil {
		t.Fatalf("open %q: %v", raw, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

var date = time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)

// TestRoundTripHostileNames writes every hostile folder name in both
// layouts, appends messages with every flag kind, and reads them back
// through a second connector opened as a source: same folder paths,
// bytes, flags, dates and IDs.
func TestRoundTripHostileNames(t *testing.T) {
	for _, layout := range []string{layoutMaildirPP, layoutFS} {
		t.Run(layout, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Maildir")
			dst := open(t, "maildir:"+dir+"?layout="+layout, connector.RoleDestination)
			flags := []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, mail.FlagDraft, mail.FlagDeleted, "$Forwarded", "Work", "$Label1"}
			type want struct {
				raw   []byte
				flags []string
			}
			wants := map[string]map[connector.ID]want{}
			for i, p := range append(filetest.HostileNames(), mail.Path{"INBOX"}) {
				f, err := dst.CreateFolder(filetest.Ctx(t), p, mail.RoleNone)
				if err != nil {
					t.Fatalf("CreateFolder(%q): %v", p, err)
				}
				if _, err := dst.CreateFolder(filetest.Ctx(t), p, mail.RoleNone); err != nil {
					t.Fatalf("CreateFolder(%q) again: %v", p, err)
				}
				// Bare LF, CRLF, a "From " line and no final newline: all
				// stored as given.
				raw := append(filetest.Message(i, "From the start\n>From quoted\r\nno newline at the end"), 0, 0xff)
				fl := flags[:i%len(flags)+1]
				id := filetest.Append(t, dst, f, raw, fl, date)
				if id == "" {
					t.Fatal("Append gave no ID")
				}
				if wants[p.Canonical().Key()] == nil {
					wants[p.Canonical().Key()] = map[connector.ID]want{}
				}
				wants[p.Canonical().Key()][id] = want{raw, fl}
			}
			if dst.layout != layout {
				t.Fatalf("layout %q, want %q", dst.layout, layout)
			}
			src := open(t, "maildir:"+dir, connector.RoleSource)
			if src.layout != layout {
				t.Errorf("a source reopened on the tree detected layout %q, want %q", src.layout, layout)
			}
			for _, p := range filetest.HostileNames() {
				f := filetest.Folder(t, src, p)
				if f.NoSelect {
					t.Errorf("%q is NoSelect", p)
				}
				msgs, _ := filetest.List(t, src, f, connector.ListOptions{})
				w := wants[p.Canonical().Key()]
				if len(msgs) != len(w) {
					t.Fatalf("%q: listed %d messages, want %d", p, len(msgs), len(w))
				}
				bodies, errs := filetest.Fetch(t, src, f, msgs)
				for _, m := range msgs {
					ww, ok := w[m.ID]
					if !ok {
						t.Fatalf("%q: unknown ID %q", p, m.ID)
					}
					if errs[m.ID] != nil || !bytes.Equal(bodies[m.ID], ww.raw) {
						t.Errorf("%q %s: bytes differ (err %v)", p, m.ID, errs[m.ID])
					}
					if !filetest.SameFlags(m.Flags, ww.flags) {
						t.Errorf("%q %s: flags %v, want %v", p, m.ID, m.Flags, ww.flags)
					}
					if !m.InternalDate.Equal(date) || m.Size != int64(len(ww.raw)) {
						t.Errorf("%q %s: date %v size %d", p, m.ID, m.InternalDate, m.Size)
					}
					if m.Headers.Subject == "" || m.Identity != filetest.Identity(ww.raw) {
						t.Errorf("%q %s: headers %+v", p, m.ID, m.Headers)
					}
				}
			}
		})
	}
}

// TestDovecotFixture reads a maildir as Dovecot leaves it: Maildir++
// folders in modified UTF-7, dovecot-keywords, ",S=" and ",W=" in names,
// Dovecot's ",…" fields after the flags, a message still in new/, and
// Dovecot's own files beside the maildir directories.
func TestDovecotFixture(t *testing.T) {
	dir := copyFixture(t, "testdata/dovecot")
	src := open(t, "maildir:"+dir, connector.RoleSource)
	fs, err := src.Folders(filetest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filetest.Paths(fs), []string{"Archive (noselect)", "Archive/2019", "INBOX", "Sent", "Ärger"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
	if f := filetest.Folder(t, src, mail.Path{"Sent"}); f.Role != mail.RoleSent || f.RoleFromServer {
		t.Errorf("Sent: role %q from server %v", f.Role, f.RoleFromServer)
	}
	inbox := filetest.Folder(t, src, mail.Path{"INBOX"})
	msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
	got := map[connector.ID][]string{}
	for _, m := range msgs {
		got[m.ID] = m.Flags
	}
	want := map[connector.ID][]string{
		"1491941793.M41850P8566.mx1,S=181,W=189": {mail.FlagSeen, mail.FlagDeleted, "$NonJunk", "Work"},
		"1491941794.M1P2.mx1,S=118":              {mail.FlagAnswered, mail.FlagFlagged, "$Forwarded", "$Junk"},
		"1491941795.M2P3.mx1":                    nil,
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for id, fl := range want {
		if !filetest.SameFlags(got[id], fl) {
			t.Errorf("%s: flags %v, want %v", id, got[id], fl)
		}
	}
	bodies, errs := filetest.Fetch(t, src, inbox, msgs)
	for _, m := range msgs {
		if errs[m.ID] != nil {
			t.Errorf("%s: %v", m.ID, errs[m.ID])
		}
		if !m.InternalDate.Equal(fixtureDate) {
			t.Errorf("%s: INTERNALDATE %v, want the mtime %v", m.ID, m.InternalDate, fixtureDate)
		}
		if m.Headers.MessageID == "" {
			t.Errorf("%s: no Message-ID read", m.ID)
		}
	}
	if !bytes.Contains(bodies["1491941793.M41850P8566.mx1,S=181,W=189"], []byte("bare LF line ends\n")) {
		t.Error("the message with bare LF line ends was not served as stored")
	}
	// SetFlags keeps Dovecot's ",…" fields and moves new/ messages to cur/.
	dst := open(t, "maildir:"+dir, connector.RoleDestination)
	if err := dst.SetFlags(filetest.Ctx(t), inbox, []connector.ID{"1491941793.M41850P8566.mx1,S=181,W=189", "1491941795.M2P3.mx1", "gone"}, []string{mail.FlagSeen, "$Junk"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cur/1491941793.M41850P8566.mx1,S=181,W=189:2,Sb,X=dovecot", "cur/1491941795.M2P3.mx1:2,Sb"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("after SetFlags: %v", err)
		}
	}
	if kw, _ := os.ReadFile(filepath.Join(dir, keywordsFile)); !bytes.Equal(kw, []byte("0 $NonJunk\n1 $Junk\n2 Work\n")) {
		t.Errorf("dovecot-keywords changed without need: %q", kw)
	}
}

var fixtureDate = time.Date(2017, 4, 11, 20, 16, 33, 0, time.UTC)

// copyFixture copies a testdata tree (git keeps no mtimes: they are set
// to fixtureDate).
func copyFixture(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(from))
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if fi.Name() == ".keep" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
		return os.Chtimes(dst, fixtureDate, fixtureDate)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// TestFSLayoutFixture reads a Dovecot LAYOUT=fs tree, with a parent that
// holds only subfolders.
func TestFSLayoutFixture(t *testing.T) {
	dir := copyFixture(t, "testdata/fslayout")
	src := open(t, "maildir:"+dir, connector.RoleSource)
	fs, err := src.Folders(filetest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filetest.Paths(fs), []string{"INBOX", "Lists (noselect)", "Lists/go.dev", "Lists/go.dev/nuts", "Ärger"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
	if src.layout != layoutFS {
		t.Errorf("layout %q, want fs", src.layout)
	}
	msgs, _ := filetest.List(t, src, filetest.Folder(t, src, mail.Path{"Lists", "go.dev", "nuts"}), connector.ListOptions{})
	if len(msgs) != 1 || msgs[0].Headers.Subject != "nuts" {
		t.Errorf("Lists/go.dev/nuts: %+v", msgs)
	}
}

// TestCorruptFiles: unreadable entries are listed with their IDs, the
// readable ones are copied, and Fetch names the bad file.
func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	dst := open(t, "maildir:"+dir, connector.RoleDestination)
	inbox, _ := dst.CreateFolder(filetest.Ctx(t), mail.Path{"INBOX"}, mail.RoleNone)
	good := filetest.Append(t, dst, inbox, filetest.Message(1, ""), nil, date)
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, filetest.Message(2, ""), 0o644)
	cur := filepath.Join(dir, "cur")
	must(t, os.Symlink(outside, filepath.Join(cur, "100.outside:2,S")))
	must(t, os.Symlink("200.loop:2,", filepath.Join(cur, "200.loop:2,")))
	must(t, os.Mkdir(filepath.Join(cur, "300.dir:2,"), 0o755))
	must(t, os.WriteFile(filepath.Join(cur, "400.cut,S=9999:2,S"), filetest.Message(4, ""), 0o644))
	var unreadable connector.ID
	if os.Geteuid() != 0 { // root reads files of mode 000
		must(t, os.WriteFile(filepath.Join(cur, "500.perm:2,"), filetest.Message(5, ""), 0o000))
		unreadable = "500.perm"
	}
	src := open(t, "maildir:"+dir, connector.RoleSource)
	msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
	bodies, errs := filetest.Fetch(t, src, inbox, msgs)
	if len(bodies) != 1 || bodies[good] == nil {
		t.Errorf("copied %d messages, want only the good one", len(bodies))
	}
	for id, reason := range map[connector.ID]string{"100.outside": "outside", "200.loop": "", "300.dir": "not a regular file", "400.cut,S=9999": "S=9999", unreadable: "permission"} {
		if id == "" {
			continue
		}
		err := errs[id]
		if err == nil {
			t.Errorf("%s: no error (listed: %v)", id, ids(msgs))
			continue
		}
		if connector.KindOf(err) != connector.KindItem || !strings.Contains(err.Error(), filepath.Join(cur, string(id))) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: error %q (kind %v) should be KindItem naming the file and %q", id, err, connector.KindOf(err), reason)
		}
	}
	if e := errs["400.cut,S=9999"]; e != nil && !strings.Contains(e.Error(), "at byte") {
		t.Errorf("a cut file's error should give the byte offset: %v", e)
	}
	// A folder directory that must not be read fails its List with the
	// reason.
	sub, _ := dst.CreateFolder(filetest.Ctx(t), mail.Path{"Away"}, mail.RoleNone)
	os.RemoveAll(filepath.Join(dir, ".Away", "cur"))
	must(t, os.Symlink(t.TempDir(), filepath.Join(dir, ".Away", "cur")))
	if _, err := src.List(filetest.Ctx(t), sub, connector.ListOptions{}, func([]connector.Message) error { return nil }); !errors.Is(err, localfile.ErrOutsideRoot) || !strings.Contains(err.Error(), ".Away") {
		t.Errorf("List of a folder whose cur/ links out of the tree: %v", err)
	}
	must(t, os.Symlink(t.TempDir(), filepath.Join(dir, ".Escape")))
	os.MkdirAll(filepath.Join(dir, ".Escape", "cur"), 0o755)
	esc := filetest.Folder(t, src, mail.Path{"Escape"})
	_, err := src.List(filetest.Ctx(t), esc, connector.ListOptions{}, func([]connector.Message) error { return nil })
	if err == nil || !errors.Is(err, errOutside()) {
		t.Errorf("List of a folder linked out of the tree: %v", err)
	}
}

func errOutside() error { return localfile.ErrOutsideRoot }

func ids(ms []connector.Message) []connector.ID {
	var out []connector.ID
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrashBetweenTmpAndRename stops an append after the message is in
// tmp/ and before the rename: no reader sees it, and a later append of
// the same message stores one copy.
func TestCrashBetweenTmpAndRename(t *testing.T) {
	dir := t.TempDir()
	dst := open(t, "maildir:"+dir, connector.RoleDestination)
	inbox, _ := dst.CreateFolder(filetest.Ctx(t), mail.Path{"INBOX"}, mail.RoleNone)
	raw := filetest.Message(1, "")
	s, err := dst.stage(dir, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: date})
	if err != nil {
		t.Fatal(err)
	}
	_ = s // the process "dies" here: no commit
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(tmp) != 1 {
		t.Fatalf("tmp/ has %d files, want the staged one", len(tmp))
	}
	src := open(t, "maildir:"+dir, connector.RoleSource)
	if msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{}); len(msgs) != 0 {
		t.Fatalf("a message not yet renamed into cur/ was listed: %v", ids(msgs))
	}
	// A body that ends early leaves nothing anywhere.
	if _, err := dst.Append(filetest.Ctx(t), inbox, connector.AppendRequest{Size: 1000, Body: bytes.NewReader(raw)}); connector.KindOf(err) != connector.KindItem {
		t.Errorf("short body: %v, want a KindItem error", err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 1 {
		t.Errorf("a failed append left %d files in tmp/", len(tmp)-1)
	}
	filetest.Append(t, dst, inbox, raw, nil, date)
	if msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{}); len(msgs) != 1 {
		t.Fatalf("after the retry %d messages, want 1", len(msgs))
	}
}

// TestCursorUnchanged: a settled cursor makes Statuses say Unchanged and
// List list nothing; any append, flag change or delete undoes it.
func TestCursorUnchanged(t *testing.T) {
	dir := t.TempDir()
	c := open(t, "maildir:"+dir, connector.RoleDestination)
	later := time.Now().Add(3 * time.Second)
	c.now = func() time.Time { return later }
	inbox, _ := c.CreateFolder(filetest.Ctx(t), mail.Path{"INBOX"}, mail.RoleNone)
	id := filetest.Append(t, c, inbox, filetest.Message(1, ""), nil, date)
	_, l := filetest.List(t, c, inbox, connector.ListOptions{})
	check := func(what string, want bool) {
		t.Helper()
		sts, errs := c.Statuses(filetest.Ctx(t), []connector.Folder{inbox}, []connector.Cursor{l.Cursor})
		if errs[0] != nil || sts[0].Unchanged != want {
			t.Errorf("%s: Unchanged %v (err %v), want %v", what, sts[0].Unchanged, errs[0], want)
		}
		msgs, _ := filetest.List(t, c, inbox, connector.ListOptions{Since: l.Cursor})
		if want && len(msgs) != 0 || !want && len(msgs) == 0 {
			t.Errorf("%s: List(Since) gave %d messages", what, len(msgs))
		}
	}
	check("untouched", true)
	c.now = time.Now // a cursor taken right after a change vouches for nothing
	_, fresh := filetest.List(t, c, inbox, connector.ListOptions{})
	if sts, _ := c.Statuses(filetest.Ctx(t), []connector.Folder{inbox}, []connector.Cursor{fresh.Cursor}); sts[0].Unchanged {
		t.Error("a cursor taken within the settle time said Unchanged")
	}
	must(t, c.SetFlags(filetest.Ctx(t), inbox, []connector.ID{id}, []string{mail.FlagSeen}))
	check("after SetFlags", false)
	c.now = func() time.Time { return later.Add(3 * time.Second) }
	_, l = filetest.List(t, c, inbox, connector.ListOptions{})
	filetest.Append(t, c, inbox, filetest.Message(2, ""), nil, date)
	check("after Append", false)
}

// TestLargeMessageMemory appends and fetches a 40 MB message: the heap
// must not grow by anything near its size.
func TestLargeMessageMemory(t *testing.T) {
	dir := t.TempDir()
	c := open(t, "maildir:"+dir, connector.RoleDestination)
	inbox, _ := c.CreateFolder(filetest.Ctx(t), mail.Path{"INBOX"}, mail.RoleNone)
	const size = 40 << 20
	growth := filetest.HeapGrowth(func() {
		pa, err := c.Append(filetest.Ctx(t), inbox, connector.AppendRequest{Size: size, Body: filetest.NewBigBody(size)})
		if err == nil {
			_, err = pa.Wait()
		}
		must(t, err)
		msgs, _ := filetest.List(t, c, inbox, connector.ListOptions{})
		must(t, c.Fetch(filetest.Ctx(t), inbox, msgs, func(b connector.Body, err error) error {
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, b.Reader)
			if n != size {
				t.Errorf("fetched %d bytes, want %d", n, size)
			}
			return err
		}))
	})
	t.Logf("heap grew by %.1f MB around a %d MB message", float64(growth)/(1<<20), size>>20)
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MB: the message was held in memory", growth>>20)
	}
}

// TestDeleteOnlyThese removes exactly the given messages.
func TestDeleteOnlyThese(t *testing.T) {
	dir := t.TempDir()
	c := open(t, "maildir:"+dir, connector.RoleDestination)
	inbox, _ := c.CreateFolder(filetest.Ctx(t), mail.Path{"INBOX"}, mail.RoleNone)
	a := filetest.Append(t, c, inbox, filetest.Message(1, ""), nil, date)
	b := filetest.Append(t, c, inbox, filetest.Message(2, ""), []string{mail.FlagSeen}, date)
	must(t, c.Delete(filetest.Ctx(t), inbox, []connector.ID{a, "nothing", "../x"}))
	msgs, _ := filetest.List(t, c, inbox, connector.ListOptions{})
	if len(msgs) != 1 || msgs[0].ID != b {
		t.Errorf("after Delete: %v, want only %s", ids(msgs), b)
	}
}

// TestAddresses covers the address forms and their errors.
func TestAddresses(t *testing.T) {
	home, _ := os.UserHomeDir()
	wd, _ := os.Getwd()
	for raw, want := range map[string]string{
		"maildir:/srv/mail/a":              "/srv/mail/a",
		"maildir:///srv/mail/a":            "/srv/mail/a",
		"maildir:rel/x":                    filepath.Join(wd, "rel/x"),
		"maildir:~/Maildir":                filepath.Join(home, "Maildir"),
		"MAILDIR:/x?layout=fs":             "/x",
		"maildir:/x/../y?layout=maildir++": "/y",
	} {
		e, err := Parse(raw)
		if err != nil || e.Path != want || e.Redacted != raw {
			t.Errorf("Parse(%q) = %q, %v; want %q", raw, e.Path, err, want)
		}
	}
	for _, raw := range []string{"maildir:", "maildir://host/x", "maildir:/x?layout=mbox", "maildir:/x?color=red"} {
		if _, err := Parse(raw); err == nil {
			t.Errorf("Parse(%q) accepted", raw)
		}
	}
	r, _ := connector.NewRegistry(Backend())
	e, _, _ := r.Parse("maildir:" + filepath.Join(t.TempDir(), "missing"))
	if _, err := r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{}); connector.KindOf(err) != connector.KindConfig {
		t.Errorf("a missing source: %v, want a KindConfig error", err)
	}
	if f := connector.FeaturesOf(open(t, "maildir:"+t.TempDir(), connector.RoleDestination)); !f.SetFlags || !f.Delete || !f.Status || !f.ByteExact || f.CheapChanges {
		t.Errorf("features %+v", f)
	}
}
