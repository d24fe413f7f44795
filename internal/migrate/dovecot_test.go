package migrate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

const pw = "s3cret-Pa55"

// served is one message as a server serves it.
type served struct {
	sum   [32]byte
	flags string // sorted, \Recent dropped
	date  int64  // INTERNALDATE, Unix seconds
	size  int
}

func (s served) String() string {
	return fmt.Sprintf("%x flags=[%s] date=%d size=%d", s.sum[:6], s.flags, s.date, s.size)
}

// dump reads every message of every folder, keyed by the folder's path
// as Mailferry sees it ('/'-joined, prefix removed).
func dump(t testing.TB, d *testenv.Dovecot, user string) map[string][]served {
	t.Helper()
	cfg := plainConfig(d, user)
	conn, err := imapconn.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", user, err)
	}
	defer conn.Close()
	fs, err := conn.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := d.Dial(t, user, pw)
	out := map[string][]served{}
	for _, f := range fs {
		if f.NoSelect {
			continue
		}
		sel, err := c.Select(f.Name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %q: %v", f.Name, err)
		}
		key := f.Path.String()
		out[key] = nil
		if sel.NumMessages == 0 {
			continue
		}
		cmd := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			var s served
			for {
				item := m.Next()
				if item == nil {
					break
				}
				switch it := item.(type) {
				case imapclient.FetchItemDataFlags:
					var fl []string
					for _, f := range it.Flags {
						if !strings.EqualFold(string(f), `\Recent`) {
							fl = append(fl, strings.ToLower(string(f)))
						}
					}
					sort.Strings(fl)
					s.flags = strings.Join(fl, " ")
				case imapclient.FetchItemDataInternalDate:
					s.date = it.Time.Unix()
				case imapclient.FetchItemDataBodySection:
					h := sha256.New()
					n, _ := io.Copy(h, it.Literal)
					copy(s.sum[:], h.Sum(nil))
					s.size = int(n)
				}
			}
			out[key] = append(out[key], s)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		sort.Slice(out[key], func(i, j int) bool { return bytes.Compare(out[key][i].sum[:], out[key][j].sum[:]) < 0 })
	}
	return out
}

func plainConfig(d *testenv.Dovecot, user string) imapconn.Config {
	return imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityNone, AllowPlaintext: true,
		Username: user, Password: pw, MaxConnections: 4}
}

// seedMsg is a message to put on a source server.
type seedMsg struct {
	folder string // server name, e.g. "INBOX.Archive" on Courier
	raw    []byte
	flags  []imap.Flag
	date   time.Time
}

func seed(t testing.TB, d *testenv.Dovecot, user string, folders []string, msgs []seedMsg) {
	t.Helper()
	c := d.Dial(t, user, pw)
	for _, f := range folders {
		if err := c.Create(f, nil).Wait(); err != nil && !strings.Contains(strings.ToLower(err.Error()), "exists") {
			t.Fatalf("create %q: %v", f, err)
		}
	}
	// Pipeline the seeding too: thousands of messages would otherwise
	// cost thousands of round trips.
	var cmds []*imapclient.AppendCommand
	for _, m := range msgs {
		cmd := c.Append(m.folder, int64(len(m.raw)), &imap.AppendOptions{Flags: m.flags, Time: m.date})
		if _, err := cmd.Write(m.raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("seed append %d to %q: %v", i, msgs[i].folder, err)
		}
	}
}

func run(t testing.TB, src, dst imapconn.Config, opts migrate.Options) (*migrate.Result, error) {
	t.Helper()
	ctx := context.Background()
	s, err := imapconn.Open(ctx, src)
	if err != nil {
		t.Fatalf("open source: %v", err)
	}
	defer s.Close()
	d, err := imapconn.Open(ctx, dst)
	if err != nil {
		t.Fatalf("open destination: %v", err)
	}
	defer d.Close()
	res, err := migrate.Run(ctx, s, d, opts)
	balanced(t, res)
	return res, err
}

// balanced fails the test unless every source message of every folder
// is accounted for exactly once, the totals are the folders' sums, and
// the failures listed stand for the messages counted as failed. Every
// end-to-end run goes through it.
func balanced(t testing.TB, res *migrate.Result) {
	t.Helper()
	if res == nil {
		t.Error("no result")
		return
	}
	if err := res.Balance(); err != nil {
		t.Errorf("the counts do not balance:\n%v", err)
	}
}

// realistic builds n varied messages: plain, multipart with an
// attachment, no Message-ID, 8-bit, malformed MIME, duplicates.
func realistic(n int, folder func(i int) string) []seedMsg {
	var out []seedMsg
	base := time.Date(2010, 1, 1, 8, 0, 0, 0, time.UTC)
	flagSets := [][]imap.Flag{nil, {imap.FlagSeen}, {imap.FlagSeen, imap.FlagAnswered}, {imap.FlagFlagged},
		{imap.FlagSeen, "$Label1", "Work"}, {imap.FlagDraft}, {imap.FlagSeen, imap.FlagFlagged, "$Forwarded"}}
	for i := 0; i < n; i++ {
		var raw string
		switch i % 7 {
		case 0:
			raw = fmt.Sprintf("From: Alice <alice@old.example>\r\nTo: bob@old.example\r\nSubject: Report %d\r\nMessage-ID: <r%d@old.example>\r\nDate: %s\r\n\r\nHello %d\r\n",
				i, i, base.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z), i)
		case 1:
			raw = fmt.Sprintf("From: bob@old.example\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_%d?=\r\nMessage-ID: <g%d@old.example>\r\nDate: %s\r\nMIME-Version: 1.0\r\n"+
				"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n--b%d\r\n"+
				"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b%d--\r\n",
				i, i, base.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z), i, i, i, strings.Repeat("QUJDREVGR0g=", 200), i)
		case 2: // no Message-ID
			raw = fmt.Sprintf("From: cron@old.example\r\nSubject: nightly job\r\nDate: %s\r\n\r\nrun %d ok\r\n", base.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z), i)
		case 3: // malformed: unterminated boundary, header without colon
			raw = fmt.Sprintf("Message-ID: <bad%d@old.example>\r\nContent-Type: multipart/mixed; boundary=\"never\r\nthis is not a header\r\n\r\n--never\r\nbroken %d\r\n", i, i)
		case 4: // 8-bit headers and body
			raw = fmt.Sprintf("From: \xe9t\xe9@old.example\r\nSubject: caf\xe9 %d\r\nMessage-ID: <e%d@old.example>\r\n\r\n\xff\xfe 8bit body\r\n", i, i)
		case 5: // same Message-ID as case 0 of this group, other content: must not be mistaken
			raw = fmt.Sprintf("From: Mallory <m@evil.example>\r\nSubject: reused id\r\nMessage-ID: <r%d@old.example>\r\nDate: Mon, 1 Jan 2001 00:00:00 +0000\r\n\r\nx\r\n", i-5)
		default: // larger text
			raw = fmt.Sprintf("From: list@old.example\r\nSubject: digest %d\r\nMessage-ID: <d%d@old.example>\r\n\r\n%s\r\n", i, i, strings.Repeat("lorem ipsum dolor sit amet ", 300))
		}
		out = append(out, seedMsg{folder: folder(i), raw: []byte(raw), flags: flagSets[i%len(flagSets)],
			date: base.Add(time.Duration(i) * 37 * time.Hour)})
	}
	return out
}

func sameContent(t *testing.T, want, got map[string][]served, mapping map[string]string) {
	t.Helper()
	for from, msgs := range want {
		to := from
		if m, ok := mapping[from]; ok {
			to = m
		}
		g, ok := got[to]
		if !ok {
			t.Errorf("folder %q (from %q) missing on the destination; it has %v", to, from, keys(got))
			continue
		}
		if len(g) != len(msgs) {
			t.Errorf("folder %q: %d messages, want %d", to, len(g), len(msgs))
			continue
		}
		for i := range msgs {
			if g[i] != msgs[i] {
				t.Errorf("folder %q message %d:\n got %v\nwant %v", to, i, g[i], msgs[i])
			}
		}
	}
}

func keys(m map[string][]served) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSlashToCourierTreeFlagsDatesBytes(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	src.AddUser(t, "alice", pw)
	dst.AddUser(t, "alice", pw)
	folders := []string{"Archive", "Archive/2019", "Ärger & Co.2019", "Projects", "Projects/Q1 plans", "Projects/Q1 plans/Größe", "a&b", "Dots.in.name"}
	all := append([]string{"INBOX", "Sent", "Trash", "Junk", "Drafts"}, folders...)
	msgs := realistic(300, func(i int) string { return all[i%len(all)] })
	seed(t, src, "alice", folders, msgs)

	res, err := run(t, plainConfig(src, "alice"), plainConfig(dst, "alice"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 0 || res.Stats.Copied != 300 {
		t.Fatalf("copied %d, failures %+v", res.Stats.Copied, res.Failures)
	}
	want, got := dump(t, src, "alice"), dump(t, dst, "alice")
	// Courier cannot hold '.' inside a name: it becomes '_' (documented).
	mapping := map[string]string{"Ärger & Co.2019": "Ärger & Co_2019", "Dots.in.name": "Dots_in_name"}
	sameContent(t, want, got, mapping)

	// The destination really uses Courier names: INBOX.Archive.2019.
	c := dst.Dial(t, "alice", pw)
	list, err := c.List("", "INBOX.Archive.2019", nil).Collect()
	if err != nil || len(list) != 1 {
		t.Fatalf("INBOX.Archive.2019 not on the Courier-style destination: %v %v", list, err)
	}
	// Subscribed, as a mail client expects.
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	subscribed := map[string]bool{}
	for _, l := range subs {
		subscribed[l.Mailbox] = true
	}
	for _, name := range []string{"INBOX.Archive.2019", "INBOX.Projects.Q1 plans.Größe", "INBOX.a&b"} {
		if !subscribed[name] {
			t.Errorf("%q not subscribed; subscribed: %v", name, subscribed)
		}
	}

	// A second run is a no-op: everything is recognised as present.
	res, err = run(t, plainConfig(src, "alice"), plainConfig(dst, "alice"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 0 || res.Stats.Present != 300 {
		t.Fatalf("second run copied %d, present %d; want 0 and 300", res.Stats.Copied, res.Stats.Present)
	}
	sameContent(t, want, dump(t, dst, "alice"), mapping)
}

func TestCourierToSlashSpecialUse(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	src.AddUser(t, "bob", pw)
	dst.AddUser(t, "bob", pw)
	// Outlook/Exchange-style names on a server without SPECIAL-USE.
	folders := []string{"INBOX.Sent Items", "INBOX.Deleted Items", "INBOX.Junk E-mail", "INBOX.Archive", "INBOX.Archive.2019", "INBOX.Kunden"}
	all := append([]string{"INBOX"}, folders...)
	msgs := realistic(70, func(i int) string { return all[i%len(all)] })
	seed(t, src, "bob", folders, msgs)
	res, err := run(t, plainConfig(src, "bob"), plainConfig(dst, "bob"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 0 {
		t.Fatalf("failures: %+v", res.Failures)
	}
	want, got := dump(t, src, "bob"), dump(t, dst, "bob")
	mapping := map[string]string{"Sent Items": "Sent", "Deleted Items": "Trash", "Junk E-mail": "Junk"}
	sameContent(t, want, got, mapping)
	for _, unwanted := range []string{"Sent Items", "Deleted Items", "Junk E-mail"} {
		if _, ok := got[unwanted]; ok {
			t.Errorf("%q was created although the destination has a special-use folder for it", unwanted)
		}
	}
	if _, ok := got["Archive/2019"]; !ok {
		t.Errorf("INBOX.Archive.2019 should become Archive/2019; destination has %v", keys(got))
	}
}

func TestSpecialUseTowardsNamesOnly(t *testing.T) {
	t.Parallel()
	// The other direction: \Sent on the source, a "Sent Items" folder by
	// name only on the destination.
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	src.AddUser(t, "carol", pw)
	dst.AddUser(t, "carol", pw)
	seed(t, dst, "carol", []string{"INBOX.Sent Items", "INBOX.Deleted Items"}, nil)
	msgs := realistic(20, func(i int) string { return []string{"Sent", "Trash"}[i%2] })
	seed(t, src, "carol", nil, msgs)
	if _, err := run(t, plainConfig(src, "carol"), plainConfig(dst, "carol"), migrate.Options{}); err != nil {
		t.Fatal(err)
	}
	want, got := dump(t, src, "carol"), dump(t, dst, "carol")
	sameContent(t, map[string][]served{"Sent": want["Sent"], "Trash": want["Trash"]}, got,
		map[string]string{"Sent": "Sent Items", "Trash": "Deleted Items"})
	if len(got["Sent"]) != 0 {
		t.Errorf("a new Sent folder was created next to Sent Items")
	}
}

func TestFiltersMappingsAndDates(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "dave", pw)
	dst.AddUser(t, "dave", pw)
	folders := []string{"Old", "Old/2001", "Keep", "Spam"}
	var msgs []seedMsg
	for i, f := range []string{"Old/2001", "Keep", "Keep", "Spam", "INBOX", "INBOX"} {
		msgs = append(msgs, seedMsg{folder: f, raw: []byte(fmt.Sprintf("Message-ID: <f%d@x>\r\nSubject: %d\r\n\r\nx\r\n", i, i)),
			date: time.Date(2015+i, 6, 1, 0, 0, 0, 0, time.UTC)})
	}
	msgs = append(msgs, seedMsg{folder: "Keep", raw: []byte("Message-ID: <del@x>\r\n\r\ngone\r\n"), flags: []imap.Flag{imap.FlagDeleted},
		date: time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)})
	seed(t, src, "dave", folders, msgs)
	exclude, _ := migrate.ParseFilter("^spam$")
	m1, _ := migrate.ParseMapping("^old/->Archive/Old/")
	opts := migrate.Options{Rules: migrate.Rules{Exclude: []*regexp.Regexp{exclude}, Mappings: []migrate.Mapping{m1}},
		Since: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), Before: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
	res, err := run(t, plainConfig(src, "dave"), plainConfig(dst, "dave"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 0 || res.Stats.Copied != 4 {
		t.Errorf("copied %d, failures %+v; want 4 copied", res.Stats.Copied, res.Failures)
	}
	got := dump(t, dst, "dave")
	if _, ok := got["Spam"]; ok {
		t.Error("excluded folder Spam was created")
	}
	if n := len(got["Archive/Old/2001"]); n != 1 {
		t.Errorf("mapped folder Archive/Old/2001 has %d messages, want 1 (folders: %v)", n, keys(got))
	}
	if _, ok := got["Old/2001"]; ok {
		t.Error("mapped folder also created under its old name")
	}
	// Keep: 2016 and 2017 in the window, the \Deleted one skipped.
	if n := len(got["Keep"]); n != 2 {
		t.Errorf("Keep has %d messages, want 2", n)
	}
	// INBOX: 2019 in, 2020 out by --before.
	if n := len(got["INBOX"]); n != 1 {
		t.Errorf("INBOX has %d messages, want 1 (before filter)", n)
	}
	if res.Stats.Skipped != 2 {
		t.Errorf("skipped %d, want 2 (one deleted, one outside the date window)", res.Stats.Skipped)
	}
}

func TestRejectedMessageIsRecordedAndRestContinues(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, MaxMailSize: 1 << 20})
	src.AddUser(t, "erin", pw)
	dst.AddUser(t, "erin", pw)
	msgs := realistic(30, func(int) string { return "INBOX" })
	big := append([]byte("Message-ID: <big@x>\r\nSubject: holiday photos\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 2<<20/18)...)
	msgs = append(msgs[:10], append([]seedMsg{{folder: "INBOX", raw: big, date: time.Now()}}, msgs[10:]...)...)
	seed(t, src, "erin", nil, msgs)
	res, err := run(t, plainConfig(src, "erin"), plainConfig(dst, "erin"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 30 || len(res.Failures) != 1 {
		t.Fatalf("copied %d with failures %+v; want 30 copied and the big one failed", res.Stats.Copied, res.Failures)
	}
	f := res.Failures[0]
	if f.Folder != "INBOX" || !strings.HasSuffix(f.ID, ".11") || f.Size != int64(len(big)) || !strings.Contains(f.Reason, "limit") || f.Hint == "" {
		t.Errorf("failure record incomplete: %+v", f)
	}
	if f.Subject != "" {
		t.Errorf("subject logged without --log-subjects: %q", f.Subject)
	}
	// With the opt-in the subject is there.
	dst.AddUser(t, "erin2", pw)
	res, _ = run(t, plainConfig(src, "erin"), plainConfig(dst, "erin2"), migrate.Options{LogSubjects: true})
	if len(res.Failures) != 1 || res.Failures[0].Subject != "holiday photos" {
		t.Errorf("with LogSubjects the subject must be reported: %+v", res.Failures)
	}
}

func TestAuthAndConnectionErrors(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, TLS: true})
	d.AddUser(t, "frank", pw)
	ctx := context.Background()
	cases := []struct {
		name string
		cfg  imapconn.Config
		kind connector.Kind
		text string
	}{
		{"wrong password", imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityNone, AllowPlaintext: true, Username: "frank", Password: "wrong"},
			connector.KindAuth, "password"},
		{"unknown host", imapconn.Config{Host: "mail.nonexistent.invalid", Port: 993, Username: "frank", Password: pw},
			connector.KindHost, "server name"},
		{"refused port", imapconn.Config{Host: "127.0.0.1", Port: freePort(t), Security: imapconn.SecurityTLS, Username: "frank", Password: pw},
			connector.KindConnect, "port"},
		{"self-signed certificate", imapconn.Config{Host: d.Host, Port: d.TLSPort, Security: imapconn.SecurityTLS, Username: "frank", Password: pw},
			connector.KindTLS, "--insecure"},
		{"STARTTLS with untrusted certificate", imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityStartTLS, Username: "frank", Password: pw},
			connector.KindTLS, "--insecure"},
		{"TLS to a plain port", imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityTLS, Username: "frank", Password: pw},
			connector.KindTLS, "port"},
		{"plaintext login refused", imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityNone, Username: "frank", Password: pw},
			connector.KindConfig, "--allow-plaintext"},
	}
	for _, c := range cases {
		_, err := imapconn.Open(ctx, c.cfg)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if k := connector.KindOf(err); k != c.kind {
			t.Errorf("%s: kind %v, want %v (%v)", c.name, k, c.kind, err)
		}
		msg := err.Error() + " " + connector.HintOf(err)
		if !strings.Contains(msg, c.text) {
			t.Errorf("%s: message %q does not mention %q", c.name, msg, c.text)
		}
		if strings.Contains(msg, pw) {
			t.Errorf("%s: the password leaked into the error: %q", c.name, msg)
		}
	}
	// The same certificate is accepted when trusted, or with --insecure.
	for _, cfg := range []imapconn.Config{
		{Host: d.Host, Port: d.TLSPort, Security: imapconn.SecurityTLS, Username: "frank", Password: pw, RootCAs: d.CACert},
		{Host: d.Host, Port: d.Port, Security: imapconn.SecurityStartTLS, Username: "frank", Password: pw, RootCAs: d.CACert},
		{Host: d.Host, Port: d.TLSPort, Security: imapconn.SecurityTLS, Username: "frank", Password: pw, InsecureSkipVerify: true},
	} {
		c, err := imapconn.Open(ctx, cfg)
		if err != nil {
			t.Errorf("trusted TLS (%v): %v", cfg.Security, err)
			continue
		}
		c.Close()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
