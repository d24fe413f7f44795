package gmailimap_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// odd messages that a careless server would alter: bare LF line ends,
// 8-bit octets, no final line end, a header without a body, NUL.
func oddMessages() [][]byte {
	return [][]byte{
		[]byte("Subject: bare LF\nMessage-ID: <lf@example.com>\n\nline one\nline two\n"),
		[]byte("Subject: =?utf-8?q?8bit?=\r\nMessage-ID: <8bit@example.com>\r\n\r\nGr\xc3\xbc\xc3\x9fe \xff\xfe\r\n"),
		[]byte("Subject: no final CRLF\r\nMessage-ID: <nofinal@example.com>\r\n\r\nend"),
		[]byte("Subject: header only\r\nMessage-ID: <hdr@example.com>\r\n"),
		[]byte("Subject: nul\r\nMessage-ID: <nul@example.com>\r\n\r\na\x00b\r\n"),
		bytes.Repeat([]byte("X-Long: "+strings.Repeat("y", 990)+"\r\n"), 30),
	}
}

// TestBodiesAreByteExact fetches every message with go-imap's client and
// compares BODY[] and RFC822.SIZE with what was stored.
func TestBodiesAreByteExact(t *testing.T) {
	s := start(t, nil)
	want := oddMessages()
	date := time.Date(2010, 1, 2, 3, 4, 5, 0, time.FixedZone("", -7*3600))
	for _, raw := range want {
		seed(t, s, gmailimap.Message{Raw: raw, Labels: []string{`\Inbox`}, InternalDate: date})
	}
	c := client(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3, 4, 5, 6), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		body := m.FindBodySection(&imap.FetchItemBodySection{Peek: true})
		if !bytes.Equal(body, want[i]) || m.RFC822Size != int64(len(want[i])) || !m.InternalDate.Equal(date) {
			t.Errorf("message %d: %q (size %d, date %v), want %q", i+1, body, m.RFC822Size, m.InternalDate, want[i])
		}
		if len(m.Flags) != 0 {
			t.Errorf("BODY.PEEK set flags %v", m.Flags)
		}
	}
	// Partial and header fields (what a connector uses for identity).
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	u := rc.ok("UID FETCH 3 (BODY.PEEK[]<9.13> BODY.PEEK[HEADER.FIELDS (Message-ID DATE)])")
	wantLine := "* 3 FETCH (UID 3 BODY[]<9> no final CRLF BODY[HEADER.FIELDS (Message-ID DATE)] Message-ID: <nofinal@example.com>\r\n\r\n)"
	if u[0] != wantLine {
		t.Fatalf("partial and fields:\n%q\nwant\n%q", u[0], wantLine)
	}
	if u := rc.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Subject)] BODY.PEEK[TEXT])"); u[0] != "* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject)] Message-ID: <lf@example.com>\n\r\n BODY[TEXT] line one\nline two\n)" {
		t.Fatalf("NOT and TEXT: %q", u[0])
	}
	// BODY[] without PEEK sets \Seen and says so (RFC 3501 6.4.5).
	if u := rc.ok("FETCH 2 (BODY[HEADER])"); !strings.HasPrefix(u[0], `* 2 FETCH (FLAGS (\Seen) BODY[HEADER] Subject:`) {
		t.Fatalf("BODY[HEADER]: %q", u[0])
	}
	if got := s.Usage(alice, time.Now()); got.Downloaded == 0 {
		t.Fatalf("downloads not counted: %+v", got)
	}
}

// TestGoImapClientWorkflow drives the server with go-imap's client the
// way a migration does: LIST with special-use, STATUS, SELECT with
// CONDSTORE, FETCH with CHANGEDSINCE, SEARCH (ESEARCH), GETQUOTAROOT,
// CREATE, APPEND, MOVE and UID EXPUNGE.
func TestGoImapClientWorkflow(t *testing.T) {
	s := start(t, nil)
	if err := s.CreateLabel(alice, "Projects/Mailferry"); err != nil {
		t.Fatal(err)
	}
	for i, l := range [][]string{{`\Inbox`}, {`\Inbox`, "Projects/Mailferry"}, {`\Sent`}} {
		seed(t, s, gmailimap.Message{Raw: rawMsg("w"+itoa(i), "workflow"), Labels: l})
	}
	c := client(t, s)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	counts := map[string]uint32{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
		if l.Status != nil && l.Status.NumMessages != nil {
			counts[l.Mailbox] = *l.Status.NumMessages
		}
		if l.Delim != '/' {
			t.Errorf("%s: delimiter %q", l.Mailbox, l.Delim)
		}
	}
	for name, want := range map[string]imap.MailboxAttr{
		"[Gmail]/All Mail": imap.MailboxAttrAll, "[Gmail]/Sent Mail": imap.MailboxAttrSent,
		"[Gmail]/Trash": imap.MailboxAttrTrash, "[Gmail]/Spam": imap.MailboxAttrJunk,
		"[Gmail]/Drafts": imap.MailboxAttrDrafts, "[Gmail]/Starred": imap.MailboxAttrFlagged,
		"[Gmail]/Important": imap.MailboxAttr(`\Important`), "[Gmail]": imap.MailboxAttrNoSelect,
		"Projects": imap.MailboxAttrHasChildren,
	} {
		if !hasAttr(attrs[name], want) {
			t.Errorf("%s: attributes %v lack %s", name, attrs[name], want)
		}
	}
	if counts["INBOX"] != 2 || counts["[Gmail]/All Mail"] != 3 || counts["Projects/Mailferry"] != 1 {
		t.Errorf("LIST-STATUS counts %v", counts)
	}
	// SELECT SPECIAL-USE only lists the special folders (RFC 6154).
	special, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil || len(special) != 7 {
		t.Fatalf("SPECIAL-USE selection: %d %v", len(special), err)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true, NumUnseen: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.Folder(alice, "INBOX")
	if *st.NumMessages != 2 || st.UIDNext != 3 || st.UIDValidity != inbox.UIDValidity || st.HighestModSeq != inbox.HighestModSeq || *st.NumUnseen != 2 {
		t.Fatalf("STATUS %+v, folder %+v", st, inbox)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 || sel.UIDNext != 3 || sel.HighestModSeq != inbox.HighestModSeq || !hasFlagIn(sel.PermanentFlags, imap.FlagWildcard) {
		t.Fatalf("SELECT %+v", sel)
	}
	// A flag change raises HIGHESTMODSEQ; CHANGEDSINCE returns only it.
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Label1"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	changed, err := c.Fetch(imap.UIDSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true, ChangedSince: sel.HighestModSeq}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].UID != 2 || !hasFlagIn(changed[0].Flags, "$Label1") || changed[0].ModSeq <= sel.HighestModSeq {
		t.Fatalf("CHANGEDSINCE: %+v", changed)
	}
	sr, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<w1@example.com>"}}}, &imap.SearchOptions{ReturnAll: true, ReturnCount: true}).Wait()
	if err != nil || sr.Count != 1 || sr.AllUIDs()[0] != 2 {
		t.Fatalf("UID SEARCH: %+v %v", sr, err)
	}
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 1 {
		t.Fatalf("GETQUOTAROOT %v %v", roots, err)
	}
	if err := c.Create("Archive/2019", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data := appendRaw(t, c, "Archive/2019", rawMsg("new", "archive"), nil)
	if data.UID != 1 {
		t.Fatalf("APPENDUID %+v", data)
	}
	if _, err := c.Move(imap.UIDSetNum(1), "Archive/2019").Wait(); err != nil {
		t.Fatal(err)
	}
	inbox, _ = s.Folder(alice, "INBOX")
	arch, _ := s.Folder(alice, "Archive/2019")
	if len(inbox.Entries) != 1 || len(arch.Entries) != 2 {
		t.Fatalf("after MOVE: INBOX %+v, Archive %+v", inbox.Entries, arch.Entries)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UIDExpunge(imap.UIDSetNum(2)).Collect(); err != nil {
		t.Fatal(err)
	}
	if inbox, _ = s.Folder(alice, "INBOX"); len(inbox.Entries) != 0 {
		t.Fatalf("INBOX after UID EXPUNGE: %+v", inbox.Entries)
	}
	// ENVELOPE parses with go-imap.
	if _, err := c.Select("Archive/2019", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(env) != 1 || env[0].Envelope == nil {
		t.Fatalf("%v %v", env, err)
	}
	if e := env[0].Envelope; e.MessageID != "w0@example.com" || e.Subject != "workflow" || len(e.From) != 1 || e.From[0].Addr() != "bob@example.com" || e.From[0].Name != "Bob" {
		t.Fatalf("envelope %+v", e)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func hasAttr(list []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range list {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func hasFlagIn(list []imap.Flag, f imap.Flag) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// TestLocalizedFolderNames renames the system folders as for a German
// account: clients must find them by their special-use attribute.
func TestLocalizedFolderNames(t *testing.T) {
	s := start(t, &gmailimap.Options{FolderNames: map[string]string{
		`\All`: "[Google Mail]/Alle Nachrichten", `\Sent`: "[Google Mail]/Gesendet", `\Trash`: "[Google Mail]/Papierkorb",
		`\Drafts`: "[Google Mail]/Entwürfe", `\Junk`: "[Google Mail]/Spam", `\Flagged`: "[Google Mail]/Markiert",
		`\Important`: "[Google Mail]/Wichtig",
	}})
	seed(t, s, gmailimap.Message{Raw: rawMsg("de", "hallo"), Labels: []string{`\Draft`}})
	rc := login(t, s)
	u := rc.ok(`LIST "" "*"`)
	if !contains(u, `* LIST (\Drafts \HasNoChildren) "/" "[Google Mail]/Entw&APw-rfe"`) || !contains(u, `* LIST (\HasChildren \Noselect) "/" "[Google Mail]"`) {
		t.Fatalf("LIST %q", u)
	}
	rc.ok(`SELECT "[Google Mail]/Entw&APw-rfe"`)
	if u := rc.ok("FETCH 1 (X-GM-LABELS)"); u[0] != `* 1 FETCH (X-GM-LABELS ())` {
		t.Fatalf("labels %q", u)
	}
	if _, st := rc.do(`CREATE "[Google Mail]/Mine"`); !strings.HasPrefix(st, "NO [CANNOT]") {
		t.Fatalf("CREATE under the system prefix: %q", st)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestIdleSeesOtherConnections checks that IDLE announces a message
// appended on another connection, and its expunge.
func TestIdleSeesOtherConnections(t *testing.T) {
	s := start(t, nil)
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	rc.send("i IDLE")
	if l := rc.line(); l != "+ idling" {
		t.Fatal(l)
	}
	c := client(t, s)
	appendRaw(t, c, "INBOX", rawMsg("idle", "pushed"), nil)
	if l := rc.line(); l != "* 1 EXISTS" {
		t.Fatalf("IDLE: %q", l)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if l := rc.line(); l != "* 1 EXPUNGE" {
		t.Fatalf("IDLE: %q", l)
	}
	rc.send("DONE")
	rc.until("i")
}

// TestThreadsAndSearch checks X-GM-THRID from In-Reply-To and the
// X-GM-MSGID, X-GM-THRID and X-GM-RAW search keys of the extensions page.
func TestThreadsAndSearch(t *testing.T) {
	s := start(t, nil)
	first := seed(t, s, gmailimap.Message{Raw: rawMsg("t1", "question"), Labels: []string{`\Inbox`}})
	reply := []byte("Subject: Re: question\r\nMessage-ID: <t2@example.com>\r\nIn-Reply-To: <t1@example.com>\r\n\r\nanswer\r\n")
	second := seed(t, s, gmailimap.Message{Raw: reply, Labels: []string{`\Inbox`}})
	other := seed(t, s, gmailimap.Message{Raw: rawMsg("t3", "other"), Labels: []string{`\Inbox`}, Flags: []string{`\Flagged`}})
	info, _ := s.Message(alice, second)
	if info.ThreadID != first {
		t.Fatalf("reply thread %d, want %d", info.ThreadID, first)
	}
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	for cmd, want := range map[string]string{
		"UID SEARCH X-GM-MSGID " + utoa(other):                        "* SEARCH 3",
		"UID SEARCH X-GM-THRID " + utoa(first):                        "* SEARCH 1 2",
		`UID SEARCH X-GM-RAW "rfc822msgid:t2@example.com"`:            "* SEARCH 2",
		`SEARCH X-GM-RAW "is:starred -subject:question"`:              "* SEARCH 3",
		`SEARCH X-GM-RAW "in:inbox answer"`:                           "* SEARCH 2",
		`SEARCH OR SUBJECT other HEADER In-Reply-To <t1@example.com>`: "* SEARCH 2 3",
		`SEARCH NOT FLAGGED UNSEEN`:                                   "* SEARCH 1 2",
	} {
		if u := rc.ok(cmd); len(u) != 1 || u[0] != want {
			t.Errorf("%s: %q, want %q", cmd, u, want)
		}
	}
	if _, st := rc.do(`SEARCH X-GM-RAW "has:attachment"`); !strings.Contains(st, "not supported by this test server") {
		t.Errorf("unsupported X-GM-RAW: %q", st)
	}
}

// TestUIDValidityReset renumbers a folder and ends sessions that had it
// selected.
func TestUIDValidityReset(t *testing.T) {
	s := start(t, nil)
	seed(t, s, gmailimap.Message{Raw: rawMsg("r1", "one"), Labels: []string{`\Inbox`}})
	seed(t, s, gmailimap.Message{Raw: rawMsg("r2", "two"), Labels: []string{`\Inbox`}})
	before, _ := s.Folder(alice, "INBOX")
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	if err := s.ResetUIDValidity(alice, "INBOX"); err != nil {
		t.Fatal(err)
	}
	if l := rc.line(); l != "* BYE UIDVALIDITY changed" {
		t.Fatalf("got %q", l)
	}
	after, _ := s.Folder(alice, "INBOX")
	if after.UIDValidity == before.UIDValidity || after.Entries[1].UID != 2 || after.UIDNext != 3 {
		t.Fatalf("before %+v after %+v", before, after)
	}
}

// TestFaults checks the injected faults, the APPEND whose answer is lost
// in particular: the message is stored, the client hears nothing.
func TestFaults(t *testing.T) {
	s := start(t, nil)
	s.InjectFault(gmailimap.Fault{User: alice, Command: "SELECT", Action: gmailimap.FaultReply, Text: "NO [UNAVAILABLE] Temporary System Error"})
	rc := login(t, s)
	if _, st := rc.do("SELECT INBOX"); st != "NO [UNAVAILABLE] Temporary System Error" {
		t.Fatalf("FaultReply: %q", st)
	}
	rc.ok("SELECT INBOX") // once only

	s.InjectFault(gmailimap.Fault{Command: "APPEND", Action: gmailimap.FaultDropAfter})
	raw := rawMsg("lost", "answer lost")
	rc.send("a APPEND INBOX {" + itoa(len(raw)) + "}")
	if l := rc.line(); l != "+ go ahead" {
		t.Fatal(l)
	}
	rc.send(string(raw))
	if !rc.eof() {
		t.Fatal("connection not dropped")
	}
	if msgs := s.Messages(alice); len(msgs) != 1 || !bytes.Equal(msgs[0].Raw, raw) {
		t.Fatalf("the APPEND must have been stored: %+v", msgs)
	}

	s.InjectFault(gmailimap.Fault{User: alice, Command: "UID FETCH", Action: gmailimap.FaultBye, Text: "System Error", Times: 2})
	for i := 0; i < 2; i++ {
		rc := login(t, s)
		rc.ok("SELECT INBOX")
		rc.send("f UID FETCH 1 (UID)")
		if l := rc.line(); l != "* BYE System Error" {
			t.Fatalf("FaultBye: %q", l)
		}
	}
	s.InjectFault(gmailimap.Fault{User: alice, Command: "NOOP", Action: gmailimap.FaultDrop})
	rc = login(t, s)
	rc.send("n NOOP")
	if !rc.eof() {
		t.Fatal("FaultDrop did not drop")
	}
	// Mid-response: the connection ends inside the literal.
	s.InjectFault(gmailimap.Fault{User: alice, Command: "FETCH", Action: gmailimap.FaultDropAfter, AfterBytes: 30})
	rc = login(t, s)
	rc.ok("SELECT INBOX")
	rc.send("f FETCH 1 (BODY.PEEK[])")
	got, _ := io.ReadAll(rc.r)
	if len(got) != 30 {
		t.Fatalf("read %d bytes before the drop: %q", len(got), got)
	}
	// Bye and Drop from the test API.
	rc = login(t, s)
	if n := s.Bye(alice, "Session expired, please login again."); n != 1 {
		t.Fatalf("Bye hit %d sessions", n)
	}
	if l := rc.line(); l != "* BYE Session expired, please login again." {
		t.Fatalf("Bye: %q", l)
	}
}

// TestCommandCountsAndIDs checks the test API's counters.
func TestCommandCountsAndIDs(t *testing.T) {
	s := start(t, nil)
	c, err := imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ID(&imap.IDData{Name: "mailferry", Version: "test"}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(alice, alicePw).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	all, mine := s.Commands(""), s.Commands(alice)
	if all["LOGIN"] != 1 || all["ID"] != 1 || mine["SELECT"] != 1 || mine["UID FETCH"] != 1 || mine["LOGIN"] != 0 {
		t.Fatalf("all %v, alice %v", all, mine)
	}
	if ids := s.ClientIDs(); len(ids) != 1 || ids[0]["name"] != "mailferry" || ids[0]["version"] != "test" {
		t.Fatalf("IDs %v", ids)
	}
}
