package gmailimap_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// TestCopyAndMoveAreLabelChanges checks that COPY adds the destination's
// label (with COPYUID, RFC 4315), MOVE also removes the source's, and
// COPY to Trash takes the message out of every other folder.
func TestCopyAndMoveAreLabelChanges(t *testing.T) {
	s := start(t, nil)
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("c1", "copy"), Labels: []string{`\Inbox`}})
	if err := s.CreateLabel(alice, "Work"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateLabel(alice, "Later"); err != nil {
		t.Fatal(err)
	}
	c := client(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cp, err := c.Copy(imap.UIDSetNum(1), "Work").Wait()
	if err != nil {
		t.Fatal(err)
	}
	work, _ := s.Folder(alice, "Work")
	if cp.UIDValidity != work.UIDValidity || cp.DestUIDs.String() != "1" || cp.SourceUIDs.String() != "1" {
		t.Fatalf("COPYUID %+v, Work %+v", cp, work)
	}
	info, _ := s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Inbox Work` || len(s.Messages(alice)) != 1 {
		t.Fatalf("after COPY: labels %q, %d messages", info.Labels, len(s.Messages(alice)))
	}
	// MOVE from Work to Later: Later added, Work removed, INBOX kept.
	if _, err := c.Select("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	mv, err := c.Move(imap.UIDSetNum(1), "Later").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if mv.DestUIDs.String() != "1" {
		t.Fatalf("MOVE COPYUID %+v", mv)
	}
	info, _ = s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Inbox Later` {
		t.Fatalf("after MOVE: %q", info.Labels)
	}
	// COPY into Trash hides it from everything else, All Mail included.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "[Gmail]/Trash").Wait(); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Message(alice, id)
	if len(info.Folders) != 1 || info.Folders["[Gmail]/Trash"] == 0 || strings.Join(info.Labels, " ") != `\Trash` {
		t.Fatalf("after COPY to Trash: %+v", info)
	}
	// MOVE back out of Trash restores it to INBOX.
	if _, err := c.Select("[Gmail]/Trash", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait(); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Message(alice, id)
	if info.Folders["INBOX"] == 0 || info.Folders["[Gmail]/All Mail"] == 0 || info.Folders["[Gmail]/Trash"] != 0 {
		t.Fatalf("after MOVE out of Trash: %v", info.Folders)
	}
}

// TestExpungeRemovesLabelNotMessage follows "How actions sync in IMAP":
// deleting in a label folder removes the label, deleting in Trash or Spam
// deletes for good.
func TestExpungeRemovesLabelNotMessage(t *testing.T) {
	s := start(t, &gmailimap.Options{ManualExpunge: true})
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("e1", "expunge"), Labels: []string{`\Inbox`, "Work"}})
	rc := login(t, s)
	rc.ok("SELECT Work")
	rc.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if f, _ := s.Folder(alice, "Work"); len(f.Entries) != 1 || !f.Entries[0].Deleted {
		t.Fatalf("ManualExpunge: \\Deleted must wait for EXPUNGE: %+v", f)
	}
	// \Deleted is per folder: the INBOX copy is not marked.
	if f, _ := s.Folder(alice, "INBOX"); f.Entries[0].Deleted {
		t.Fatal("\\Deleted leaked into INBOX")
	}
	u := rc.ok("EXPUNGE")
	if strings.Join(u, "|") != "* 1 EXPUNGE" {
		t.Fatalf("EXPUNGE: %q", u)
	}
	info, ok := s.Message(alice, id)
	if !ok || strings.Join(info.Labels, " ") != `\Inbox` {
		t.Fatalf("after EXPUNGE in Work the message must keep \\Inbox: %+v %v", info, ok)
	}
	// From INBOX, the last label: archived (still in All Mail).
	rc.ok("SELECT INBOX")
	rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	rc.ok("UID EXPUNGE 1")
	info, ok = s.Message(alice, id)
	if !ok || len(info.Labels) != 0 || len(info.Folders) != 1 || info.Folders["[Gmail]/All Mail"] == 0 {
		t.Fatalf("archived: %+v", info)
	}
	// From All Mail: to Trash. From Trash: gone.
	rc.ok(`SELECT "[Gmail]/All Mail"`)
	rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	rc.ok("CLOSE")
	if info, _ = s.Message(alice, id); strings.Join(info.Labels, " ") != `\Trash` {
		t.Fatalf("expunged from All Mail: %+v", info)
	}
	rc.ok(`SELECT "[Gmail]/Trash"`)
	rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	rc.ok("EXPUNGE")
	if _, ok := s.Message(alice, id); ok || len(s.Messages(alice)) != 0 {
		t.Fatalf("expunged from Trash but still stored: %+v", s.Messages(alice))
	}
}

// TestAutoExpungeAndExpungeBehavior checks Gmail's default Auto-Expunge
// (\Deleted removes the message from the folder at once) and the "last
// visible folder" setting.
func TestAutoExpungeAndExpungeBehavior(t *testing.T) {
	s := start(t, &gmailimap.Options{ExpungeBehavior: gmailimap.ExpungeTrash})
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("a1", "auto"), Labels: []string{`\Inbox`, "Work"}})
	rc := login(t, s)
	rc.ok("SELECT Work")
	u := rc.ok(`UID STORE 1 +FLAGS (\Deleted)`)
	if len(grep(u, "* 1 EXPUNGE")) != 1 {
		t.Fatalf("auto-expunge sends EXPUNGE at the end of UID STORE: %q", u)
	}
	info, _ := s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Inbox` {
		t.Fatalf("after auto-expunge in Work: %q", info.Labels)
	}
	// Seq STORE may not be followed by EXPUNGE (RFC 3501 7.4.1); NOOP
	// delivers it. INBOX was the last label: ExpungeTrash trashes it.
	rc.ok("SELECT INBOX")
	u = rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	if len(grep(u, "EXPUNGE")) != 0 {
		t.Fatalf("EXPUNGE during STORE: %q", u)
	}
	if u := rc.ok("NOOP"); strings.Join(u, "|") != "* 1 EXPUNGE" {
		t.Fatalf("NOOP: %q", u)
	}
	if info, _ = s.Message(alice, id); strings.Join(info.Labels, " ") != `\Trash` {
		t.Fatalf("ExpungeTrash: %q", info.Labels)
	}

	s2 := start(t, &gmailimap.Options{ExpungeBehavior: gmailimap.ExpungeDeleteForever})
	seed(t, s2, gmailimap.Message{Raw: rawMsg("a2", "forever"), Labels: []string{`\Inbox`}})
	rc2 := login(t, s2)
	rc2.ok("SELECT INBOX")
	rc2.ok(`STORE 1 +FLAGS (\Deleted)`)
	if n := len(s2.Messages(alice)); n != 0 {
		t.Fatalf("ExpungeDeleteForever kept %d messages", n)
	}
}

// TestAppendAddsLabel checks APPEND into a label folder: the message gets
// that label, APPENDUID names its UID there (RFC 4315), the date and
// flags are kept, and it is in All Mail too.
func TestAppendAddsLabel(t *testing.T) {
	s := start(t, nil)
	if err := s.CreateLabel(alice, "Work"); err != nil {
		t.Fatal(err)
	}
	c := client(t, s)
	raw := rawMsg("ap1", "appended")
	date := time.Date(2019, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))
	data := appendRaw(t, c, "Work", raw, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, "$Forwarded"}, Time: date})
	work, _ := s.Folder(alice, "Work")
	if data.UIDValidity != work.UIDValidity || data.UID != 1 {
		t.Fatalf("APPENDUID %+v, folder %+v", data, work)
	}
	msgs := s.Messages(alice)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !bytes.Equal(m.Raw, raw) || strings.Join(m.Labels, " ") != "Work" || strings.Join(m.Flags, " ") != `$Forwarded \Seen` ||
		!m.InternalDate.Equal(date) || m.Folders["[Gmail]/All Mail"] == 0 {
		t.Fatalf("stored %+v", m)
	}
	// APPEND to Starred flags; to All Mail archives; to Trash trashes.
	appendRaw(t, c, "[Gmail]/Starred", rawMsg("ap2", "starred"), nil)
	appendRaw(t, c, "[Gmail]/All Mail", rawMsg("ap3", "archived"), nil)
	appendRaw(t, c, "[Gmail]/Trash", rawMsg("ap4", "trash"), nil)
	msgs = s.Messages(alice)
	if strings.Join(msgs[1].Flags, " ") != `\Flagged` || len(msgs[2].Labels) != 0 || strings.Join(msgs[3].Labels, " ") != `\Trash` {
		t.Fatalf("stored %+v", msgs[1:])
	}
	// A missing folder gets TRYCREATE (RFC 3501 section 6.3.11).
	rc := login(t, s)
	rc.send("x APPEND Nope {3}")
	if l := rc.line(); l != "x NO [TRYCREATE] Folder doesn't exist. (Failure)" {
		t.Fatalf("APPEND to a missing folder: %q", l)
	}
}

// TestAppendSameMessageTwice checks the reported de-duplication: the
// same Message-ID and Date appended again into the same folder replace
// the first copy; into another folder, or with AppendDuplicates, they
// make a second message.
func TestAppendSameMessageTwice(t *testing.T) {
	s := start(t, nil)
	c := client(t, s)
	raw := rawMsg("dup", "twice")
	appendRaw(t, c, "INBOX", raw, nil)
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	second := appendRaw(t, c, "INBOX", raw, nil)
	if msgs := s.Messages(alice); len(msgs) != 1 || imap.UID(msgs[0].Folders["INBOX"]) != second.UID || second.UID != 2 {
		t.Fatalf("same folder: %+v, APPENDUID %+v", msgs, second)
	}
	// A session with INBOX selected sees the replacement.
	if u := rc.ok("NOOP"); strings.Join(u, "|") != "* 1 EXPUNGE|* 1 EXISTS" {
		t.Fatalf("NOOP: %q", u)
	}
	appendRaw(t, c, "[Gmail]/Sent Mail", raw, nil)
	if n := len(s.Messages(alice)); n != 2 {
		t.Fatalf("another folder: %d messages, want 2", n)
	}

	s2 := start(t, &gmailimap.Options{AppendDuplicates: true})
	c2 := client(t, s2)
	appendRaw(t, c2, "INBOX", raw, nil)
	appendRaw(t, c2, "INBOX", raw, nil)
	if n := len(s2.Messages(alice)); n != 2 {
		t.Fatalf("AppendDuplicates: %d messages, want 2", n)
	}
}
