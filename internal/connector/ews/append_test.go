package ews

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// CreateItem stores the MIME as given and never makes a draft: whatever
// the flags (\Draft included), PR_MESSAGE_FLAGS is 1 or 0 without the
// unsent bit, the delivery time is the received date, \Flagged is the
// follow-up flag, \Answered the last verb, and nothing is sent (the
// server fails the test if anything is).
func TestAppendNeverDraft(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	f, err := c.CreateFolder(context.Background(), mail.Path{"Imported"}, "")
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2011, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))
	for i, tc := range []struct {
		flags      []string
		read, flag bool
		verb       string
	}{
		{nil, false, false, ""},
		{[]string{mail.FlagSeen}, true, false, ""},
		{[]string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered}, true, true, "102"},
		{[]string{mail.FlagDraft}, false, false, ""},
		{[]string{mail.FlagDraft, mail.FlagSeen}, true, false, ""},
		{[]string{"$Forwarded", "Work"}, false, false, "104"},
	} {
		raw := msg(i, "")
		id := appendMsg(t, c, f, raw, tc.flags, date)
		info, ok := s.Mailbox(alice).Item(string(id))
		if !ok {
			t.Fatalf("%v: the returned id %q is no item", tc.flags, id)
		}
		wantFlags := int32(0)
		if tc.read {
			wantFlags = 1
		}
		if info.IsDraft || info.MessageFlags != wantFlags || info.IsRead != tc.read {
			t.Errorf("%v: draft %v, PR_MESSAGE_FLAGS %d, read %v; want not a draft, %d, %v", tc.flags, info.IsDraft, info.MessageFlags, info.IsRead, wantFlags, tc.read)
		}
		if !bytes.Equal(info.MIME, raw) || info.FolderID != f.Name || info.Origin != "CreateItem" {
			t.Errorf("%v: stored %d bytes in %v", tc.flags, len(info.MIME), info.FolderPath)
		}
		if !info.Received.Equal(date) {
			t.Errorf("%v: received %v, want %v", tc.flags, info.Received, date)
		}
		if (info.FlagStatus == ewsserver.FlagFlagged) != tc.flag {
			t.Errorf("%v: flag status %q", tc.flags, info.FlagStatus)
		}
		if got := info.Extended["0x1081/Integer"]; got != tc.verb {
			t.Errorf("%v: PR_LAST_VERB_EXECUTED %q, want %q", tc.flags, got, tc.verb)
		}
	}
	if sent := s.Sent(); len(sent) != 0 {
		t.Errorf("messages were sent: %+v", sent)
	}
	for _, r := range s.Requests() {
		if r.Op == "CreateItem" && r.Status != 200 {
			t.Errorf("CreateItem answered %d %v", r.Status, r.Codes)
		}
	}
	// Written and listed again, the flags come back (less \Draft).
	ms, _ := listAll(t, c, f, connector.ListOptions{})
	want := map[string][]string{
		"message 2": {mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered},
		"message 5": {"$Forwarded"},
		"message 3": nil,
	}
	for _, m := range ms {
		if w, ok := want[m.Headers.Subject]; ok && !sameFlags(m.Flags, w) {
			t.Errorf("%s listed with %v, want %v", m.Headers.Subject, m.Flags, w)
		}
	}
}

// The request is written as the schema orders it and as SaveOnly with a
// folder, in one CreateItem per message: the strict server refuses
// anything else, so a successful append proves the shape. This test pins
// what cannot be seen from the result: the request never asks to send.
func TestAppendRequestShape(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	head := []byte("From: a@example.org\r\nSubject: x\r\n\r\n")
	frame := func(flags []string) string {
		pre, suf, err := c.createItemFrame(in, connector.AppendRequest{Flags: flags, InternalDate: time.Unix(0, 0)}, head, true)
		if err != nil {
			t.Fatal(err)
		}
		return string(pre) + "BODY" + string(suf)
	}
	x := frame([]string{mail.FlagFlagged, mail.FlagSeen})
	for _, want := range []string{`MessageDisposition="SaveOnly"`, `<m:SavedItemFolderId><t:FolderId Id="` + in.Name + `"`,
		`<t:MimeContent CharacterSet="UTF-8">BODY</t:MimeContent><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"></t:ExtendedFieldURI><t:Value>1</t:Value>`,
		`PropertyTag="0x0E06" PropertyType="SystemTime"></t:ExtendedFieldURI><t:Value>1970-01-01T00:00:00Z</t:Value>`,
		`PropertyTag="0x007D" PropertyType="String"></t:ExtendedFieldURI><t:Value>From: a@example.org&#xD;&#xA;Subject: x&#xD;&#xA;</t:Value>`,
		`</t:ExtendedProperty><t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag></t:Message>`} {
		if !strings.Contains(x, want) {
			t.Errorf("request lacks %s:\n%s", want, x)
		}
	}
	if strings.Contains(x, "Send") {
		t.Errorf("the request mentions sending:\n%s", x)
	}
	// A header block XML cannot carry is left out.
	pre, suf, err := c.createItemFrame(in, connector.AppendRequest{}, []byte("From: a\x01b\r\n\r\n"), true)
	if err != nil || strings.Contains(string(pre)+string(suf), "0x007D") {
		t.Errorf("control character in the header block: %v", err)
	}
}

// A message over the server's size limit fails alone (KindItem, with a
// hint) and the next one is stored; a full mailbox is KindQuota.
func TestAppendLimits(t *testing.T) {
	s := server(t, nil, func(s *ewsserver.Server) {
		if err := s.AddUser("small@example.com", ewsserver.UserOptions{Password: pw, MaxMessageBytes: 4096, QuotaBytes: 20000}); err != nil {
			t.Fatal(err)
		}
	})
	c, err := Open(context.Background(), endpoint(t, s, ""), options(s, "small@example.com", pw))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := folderByPath(t, c, "INBOX")
	big := append(msg(1, ""), bytes.Repeat([]byte("x"), 5000)...)
	p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(big)), Body: bytes.NewReader(big)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Wait()
	if connector.KindOf(err) != connector.KindItem || !strings.Contains(err.Error(), "ErrorMessageSizeExceeded") || connector.HintOf(err) == "" || connector.IsUncertain(err) {
		t.Fatalf("too big: %v (kind %v, hint %q)", err, connector.KindOf(err), connector.HintOf(err))
	}
	appendMsg(t, c, in, msg(2, ""), nil, time.Time{})
	var quotaErr error
	for i := range 30 {
		raw := append(msg(i, ""), bytes.Repeat([]byte("y"), 3000)...)
		p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
		if err != nil {
			t.Fatal(err)
		}
		if _, quotaErr = p.Wait(); quotaErr != nil {
			break
		}
	}
	if connector.KindOf(quotaErr) != connector.KindQuota {
		t.Errorf("filling the mailbox: %v (kind %v), want KindQuota", quotaErr, connector.KindOf(quotaErr))
	}
}

// A body shorter than announced stores nothing and says so (not
// uncertain).
func TestAppendShortBody(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	raw := msg(1, "")
	_, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)) + 10, Body: bytes.NewReader(raw)})
	if err == nil || connector.IsUncertain(err) {
		t.Fatalf("short body: %v", err)
	}
	if n := len(s.Mailbox(alice).Items(inboxID(s))); n != 0 {
		t.Errorf("%d items stored", n)
	}
	appendMsg(t, c, in, raw, nil, time.Time{}) // the connection pool still works
}

// Appends are pipelined: Append returns once the request is written, so
// that several requests are in flight at once, never more than
// MaxConnections. (Messages over batchItemMax, each in its own request.)
func TestAppendPipelined(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "", func(o *connector.OpenOptions) { o.MaxConnections = 3 })
	in := folderByPath(t, c, "INBOX")
	release := s.Block("CreateItem")
	big := func(i int) []byte { return msg(i, "X-Pad: "+strings.Repeat("p", batchItemMax)+"\r\n") }
	var pending []connector.PendingAppend
	for i := range 3 {
		raw := big(i)
		p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	waitFor(t, func() bool { return s.InFlight(alice) == 3 })
	// A fourth waits for a connection; it is sent once one is free.
	done := make(chan connector.PendingAppend)
	go func() {
		raw := big(3)
		p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	time.Sleep(50 * time.Millisecond)
	if n := s.InFlight(alice); n != 3 {
		t.Errorf("%d requests in flight with MaxConnections 3", n)
	}
	release()
	pending = append(pending, <-done)
	ids := map[connector.ID]bool{}
	for _, p := range pending {
		res, err := p.Wait()
		if err != nil || res.ID == "" {
			t.Fatalf("wait: %v %+v", err, res)
		}
		ids[res.ID] = true
	}
	if len(ids) != 4 || s.MaxInFlight(alice) > 3 || s.Count("CreateItem") != 4 {
		t.Errorf("%d distinct ids, at most %d in flight, %d CreateItem calls", len(ids), s.MaxInFlight(alice), s.Count("CreateItem"))
	}
}

// Small messages go several to a CreateItem request, each with its own
// answer and id; a batch is sent when full, when a caller waits, or after
// a short linger. One failing item fails alone; a message marked Retry
// goes on its own.
func TestAppendBatched(t *testing.T) {
	s := server(t, nil, func(s *ewsserver.Server) {
		if err := s.AddUser("small@example.com", ewsserver.UserOptions{Password: pw, MaxMessageBytes: 2000}); err != nil {
			t.Fatal(err)
		}
	})
	c, err := Open(context.Background(), endpoint(t, s, ""), options(s, "small@example.com", pw))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := folderByPath(t, c, "INBOX")
	var pending []connector.PendingAppend
	raws := map[int][]byte{}
	for i := range 25 {
		raw := msg(i, "")
		if i == 7 {
			raw = append(raw, bytes.Repeat([]byte("x"), 3000)...) // over the limit
		}
		raws[i] = raw
		p, err := c.Append(context.Background(), in, connector.AppendRequest{Flags: []string{mail.FlagSeen}, Size: int64(len(raw)), Body: bytes.NewReader(raw)})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	for i, p := range pending {
		res, err := p.Wait()
		if i == 7 {
			if connector.KindOf(err) != connector.KindItem || connector.IsUncertain(err) {
				t.Errorf("the message over the limit: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		info, ok := s.Mailbox("small@example.com").Item(string(res.ID))
		if !ok || !bytes.Equal(info.MIME, raws[i]) || info.IsDraft || !info.IsRead {
			t.Errorf("message %d stored as %+v", i, info)
		}
	}
	// 10+10+5 when the appends come faster than the 3 ms linger; on a
	// loaded machine (CI under -race) the linger may send a batch early,
	// but still far fewer calls than messages.
	batched := s.Count("CreateItem")
	if batched < 3 || batched > 8 {
		t.Errorf("25 messages written in %d CreateItem calls, want 3 (10+10+5), at most 8", batched)
	}
	// A lone message is not held: Wait sends it at once, and so does the
	// linger without a Wait.
	start := time.Now()
	appendMsg(t, c, in, msg(100, ""), nil, time.Time{})
	p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raws[1])), Body: bytes.NewReader(raws[1])})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Count("CreateItem") == batched+2 })
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two lone messages took %v", d)
	}
	raw := msg(200, "")
	p, err = c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil || s.Count("CreateItem") != batched+3 {
		t.Errorf("a retried message: %v, %d calls", err, s.Count("CreateItem"))
	}
}

// A connection lost after the request was written leaves the outcome
// unknown: the error is Uncertain, so that the engine checks before
// writing the message again.
func TestAppendUncertain(t *testing.T) {
	for _, size := range []string{"small (batched)", "large (streamed)"} {
		t.Run(size, func(t *testing.T) {
			s := server(t, nil)
			proxy := testenv.StartProxy(t, s.Host())
			e, err := Parse("ews://" + proxy.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Open(context.Background(), e, options(s, alice, pw))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			in := folderByPath(t, c, "INBOX")
			release := s.Block("CreateItem")
			defer release()
			raw := msg(1, "")
			if size != "small (batched)" {
				raw = msg(1, "X-Pad: "+strings.Repeat("p", batchItemMax)+"\r\n")
			}
			p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return s.InFlight(alice) == 1 })
			proxy.Down()
			_, err = p.Wait()
			if !connector.IsUncertain(err) || connector.KindOf(err) != connector.KindTransient {
				t.Fatalf("lost answer: %v (uncertain %v, kind %v)", err, connector.IsUncertain(err), connector.KindOf(err))
			}
		})
	}
}

// UpdateItem replaces the flags of exactly the given items; a stale id
// is ignored.
func TestSetFlags(t *testing.T) {
	s := server(t, nil)
	ids := seed(t, s, inboxID(s), msg(1, ""), msg(2, ""), msg(3, ""))
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	gone := ids[2]
	if err := s.Mailbox(alice).DeleteItem(gone); err != nil {
		t.Fatal(err)
	}
	set := func(flags []string) {
		t.Helper()
		if err := c.SetFlags(context.Background(), in, []connector.ID{connector.ID(ids[0]), connector.ID(gone)}, flags); err != nil {
			t.Fatalf("set %v: %v", flags, err)
		}
	}
	set([]string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered, mail.FlagDraft, "Work"})
	a, _ := s.Mailbox(alice).Item(ids[0])
	if !a.IsRead || a.FlagStatus != ewsserver.FlagFlagged || a.Extended["0x1081/Integer"] != "102" || a.IsDraft {
		t.Errorf("after setting: %+v", a)
	}
	if b, _ := s.Mailbox(alice).Item(ids[1]); b.IsRead || b.FlagStatus == ewsserver.FlagFlagged {
		t.Errorf("another item changed: %+v", b)
	}
	set(nil)
	a, _ = s.Mailbox(alice).Item(ids[0])
	if a.IsRead || a.FlagStatus == ewsserver.FlagFlagged || a.Extended["0x1081/Integer"] != "" {
		t.Errorf("after clearing: read %v flag %q verb %q", a.IsRead, a.FlagStatus, a.Extended["0x1081/Integer"])
	}
	set([]string{"$Forwarded"})
	ms, _ := listAll(t, c, in, connector.ListOptions{})
	for _, m := range ms {
		if string(m.ID) == ids[0] && !sameFlags(m.Flags, []string{"$Forwarded"}) {
			t.Errorf("listed with %v after setting $Forwarded", m.Flags)
		}
	}
}

// DeleteItem removes exactly the given items; a gone id is no error.
func TestDelete(t *testing.T) {
	s := server(t, nil)
	ids := seed(t, s, inboxID(s), msg(1, ""), msg(2, ""), msg(3, ""), msg(4, ""))
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	if err := s.Mailbox(alice).DeleteItem(ids[3]); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(context.Background(), in, []connector.ID{connector.ID(ids[0]), connector.ID(ids[2]), connector.ID(ids[3])}); err != nil {
		t.Fatal(err)
	}
	left := s.Mailbox(alice).Items(inboxID(s))
	if len(left) != 1 || left[0].ID != ids[1] {
		t.Errorf("left in the inbox: %+v", left)
	}
	for _, it := range s.Mailbox(alice).AllItems() {
		if it.ID == ids[0] && strings.Join(it.FolderPath, "/") == "Inbox" {
			t.Errorf("deleted item still in the inbox")
		}
	}
}
