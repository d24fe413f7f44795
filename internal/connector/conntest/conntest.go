// Package conntest is the conformance suite every connector must pass,
// in the spirit of rclone's fstests: one set of behaviours, written once
// against the connector interfaces, run against every implementation and
// every server it supports. A connector's own test file only says how to
// get a fresh mailbox. What a connector does not support (per its
// Features or the interfaces it implements) is skipped, never faked.
package conntest

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	// refused with NO, which must be a per-message (KindItem) failure
	// (Cyrus IMAP: "Message contains bare newlines"; a lone CR it keeps).
	ServerRefusesBareLF bool
	// ServerMunges8BitHeaders: bytes above 0x7F in the header are
	// replaced by 'X' (Cyrus IMAP's default, munge8bit).
	ServerMunges8BitHeaders bool
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
	t.Run("ListMinUIDAndBatches", func(t *testing.T) { testListMinUID(t, h) })
	t.Run("FetchMissingIsItemError", func(t *testing.T) { testFetchMissing(t, h) })
	t.Run("AppendToMissingFolder", func(t *testing.T) { testAppendMissingFolder(t, h) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, h) })
	t.Run("Status", func(t *testing.T) { testStatus(t, h) })
	t.Run("Quota", func(t *testing.T) { testQuota(t, h) })
	t.Run("SetFlagsAndFlagListing", func(t *testing.T) { testSetFlags(t, h) })
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
	f, err := d.CreateFolder(ctx(t), p, mail.RoleNone)
	if err != nil {
		t.Fatalf("CreateFolder(%q): %v", p, err)
	}
	pa, err := d.Append(ctx(t), f, connector.AppendRequest{Flags: flags, InternalDate: date, Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := pa.Wait(); err != nil {
		t.Fatalf("Append answer: %v", err)
	}
}

func listAll(t *testing.T, c connector.Conn, f connector.Folder, opts connector.ListOptions) ([]connector.Message, connector.FolderStatus) {
	t.Helper()
	var out []connector.Message
	st, err := c.List(ctx(t), f, opts, func(ms []connector.Message) error {
		if opts.Batch > 0 && len(ms) > opts.Batch {
			t.Errorf("List handed %d messages in one batch, more than Batch=%d", len(ms), opts.Batch)
		}
		out = append(out, ms...)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", f.Path, err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].UID <= out[i-1].UID {
			t.Fatalf("List must return ascending UIDs, got %d after %d", out[i].UID, out[i-1].UID)
		}
	}
	return out, st
}

func fetchAll(t *testing.T, s connector.Source, f connector.Folder, ms []connector.Message) (map[uint32][]byte, map[uint32]error) {
	t.Helper()
	bodies, errs := map[uint32][]byte{}, map[uint32]error{}
	err := s.Fetch(ctx(t), f, ms, func(b connector.Body, err error) error {
		if err != nil {
			errs[b.Message.UID] = err
			return nil
		}
		data, rerr := io.ReadAll(b.Reader)
		if rerr != nil {
			return rerr
		}
		if int64(len(data)) != b.Size {
			t.Errorf("UID %d: Size %d but reader gave %d bytes", b.Message.UID, b.Size, len(data))
		}
		bodies[b.Message.UID] = data
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return bodies, errs
}

func testFeatures(t *testing.T, h Harness) {
	c := open(t, h)
	f := c.Features()
	if f.MaxConnections < 1 {
		t.Errorf("MaxConnections = %d, must be at least 1", f.MaxConnections)
	}
	if f.MaxMessageSize < 0 {
		t.Errorf("MaxMessageSize = %d", f.MaxMessageSize)
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
}

func testCreateFolders(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
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
		// Non-ASCII must survive the modified UTF-7 round trip.
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
	if !ok {
		t.Skip("not a destination")
	}
	// A role is a wish: every server creates the folder, with the role
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
		if f.Delimiter != 0 {
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
	src, ok := c.(connector.Source)
	if !ok {
		t.Skip("not a source")
	}
	p := mail.Path{"Round", "Trip"}
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
	f := folder(t, c, p)
	ms, st := listAll(t, c, f, connector.ListOptions{})
	if len(ms) != len(in) {
		t.Fatalf("listed %d messages, appended %d", len(ms), len(in))
	}
	if st.UIDValidity == 0 || st.UIDNext <= ms[len(ms)-1].UID {
		t.Errorf("status %+v inconsistent with last UID %d", st, ms[len(ms)-1].UID)
	}
	bodies, errs := fetchAll(t, src, f, ms)
	if len(errs) > 0 {
		t.Fatalf("fetch errors: %v", errs)
	}
	for i, m := range ms {
		want := in[i]
		if got := bodies[m.UID]; sha256.Sum256(got) != sha256.Sum256(want.raw) {
			t.Errorf("message %d: bytes differ:\n got %q\nwant %q", i, got, want.raw)
		}
		if m.Size != int64(len(want.raw)) {
			t.Errorf("message %d: Size %d, want %d", i, m.Size, len(want.raw))
		}
		if !m.InternalDate.Equal(date) {
			t.Errorf("message %d: INTERNALDATE %v, want %v", i, m.InternalDate, date)
		}
		for _, fl := range want.flags {
			if !mail.HasFlag(m.Flags, fl) {
				t.Errorf("message %d: flag %s lost, have %v", i, fl, m.Flags)
			}
		}
		if m.Identity != mail.ComputeIdentity(mail.ParseHeaders(want.raw), int64(len(want.raw))) {
			t.Errorf("message %d: identity does not match the one computed from its own headers", i)
		}
		if m.Headers.Subject != fmt.Sprintf("message %d", i+1) {
			t.Errorf("message %d: subject header %q", i, m.Headers.Subject)
		}
	}
}

func testMalformed(t *testing.T, h Harness) {
	c := open(t, h)
	src, ok := c.(connector.Source)
	if !ok {
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
	p := mail.Path{"Malformed"}
	var kept [][]byte // what the server stored, in order
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
	f := folder(t, c, p)
	ms, _ := listAll(t, c, f, connector.ListOptions{})
	if len(ms) != len(kept) {
		t.Fatalf("listed %d, want %d", len(ms), len(kept))
	}
	bodies, errs := fetchAll(t, src, f, ms)
	if len(errs) > 0 {
		t.Fatalf("fetch errors: %v", errs)
	}
	for i, m := range ms {
		got, want := bodies[m.UID], kept[i]
		// Servers may normalise bare LF to CRLF on the way in (RFC 5322
		// requires CRLF), so compare what the server serves with what it
		// reports, and everything else byte for byte.
		if bytes.Contains(want, []byte("lf only\n")) {
			if !bytes.Equal(bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(want, []byte("\r\n"), []byte("\n"))) {
				t.Errorf("bare-LF message changed beyond line endings: %q", got)
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("malformed message %d altered:\n got %q\nwant %q", i, truncate(got), truncate(want))
		}
		// go-imap's in-memory server reports the size before adding
		// the separator.
		if m.Size != int64(len(got)) && !(h.ServerAddsHeaderSeparator && bytes.HasPrefix(got, raws[0])) {
			t.Errorf("malformed message %d: listed size %d, served %d bytes", i, m.Size, len(got))
		}
	}
}

// served is what a server with h's known behaviour stores for raw.
func served(h Harness, noSeparator bool, raw []byte) []byte {
	out := append([]byte(nil), raw...)
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
	if h.ServerAddsFinalNewline && !bytes.HasSuffix(out, []byte("\n")) {
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
	f, err := d.CreateFolder(ctx(t), p, mail.RoleNone)
	if err != nil {
		t.Fatalf("CreateFolder(%q): %v", p, err)
	}
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

func testListMinUID(t *testing.T, h Harness) {
	c := open(t, h)
	p := mail.Path{"Many"}
	for i := 0; i < 25; i++ {
		seed(t, h, c, p, Message(100+i, ""), nil, time.Date(2012, 1, 1, 0, 0, i, 0, time.UTC))
	}
	f := folder(t, c, p)
	all, _ := listAll(t, c, f, connector.ListOptions{Batch: 4})
	if len(all) != 25 {
		t.Fatalf("listed %d, want 25", len(all))
	}
	mid := all[10].UID
	tail, _ := listAll(t, c, f, connector.ListOptions{MinUID: mid})
	if len(tail) != 15 || tail[0].UID != mid {
		t.Fatalf("MinUID=%d listed %d messages starting at %d, want 15 from %d", mid, len(tail), tail[0].UID, mid)
	}
	beyond, _ := listAll(t, c, f, connector.ListOptions{MinUID: all[24].UID + 1})
	if len(beyond) != 0 {
		t.Fatalf("MinUID past the last message listed %d messages (IMAP n:* pitfall)", len(beyond))
	}
}

func testFetchMissing(t *testing.T, h Harness) {
	c := open(t, h)
	src, ok := c.(connector.Source)
	if !ok {
		t.Skip("not a source")
	}
	p := mail.Path{"Missing"}
	seed(t, h, c, p, Message(200, ""), nil, time.Now())
	seed(t, h, c, p, Message(201, ""), nil, time.Now())
	f := folder(t, c, p)
	ms, _ := listAll(t, c, f, connector.ListOptions{})
	ghost := connector.Message{UID: ms[1].UID + 1000, Size: 10}
	bodies, errs := fetchAll(t, src, f, []connector.Message{ms[0], ghost, ms[1]})
	if len(bodies) != 2 {
		t.Errorf("fetched %d bodies, want the 2 existing ones", len(bodies))
	}
	err, ok := errs[ghost.UID]
	if !ok {
		t.Fatal("a UID that does not exist must be reported through the callback")
	}
	if connector.KindOf(err) != connector.KindItem {
		t.Errorf("missing message kind = %v, want item: %v", connector.KindOf(err), err)
	}
}

func testAppendMissingFolder(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
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
	f, err := d.CreateFolder(ctx(t), mail.Path{"Parallel"}, mail.RoleNone)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	uids := make(chan uint32, workers*each)
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
				uids <- res.UID
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	close(uids)
	for err := range errs {
		t.Errorf("append: %v", err)
	}
	if c.Features().UIDPlus {
		seen := map[uint32]bool{}
		for u := range uids {
			if u == 0 || seen[u] {
				t.Errorf("UIDPLUS connector returned UID %d (zero or duplicate)", u)
			}
			seen[u] = true
		}
	}
	ms, _ := listAll(t, c, folder(t, c, mail.Path{"Parallel"}), connector.ListOptions{})
	if len(ms) != workers*each {
		t.Errorf("folder holds %d messages after %d appends", len(ms), workers*each)
	}
	ids := map[mail.Identity]int{}
	for _, m := range ms {
		ids[m.Identity]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("identity %s stored %d times", id, n)
		}
	}
}

func testStatus(t *testing.T, h Harness) {
	c := open(t, h)
	p := mail.Path{"Counted"}
	for i := 0; i < 3; i++ {
		seed(t, h, c, p, Message(400+i, ""), nil, time.Now())
	}
	f := folder(t, c, p)
	st, err := c.Status(ctx(t), f)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	ms, lst := listAll(t, c, f, connector.ListOptions{})
	if st.Messages != 3 || st.UIDNext != lst.UIDNext || st.UIDValidity != lst.UIDValidity {
		t.Errorf("Status %+v disagrees with listing (%d messages, status %+v)", st, len(ms), lst)
	}
	if st.Size != 0 {
		var sum int64
		for _, m := range ms {
			sum += m.Size
		}
		if st.Size != sum {
			t.Errorf("Status size %d, messages add up to %d", st.Size, sum)
		}
	}
	if c.Features().CondStore && st.HighestModSeq == 0 {
		t.Error("CONDSTORE connector reported no HIGHESTMODSEQ")
	}
}

func testQuota(t *testing.T, h Harness) {
	c := open(t, h)
	q, ok, err := c.Quota(ctx(t))
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

func appendOne(t *testing.T, d connector.Destination, f connector.Folder, raw []byte, flags []string) connector.AppendResult {
	t.Helper()
	pa, err := d.Append(ctx(t), f, connector.AppendRequest{Flags: flags, Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pa.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func testSetFlags(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
	}
	f, err := d.CreateFolder(ctx(t), mail.Path{"Flags"}, mail.RoleNone)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		appendOne(t, d, f, Message(500+i, ""), []string{mail.FlagSeen})
	}
	all, before := listAll(t, c, f, connector.ListOptions{})
	if err := d.SetFlags(ctx(t), f, []uint32{all[1].UID, all[3].UID}, []string{mail.FlagFlagged, "Project"}); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	// Repeating is harmless.
	if err := d.SetFlags(ctx(t), f, []uint32{all[1].UID}, []string{mail.FlagFlagged, "Project"}); err != nil {
		t.Fatalf("SetFlags again: %v", err)
	}
	got, _ := listAll(t, c, f, connector.ListOptions{FlagsOnly: true})
	for i, m := range got {
		changed := i == 1 || i == 3
		if mail.HasFlag(m.Flags, mail.FlagSeen) == changed || mail.HasFlag(m.Flags, mail.FlagFlagged) != changed ||
			mail.HasFlag(m.Flags, "Project") != changed {
			t.Errorf("message %d flags %v after SetFlags (changed=%v)", i, m.Flags, changed)
		}
	}
	bounded, _ := listAll(t, c, f, connector.ListOptions{FlagsOnly: true, MinUID: all[1].UID, MaxUID: all[2].UID})
	if len(bounded) != 2 || bounded[0].UID != all[1].UID {
		t.Errorf("MinUID/MaxUID listing returned %d messages", len(bounded))
	}
	if c.Features().CondStore {
		changed, _ := listAll(t, c, f, connector.ListOptions{FlagsOnly: true, ChangedSince: before.HighestModSeq})
		if len(changed) != 2 {
			t.Errorf("CHANGEDSINCE listed %d messages, want the 2 changed ones", len(changed))
		}
	}
}

func testDelete(t *testing.T, h Harness) {
	c := open(t, h)
	d, ok := c.(connector.Destination)
	if !ok {
		t.Skip("not a destination")
	}
	f, err := d.CreateFolder(ctx(t), mail.Path{"Deleting"}, mail.RoleNone)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		appendOne(t, d, f, Message(600+i, ""), nil)
	}
	// A message the user marked \Deleted but did not expunge must
	// survive: Delete removes exactly what it is given.
	appendOne(t, d, f, Message(610, ""), []string{mail.FlagDeleted})
	all, _ := listAll(t, c, f, connector.ListOptions{})
	if err := d.Delete(ctx(t), f, []uint32{all[0].UID, all[2].UID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := d.Delete(ctx(t), f, []uint32{all[0].UID}); err != nil {
		t.Fatalf("Delete of a gone message: %v", err)
	}
	left, _ := listAll(t, c, f, connector.ListOptions{})
	if !c.Features().UIDPlus {
		t.Skip("without UIDPLUS messages are only marked \\Deleted")
	}
	if len(left) != 3 || left[0].UID != all[1].UID || left[1].UID != all[3].UID || left[2].UID != all[4].UID {
		var uids []uint32
		for _, m := range left {
			uids = append(uids, m.UID)
		}
		t.Errorf("after deleting 2 of 5 the folder holds UIDs %v", uids)
	}
}
