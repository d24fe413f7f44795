package ews

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// identityMIME are messages whose identity fields are awkward: folded
// and encoded headers, a repeated field, no Message-ID (the identity then
// includes the size), 8-bit UTF-8 in a header.
var identityMIME = [][]byte{
	msg(1, ""),
	[]byte("From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?=\r\n\t<juergen@example.de>\r\nTo: \"Alice\" <alice@example.com>,\r\n bob@example.org\r\n" +
		"Subject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\nMessage-Id: <Folded.ID@Example.DE>\r\n\r\nHallo\r\n"),
	[]byte("From: cron@example.org\r\nTo: root@example.org\r\nSubject: cron job\r\nDate: Wed, 2 Jul 2003 00:00:00 +0000\r\n\r\nno message id\r\n"),
	[]byte("From: cron@example.org\r\nTo: root@example.org\r\nSubject: cron job\r\nDate: Wed, 2 Jul 2003 00:00:00 +0000\r\n\r\nno message id, longer\r\n"),
	[]byte("Subject: first\r\nSubject: second\r\nFrom: a@example.org\r\nMessage-ID: <dup@example.org>\r\n\r\nx\r\n"),
	[]byte("From: Zoë <zoe@example.org>\r\nSubject: grüße aus köln\r\nDate: Thu, 3 Jul 2003 12:00:00 +0000\r\n\r\n8-bit headers, no id\r\n"),
	[]byte("From: nobody@example.org\r\nSubject: no body at all\r\n"),
}

// wantIdentity is what the IMAP connector computes for raw: the identity
// fields of its header block and its RFC 822 size.
func wantIdentity(raw []byte) mail.Identity {
	return mail.ComputeIdentity(mail.ParseHeaders(raw), int64(len(raw)))
}

// A full listing gives every message with size, received date, flags and
// the identity the same MIME has on IMAP, both for mail delivered to the
// mailbox (identity from the head of its MIME) and for mail this
// connector wrote (identity from PR_TRANSPORT_MESSAGE_HEADERS).
func TestFullListing(t *testing.T) {
	s := server(t, nil)
	mb := s.Mailbox(alice)
	received := time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)
	flagsWanted := map[string][]string{}
	for i, raw := range identityMIME {
		si := ewsserver.SeedItem{MIME: raw, Received: received.Add(time.Duration(i) * time.Hour)}
		var want []string
		switch i {
		case 1:
			si.IsRead, want = true, []string{mail.FlagSeen}
		case 2:
			si.Flag, want = ewsserver.FlagFlagged, []string{mail.FlagFlagged}
		case 3:
			si.IsDraft, want = true, []string{mail.FlagDraft}
		case 4:
			si.Flag = ewsserver.FlagComplete // a completed follow-up is not \Flagged
		}
		id, err := mb.AddItem(inboxID(s), si)
		if err != nil {
			t.Fatal(err)
		}
		flagsWanted[id] = want
	}
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	ms, lst := listAll(t, c, in, connector.ListOptions{Batch: 3})
	if len(ms) != len(identityMIME) {
		t.Fatalf("listed %d of %d", len(ms), len(identityMIME))
	}
	if lst.Reset || lst.Status.Messages != int64(len(identityMIME)) || lst.Cursor == "" {
		t.Errorf("listing %+v", lst)
	}
	var total int64
	for _, m := range ms {
		info, _ := mb.Item(string(m.ID))
		raw := info.MIME
		total += int64(len(raw))
		if m.Change != connector.ChangeNew || m.Size != int64(len(raw)) || !m.InternalDate.Equal(info.Received) {
			t.Errorf("%s: change %v size %d date %v; want new, %d, %v", info.Subject, m.Change, m.Size, m.InternalDate, len(raw), info.Received)
		}
		if m.Identity != wantIdentity(raw) {
			t.Errorf("%q: identity %s, IMAP's would be %s (headers %+v)", info.Subject, m.Identity, wantIdentity(raw), m.Headers)
		}
		if m.Headers != mail.ParseHeaders(raw) {
			t.Errorf("%q: headers %+v, want %+v", info.Subject, m.Headers, mail.ParseHeaders(raw))
		}
		if !sameFlags(m.Flags, flagsWanted[string(m.ID)]) {
			t.Errorf("%q: flags %v, want %v", info.Subject, m.Flags, flagsWanted[string(m.ID)])
		}
	}
	if lst.Status.Size != total {
		t.Errorf("status size %d, want %d", lst.Status.Size, total)
	}

	// The same messages written by this connector list with the same
	// identities, now from the header property.
	dst, err := c.CreateFolder(context.Background(), mail.Path{"Copies"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range identityMIME {
		appendMsg(t, c, dst, raw, nil, received)
	}
	before := s.Count("GetItem")
	copies, _ := listAll(t, c, dst, connector.ListOptions{})
	if n := s.Count("GetItem") - before; n != 1 {
		t.Errorf("listing %d written messages took %d GetItem calls; the header property should answer all at once", len(copies), n)
	}
	var want, got []string
	for _, raw := range identityMIME {
		want = append(want, wantIdentity(raw).String())
	}
	for _, m := range copies {
		got = append(got, m.Identity.String())
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		t.Errorf("identities of written copies differ:\n got %v\nwant %v", got, want)
	}
}

func sameFlags(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// sync counts SyncFolderItems calls.
func syncCalls(s *ewsserver.Server) int { return s.Count("SyncFolderItems") }

// Deltas come from SyncFolderItems with the cursor's SyncState: nothing
// changed costs one call; new, read-flag, follow-up flag, deleted and
// moved messages are reported as such; the cursor moves on.
func TestDeltas(t *testing.T) {
	s := server(t, nil)
	mb := s.Mailbox(alice)
	ids := seed(t, s, inboxID(s), msg(1, ""), msg(2, ""), msg(3, ""), msg(4, ""))
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	_, lst := listAll(t, c, in, connector.ListOptions{})
	delta := func(cur connector.Cursor) ([]connector.Message, connector.Listing) {
		t.Helper()
		return listAll(t, c, in, connector.ListOptions{Since: cur, Changes: true})
	}

	before, requests := syncCalls(s), len(s.Requests())
	ms, lst2 := delta(lst.Cursor)
	if len(ms) != 0 || syncCalls(s)-before != 1 || len(s.Requests())-requests != 1 || lst2.Reset {
		t.Fatalf("unchanged folder: %d messages, %d SyncFolderItems of %d requests, reset %v", len(ms), syncCalls(s)-before, len(s.Requests())-requests, lst2.Reset)
	}
	if lst2.Status.Messages != 4 {
		t.Errorf("unchanged folder's status %+v", lst2.Status)
	}
	if !sameCursorState(lst.Cursor, lst2.Cursor) {
		t.Errorf("an unchanged folder's cursor changed: %q → %q", lst.Cursor, lst2.Cursor)
	}

	newID := seed(t, s, inboxID(s), msg(5, ""))[0]
	if err := mb.SetRead(ids[0], true); err != nil {
		t.Fatal(err)
	}
	if err := mb.SetFlag(ids[1], ewsserver.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteItem(ids[2]); err != nil {
		t.Fatal(err)
	}
	other, _ := mb.FolderID("Deleted Items")
	movedTo, err := mb.MoveItem(ids[3], other)
	if err != nil {
		t.Fatal(err)
	}
	ms, lst3 := delta(lst2.Cursor)
	got := map[string]connector.Message{}
	for _, m := range ms {
		got[string(m.ID)] = m
	}
	check := func(id string, change connector.Change, flags []string) {
		t.Helper()
		m, ok := got[id]
		if !ok {
			t.Errorf("%s not in the delta %v", id, ms)
			return
		}
		if m.Change != change || (flags != nil && !sameFlags(m.Flags, flags)) {
			t.Errorf("%s: change %v flags %v, want %v %v", id, m.Change, m.Flags, change, flags)
		}
	}
	check(newID, connector.ChangeNew, []string{})
	check(ids[0], connector.ChangeFlags, []string{mail.FlagSeen})
	check(ids[1], connector.ChangeFlags, []string{mail.FlagFlagged})
	check(ids[2], connector.ChangeRemoved, nil)
	check(ids[3], connector.ChangeRemoved, nil)
	if m := got[newID]; m.Identity != wantIdentity(msg(5, "")) {
		t.Errorf("new message's identity %s", m.Identity)
	}
	if len(ms) != 5 {
		t.Errorf("delta has %d entries: %+v", len(ms), ms)
	}
	if lst3.Status.Messages != 3 {
		t.Errorf("status after the delta %+v, want 3 messages", lst3.Status)
	}
	// The moved message is new in its new folder.
	trash := folderByPath(t, c, "Deleted Items")
	tms, _ := listAll(t, c, trash, connector.ListOptions{})
	if len(tms) != 1 || string(tms[0].ID) != movedTo {
		t.Errorf("Deleted Items lists %+v, want the moved message %s", tms, movedTo)
	}
	// A delta without Changes reports only new messages.
	seed(t, s, inboxID(s), msg(6, ""))
	if err := mb.SetRead(newID, true); err != nil {
		t.Fatal(err)
	}
	ms, _ = listAll(t, c, in, connector.ListOptions{Since: lst3.Cursor})
	if len(ms) != 1 || ms[0].Change != connector.ChangeNew {
		t.Errorf("delta without Changes: %+v", ms)
	}
}

func sameCursorState(a, b connector.Cursor) bool {
	ka, _ := parseCursor(a)
	kb, _ := parseCursor(b)
	return ka == kb
}

// More changes than one SyncFolderItems returns (512) are read in several
// calls, and the full listing's cursor is exactly what was listed: mail
// that arrives while the pages are read is in the listing or the next
// delta, once.
func TestSyncPages(t *testing.T) {
	s := server(t, nil)
	const n = 1100
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = msg(i, "")
	}
	seed(t, s, inboxID(s), raws...)
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	before := syncCalls(s)
	seen := map[connector.ID]int{}
	var late []string
	lst, err := c.List(context.Background(), in, connector.ListOptions{Batch: 100}, func(ms []connector.Message) error {
		for _, m := range ms {
			seen[m.ID]++
		}
		if len(late) < 3 {
			// Mail arriving while the listing runs.
			late = append(late, seed(t, s, inboxID(s), msg(n+len(late), ""))...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls := syncCalls(s) - before; calls < 3 {
		t.Errorf("%d messages listed in %d SyncFolderItems calls (at most 512 each)", len(seen), calls)
	}
	ms, _ := listAll(t, c, in, connector.ListOptions{Since: lst.Cursor, Changes: true})
	for _, m := range ms {
		seen[m.ID]++
	}
	for _, id := range late {
		if seen[connector.ID(id)] != 1 {
			t.Errorf("mail that arrived during the listing was seen %d times", seen[connector.ID(id)])
		}
	}
	if len(seen) != n+len(late) {
		t.Errorf("saw %d distinct messages, want %d", len(seen), n+len(late))
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s seen %d times", id, k)
		}
	}
}

// A SyncState the server no longer accepts, or a cursor this connector
// did not make, gives a full listing marked Reset, or ErrCursorInvalid
// under StrictSince.
func TestResetCursor(t *testing.T) {
	s := server(t, nil)
	seed(t, s, inboxID(s), msg(1, ""), msg(2, ""))
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	_, lst := listAll(t, c, in, connector.ListOptions{})
	k, ok := parseCursor(lst.Cursor)
	if !ok {
		t.Fatalf("cannot read own cursor %q", lst.Cursor)
	}
	tampered := []byte(k.state)
	tampered[len(tampered)/2] ^= 0x01
	for _, cur := range []connector.Cursor{
		connector.Cursor(cursor{count: 2, state: string(tampered)}.String()),
		connector.Cursor(cursor{count: 2, state: "AAAA"}.String()),
		"1.42.7", // an IMAP cursor
	} {
		// Under StrictSince (the engine's way) the same cursors are
		// refused before anything is delivered.
		delivered := 0
		_, err := c.List(context.Background(), in, connector.ListOptions{Since: cur, Changes: true, StrictSince: true},
			func(ms []connector.Message) error { delivered += len(ms); return nil })
		if !errors.Is(err, connector.ErrCursorInvalid) || delivered != 0 {
			t.Errorf("cursor %q under StrictSince: %v after %d messages; want ErrCursorInvalid before any", cur, err, delivered)
		}
		ms, l := listAll(t, c, in, connector.ListOptions{Since: cur, Changes: true})
		if !l.Reset || len(ms) != 2 || ms[0].Change != connector.ChangeNew {
			t.Errorf("cursor %q: reset %v, %d messages", cur, l.Reset, len(ms))
		}
		if ms2, l2 := listAll(t, c, in, connector.ListOptions{Since: l.Cursor, Changes: true}); len(ms2) != 0 || l2.Reset {
			t.Errorf("after the reset the new cursor does not work: %d messages, reset %v", len(ms2), l2.Reset)
		}
	}
}

// AllOld lists every old message, flags only, through FindItem pages
// that respect the server's FindCountLimit.
func TestAllOldPaged(t *testing.T) {
	s := server(t, &ewsserver.Options{FindCountLimit: 7})
	var raws [][]byte
	for i := range 20 {
		raws = append(raws, msg(i, ""))
	}
	ids := seed(t, s, inboxID(s), raws...)
	if err := s.Mailbox(alice).SetRead(ids[4], true); err != nil {
		t.Fatal(err)
	}
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	_, lst := listAll(t, c, in, connector.ListOptions{})
	newID := seed(t, s, inboxID(s), msg(99, ""))[0]
	before := s.Count("FindItem")
	ms, _ := listAll(t, c, in, connector.ListOptions{Since: lst.Cursor, Changes: true, AllOld: true})
	if calls := s.Count("FindItem") - before; calls < 3 {
		t.Errorf("20 old messages listed in %d FindItem calls with a limit of 7", calls)
	}
	old := map[string]connector.Message{}
	news := 0
	for _, m := range ms {
		switch m.Change {
		case connector.ChangeFlags:
			if _, dup := old[string(m.ID)]; dup {
				t.Errorf("%s listed twice", m.ID)
			}
			old[string(m.ID)] = m
		case connector.ChangeNew:
			news++
			if string(m.ID) != newID {
				t.Errorf("unexpected new message %s", m.ID)
			}
		}
	}
	if len(old) != 20 || news != 1 {
		t.Errorf("AllOld: %d old, %d new; want 20 and 1", len(old), news)
	}
	if m := old[ids[4]]; !sameFlags(m.Flags, []string{mail.FlagSeen}) {
		t.Errorf("old message's flags %v", m.Flags)
	}
}

// A listing of a calendar is refused, not attempted.
func TestListNonMail(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	cal := folderByPath(t, c, "Calendar")
	_, err := c.List(context.Background(), cal, connector.ListOptions{}, func([]connector.Message) error { return nil })
	if connector.KindOf(err) != connector.KindConfig {
		t.Errorf("listing a calendar: %v", err)
	}
}

// ForAppend says which flags the folder stores.
func TestAcceptFlags(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	_, lst := listAll(t, c, in, connector.ListOptions{ForAppend: true})
	if lst.Accept.AnyKeyword || !sameFlags(lst.Accept.Flags, []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, "$Forwarded"}) {
		t.Errorf("accept %+v", lst.Accept)
	}
}

// The listing of a deleted folder is KindMissingFolder.
func TestListMissingFolder(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	f, err := c.CreateFolder(context.Background(), mail.Path{"Soon gone"}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.Name = strings.Repeat("A", 20) // a well-formed id of no folder
	_, err = c.List(context.Background(), f, connector.ListOptions{}, func([]connector.Message) error { return nil })
	if k := connector.KindOf(err); k != connector.KindMissingFolder && k != connector.KindItem {
		t.Errorf("listing a folder that does not exist: %v (kind %v)", err, k)
	}
}
