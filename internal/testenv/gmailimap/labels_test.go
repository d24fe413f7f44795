package gmailimap_test

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// TestLabelsAppearAsFolders seeds messages with labels and checks that
// each label is a folder holding exactly its messages, with its own
// UIDs, and that All Mail holds everything but Trash and Spam.
func TestLabelsAppearAsFolders(t *testing.T) {
	s := start(t, nil)
	m1 := seed(t, s, gmailimap.Message{Raw: rawMsg("m1", "three labels"), Labels: []string{`\Inbox`, "Work", "Work/2024"}})
	m2 := seed(t, s, gmailimap.Message{Raw: rawMsg("m2", "sent"), Labels: []string{`\Sent`}})
	m3 := seed(t, s, gmailimap.Message{Raw: rawMsg("m3", "archived")})
	m4 := seed(t, s, gmailimap.Message{Raw: rawMsg("m4", "starred"), Labels: []string{`\Inbox`, `\Important`}, Flags: []string{`\Flagged`, `\Seen`}})
	m5 := seed(t, s, gmailimap.Message{Raw: rawMsg("m5", "trashed"), Labels: []string{`\Trash`}})
	m6 := seed(t, s, gmailimap.Message{Raw: rawMsg("m6", "spam"), Labels: []string{`\Spam`}})

	want := map[string][]uint64{
		"INBOX":             {m1, m4},
		"Work":              {m1},
		"Work/2024":         {m1},
		"[Gmail]/All Mail":  {m1, m2, m3, m4},
		"[Gmail]/Sent Mail": {m2},
		"[Gmail]/Starred":   {m4},
		"[Gmail]/Important": {m4},
		"[Gmail]/Trash":     {m5},
		"[Gmail]/Spam":      {m6},
		"[Gmail]/Drafts":    nil,
	}
	rc := login(t, s)
	for name, ids := range want {
		u := rc.ok(`SELECT "` + name + `"`)
		if got := grep(u, " EXISTS"); len(got) != 1 || got[0] != "* "+itoa(len(ids))+" EXISTS" {
			t.Errorf("%s: %q, want %d messages", name, got, len(ids))
		}
		f, ok := s.Folder(alice, name)
		if !ok || len(f.Entries) != len(ids) {
			t.Fatalf("%s: folder %+v", name, f)
		}
		for i, e := range f.Entries {
			if e.MsgID != ids[i] {
				t.Errorf("%s: entry %d is %d, want %d", name, i, e.MsgID, ids[i])
			}
		}
		if len(ids) == 0 {
			continue
		}
		// The same message has the same X-GM-MSGID in every folder.
		u = rc.ok("FETCH 1:* (X-GM-MSGID)")
		for i, id := range ids {
			if wantLine := "* " + itoa(i+1) + " FETCH (X-GM-MSGID " + utoa(id) + ")"; u[i] != wantLine {
				t.Errorf("%s: %q, want %q", name, u[i], wantLine)
			}
		}
	}
	// m1 is in four folders with a UID of its own in each.
	info, _ := s.Message(alice, m1)
	if len(info.Folders) != 4 {
		t.Fatalf("m1 folders %v", info.Folders)
	}
	uids := map[string]uint32{}
	for f, uid := range info.Folders {
		uids[f] = uid
	}
	if uids["INBOX"] != 1 || uids["[Gmail]/All Mail"] != 1 || uids["Work"] != 1 {
		t.Errorf("UIDs %v", uids)
	}
	info4, _ := s.Message(alice, m4)
	if info4.Folders["INBOX"] != 2 || info4.Folders["[Gmail]/All Mail"] != 4 || info4.Folders["[Gmail]/Starred"] != 1 {
		t.Errorf("m4 UIDs %v", info4.Folders)
	}
	// Each folder has its own UIDVALIDITY.
	seen := map[uint32]string{}
	for _, f := range s.Folders(alice) {
		if other, dup := seen[f.UIDValidity]; dup {
			t.Errorf("%s and %s share UIDVALIDITY %d", f.Name, other, f.UIDValidity)
		}
		seen[f.UIDValidity] = f.Name
	}
}

func itoa(n int) string { return utoa(uint64(n)) }

func utoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestListShowsSpecialUseAndChildren checks LIST against the transcript
// on Google's extensions page, plus user labels with children.
func TestListShowsSpecialUseAndChildren(t *testing.T) {
	s := start(t, nil)
	if err := s.CreateLabel(alice, "Work/2024"); err != nil {
		t.Fatal(err)
	}
	rc := login(t, s)
	got := rc.ok(`LIST "" "*"`)
	want := []string{
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Work"`,
		`* LIST (\HasNoChildren) "/" "Work/2024"`,
		`* LIST (\HasChildren \Noselect) "/" "[Gmail]"`,
		`* LIST (\All \HasNoChildren) "/" "[Gmail]/All Mail"`,
		`* LIST (\Drafts \HasNoChildren) "/" "[Gmail]/Drafts"`,
		`* LIST (\HasNoChildren \Important) "/" "[Gmail]/Important"`,
		`* LIST (\HasNoChildren \Sent) "/" "[Gmail]/Sent Mail"`,
		`* LIST (\HasNoChildren \Junk) "/" "[Gmail]/Spam"`,
		`* LIST (\Flagged \HasNoChildren) "/" "[Gmail]/Starred"`,
		`* LIST (\HasNoChildren \Trash) "/" "[Gmail]/Trash"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("LIST:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestXGMLabelsValues checks FETCH X-GM-LABELS: system labels quoted as
// Gmail sends them ("\\Inbox"), user labels as atoms or quoted strings
// in modified UTF-7, and the selected folder's own label left out.
func TestXGMLabelsValues(t *testing.T) {
	s := start(t, nil)
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("l1", "labels"), Labels: []string{`\Inbox`, `\Important`, "Muy Importante", "foo", "Ärger"}, Flags: []string{`\Flagged`}})
	rc := login(t, s)

	rc.ok(`SELECT "[Gmail]/All Mail"`)
	u := rc.ok("FETCH 1 (X-GM-LABELS X-GM-MSGID X-GM-THRID)")
	want := `* 1 FETCH (X-GM-THRID ` + utoa(id) + ` X-GM-MSGID ` + utoa(id) + ` X-GM-LABELS ("\\Important" "\\Inbox" "\\Starred" "Muy Importante" foo &AMQ-rger))`
	if len(u) != 1 || u[0] != want {
		t.Fatalf("All Mail: %q\nwant %q", u, want)
	}
	rc.ok("SELECT INBOX")
	if u := rc.ok("FETCH 1 (X-GM-LABELS)"); u[0] != `* 1 FETCH (X-GM-LABELS ("\\Important" "\\Starred" "Muy Importante" foo &AMQ-rger))` {
		t.Fatalf("INBOX leaves out \\Inbox: %q", u)
	}
	rc.ok(`SELECT "&AMQ-rger"`)
	if u := rc.ok("UID FETCH 1 (X-GM-LABELS)"); u[0] != `* 1 FETCH (X-GM-LABELS ("\\Important" "\\Inbox" "\\Starred" "Muy Importante" foo) UID 1)` {
		t.Fatalf("label folder leaves out its label: %q", u)
	}

	// The documented style and the selected label, on request.
	s2 := start(t, &gmailimap.Options{LabelStyle: gmailimap.LabelsAsDocumented, IncludeSelectedLabel: true})
	seed(t, s2, gmailimap.Message{Raw: rawMsg("l2", "documented"), Labels: []string{`\Inbox`, `\Sent`, "foo"}})
	rc2 := login(t, s2)
	rc2.ok("SELECT INBOX")
	if u := rc2.ok("FETCH 1 (X-GM-LABELS)"); u[0] != `* 1 FETCH (X-GM-LABELS (\Inbox \Sent foo))` {
		t.Fatalf("documented style: %q", u)
	}
}

// TestStoreXGMLabels follows the extensions page's STORE transcript and
// checks that the label change moves the message between folders.
func TestStoreXGMLabels(t *testing.T) {
	s := start(t, nil)
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("s1", "store"), Labels: []string{`\Inbox`}})
	rc := login(t, s)
	rc.ok(`SELECT "[Gmail]/All Mail"`)
	u := rc.ok("STORE 1 +X-GM-LABELS (foo)")
	if len(u) != 1 || u[0] != `* 1 FETCH (X-GM-LABELS ("\\Inbox" foo))` {
		t.Fatalf("+X-GM-LABELS: %q", u)
	}
	if f, ok := s.Folder(alice, "foo"); !ok || len(f.Entries) != 1 || f.Entries[0].MsgID != id {
		t.Fatalf("label foo was not created with the message: %+v %v", f, ok)
	}
	// Flag-shaped and quoted system labels both work.
	u = rc.ok(`UID STORE 1 -X-GM-LABELS (\Inbox)`)
	if u[0] != `* 1 FETCH (X-GM-LABELS (foo) UID 1)` {
		t.Fatalf("-X-GM-LABELS: %q", u)
	}
	if f, _ := s.Folder(alice, "INBOX"); len(f.Entries) != 0 {
		t.Fatalf("still in INBOX: %+v", f)
	}
	rc.ok(`STORE 1 X-GM-LABELS ("\\Important" bar)`)
	info, _ := s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Important bar` {
		t.Fatalf("replace: %q", info.Labels)
	}
	if _, ok := info.Folders["foo"]; ok {
		t.Fatalf("still in foo: %v", info.Folders)
	}
	// \Starred as a label is the \Flagged flag.
	rc.ok(`STORE 1 +X-GM-LABELS.SILENT (\Starred)`)
	u = rc.ok("FETCH 1 (FLAGS)")
	if u[0] != `* 1 FETCH (FLAGS (\Flagged))` {
		t.Fatalf("\\Starred: %q", u)
	}
	// SEARCH by label, as on the extensions page.
	if u := rc.ok("SEARCH X-GM-LABELS bar"); u[0] != "* SEARCH 1" {
		t.Fatalf("SEARCH X-GM-LABELS: %q", u)
	}
	// Inside the label folder, removing the label expunges the message
	// from that folder's view.
	rc.ok("SELECT bar")
	u = rc.ok("UID STORE 1 -X-GM-LABELS (bar)")
	if len(grep(u, "* 1 EXPUNGE")) != 1 {
		t.Fatalf("no EXPUNGE after removing the selected label: %q", u)
	}
}

// TestFlaggedIsStarred checks that Starred holds exactly the flagged
// messages.
func TestFlaggedIsStarred(t *testing.T) {
	s := start(t, nil)
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("f1", "flag me"), Labels: []string{`\Inbox`}})
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	rc.ok(`STORE 1 +FLAGS (\Flagged)`)
	info, _ := s.Message(alice, id)
	if _, ok := info.Folders["[Gmail]/Starred"]; !ok {
		t.Fatalf("flagged message not in Starred: %v", info.Folders)
	}
	rc.ok(`STORE 1 -FLAGS (\Flagged)`)
	info, _ = s.Message(alice, id)
	if _, ok := info.Folders["[Gmail]/Starred"]; ok {
		t.Fatalf("unflagged message still in Starred: %v", info.Folders)
	}
	// COPY into Starred flags it; EXPUNGE there unflags it.
	rc.ok(`COPY 1 "[Gmail]/Starred"`)
	if info, _ = s.Message(alice, id); strings.Join(info.Flags, " ") != `\Flagged` {
		t.Fatalf("COPY to Starred: flags %q", info.Flags)
	}
	rc.ok(`SELECT "[Gmail]/Starred"`)
	rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	if info, _ = s.Message(alice, id); len(info.Flags) != 0 || info.Folders["INBOX"] == 0 {
		t.Fatalf("after expunge from Starred: %+v", info)
	}
}

// TestLabelFolderManagement checks CREATE, RENAME, DELETE, SUBSCRIBE and
// LSUB on labels, and that system folders are protected.
func TestLabelFolderManagement(t *testing.T) {
	s := start(t, nil)
	rc := login(t, s)
	rc.ok("CREATE Clients/Acme/2024")
	id := seed(t, s, gmailimap.Message{Raw: rawMsg("mg1", "acme"), Labels: []string{`\Inbox`, "Clients/Acme"}})
	if u := rc.ok(`LIST "" Clients/%`); strings.Join(u, "|") != `* LIST (\HasChildren) "/" "Clients/Acme"` {
		t.Fatalf("LIST with %%: %q", u)
	}
	rc.ok("RENAME Clients/Acme Customers/Acme")
	info, _ := s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Inbox Customers/Acme` || info.Folders["Customers/Acme"] != 1 {
		t.Fatalf("after RENAME: %+v", info)
	}
	if _, ok := s.Folder(alice, "Customers/Acme/2024"); !ok {
		t.Fatal("RENAME did not move the child label")
	}
	rc.ok("UNSUBSCRIBE Customers/Acme/2024")
	u := rc.ok(`LSUB "" Customers/*`)
	if strings.Join(u, "|") != `* LSUB (\HasChildren) "/" "Customers/Acme"` {
		t.Fatalf("LSUB: %q", u)
	}
	// DELETE removes the label, not the message; the child stays and
	// its parent is listed as \Noselect.
	rc.ok("DELETE Customers/Acme")
	info, _ = s.Message(alice, id)
	if strings.Join(info.Labels, " ") != `\Inbox` {
		t.Fatalf("after DELETE: %q", info.Labels)
	}
	if u := rc.ok(`LIST "" Customers/*`); strings.Join(u, "|") != `* LIST (\HasChildren \Noselect) "/" "Customers/Acme"|* LIST (\HasNoChildren) "/" "Customers/Acme/2024"` {
		t.Fatalf("LIST after DELETE: %q", u)
	}
	for cmd, want := range map[string]string{
		`DELETE INBOX`:                     "NO [CANNOT] System folders cannot be deleted. (Failure)",
		`RENAME "[Gmail]/Sent Mail" Sent`:  "NO [CANNOT] System folders cannot be renamed. (Failure)",
		`CREATE "[Gmail]/Mine"`:            "NO [CANNOT] Folder name is reserved. (Failure)",
		`CREATE Customers/Acme/2024`:       "NO [ALREADYEXISTS] Folder name conflicts with existing folder name. (Failure)",
		`SELECT "[Gmail]"`:                 "NO [NONEXISTENT] Unknown Mailbox: [Gmail] (Failure)",
		`STATUS Nope (MESSAGES)`:           "NO [NONEXISTENT] Unknown Mailbox: Nope (Failure)",
		`RENAME Customers/Acme/2024 INBOX`: "NO [CANNOT] Folder name is reserved. (Failure)",
	} {
		if _, st := rc.do(cmd); st != want {
			t.Errorf("%s: %q, want %q", cmd, st, want)
		}
	}
	// A throttled account's answers say so.
	if err := s.SetThrottled(alice, true); err != nil {
		t.Fatal(err)
	}
	if _, st := rc.do("NOOP"); st != "OK Success [THROTTLED]" {
		t.Fatalf("throttled: %q", st)
	}
}

// TestBadCommands checks that malformed input is answered and skipped,
// literals included, and the session goes on.
func TestBadCommands(t *testing.T) {
	s := start(t, nil)
	rc := login(t, s)
	for cmd, want := range map[string]string{
		"FROB":                         "BAD Unknown command",
		"UID FROB 1":                   "BAD Unknown command",
		"FETCH 1 (FLAGS)":              "BAD Command not valid in this state",
		`SELECT "unterminated`:         "BAD Could not parse command (unterminated quoted string)",
		"STATUS INBOX (MESSAGES SIZE)": "BAD Could not parse command (unknown status item SIZE)",
	} {
		if _, st := rc.do(cmd); st != want {
			t.Errorf("%s: %q, want %q", cmd, st, want)
		}
	}
	rc.send("+bad NOOP")
	if l := rc.line(); l != "* BAD Could not parse command" {
		t.Fatalf("bad tag: %q", l)
	}
	// A failed command's non-synchronizing literal is skipped.
	rc.send("x STATUS {5+}")
	rc.send("INBOX (NOPE)")
	if _, st := rc.until("x"); !strings.HasPrefix(st, "BAD Could not parse command") {
		t.Fatalf("with a literal: %q", st)
	}
	rc.ok("NOOP")
	rc.ok("SELECT INBOX")
	if _, st := rc.do("FETCH 5 (FLAGS)"); st != "BAD Invalid message sequence number (Failure)" {
		t.Fatalf("out of range: %q", st)
	}
	if _, st := rc.do("FETCH 1 (BODYSTRUCTURE)"); !strings.Contains(st, "not implemented by this test server") {
		t.Fatalf("BODYSTRUCTURE: %q", st)
	}
}
