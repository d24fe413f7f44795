package mbox

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

func open(t *testing.T, path string, role connector.Role) *Conn {
	t.Helper()
	r, err := connector.NewRegistry(Backend())
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := r.Parse("mbox:" + path)
	if err != nil {
		t.Fatalf("Parse(%q): %v", path, err)
	}
	var c connector.Conn
	if role == connector.RoleSource {
		c, err = r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{})
	} else {
		c, err = r.OpenDestination(filetest.Ctx(t), e, connector.OpenOptions{})
	}
	if err != nil {
		t.Fatalf("open %q: %v", path, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c.(*Conn)
}

var date = time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)

// bodies are the messages that mbox quoting and splitting get wrong:
// "From " and quoted ">From " lines at every depth, a message without a
// final newline, one ending in empty lines, CRLF and bare LF, a lone CR,
// binary bytes, and a header-only message.
func bodies() [][]byte {
	return [][]byte{
		filetest.Message(1, ""),
		filetest.Message(2, "From me\r\n>From you\r\n>>From them\r\n>>>>>>>From deep\r\nFrom\r\n>From\r\n"),
		[]byte("Subject: lf\n\nFrom a@b Mon Jan  1 00:00:00 2001\n\nFrom b@c Tue Jan  2 00:00:00 2001\nSubject: looks like a header\n"),
		[]byte("Subject: no final newline\r\n\r\nlast line"),
		[]byte("Subject: ends in empty lines\r\n\r\nbody\r\n\r\n\r\n"),
		[]byte("Subject: lone CR\r\n\r\nends in CR\r"),
		append([]byte("Subject: binary\r\n\r\n"), 0, 1, 0xff, '\n', 'F', 'r', 'o', 'm', ' ', 0xfe, '\r', '\n'),
		[]byte("Subject: header only\r\n"),
		[]byte("From: x\r\n\r\n" + strings.Repeat(">", 70000) + "From a very long quoted line\r\n"),
		{},
	}
}

var flagSets = [][]string{
	nil,
	{mail.FlagSeen},
	{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged},
	{mail.FlagDraft, "$Forwarded", "Work"},
	{mail.FlagDeleted, "$Label1"},
}

// TestRoundTripTree writes every hostile folder name into a tree and
// every awkward body into each, and reads them back through a source:
// same paths, bytes, flags, dates, and IDs equal to Append's.
func TestRoundTripTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backup")
	dst := open(t, dir, connector.RoleDestination)
	type want struct {
		raw   []byte
		flags []string
	}
	wants := map[string]map[connector.ID]want{}
	for fi, p := range append(filetest.HostileNames(), mail.Path{"INBOX"}) {
		f, err := dst.CreateFolder(filetest.Ctx(t), p, mail.RoleNone)
		if err != nil {
			t.Fatalf("CreateFolder(%q): %v", p, err)
		}
		if _, err := dst.CreateFolder(filetest.Ctx(t), p, mail.RoleNone); err != nil {
			t.Fatalf("CreateFolder(%q) again: %v", p, err)
		}
		k := p.Canonical().Key()
		if wants[k] == nil {
			wants[k] = map[connector.ID]want{}
		}
		for i, raw := range bodies() {
			if fi > 2 && i > 2 {
				break // every body in the first folders, a few in the rest
			}
			fl := flagSets[(fi+i)%len(flagSets)]
			id := filetest.Append(t, dst, f, raw, fl, date)
			wants[k][id] = want{raw, fl}
		}
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if js, _ := filepath.Glob(filepath.Join(dir, "*", ".*journal")); len(js) > 0 {
		t.Errorf("Close left journals: %v", js)
	}
	src := open(t, dir, connector.RoleSource)
	for _, p := range append(filetest.HostileNames(), mail.Path{"INBOX"}) {
		f := filetest.Folder(t, src, p)
		msgs, _ := filetest.List(t, src, f, connector.ListOptions{Batch: 2})
		w := wants[p.Canonical().Key()]
		if len(msgs) != len(w) {
			t.Fatalf("%q: listed %d messages, want %d", p, len(msgs), len(w))
		}
		got, errs := filetest.Fetch(t, src, f, msgs)
		for _, m := range msgs {
			ww, ok := w[m.ID]
			if !ok {
				t.Fatalf("%q: listed ID %q is not one Append returned", p, m.ID)
			}
			if errs[m.ID] != nil || !bytes.Equal(got[m.ID], ww.raw) {
				t.Errorf("%q %s: served %q, want %q (err %v)", p, m.ID, trunc(got[m.ID]), trunc(ww.raw), errs[m.ID])
			}
			if !filetest.SameFlags(m.Flags, ww.flags) {
				t.Errorf("%q %s: flags %v, want %v", p, m.ID, m.Flags, ww.flags)
			}
			if !m.InternalDate.Equal(date) || m.Size != int64(len(ww.raw)) {
				t.Errorf("%q %s: date %v size %d", p, m.ID, m.InternalDate, m.Size)
			}
			if m.Identity != filetest.Identity(ww.raw) {
				t.Errorf("%q %s: identity differs from the original's", p, m.ID)
			}
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// TestWrittenFormat pins the bytes Mailferry writes, so that other mbox
// readers see what they expect.
func TestWrittenFormat(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.mbox")
	dst := open(t, file, connector.RoleDestination)
	f, _ := dst.CreateFolder(filetest.Ctx(t), mail.Path{"Anything"}, mail.RoleNone)
	filetest.Append(t, dst, f, []byte("Subject: s\r\n\r\nFrom x\r\n>From y\r\n"), []string{mail.FlagSeen, mail.FlagAnswered, "Work"}, date)
	filetest.Append(t, dst, f, []byte("Subject: t\n\nno newline"), nil, date)
	must(t, dst.Close())
	got, _ := os.ReadFile(file)
	want := "From MAILER-DAEMON Mon Mar  4 05:06:07 2019\n" +
		"X-Mailferry-Mbox: v=1 flag-lines=3 final-newline=1\r\nStatus: RO\r\nX-Status: A\r\nX-Keywords: Work\r\n" +
		"Subject: s\r\n\r\n>From x\r\n>>From y\r\n\n" +
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2019\n" +
		"X-Mailferry-Mbox: v=1 flag-lines=1 final-newline=0\nStatus: O\n" +
		"Subject: t\n\nno newline\n\n"
	if string(got) != want {
		t.Errorf("file:\n%q\nwant:\n%q", got, want)
	}
}

// TestSingleFileTakesEveryFolder: an address naming one file is one
// folder, INBOX, and every folder written lands in it.
func TestSingleFileTakesEveryFolder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "backup.mbox")
	dst := open(t, file, connector.RoleDestination)
	if f := connector.FeaturesOf(dst); f.Folders || f.CreateFolders || f.SetFlags || f.Delete || !f.ByteExact || !f.Status {
		t.Errorf("features of a single file: %+v", f)
	}
	for i, p := range []mail.Path{{"INBOX"}, {"Archive", "2019"}} {
		f, err := dst.CreateFolder(filetest.Ctx(t), p, mail.RoleNone)
		if err != nil || !f.Path.IsInbox() {
			t.Fatalf("CreateFolder(%q) = %+v, %v", p, f, err)
		}
		filetest.Append(t, dst, f, filetest.Message(i, ""), nil, date)
	}
	src := open(t, file, connector.RoleSource)
	fs, _ := src.Folders(filetest.Ctx(t))
	if len(fs) != 1 || !fs[0].Path.IsInbox() {
		t.Fatalf("folders %v", filetest.Paths(fs))
	}
	if msgs, _ := filetest.List(t, src, fs[0], connector.ListOptions{}); len(msgs) != 2 {
		t.Errorf("listed %d messages, want 2", len(msgs))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type fixtureMsg struct {
	subject string
	flags   []string
	date    time.Time
	has     string // a substring the served bytes must hold
}

func checkFolder(t *testing.T, src *Conn, p mail.Path, want []fixtureMsg) {
	t.Helper()
	f := filetest.Folder(t, src, p)
	msgs, _ := filetest.List(t, src, f, connector.ListOptions{})
	if len(msgs) != len(want) {
		t.Fatalf("%q: %d messages, want %d", p, len(msgs), len(want))
	}
	got, errs := filetest.Fetch(t, src, f, msgs)
	for i, m := range msgs {
		w := want[i]
		if m.Headers.Subject != w.subject || !filetest.SameFlags(m.Flags, w.flags) || !m.InternalDate.Equal(w.date) {
			t.Errorf("%q #%d: subject %q flags %v date %v; want %q %v %v", p, i, m.Headers.Subject, m.Flags, m.InternalDate, w.subject, w.flags, w.date)
		}
		if errs[m.ID] != nil || !bytes.Contains(got[m.ID], []byte(w.has)) || int64(len(got[m.ID])) != m.Size {
			t.Errorf("%q #%d: served %q (err %v), want it to hold %q", p, i, got[m.ID], errs[m.ID], w.has)
		}
	}
}

// TestThunderbirdProfile reads a Thunderbird Local Folders directory:
// Inbox with Inbox.sbd/, .msf indexes and other files beside, flags in
// X-Mozilla-Status and X-Mozilla-Keys, "From - " separators, and an
// unquoted "From " body line that the lenient split keeps in its message.
func TestThunderbirdProfile(t *testing.T) {
	src := open(t, "testdata/thunderbird", connector.RoleSource)
	fs, err := src.Folders(filetest.Ctx(t))
	must(t, err)
	if got, want := filetest.Paths(fs), []string{"INBOX", "INBOX/Work", "Sent", "Trash"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
	d := func(day, h int) time.Time { return time.Date(2018, 1, day, h, 0, 0, 0, time.UTC) }
	checkFolder(t, src, mail.Path{"INBOX"}, []fixtureMsg{
		{"read one", []string{mail.FlagSeen, "$label1", "work"}, d(1, 10), "Hello.\n\nFrom the desk of A: this line starts with From but is no separator.\n"},
		{"replied flagged forwarded", []string{mail.FlagAnswered, mail.FlagFlagged, "$Forwarded"}, d(2, 11), "X-Mozilla-Status: 1006\n"},
	})
	checkFolder(t, src, mail.Path{"INBOX", "Work"}, []fixtureMsg{{"work", nil, d(3, 12), "work body\n"}})
	checkFolder(t, src, mail.Path{"Sent"}, []fixtureMsg{{"sent", []string{mail.FlagSeen}, d(4, 13), "sent body\n"}})
	if f := filetest.Folder(t, src, mail.Path{"Sent"}); f.Role != mail.RoleSent {
		t.Errorf("Sent role %q", f.Role)
	}
	checkFolder(t, src, mail.Path{"Trash"}, nil)
}

// TestAppleMailExport reads Apple Mail's Name.mbox/mbox packages,
// nested, with their table_of_contents and Info.plist beside.
func TestAppleMailExport(t *testing.T) {
	src := open(t, "testdata/apple", connector.RoleSource)
	fs, err := src.Folders(filetest.Ctx(t))
	must(t, err)
	if got, want := filetest.Paths(fs), []string{"Archive", "Archive/2019", "INBOX"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
	checkFolder(t, src, mail.Path{"INBOX"}, []fixtureMsg{{"apple inbox", []string{mail.FlagSeen}, time.Date(2018, 2, 2, 9, 8, 7, 0, time.UTC), "apple body\nFrom quoted in mboxrd\n"}})
	checkFolder(t, src, mail.Path{"Archive"}, nil)
	checkFolder(t, src, mail.Path{"Archive", "2019"}, []fixtureMsg{{"archived", nil, time.Date(2018, 2, 3, 10, 11, 12, 0, time.UTC), "archived body\n"}})
}

// TestMuttFlags: Status, X-Status and X-Keywords written by mutt or
// Dovecot become flags, and stay in the served bytes (they are part of
// the message as another program stored it).
func TestMuttFlags(t *testing.T) {
	src := open(t, "testdata/mutt.mbox", connector.RoleSource)
	checkFolder(t, src, mail.Path{"INBOX"}, []fixtureMsg{
		{"mutt", []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, "$Forwarded", "Work"}, time.Date(2018, 3, 4, 5, 6, 7, 0, time.UTC), "Status: RO\nX-Status: AF\n"},
		{"crlf", []string{mail.FlagDraft}, time.Date(2018, 3, 5, 3, 6, 7, 0, time.UTC), "crlf body\r\n"},
	})
}

// TestCorruptFile: bytes before the first "From " line, a separator
// without a date, and a message cut short are listed with IDs and fail
// in Fetch with the file and byte offset; the good messages are copied.
func TestCorruptFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.mbox")
	good1 := "From a@b Mon Jan  1 00:00:00 2001\nSubject: good one\n\nok\n\n"
	junk := "Subject: no From line\n\nlost\n\n"
	bad := "From someone on a bad day\nSubject: bad From line\n\nbody\n\n"
	good2 := "From a@b Tue Jan  2 00:00:00 2001\nSubject: good two\n\nok\n\n"
	cut := "From a@b Wed Jan  3 00:00:00 2001\nSubject: cut\n\nthe disk filled up in the mid"
	must(t, os.WriteFile(file, []byte(junk+good1+bad+good2+cut), 0o644))
	src := open(t, file, connector.RoleSource)
	f := filetest.Folder(t, src, mail.Path{"INBOX"})
	msgs, _ := filetest.List(t, src, f, connector.ListOptions{})
	if len(msgs) != 5 {
		t.Fatalf("listed %d messages, want 5: %v", len(msgs), msgs)
	}
	got, errs := filetest.Fetch(t, src, f, msgs)
	if len(got) != 2 || string(got[msgs[1].ID]) != "Subject: good one\n\nok\n" || string(got[msgs[3].ID]) != "Subject: good two\n\nok\n" {
		t.Errorf("copied %q", got)
	}
	offsets := []int{0, len(junk + good1), len(junk + good1 + bad + good2)}
	for i, k := range []int{0, 2, 4} {
		err := errs[msgs[k].ID]
		want := file + " at byte " + itoa(offsets[i])
		if connector.KindOf(err) != connector.KindItem || err == nil || !strings.Contains(err.Error(), want) || connector.HintOf(err) == "" {
			t.Errorf("message %d: %v (hint %q), want a KindItem error naming %q with a hint", k, err, connector.HintOf(err), want)
		}
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// TestUnreadableFile: a folder file that cannot be opened fails its List
// with the file named; the other folders list.
func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Good"), []byte("From a@b Mon Jan  1 00:00:00 2001\nSubject: g\n\ng\n"), 0o644))
	must(t, os.Symlink("Loop.mbox", filepath.Join(dir, "Loop.mbox")))
	outside := filepath.Join(t.TempDir(), "secret.mbox")
	must(t, os.WriteFile(outside, []byte("From a@b Mon Jan  1 00:00:00 2001\nSubject: s\n\ns\n"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "Out.mbox")))
	if os.Geteuid() != 0 {
		must(t, os.WriteFile(filepath.Join(dir, "Locked.mbox"), []byte("From a@b Mon Jan  1 00:00:00 2001\n\n"), 0o000))
	}
	src := open(t, dir, connector.RoleSource)
	fs, err := src.Folders(filetest.Ctx(t))
	must(t, err)
	for _, f := range fs {
		_, err := src.List(filetest.Ctx(t), f, connector.ListOptions{}, func([]connector.Message) error { return nil })
		switch f.Path.String() {
		case "Good":
			must(t, err)
		case "Loop", "Locked", "Out":
			if connector.KindOf(err) != connector.KindItem || !strings.Contains(err.Error(), filepath.Join(dir, f.Path[0]+".mbox")) {
				t.Errorf("List(%s): %v, want a KindItem error naming the file", f.Path, err)
			}
			if f.Path[0] == "Out" && !errors.Is(err, localfile.ErrOutsideRoot) {
				t.Errorf("List(Out): %v, want the link out of the tree refused", err)
			}
		default:
			t.Errorf("unexpected folder %q", f.Path)
		}
	}
	if len(fs) < 3 {
		t.Errorf("folders %v: the unreadable file must be listed so that its failure is reported", filetest.Paths(fs))
	}
}

// TestCrashDuringAppend: bytes of an append that never returned are
// invisible to readers and cut off when a writer opens the file again;
// the message sent again is stored once.
func TestCrashDuringAppend(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.mbox")
	dst := open(t, file, connector.RoleDestination)
	inbox := filetest.Folder(t, dst, mail.Path{"INBOX"})
	filetest.Append(t, dst, inbox, filetest.Message(1, ""), nil, date)
	// The second append writes its bytes; the process dies before Wait
	// (no fsync, no journal update), half way through a message.
	w, err := dst.writerFor(file)
	must(t, err)
	half := append([]byte(formatFromLine(date)), filetest.Message(2, "")[:40]...)
	_, err = w.f.WriteAt(half, w.size)
	must(t, err)
	w.release() // killed: the lock goes with the process, the journal stays
	dst.mu.Lock()
	delete(dst.writers, file)
	dst.mu.Unlock()

	src := open(t, file, connector.RoleSource)
	msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
	if len(msgs) != 1 {
		t.Fatalf("a reader saw %d messages, want only the durable one", len(msgs))
	}
	again := open(t, file, connector.RoleDestination)
	filetest.Append(t, again, inbox, filetest.Message(2, ""), nil, date)
	must(t, again.Close())
	msgs, _ = filetest.List(t, src, inbox, connector.ListOptions{})
	got, errs := filetest.Fetch(t, src, inbox, msgs)
	if len(msgs) != 2 || len(errs) != 0 || !bytes.Equal(got[msgs[1].ID], filetest.Message(2, "")) {
		t.Fatalf("after recovery: %d messages, errors %v", len(msgs), errs)
	}
	if _, err := os.Stat(journalOf(file)); err == nil {
		t.Error("the journal outlived Close")
	}
}

// TestLockedByAnother: a second writer on the same file is refused with
// a clear error instead of interleaving messages.
func TestLockedByAnother(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.mbox")
	a := open(t, file, connector.RoleDestination)
	b := open(t, file, connector.RoleDestination)
	inbox := filetest.Folder(t, a, mail.Path{"INBOX"})
	filetest.Append(t, a, inbox, filetest.Message(1, ""), nil, date)
	raw := filetest.Message(2, "")
	_, err := b.Append(filetest.Ctx(t), inbox, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err == nil || !strings.Contains(err.Error(), "locked") || connector.HintOf(err) == "" {
		t.Errorf("second writer: %v", err)
	}
}

// TestDeltaCursor: after appends, List with the cursor lists only the
// new messages; after the file is rewritten it lists all with Reset.
// Statuses says Unchanged only for a settled cursor of an untouched file.
func TestDeltaCursor(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.mbox")
	c := open(t, file, connector.RoleDestination)
	later := time.Now().Add(3 * time.Second)
	c.now = func() time.Time { return later }
	inbox := filetest.Folder(t, c, mail.Path{"INBOX"})
	filetest.Append(t, c, inbox, filetest.Message(1, ""), nil, date)
	first, l := filetest.List(t, c, inbox, connector.ListOptions{})
	sts, errs := c.Statuses(filetest.Ctx(t), []connector.Folder{inbox}, []connector.Cursor{l.Cursor})
	if errs[0] != nil || !sts[0].Unchanged || sts[0].Messages != 1 {
		t.Errorf("Statuses of an untouched file: %+v %v", sts[0], errs[0])
	}
	id2 := filetest.Append(t, c, inbox, filetest.Message(2, ""), nil, date)
	if sts, _ := c.Statuses(filetest.Ctx(t), []connector.Folder{inbox}, []connector.Cursor{l.Cursor}); sts[0].Unchanged || sts[0].Messages != 2 {
		t.Errorf("Statuses after an append: %+v", sts[0])
	}
	delta, l2 := filetest.List(t, c, inbox, connector.ListOptions{Since: l.Cursor, Changes: true})
	if l2.Reset || len(delta) != 1 || delta[0].ID != id2 || delta[0].Change != connector.ChangeNew || l2.Status.Messages != 2 {
		t.Errorf("delta listing: reset %v, %+v, status %+v", l2.Reset, delta, l2.Status)
	}
	all, _ := filetest.List(t, c, inbox, connector.ListOptions{Since: l.Cursor, AllOld: true})
	if len(all) != 2 || all[0].Change != connector.ChangeFlags || all[0].ID != first[0].ID || all[1].Change != connector.ChangeNew {
		t.Errorf("AllOld listing: %+v", all)
	}
	must(t, c.Close())
	// Another program rewrites the file (mutt saving a changed Status).
	data, _ := os.ReadFile(file)
	must(t, os.WriteFile(file, bytes.Replace(data, []byte("Status: O"), []byte("Status: RO"), 1), 0o644))
	src := open(t, file, connector.RoleSource)
	re, l3 := filetest.List(t, src, inbox, connector.ListOptions{Since: l2.Cursor})
	if !l3.Reset || len(re) != 2 {
		t.Errorf("after a rewrite: reset %v, %d messages", l3.Reset, len(re))
	}
}

// TestLargeMessageMemory appends and fetches a 40 MB message: the heap
// must not grow by anything near its size.
func TestLargeMessageMemory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "big.mbox")
	c := open(t, file, connector.RoleDestination)
	inbox := filetest.Folder(t, c, mail.Path{"INBOX"})
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
