// Package conntest is the conformance suite every connector must pass,
// in the spirit of rclone's fstests: one set of behaviours, written once
// against the connector interfaces, run against every implementation and
// every server it supports. A connector's own test file only says how to
// get a fresh mailbox (and, for a source that cannot be written through
// the connector, how to put mail into it). What a connector does not
// support (per its Features) is skipped, never faked.
//
// IDs and cursors are treated as the opaque strings they are: the suite
// checks what the engine relies on (IDs unique, stable and accepted back;
// a cursor that shows what arrived after it; a cursor the connector did
// not make refused with ErrCursorInvalid under StrictSince), never their
// shape.
package conntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// Harness says how to reach a fresh mailbox.
type Harness struct {
	// NewMailbox returns an open connector for a new, empty mailbox.
	// The suite closes it.
	NewMailbox func(t *testing.T) connector.Conn
	// Seed writes a message into a folder (creating the folder) for
	// connectors that are not Destinations; nil means the suite uses the
	// connector's own CreateFolder and Append.
	Seed func(t *testing.T, c connector.Conn, folder mail.Path, raw []byte, flags []string, date time.Time)
	// Reopen returns a connector on the same mailbox that sees what was
	// seeded since c was opened, for stores whose sessions see a fixed
	// view (POP3: the maildrop as it was at login, RFC 1939 section 8).
	// The suite closes it. Nil means c sees changes itself.
	Reopen func(t *testing.T, c connector.Conn) connector.Conn

	// What the store cannot keep, by its nature (not defects):
	//
	// NoFlags: the store has no flags (POP3, EML); seeded flags are
	// not expected back.
	NoFlags bool
	// NoDraft: an imported message cannot be marked a draft (Exchange
	// fixes the draft state at creation and the EWS connector never
	// creates drafts); \Draft is not expected back.
	NoDraft bool
	// DateFromHeader: the received date is read from the message's
	// Received: or Date: header (POP3, EML), not kept from Seed.
	DateFromHeader bool
	// AddsFinalNewline: a message that does not end in a line break is
	// served with one (POP3 cannot transmit it otherwise).
	AddsFinalNewline bool

	// ServerAddsHeaderSeparator is a known server defect, not a connector
	// one: go-imap's in-memory server rebuilds BODY[] from header and
	// body and so adds the blank line a message without one lacks. Real
	// servers (Dovecot) serve the stored bytes.
	ServerAddsHeaderSeparator bool
	// Known server behaviour with malformed messages, which the suite
	// expects instead of byte-exactness (see testenv's Courier and Cyrus
	// documentation). Each is what the server stores, so what any client
	// gets back; the connector passes the bytes through unchanged.
	//
	// CreatesRoles: the server offers CREATE-SPECIAL-USE (RFC 6154),
	// so a folder created for a role must be listed with it.
	CreatesRoles bool
	// ServerAddsFinalNewline: a message that does not end in CRLF is
	// stored with one added (Courier-IMAP).
	ServerAddsFinalNewline bool
	// ServerStripsLoneCR: a CR not followed by LF is removed (Courier-IMAP).
	ServerStripsLoneCR bool
	// ServerRefusesBareLF: a message with an LF not preceded by CR is
	// refused with NO, which must be a per-message (KindItem) failure.
	// (Cyrus IMAP says "Message contains bare newlines"; the IMAP
	// connector turns bare LF into CRLF, so it no longer gets there.)
	ServerRefusesBareLF bool
	// ServerMunges8BitHeaders: bytes above 0x7F in the header are
	// replaced by 'X' (Cyrus IMAP's default, munge8bit).
	ServerMunges8BitHeaders bool
	// LineEndsCRLF: the destination stores bare LF as CRLF (the IMAP
	// connector writes CRLF to IMAP; byte-exactness is defined on that
	// form), so a bare-LF message is expected back in CRLF form.
	LineEndsCRLF bool
}

// HostileNames are folder paths that break naive connectors: the
// characters servers reserve ('.', '/', '&' which starts modified UTF-7),
// spaces, non-ASCII, and nesting.
func HostileNames() []mail.Path {
	return []mail.Path{
		{"Archive", "2019"},
		{"Ärger & Co"},
		{"Projects", "Q1 plans", "Größe"},
		{"hello? sausage", "êé", "Hello, 世界"},
		{"a&b"},
		{"Dots.in.name"},
		{"&-literal"},
	}
}

// Run runs every conformance test against h.
func Run(t *testing.T, h Harness) {
	t.Run("Features", func(t *testing.T) { testFeatures(t, h) })
	t.Run("FoldersHaveInbox", func(t *testing.T) { testInbox(t, h) })
	t.Run("CreateFolderHostileNames", func(t *testing.T) { testCreateFolders(t, h) })
	t.Run("CreateFolderWithRole", func(t *testing.T) { testCreateRole(t, h) })
	t.Run("AppendListFetchRoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("MalformedAndBinaryBytes", func(t *testing.T) { testMalformed(t, h) })
	t.Run("ListSinceCursorAndBatches", func(t *testing.T) { testListSince(t, h) })
	t.Run("CursorOfAnotherConnector", func(t *testing.T) { testForeignCursor(t, h) })
	t.Run("StatusesAndUnchanged", func(t *testing.T) { testStatus(t, h) })
	t.Run("FetchUnknownIDIsItemError", func(t *testing.T) { testFetchMissing(t, h) })
	t.Run("AppendToMissingFolder", func(t *testing.T) { testAppendMissingFolder(t, h) })
	t.Run("ConcurrentAppendsAndTheirIDs", func(t *testing.T) { testConcurrentAppends(t, h) })
	t.Run("OpenedCursorSeesArrivals", func(t *testing.T) { testArrivals(t, h) })
	t.Run("Quota", func(t *testing.T) { testQuota(t, h) })
	t.Run("SetFlagsAndFlagChanges", func(t *testing.T) { testSetFlags(t, h) })
	t.Run("DeleteOnlyTheseMessages", func(t *testing.T) { testDelete(t, h) })
}

func open(t *testing.T, h Harness) connector.Conn {
	t.Helper()
	c := h.NewMailbox(t)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// reopen is c, or a new connector on its mailbox that sees later mail.
func reopen(t *testing.T, h Harness, c connector.Conn) connector.Conn {
	t.Helper()
	if h.Reopen == nil {
		return c
	}
	n := h.Reopen(t, c)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Message builds a distinct RFC 822 message.
func Message(i int, extra string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <conntest-%d@mailferry.test>\r\nDate: Mon, 2 Jan 2006 15:04:%02d +0100\r\n"+
		"From: Conformance <c@mailferry.test>\r\nTo: t@mailferry.test\r\nSubject: message %d\r\n\r\nBody %d\r\n%s", i, i%60, i, i, extra))
}

// where is the folder a test uses: p on a store with folders, else the
// inbox (each test has a mailbox of its own).
func where(c connector.Conn, p mail.Path) mail.Path {
	if !c.Features().Folders {
		return mail.Path{mail.InboxName}
	}
	return p
}

func folder(t *testing.T, c connector.Conn, p mail.Path) connector.Folder {
	t.Helper()
	fs, err := c.Folders(ctx(t))
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for _, f := range fs {
		if f.Path.Equal(p) {
			return f
		}
	}
	t.Fatalf("folder %q not listed; have %v", p, paths(fs))
	return connector.Folder{}
}

func paths(fs []connector.Folder) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Path.String())
	}
	sort.Strings(out)
	return out
}

// destFolder returns p on a destination, created when the connector
// creates folders, else found (a store with one folder).
func destFolder(t *testing.T, d connector.Destination, p mail.Path) connector.Folder {
	t.Helper()
	if !d.Features().CreateFolders {
		return folder(t, d, p)
	}
	f, err := d.CreateFolder(ctx(t), p, mail.RoleNone)
	if err != nil {
		t.Fatalf("CreateFolder(%q): %v", p, err)
	}
	return f
}

func seed(t *testing.T, h Harness, c connector.Conn, p mail.Path, raw []byte, flags []string, date time.Time) {
	t.Helper()
	if h.Seed != nil {
		h.Seed(t, c, p, raw, flags, date)
		return
	}
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("connector is neither a destination nor has a Seed function")
	}
	appendOne(t, d, destFolder(t, d, p), raw, flags, date)
}

func listAll(t *testing.T, c connector.Conn, f connector.Folder, opts connector.ListOptions) ([]connector.Message, connector.Listing) {
	t.Helper()
	var out []connector.Message
	lst, err := c.List(ctx(t), f, opts, func(ms []connector.Message) error {
		if opts.Batch > 0 && len(ms) > opts.Batch {
			t.Errorf("List handed %d messages in one batch, more than Batch=%d", len(ms), opts.Batch)
		}
		out = append(out, ms...)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q, %+v): %v", f.Path, opts, err)
	}
	seen := map[connector.ID]bool{}
	for _, m := range out {
		if m.ID == "" || len(m.ID) > connector.MaxIDLen {
			t.Fatalf("List gave an ID of %d bytes: %q", len(m.ID), m.ID)
		}
		if seen[m.ID] {
			t.Fatalf("List gave ID %q twice", m.ID)
		}
		seen[m.ID] = true
	}
	return out, lst
}

// news are the ChangeNew messages of ms.
func news(ms []connector.Message) []connector.Message {
	var out []connector.Message
	for _, m := range ms {
		if m.Change == connector.ChangeNew {
			out = append(out, m)
		}
	}
	return out
}

func byID(ms []connector.Message) map[connector.ID]connector.Message {
	out := make(map[connector.ID]connector.Message, len(ms))
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func fetchAll(t *testing.T, s connector.Source, f connector.Folder, ms []connector.Message) (map[connector.ID][]byte, map[connector.ID]error) {
	t.Helper()
	bodies, errs := map[connector.ID][]byte{}, map[connector.ID]error{}
	err := s.Fetch(ctx(t), f, ms, func(b connector.Body, err error) error {
		if err != nil {
			if b.Reader != nil {
				t.Errorf("%s: error %v came with a reader", b.Message.ID, err)
			}
			errs[b.Message.ID] = err
			return nil
		}
		data, rerr := io.ReadAll(b.Reader)
		if rerr != nil {
			return rerr
		}
		if int64(len(data)) != b.Size {
			t.Errorf("%s: Size %d but reader gave %d bytes", b.Message.ID, b.Size, len(data))
		}
		bodies[b.Message.ID] = data
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return bodies, errs
}

func appendOne(t *testing.T, d connector.Destination, f connector.Folder, raw []byte, flags []string, date time.Time) connector.AppendResult {
	t.Helper()
	if date.IsZero() {
		date = time.Now()
	}
	pa, err := d.Append(ctx(t), f, connector.AppendRequest{Flags: flags, InternalDate: date, Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	res, err := pa.Wait()
	if err != nil {
		t.Fatalf("Append answer: %v", err)
	}
	return res
}

func testFeatures(t *testing.T, h Harness) {
	c := open(t, h)
	f := connector.FeaturesOf(c)
	if f.MaxConnections < 1 {
		t.Errorf("MaxConnections = %d, must be at least 1", f.MaxConnections)
	}
	if f.MaxMessageSize < 0 {
		t.Errorf("MaxMessageSize = %d", f.MaxMessageSize)
	}
	_, isDest := c.(connector.Destination)
	if (f.CreateFolders || f.SetFlags || f.Delete || f.AppendIDs || f.ByteExact) && !isDest {
		t.Errorf("features %+v describe writing, but the connector is not a Destination", f)
	}
	if f.CreateFolders && !f.Folders {
		t.Error("CreateFolders without Folders: a store without a tree cannot create folders")
	}
	if !f.Folders {
		fs, err := c.Folders(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 || !fs[0].Path.IsInbox() {
			t.Errorf("a store without folders lists %v, want INBOX only", paths(fs))
		}
	}
}

func testInbox(t *testing.T, h Harness) {
	c := open(t, h)
	f := folder(t, c, mail.Path{mail.InboxName})
	if f.Role != mail.RoleInbox {
		t.Errorf("INBOX role = %q, want %q", f.Role, mail.RoleInbox)
	}
	if f.NoSelect {
		t.Error("INBOX must be selectable")
	}
	if !f.IsMail() {
		t.Errorf("INBOX has class %q", f.Class)
	}
}

func testCreateFolders(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok || !c.Features().CreateFolders {
		t.Skip("does not create folders")
	}
	for _, p := range HostileNames() {
		f, err := d.CreateFolder(ctx(t), p, mail.RoleNone)
		if err != nil {
			t.Fatalf("CreateFolder(%q): %v", p, err)
		}
		// Creating again must be a no-op: retries depend on it.
		if _, err := d.CreateFolder(ctx(t), p, mail.RoleNone); err != nil {
			t.Fatalf("CreateFolder(%q) a second time: %v", p, err)
		}
		if f.Name == "" {
			t.Errorf("CreateFolder(%q) returned no server name", p)
		}
	}
	fs, err := c.Folders(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]connector.Folder{}
	for _, f := range fs {
		byPath[f.Path.Key()] = f
	}
	for _, p := range HostileNames() {
		want := expectPath(p, fs)
		f, ok := byPath[want.Key()]
		if !ok {
			t.Errorf("created %q, listed folders are %v", p, paths(fs))
			continue
		}
		// Non-ASCII must survive the name encoding.
		if strings.Contains(p.String(), "世界") && !strings.Contains(f.Path.String(), "世界") {
			t.Errorf("non-ASCII name mangled: %q", f.Path)
		}
		// Parents of nested folders must exist (perhaps as \Noselect).
		for i := 1; i < len(want); i++ {
			if _, ok := byPath[want[:i].Key()]; !ok {
				t.Errorf("parent %q of %q not listed", want[:i], want)
			}
		}
	}
}

func testCreateRole(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok || !c.Features().CreateFolders {
		t.Skip("does not create folders")
	}
	// A role is a wish: every store creates the folder, with the role
	// where it can. A second folder for the same role, and a folder that
	// exists, are created (or left) without an error too.
	for _, p := range []mail.Path{{"Sent by Mailferry"}, {"Projects", "Sent too"}, {"Sent by Mailferry"}} {
		if _, err := d.CreateFolder(ctx(t), p, mail.RoleSent); err != nil {
			t.Fatalf("CreateFolder(%q, \\Sent): %v", p, err)
		}
	}
	if _, err := d.CreateFolder(ctx(t), mail.Path{"Trash by Mailferry"}, mail.RoleTrash); err != nil {
		t.Fatalf("CreateFolder(Trash by Mailferry, \\Trash): %v", err)
	}
	// A child's CREATE may come first and make its parent without the
	// parent's role; the parent's own CreateFolder still gives it.
	for _, p := range []mail.Path{{"Archive by Mailferry", "2019"}, {"Archive by Mailferry"}} {
		role := mail.RoleNone
		if len(p) == 1 {
			role = mail.RoleArchive
		}
		if _, err := d.CreateFolder(ctx(t), p, role); err != nil {
			t.Fatalf("CreateFolder(%q, %q): %v", p, role, err)
		}
	}
	archive := folder(t, c, mail.Path{"Archive by Mailferry"})
	f := folder(t, c, mail.Path{"Sent by Mailferry"})
	folder(t, c, mail.Path{"Projects", "Sent too"})
	trash := folder(t, c, mail.Path{"Trash by Mailferry"})
	if !h.CreatesRoles {
		return
	}
	if f.Role != mail.RoleSent || !f.RoleFromServer {
		t.Errorf("folder created for \\Sent is listed with role %q (from server: %v)", f.Role, f.RoleFromServer)
	}
	if trash.Role != mail.RoleTrash || !trash.RoleFromServer {
		t.Errorf("folder created for \\Trash is listed with role %q (from server: %v)", trash.Role, trash.RoleFromServer)
	}
	if archive.Role != mail.RoleArchive || !archive.RoleFromServer {
		t.Errorf("parent folder created for \\Archive after its child is listed with role %q (from server: %v)", archive.Role, archive.RoleFromServer)
	}
}

// expectPath is what a created path looks like when listed: segments that
// contain the server's delimiter had it replaced by '_' (documented).
func expectPath(p mail.Path, fs []connector.Folder) mail.Path {
	var delim rune
	for _, f := range fs {
		if f.Delimiter != 0 && f.Delimiter != '/' {
			delim = f.Delimiter
			break
		}
	}
	out := make(mail.Path, len(p))
	for i, s := range p {
		if delim != 0 {
			s = strings.ReplaceAll(s, string(delim), "_")
		}
		out[i] = s
	}
	return out
}

func testRoundTrip(t *testing.T, h Harness) {
	c := open(t, h)
	if _, ok := c.(connector.Source); !ok {
		t.Skip("not a source")
	}
	p := where(c, mail.Path{"Round", "Trip"})
	date := time.Date(2011, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))
	type sent struct {
		raw   []byte
		flags []string
	}
	in := []sent{
		{Message(1, ""), []string{mail.FlagSeen}},
		{Message(2, ""), []string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered}},
		{Message(3, ""), []string{mail.FlagDraft}},
		{Message(4, ""), []string{"$Label1", "Work"}},
		{Message(5, ""), nil},
	}
	for _, m := range in {
		seed(t, h, c, p, m.raw, m.flags, date)
	}
	c = reopen(t, h, c)
	src := c.(connector.Source)
	f := folder(t, c, p)
	ms, lst := listAll(t, c, f, connector.ListOptions{})
	if len(ms) != len(in) {
		t.Fatalf("listed %d messages, appended %d", len(ms), len(in))
	}
	if lst.Cursor == "" {
		t.Error("a full listing returned no cursor")
	}
	if lst.Status.Messages != int64(len(in)) {
		t.Errorf("listing status says %d messages, listed %d", lst.Status.Messages, len(ms))
	}
	again, _ := listAll(t, c, f, connector.ListOptions{})
	for i := range again {
		if again[i].ID != ms[i].ID {
			t.Fatalf("IDs are not stable: listed %q, then %q", ms[i].ID, again[i].ID)
		}
	}
	bodies, errs := fetchAll(t, src, f, ms)
	if len(errs) > 0 {
		t.Fatalf("fetch errors: %v", errs)
	}
	// Listing order is the connector's; messages are told apart by
	// their subject.
	bySubject := map[string]sent{}
	for i, m := range in {
		bySubject[fmt.Sprintf("message %d", i+1)] = m
	}
	headerDate, _ := time.Parse(time.RFC1123Z, "Mon, 02 Jan 2006 15:04:01 +0100")
	for _, m := range ms {
		if m.Change != connector.ChangeNew {
			t.Errorf("%s: a full listing gave change %v, want ChangeNew", m.ID, m.Change)
		}
		want, ok := bySubject[m.Headers.Subject]
		if !ok {
			t.Errorf("%s: subject header %q", m.ID, m.Headers.Subject)
			continue
		}
		if got := bodies[m.ID]; sha256.Sum256(got) != sha256.Sum256(want.raw) {
			t.Errorf("%s: bytes differ:\n got %q\nwant %q", m.ID, got, want.raw)
		}
		if m.Size != int64(len(want.raw)) {
			t.Errorf("%s: Size %d, want %d", m.ID, m.Size, len(want.raw))
		}
		wantDate := date
		if h.DateFromHeader {
			// The Date: header of Message(i): 15:04:i.
			wantDate = headerDate.Add(time.Duration(int(m.Headers.Subject[len(m.Headers.Subject)-1]-'0')-1) * time.Second)
		}
		if !m.InternalDate.Equal(wantDate) {
			t.Errorf("%s: INTERNALDATE %v, want %v", m.ID, m.InternalDate, wantDate)
		}
		if !h.NoFlags {
			for _, fl := range want.flags {
				if !kept(c, h, fl) {
					continue
				}
				if !mail.HasFlag(m.Flags, fl) {
					t.Errorf("%s: flag %s lost, have %v", m.ID, fl, m.Flags)
				}
			}
		}
		if m.Identity != mail.ComputeIdentity(mail.ParseHeaders(want.raw), int64(len(want.raw))) {
			t.Errorf("%s: identity does not match the one computed from its own headers", m.ID)
		}
	}
}

// kept says whether c's store keeps flag fl at all: keywords only with
// Features.Keywords, \Draft unless NoDraft.
func kept(c connector.Conn, h Harness, fl string) bool {
	if fl == mail.FlagDraft {
		return !h.NoDraft
	}
	if !strings.HasPrefix(fl, "\\") {
		return c.Features().Keywords
	}
	return true
}

func testMalformed(t *testing.T, h Harness) {
	c := open(t, h)
	if _, ok := c.(connector.Source); !ok {
		t.Skip("not a source")
	}
	// No header/body separator, a broken MIME boundary, bare LF, 8-bit
	// bytes and a NUL-free binary blob without a final newline, a lone
	// CR: copied as is or not at all.
	raws := [][]byte{
		[]byte("Subject: no separator line\r\nFrom: x@y\r\n"),
		[]byte("Content-Type: multipart/mixed; boundary=\"zz\r\nMessage-ID: <broken@x>\r\n\r\n--zz\r\nunterminated part\r\n"),
		[]byte("From: bare-lf@x\nSubject: lf only\n\nline1\nline2\n"),
		append([]byte("From: eight@bit\r\nSubject: caf\xe9 \xff\xfe\r\n\r\n"), bytes.Repeat([]byte{0xC3, 0xA4, 0x80, 0x7F}, 1000)...),
		[]byte("From: lone-cr@x\r\nSubject: lone CR\r\n\r\nbefore\rafter\r\n"),
	}
	const bareLF = 2
	p := where(c, mail.Path{"Malformed"})
	var kept [][]byte // what the store keeps, in order
	for i, r := range raws {
		err := tryAppend(t, h, c, p, r)
		refused := h.ServerRefusesBareLF && i == bareLF
		switch {
		case refused && err == nil:
			t.Errorf("malformed message %d was stored; the server is said to refuse it", i)
		case refused && connector.KindOf(err) == connector.KindItem && !connector.IsUncertain(err):
			// Refused as the server is known to: a per-message failure
			// that the engine records, not one it retries.
		case err == nil:
			kept = append(kept, served(h, i == 0, r))
		default:
			t.Fatalf("append of malformed message %d: %v (kind %v)", i, err, connector.KindOf(err))
		}
	}
	c = reopen(t, h, c)
	src := c.(connector.Source)
	f := folder(t, c, p)
	ms, _ := listAll(t, c, f, connector.ListOptions{})
	if len(ms) != len(kept) {
		t.Fatalf("listed %d, want %d", len(ms), len(kept))
	}
	bodies, errs := fetchAll(t, src, f, ms)
	if len(errs) > 0 {
		t.Fatalf("fetch errors: %v", errs)
	}
	got := make([][]byte, 0, len(ms))
	sizes := map[string]int64{}
	for _, m := range ms {
		got = append(got, bodies[m.ID])
		sizes[string(bodies[m.ID])] = m.Size
	}
	// Compare as multisets: the listing order is the connector's.
	sortBytes := func(bs [][]byte) {
		sort.Slice(bs, func(i, j int) bool { return bytes.Compare(bs[i], bs[j]) < 0 })
	}
	sortBytes(got)
	sortBytes(kept)
	for i := range kept {
		if !bytes.Equal(got[i], kept[i]) {
			t.Errorf("malformed message altered:\n got %q\nwant %q", truncate(got[i]), truncate(kept[i]))
		}
	}
	for body, size := range sizes {
		// go-imap's in-memory server reports the size before adding
		// the separator.
		// POP3's LIST counts what is stored, not the line break RETR
		// adds; the engine goes by the body's length anyway.
		if size != int64(len(body)) && !(h.ServerAddsHeaderSeparator && strings.HasPrefix(body, string(raws[0]))) &&
			!(h.AddsFinalNewline && size+2 == int64(len(body)) && strings.HasSuffix(body, "\r\n")) {
			t.Errorf("malformed message listed with size %d, served %d bytes", size, len(body))
		}
	}
}

// served is what a store with h's known behaviour keeps for raw.
func served(h Harness, noSeparator bool, raw []byte) []byte {
	out := append([]byte(nil), raw...)
	if h.LineEndsCRLF {
		var b []byte
		for i, ch := range out {
			if ch == '\n' && (i == 0 || out[i-1] != '\r') {
				b = append(b, '\r')
			}
			b = append(b, ch)
		}
		out = b
	}
	if h.ServerAddsHeaderSeparator && noSeparator {
		out = append(out, "\r\n"...)
	}
	if h.ServerMunges8BitHeaders {
		end := bytes.Index(out, []byte("\r\n\r\n"))
		if end < 0 {
			end = len(out)
		}
		for i := 0; i < end; i++ {
			if out[i] > 0x7f {
				out[i] = 'X'
			}
		}
	}
	if h.ServerStripsLoneCR {
		var b []byte
		for i, ch := range out {
			if ch == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
				continue
			}
			b = append(b, ch)
		}
		out = b
	}
	if (h.ServerAddsFinalNewline || h.AddsFinalNewline) && !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, "\r\n"...)
	}
	return out
}

// tryAppend is seed that returns the append's error instead of failing.
func tryAppend(t *testing.T, h Harness, c connector.Conn, p mail.Path, raw []byte) error {
	t.Helper()
	d, ok := c.(connector.Destination)
	if !ok || h.Seed != nil {
		seed(t, h, c, p, raw, nil, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
		return nil
	}
	f := destFolder(t, d, p)
	pa, err := d.Append(ctx(t), f, connector.AppendRequest{InternalDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err != nil {
		return err
	}
	_, err = pa.Wait()
	return err
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// A delta listing shows every message that arrived after its cursor as
// new; a connector that lists changes cheaply shows nothing else as new.
// Batches are bounded and IDs stay the same.
func testListSince(t *testing.T, h Harness) {
	c := open(t, h)
	p := where(c, mail.Path{"Many"})
	for i := 0; i < 25; i++ {
		seed(t, h, c, p, Message(100+i, ""), nil, time.Date(2012, 1, 1, 0, 0, i, 0, time.UTC))
	}
	c = reopen(t, h, c)
	f := folder(t, c, p)
	all, first := listAll(t, c, f, connector.ListOptions{Batch: 4})
	if len(all) != 25 {
		t.Fatalf("listed %d, want 25", len(all))
	}
	if first.Cursor == "" {
		t.Fatal("a full listing returned no cursor")
	}
	old := byID(all)
	quiet, lst := listAll(t, c, f, connector.ListOptions{Since: first.Cursor, StrictSince: true})
	if lst.Reset {
		t.Error("a listing since a fresh cursor was Reset")
	}
	for _, m := range news(quiet) {
		if _, known := old[m.ID]; !known {
			t.Errorf("nothing arrived, yet %s is listed as new", m.ID)
		}
	}
	if c.Features().ExactNew && len(news(quiet)) > 0 {
		t.Errorf("ExactNew connector listed %d messages as new since a cursor with nothing new", len(news(quiet)))
	}
	for i := 0; i < 3; i++ {
		seed(t, h, c, p, Message(200+i, ""), nil, time.Date(2013, 1, 1, 0, 0, i, 0, time.UTC))
	}
	c = reopen(t, h, c)
	f = folder(t, c, p)
	delta, lst := listAll(t, c, f, connector.ListOptions{Since: first.Cursor, StrictSince: true, Batch: 2})
	if lst.Reset || lst.Cursor == "" {
		t.Errorf("delta listing: Reset %v, cursor %q", lst.Reset, lst.Cursor)
	}
	arrived := 0
	for _, m := range news(delta) {
		if _, known := old[m.ID]; known {
			if c.Features().ExactNew {
				t.Errorf("ExactNew connector listed the old %s as new", m.ID)
			}
			continue
		}
		arrived++
		if !strings.HasPrefix(m.Headers.Subject, "message 20") || m.Size == 0 {
			t.Errorf("new message %s listed without its metadata: %+v", m.ID, m)
		}
	}
	if arrived != 3 {
		t.Fatalf("3 messages arrived after the cursor, the listing since it shows %d as new", arrived)
	}
	// The new cursor covers them.
	after, _ := listAll(t, c, f, connector.ListOptions{Since: lst.Cursor, StrictSince: true})
	for _, m := range news(after) {
		if _, known := old[m.ID]; !known && !strings.HasPrefix(m.Headers.Subject, "message 20") {
			t.Errorf("%s appeared from nowhere", m.ID)
		}
	}
	if c.Features().ExactNew && len(news(after)) > 0 {
		t.Errorf("the newest cursor still lists %d messages as new", len(news(after)))
	}
	// AllOld lists every old message too.
	withOld, _ := listAll(t, c, f, connector.ListOptions{Since: first.Cursor, StrictSince: true, AllOld: true})
	have := byID(withOld)
	for id := range old {
		if _, ok := have[id]; !ok {
			t.Errorf("AllOld did not list the old message %s", id)
			break
		}
	}
}

// A cursor the connector did not make is refused under StrictSince
// before anything is delivered, and means a full listing without it: the
// engine relies on this to notice that the IDs it recorded became
// meaningless (a renumbered folder) before it acts on any message.
func testForeignCursor(t *testing.T, h Harness) {
	c := open(t, h)
	p := where(c, mail.Path{"Foreign"})
	seed(t, h, c, p, Message(250, ""), nil, time.Now())
	c = reopen(t, h, c)
	f := folder(t, c, p)
	for _, cur := range []connector.Cursor{"not-a-cursor-of-anyone", "imap1;from=1;messages=0;modseq=0;uidnext=1;uidvalidity=4242", "v1;dir=1"} {
		delivered := 0
		_, err := c.List(ctx(t), f, connector.ListOptions{Since: cur, StrictSince: true}, func(ms []connector.Message) error {
			delivered += len(ms)
			return nil
		})
		if !errors.Is(err, connector.ErrCursorInvalid) {
			t.Errorf("cursor %q: %v; want an error wrapping connector.ErrCursorInvalid", cur, err)
		}
		if delivered > 0 {
			t.Errorf("cursor %q refused after %d messages were delivered", cur, delivered)
		}
		ms, _ := listAll(t, c, f, connector.ListOptions{Since: cur})
		if len(news(ms)) != 1 {
			t.Errorf("without StrictSince, a listing since %q lists %d messages as new, want the folder's 1", cur, len(news(ms)))
		}
	}
}

func testStatus(t *testing.T, h Harness) {
	c := open(t, h)
	if !connector.FeaturesOf(c).Status {
		t.Skip("no StatusReader")
	}
	p := where(c, mail.Path{"Counted"})
	for i := 0; i < 3; i++ {
		seed(t, h, c, p, Message(400+i, ""), nil, time.Now())
	}
	c = reopen(t, h, c)
	sr := c.(connector.StatusReader)
	f := folder(t, c, p)
	ms, lst := listAll(t, c, f, connector.ListOptions{})
	sts, errs := sr.Statuses(ctx(t), []connector.Folder{f}, nil)
	if errs[0] != nil {
		t.Fatalf("Statuses: %v", errs[0])
	}
	st := sts[0]
	if st.Messages != 3 || int64(len(ms)) != 3 {
		t.Errorf("Statuses says %d messages, listing %d", st.Messages, len(ms))
	}
	if st.Size != 0 {
		var sum int64
		for _, m := range ms {
			sum += m.Size
		}
		if st.Size != sum {
			t.Errorf("Statuses size %d, messages add up to %d", st.Size, sum)
		}
	}
	if st.Unchanged {
		t.Error("Unchanged without a cursor")
	}
	// Unchanged is a promise: after anything changed it must not be
	// given (it may be withheld any time).
	seed(t, h, c, p, Message(410, ""), nil, time.Now())
	c2 := reopen(t, h, c)
	sts, errs = c2.(connector.StatusReader).Statuses(ctx(t), []connector.Folder{folder(t, c2, p)}, []connector.Cursor{lst.Cursor})
	if errs[0] != nil {
		t.Fatalf("Statuses with a cursor: %v", errs[0])
	}
	if sts[0].Unchanged {
		t.Error("a message arrived after the cursor, yet the status says Unchanged")
	}
	if sts[0].Messages != 4 {
		t.Errorf("Statuses says %d messages after the 4th arrived", sts[0].Messages)
	}
}

func testFetchMissing(t *testing.T, h Harness) {
	c := open(t, h)
	if _, ok := c.(connector.Source); !ok {
		t.Skip("not a source")
	}
	p := where(c, mail.Path{"Missing"})
	seed(t, h, c, p, Message(200, ""), nil, time.Now())
	seed(t, h, c, p, Message(201, ""), nil, time.Now())
	c = reopen(t, h, c)
	src := c.(connector.Source)
	f := folder(t, c, p)
	ms, _ := listAll(t, c, f, connector.ListOptions{})
	// IDs the connector never made: they must never deliver another
	// message's body.
	ghosts := []connector.Message{{ID: ms[1].ID + "x", Size: 10}, {ID: "no-such-message-" + ms[0].ID, Size: 10}}
	bodies, errs := fetchAll(t, src, f, []connector.Message{ms[0], ghosts[0], ms[1], ghosts[1]})
	if len(bodies) != 2 || bodies[ms[0].ID] == nil || bodies[ms[1].ID] == nil {
		t.Errorf("fetched %d bodies, want the 2 existing ones", len(bodies))
	}
	for _, g := range ghosts {
		err, ok := errs[g.ID]
		if !ok {
			t.Errorf("an ID that names no message (%q) must be reported through the callback", g.ID)
			continue
		}
		if connector.KindOf(err) != connector.KindItem {
			t.Errorf("unknown message kind = %v, want item: %v", connector.KindOf(err), err)
		}
	}
}

func testAppendMissingFolder(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok || !c.Features().CreateFolders {
		t.Skip("no folders to miss")
	}
	f := connector.Folder{Path: mail.Path{"Does", "Not", "Exist"}, Name: "DoesNotExist-" + fmt.Sprint(time.Now().UnixNano())}
	raw := Message(300, "")
	pa, err := d.Append(ctx(t), f, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: time.Now()})
	if err == nil {
		_, err = pa.Wait()
	}
	if err == nil {
		t.Fatal("append to a folder that does not exist must fail")
	}
	if connector.IsUncertain(err) {
		t.Errorf("a refused append is certain, not uncertain: %v", err)
	}
	if k := connector.KindOf(err); k != connector.KindMissingFolder && k != connector.KindItem {
		t.Errorf("kind = %v, want missing-folder: %v", k, err)
	}
}

func testConcurrentAppends(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
	}
	p := where(c, mail.Path{"Parallel"})
	f := destFolder(t, d, p)
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	ids := make(chan connector.ID, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Send a whole pipeline before reading any answer.
			var pending []connector.PendingAppend
			for i := 0; i < each; i++ {
				raw := Message(1000+w*each+i, "")
				pa, err := d.Append(ctx(t), f, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: time.Now()})
				if err != nil {
					errs <- err
					return
				}
				pending = append(pending, pa)
			}
			for _, pa := range pending {
				res, err := pa.Wait()
				if err != nil {
					errs <- err
					continue
				}
				ids <- res.ID
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Errorf("append: %v", err)
	}
	ms, _ := listAll(t, c, folder(t, c, p), connector.ListOptions{})
	if len(ms) != workers*each {
		t.Errorf("folder holds %d messages after %d appends", len(ms), workers*each)
	}
	listed := byID(ms)
	if c.Features().AppendIDs {
		seen := map[connector.ID]bool{}
		for id := range ids {
			if id == "" || seen[id] {
				t.Errorf("AppendIDs connector returned ID %q (empty or twice)", id)
			}
			seen[id] = true
			// The engine addresses the copy by it later (flag changes,
			// deletions): it must be the ID the listing gives.
			if _, ok := listed[id]; !ok {
				t.Errorf("Append returned ID %q, which the listing does not show", id)
			}
		}
	}
	count := map[mail.Identity]int{}
	for _, m := range ms {
		count[m.Identity]++
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("identity %s stored %d times", id, n)
		}
	}
}

// A destination folder opened without its messages (NoMessages, as a
// delta pass opens it) gives a cursor since which what arrives is listed
// as new: the engine finds a copy whose APPEND answer was lost that way.
func testArrivals(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
	}
	p := where(c, mail.Path{"Arrivals"})
	f := destFolder(t, d, p)
	appendOne(t, d, f, Message(700, ""), nil, time.Time{})
	var delivered int
	lst, err := c.List(ctx(t), f, connector.ListOptions{ForAppend: true, NoMessages: true}, func(ms []connector.Message) error {
		delivered += len(ms)
		return nil
	})
	if err != nil {
		t.Fatalf("List(NoMessages): %v", err)
	}
	if lst.Cursor == "" {
		t.Fatal("List(NoMessages) gave no cursor")
	}
	if lst.Status.Messages != 1 && delivered == 0 {
		t.Errorf("List(NoMessages) status says %d messages, the folder holds 1", lst.Status.Messages)
	}
	appendOne(t, d, f, Message(701, ""), nil, time.Time{})
	tail, _ := listAll(t, c, f, connector.ListOptions{Since: lst.Cursor, StrictSince: true, ForAppend: true})
	found := 0
	for _, m := range news(tail) {
		switch m.Headers.Subject {
		case "message 701":
			found++
		case "message 700":
			if c.Features().ExactNew {
				t.Errorf("ExactNew connector lists the message from before the cursor as new")
			}
		}
	}
	if found != 1 {
		t.Errorf("the message appended after the cursor is listed %d times as new", found)
	}
}

func testQuota(t *testing.T, h Harness) {
	c := open(t, h)
	if !connector.FeaturesOf(c).Quota {
		t.Skip("no QuotaReader")
	}
	q, ok, err := c.(connector.QuotaReader).Quota(ctx(t))
	if err != nil {
		t.Fatalf("Quota: %v", err)
	}
	if !ok {
		t.Skip("server reports no quota")
	}
	if q.Limit > 0 && q.Used > q.Limit {
		t.Errorf("quota used %d above limit %d", q.Used, q.Limit)
	}
}

func testSetFlags(t *testing.T, h Harness) {
	c := open(t, h)
	if !connector.FeaturesOf(c).SetFlags {
		t.Skip("no FlagSetter")
	}
	d := c.(connector.Destination)
	fsetter := c.(connector.FlagSetter)
	p := where(c, mail.Path{"Flags"})
	f := destFolder(t, d, p)
	for i := 0; i < 4; i++ {
		appendOne(t, d, f, Message(500+i, ""), []string{mail.FlagSeen}, time.Time{})
	}
	all, before := listAll(t, c, f, connector.ListOptions{})
	sort.Slice(all, func(i, j int) bool { return all[i].Headers.Subject < all[j].Headers.Subject })
	changed := map[connector.ID]bool{all[1].ID: true, all[3].ID: true}
	if err := fsetter.SetFlags(ctx(t), f, []connector.ID{all[1].ID, all[3].ID}, []string{mail.FlagFlagged, "Project"}); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	// Repeating is harmless, and an ID the connector does not know
	// touches nothing.
	if err := fsetter.SetFlags(ctx(t), f, []connector.ID{all[1].ID, all[0].ID + "x", "no-such-id"}, []string{mail.FlagFlagged, "Project"}); err != nil {
		t.Fatalf("SetFlags again, with unknown IDs: %v", err)
	}
	got, _ := listAll(t, c, f, connector.ListOptions{})
	for _, m := range got {
		ch := changed[m.ID]
		if mail.HasFlag(m.Flags, mail.FlagSeen) == ch || mail.HasFlag(m.Flags, mail.FlagFlagged) != ch || (kept(c, h, "Project") && mail.HasFlag(m.Flags, "Project") != ch) {
			t.Errorf("%s flags %v after SetFlags (changed=%v)", m.ID, m.Flags, ch)
		}
	}
	// A listing with Changes since the cursor from before shows both
	// changed messages with their new flags.
	delta, _ := listAll(t, c, f, connector.ListOptions{Since: before.Cursor, StrictSince: true, Changes: true})
	shown := byID(delta)
	for id := range changed {
		m, ok := shown[id]
		if !ok {
			t.Errorf("Changes since the cursor do not show %s, whose flags changed", id)
			continue
		}
		if !mail.HasFlag(m.Flags, mail.FlagFlagged) {
			t.Errorf("Changes show %s with flags %v", id, m.Flags)
		}
	}
	if c.Features().CheapChanges {
		for _, m := range delta {
			if !changed[m.ID] {
				t.Errorf("CheapChanges connector lists the unchanged %s (change %v)", m.ID, m.Change)
			}
		}
	}
}

func testDelete(t *testing.T, h Harness) {
	c := open(t, h)
	if !connector.FeaturesOf(c).Delete {
		t.Skip("no Deleter")
	}
	d := c.(connector.Destination)
	del := c.(connector.Deleter)
	p := where(c, mail.Path{"Deleting"})
	f := destFolder(t, d, p)
	for i := 0; i < 4; i++ {
		appendOne(t, d, f, Message(600+i, ""), nil, time.Time{})
	}
	// A message the user marked \Deleted but did not expunge must
	// survive: Delete removes exactly what it is given.
	appendOne(t, d, f, Message(610, ""), []string{mail.FlagDeleted}, time.Time{})
	all, _ := listAll(t, c, f, connector.ListOptions{})
	sort.Slice(all, func(i, j int) bool { return all[i].Headers.Subject < all[j].Headers.Subject })
	if err := del.Delete(ctx(t), f, []connector.ID{all[0].ID, all[2].ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := del.Delete(ctx(t), f, []connector.ID{all[0].ID, "no-such-id"}); err != nil {
		t.Fatalf("Delete of a gone or unknown message: %v", err)
	}
	left, _ := listAll(t, c, f, connector.ListOptions{})
	var live []string
	for _, m := range left {
		if !mail.HasFlag(m.Flags, mail.FlagDeleted) || m.Headers.Subject == "message 610" {
			live = append(live, m.Headers.Subject)
		}
	}
	sort.Strings(live)
	if strings.Join(live, ",") != "message 601,message 603,message 610" {
		t.Errorf("after deleting 2 of 5 the folder holds %v", live)
	}
}
