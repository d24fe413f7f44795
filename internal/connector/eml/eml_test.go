package eml

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile/filetest"
	"github.com/mailferry/mailferry/internal/mail"
)

func open(t *testing.T, path string) *Conn {
	t.Helper()
	r, err := connector.NewRegistry(Backend())
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := r.Parse("eml:" + path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{})
	if err != nil {
		t.Fatalf("open %q: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

var mtime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// copyTree copies testdata/tree with every mtime set to mtime.
func copyTree(t *testing.T) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "tree")
	must(t, filepath.Walk("testdata/tree", func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/tree", p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(dst, data, 0o644)
		}
		if err == nil {
			err = os.Chtimes(dst, mtime, mtime)
		}
		return err
	}))
	return to
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTree: root files and a top-level Inbox/ are INBOX, directories are
// folders, other files are not messages; bytes are served as stored and
// INTERNALDATE is the newest Received:, else Date:, else the mtime.
func TestTree(t *testing.T) {
	dir := copyTree(t)
	src := open(t, dir)
	fs, err := src.Folders(filetest.Ctx(t))
	must(t, err)
	if got, want := filetest.Paths(fs), []string{"INBOX", "INBOX/Sub", "Work (noselect)", "Work/2019", "Ärger & Co"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
	if f := connector.FeaturesOf(src); f.CheapChanges || !f.Status || !f.Folders {
		t.Errorf("features %+v", f)
	}
	inbox := filetest.Folder(t, src, mail.Path{"INBOX"})
	msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{Batch: 1})
	wantDates := map[connector.ID]time.Time{
		"Inbox/c.eml": mtime,
		"a.eml":       time.Date(2019, 3, 5, 10, 0, 0, 0, time.UTC),
		"b.EML":       time.Date(2019, 3, 6, 7, 0, 0, 0, time.UTC),
	}
	if len(msgs) != len(wantDates) {
		t.Fatalf("INBOX: %d messages, want %d", len(msgs), len(wantDates))
	}
	got, errs := filetest.Fetch(t, src, inbox, msgs)
	for _, m := range msgs {
		want, _ := os.ReadFile(filepath.Join(dir, string(m.ID)))
		if errs[m.ID] != nil || string(got[m.ID]) != string(want) {
			t.Errorf("%s: served %q (err %v)", m.ID, got[m.ID], errs[m.ID])
		}
		if !m.InternalDate.Equal(wantDates[m.ID]) || m.Flags != nil || m.Headers.MessageID == "" {
			t.Errorf("%s: date %v (want %v) flags %v headers %+v", m.ID, m.InternalDate, wantDates[m.ID], m.Flags, m.Headers)
		}
	}
	// A message of another folder is not fetched through this one.
	_, errs = filetest.Fetch(t, src, inbox, []connector.Message{{ID: "Work/2019/e.eml"}, {ID: "../tree/a.eml"}})
	if len(errs) != 2 {
		t.Errorf("IDs outside the folder: %v", errs)
	}
	sub, _ := filetest.List(t, src, filetest.Folder(t, src, mail.Path{"Work", "2019"}), connector.ListOptions{})
	if len(sub) != 1 || sub[0].ID != "Work/2019/e.eml" {
		t.Errorf("Work/2019: %+v", sub)
	}
}

// TestUnreadable: files that cannot be read are listed and fail in
// Fetch with their path; the others are copied.
func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "good.eml"), []byte("Subject: g\r\n\r\ng\r\n"), 0o644))
	outside := filepath.Join(t.TempDir(), "secret.eml")
	must(t, os.WriteFile(outside, []byte("Subject: s\r\n\r\ns\r\n"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "link.eml")))
	must(t, os.Symlink("loop.eml", filepath.Join(dir, "loop.eml")))
	want := map[connector.ID]string{"link.eml": "outside", "loop.eml": "loop.eml"}
	if os.Geteuid() != 0 {
		must(t, os.WriteFile(filepath.Join(dir, "locked.eml"), []byte("x"), 0o000))
		want["locked.eml"] = "permission"
	}
	src := open(t, dir)
	inbox := filetest.Folder(t, src, mail.Path{"INBOX"})
	msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
	got, errs := filetest.Fetch(t, src, inbox, msgs)
	if len(got) != 1 || got["good.eml"] == nil {
		t.Errorf("copied %v", got)
	}
	for id, reason := range want {
		err := errs[id]
		if connector.KindOf(err) != connector.KindItem || err == nil || !strings.Contains(err.Error(), filepath.Join(dir, string(id))) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want a KindItem error naming the file and %q", id, err, reason)
		}
	}
}

// TestCursor: a settled cursor says Unchanged; a new, removed or
// rewritten file undoes it.
func TestCursor(t *testing.T) {
	dir := copyTree(t)
	src := open(t, dir)
	src.now = func() time.Time { return time.Now().Add(3 * time.Second) }
	inbox := filetest.Folder(t, src, mail.Path{"INBOX"})
	_, l := filetest.List(t, src, inbox, connector.ListOptions{})
	check := func(what string, want bool) {
		t.Helper()
		sts, errs := src.Statuses(filetest.Ctx(t), []connector.Folder{inbox}, []connector.Cursor{l.Cursor})
		if errs[0] != nil || sts[0].Unchanged != want {
			t.Errorf("%s: Unchanged %v (%v), want %v", what, sts[0].Unchanged, errs[0], want)
		}
		msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{Since: l.Cursor})
		if want != (len(msgs) == 0) {
			t.Errorf("%s: List(Since) gave %d messages", what, len(msgs))
		}
	}
	check("untouched", true)
	must(t, os.WriteFile(filepath.Join(dir, "a.eml"), []byte("Subject: rewritten\r\n\r\n"), 0o644))
	check("a file rewritten", false)
	_, l = filetest.List(t, src, inbox, connector.ListOptions{})
	must(t, os.WriteFile(filepath.Join(dir, "new.eml"), []byte("Subject: new\r\n\r\n"), 0o644))
	check("a file added", false)
}

// TestSingleFile: an address naming one .eml file is INBOX with it.
func TestSingleFile(t *testing.T) {
	dir := copyTree(t)
	src := open(t, filepath.Join(dir, "a.eml"))
	fs, _ := src.Folders(filetest.Ctx(t))
	if len(fs) != 1 || !fs[0].Path.IsInbox() {
		t.Fatalf("folders %v", filetest.Paths(fs))
	}
	msgs, _ := filetest.List(t, src, fs[0], connector.ListOptions{})
	if len(msgs) != 1 || msgs[0].ID != "a.eml" {
		t.Fatalf("%+v", msgs)
	}
}

// TestSourceOnly: eml cannot be a destination, and a missing tree is a
// configuration error.
func TestSourceOnly(t *testing.T) {
	r, _ := connector.NewRegistry(Backend())
	e, _, err := r.Parse("eml:" + t.TempDir())
	must(t, err)
	if _, err := r.OpenDestination(filetest.Ctx(t), e, connector.OpenOptions{}); err == nil {
		t.Error("eml opened as a destination")
	}
	e, _, _ = r.Parse("eml:" + filepath.Join(t.TempDir(), "missing"))
	if _, err := r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{}); connector.KindOf(err) != connector.KindConfig {
		t.Errorf("missing tree: %v", err)
	}
}

// TestLargeMessageMemory: a 40 MB file is listed and served without
// holding it in memory.
func TestLargeMessageMemory(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.eml"))
	must(t, err)
	const size = 40 << 20
	_, err = io.Copy(f, filetest.NewBigBody(size))
	must(t, err)
	must(t, f.Close())
	src := open(t, dir)
	inbox := filetest.Folder(t, src, mail.Path{"INBOX"})
	growth := filetest.HeapGrowth(func() {
		msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
		must(t, src.Fetch(filetest.Ctx(t), inbox, msgs, func(b connector.Body, err error) error {
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, b.Reader)
			if n != size {
				t.Errorf("served %d bytes, want %d", n, size)
			}
			return err
		}))
	})
	t.Logf("heap grew by %.1f MB around a %d MB message", float64(growth)/(1<<20), size>>20)
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MB", growth>>20)
	}
}
