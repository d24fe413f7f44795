package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// What these tests assume of Exchange: the in-process ewsserver stores the
// MIME a CreateItem gives and serves it back unchanged, so "byte-exact"
// here proves that Mailferry passes the bytes through untouched on both
// sides. A real Exchange rebuilds the MIME (ewsserver/LIMITS.md, README
// "Exchange (EWS)"); the EWS connector therefore says ByteExact false.

const (
	ewsAdmin   = "admin@example.com"
	ewsAdminPW = "admin secret"
)

// ewsHarness is a mailferry binary, an EWS server with an admin that may
// impersonate, and a file that makes the binary trust the server's
// certificate (SSL_CERT_FILE), so that certificate checks stay on.
type ewsHarness struct {
	bin, certFile string
	s             *ewsserver.Server
}

func newEWSHarness(t *testing.T, users ...string) *ewsHarness {
	t.Helper()
	h := &ewsHarness{bin: filepath.Join(t.TempDir(), "mailferry")}
	if out, err := exec.Command("go", "build", "-o", h.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	h.s = ewsserver.New(&ewsserver.Options{TB: t})
	if err := h.s.AddUser(ewsAdmin, ewsserver.UserOptions{Password: ewsAdminPW, CanImpersonate: true, NoMailbox: true}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := h.s.AddUser(u, ewsserver.UserOptions{Password: pw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.s.Start(); err != nil {
		t.Fatal(err)
	}
	h.certFile = filepath.Join(t.TempDir(), "ews.pem")
	if err := os.WriteFile(h.certFile, h.s.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *ewsHarness) cmd(fromPW, toPW string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, append(append([]string{"copy"}, args...), "--json", "--no-progress")...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+h.certFile, "MAILFERRY_FROM_PASSWORD="+fromPW, "MAILFERRY_TO_PASSWORD="+toPW)
	return cmd
}

// run runs one pass to its end and returns its summary, whose counts
// must balance.
func (h *ewsHarness) run(t *testing.T, fromPW, toPW string, args ...string) *migrate.Result {
	t.Helper()
	out, err := h.cmd(fromPW, toPW, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("copy %v: %v\n%s", args, err, out)
	}
	return summaryOf(t, out)
}

func summaryOf(t *testing.T, out []byte) *migrate.Result {
	t.Helper()
	var res *migrate.Result
	for _, line := range strings.Split(string(out), "\n") {
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Type != "summary" {
			continue
		}
		res = &migrate.Result{}
		if err := json.Unmarshal([]byte(line), res); err != nil {
			t.Fatalf("summary: %v\n%s", err, line)
		}
	}
	if res == nil {
		t.Fatalf("no summary in\n%s", out)
	}
	if err := res.Balance(); err != nil {
		t.Errorf("counts do not balance: %v", err)
	}
	return res
}

// ewsMIME is the sorted SHA-256 of every message in a mailbox of the
// server, and the count per folder path.
func ewsMIME(s *ewsserver.Server, mailbox string) ([]string, map[string]int) {
	var sums []string
	per := map[string]int{}
	for _, it := range s.Mailbox(mailbox).AllItems() {
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(it.MIME)))
		per[strings.Join(it.FolderPath, "/")]++
	}
	sort.Strings(sums)
	return sums, per
}

// imapAll is the sorted SHA-256 of every message in every folder of an
// IMAP mailbox.
func imapAll(t *testing.T, d *testenv.Dovecot, user string) []string {
	t.Helper()
	c := d.Dial(t, user, pw)
	boxes, err := c.List("", "*", nil).Collect()
	c.Logout()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		if hasAttr(b.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		out = append(out, bodies(t, d, user, b.Mailbox)...)
	}
	sort.Strings(out)
	return out
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// ewsSeed is what an IMAP -> EWS copy must carry: nested folders, flags
// EWS stores (\Seen, \Flagged, \Answered), dates to the second, a
// message without Message-ID.
func ewsSeed(t *testing.T, d *testenv.Dovecot, user string, from, n int) {
	t.Helper()
	c := d.Dial(t, user, pw)
	defer c.Logout()
	for _, f := range []string{"Projects", "Projects/Q1"} {
		_ = c.Create(f, nil).Wait() // exists on a later call
	}
	folders := []string{"INBOX", "Projects/Q1", "Projects"}
	for i := from; i < from+n; i++ {
		raw := fmt.Sprintf("Message-ID: <ews-%d@old.example>\r\nDate: Tue, 3 Mar 2015 10:%02d:%02d +0000\r\nFrom: Bob <bob@old.example>\r\n"+
			"To: ewa@example.com\r\nSubject: ews %d\r\n\r\n%s", i, i/60%60, i%60, i, strings.Repeat("a line of text\r\n", 2+i%40))
		if i%7 == 0 {
			raw = fmt.Sprintf("From: cron@old.example\r\nSubject: nightly\r\n\r\nrun %d\r\n", i)
		}
		var flags []imap.Flag
		if i%2 == 0 {
			flags = append(flags, imap.FlagSeen)
		}
		if i%3 == 0 {
			flags = append(flags, imap.FlagFlagged)
		}
		if i%5 == 0 {
			flags = append(flags, imap.FlagAnswered)
		}
		appendTo(t, c, folders[i%len(folders)], raw, flags, time.Date(2015, 3, 3, 10, i/60%60, i%60, 0, time.UTC))
	}
}

// TestEWSCopyBothWays copies a Dovecot mailbox into Exchange (EWS) with an
// admin login that impersonates the mailbox, then copies that Exchange
// mailbox into a second Dovecot with the user's own login. Each pass
// balances; the messages arrive byte for byte, once, in the same
// folders, never as drafts, with read state, follow-up flag and
// received date; delta passes copy exactly the new mail.
func TestEWSCopyBothWays(t *testing.T) {
	const mbx = "ewa@example.com"
	h := newEWSHarness(t, mbx)
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	back := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ewa", pw)
	back.AddUser(t, "ewa", pw)
	ewsSeed(t, src, "ewa", 0, 30)

	toEWS := []string{"--from", "imap://" + src.Addr(), "--from-user", "ewa", "--allow-plaintext",
		"--to", "ews://" + h.s.Host() + "?impersonate=" + mbx, "--to-user", ewsAdmin, "--data-dir", t.TempDir()}
	res := h.run(t, pw, ewsAdminPW, toEWS...)
	if res.Stats.Copied != 30 || res.Stats.Failed != 0 {
		t.Fatalf("first pass to EWS: %+v", res.Stats)
	}
	want := imapAll(t, src, "ewa")
	got, per := ewsMIME(h.s, mbx)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Exchange holds %d messages, the source %d, or bytes differ", len(got), len(want))
	}
	if per["Inbox"] != 10 || per["Projects/Q1"] != 10 || per["Projects"] != 10 {
		t.Errorf("messages per Exchange folder: %v; want 10 in each of Inbox, Projects, Projects/Q1", per)
	}
	for _, it := range h.s.Mailbox(mbx).AllItems() {
		var i int
		if _, err := fmt.Sscanf(it.Subject, "ews %d", &i); err != nil {
			continue // the nightly ones carry their number in the body
		}
		wantDate := time.Date(2015, 3, 3, 10, i/60%60, i%60, 0, time.UTC)
		if it.IsDraft || it.Origin != "CreateItem" || it.IsRead != (i%2 == 0) ||
			(it.FlagStatus == "Flagged") != (i%3 == 0) || !it.Received.Equal(wantDate) {
			t.Errorf("%s: draft %v read %v flag %q received %v; want read %v flagged %v received %v",
				it.Subject, it.IsDraft, it.IsRead, it.FlagStatus, it.Received, i%2 == 0, i%3 == 0, wantDate)
		}
	}

	ewsSeed(t, src, "ewa", 30, 4)
	res = h.run(t, pw, ewsAdminPW, toEWS...)
	if res.Stats.Copied != 4 || res.Stats.Present != 0 || res.Stats.Failed != 0 {
		t.Errorf("delta pass to EWS copied %d, found %d present, failed %d; want exactly the 4 new", res.Stats.Copied, res.Stats.Present, res.Stats.Failed)
	}
	want = imapAll(t, src, "ewa")
	if got, _ = ewsMIME(h.s, mbx); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after the delta pass Exchange holds %d messages, the source %d", len(got), len(want))
	}

	// Back to IMAP with the mailbox's own login.
	fromEWS := []string{"--from", "ews://" + h.s.Host(), "--from-user", mbx,
		"--to", "imap://" + back.Addr(), "--to-user", "ewa", "--allow-plaintext", "--data-dir", t.TempDir()}
	res = h.run(t, pw, pw, fromEWS...)
	if res.Stats.Copied != 34 || res.Stats.Failed != 0 {
		t.Fatalf("EWS -> IMAP: %+v", res.Stats)
	}
	skipped := 0
	for _, f := range res.Folders {
		if f.Class != "" {
			skipped++
		}
	}
	if skipped == 0 {
		t.Error("Exchange's calendar, contacts and tasks folders were not reported as skipped non-mail folders")
	}
	if got := imapAll(t, back, "ewa"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("IMAP copy of the Exchange mailbox holds %d messages, the original %d, or bytes differ", len(got), len(want))
	}
	if b, w := bodies(t, back, "ewa", "Projects/Q1"), bodies(t, src, "ewa", "Projects/Q1"); strings.Join(b, ",") != strings.Join(w, ",") {
		t.Errorf("Projects/Q1 after IMAP -> EWS -> IMAP holds %d messages, the original %d", len(b), len(w))
	}
	for _, fl := range []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered} {
		if b, w := withFlag(t, back, "ewa", fl), withFlag(t, src, "ewa", fl); b != w || w == 0 {
			t.Errorf("%s: %d INBOX messages after the round trip, %d in the original", fl, b, w)
		}
	}

	// New mail in Exchange: the next pass copies just that.
	if _, err := h.s.Mailbox(mbx).AddItem(h.s.Mailbox(mbx).DistinguishedFolderID("inbox"), ewsserver.SeedItem{
		MIME: []byte("Message-ID: <late@example.com>\r\nSubject: late\r\n\r\narrived in Exchange\r\n")}); err != nil {
		t.Fatal(err)
	}
	res = h.run(t, pw, pw, fromEWS...)
	if res.Stats.Copied != 1 || res.Stats.Present != 0 || res.Stats.Failed != 0 {
		t.Errorf("delta pass from EWS copied %d, found %d present, failed %d; want exactly the 1 new", res.Stats.Copied, res.Stats.Present, res.Stats.Failed)
	}
	if n := len(bodies(t, back, "ewa", "INBOX")); n != 13 {
		t.Errorf("IMAP INBOX holds %d messages after the delta, want 12 + 1", n)
	}
}

// TestEWSCopySurvivesSIGKILL kills mailferry copy with SIGKILL again and
// again while it writes into Exchange (EWS) and while it reads from it,
// in a first pass and in a delta pass after new mail. At the end each
// side holds every message exactly once, byte for byte, and a last pass
// copies nothing.
func TestEWSCopySurvivesSIGKILL(t *testing.T) {
	const mbx = "kim@example.com"
	h := newEWSHarness(t, mbx)
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	back := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "kim", pw)
	back.AddUser(t, "kim", pw)
	ewsSeed(t, src, "kim", 0, 240)
	// The kills must land mid-pass: every request to Exchange takes a
	// round trip of 20 ms.
	proxy := testenv.StartProxy(t, h.s.Host())
	proxy.AddLatency(t, 20)

	toEWS := []string{"--from", "imap://" + src.Addr(), "--from-user", "kim", "--allow-plaintext",
		"--to", "ews://" + proxy.Addr + "?impersonate=" + mbx, "--to-user", ewsAdmin, "--data-dir", t.TempDir(), "--batch", "8"}
	fromEWS := []string{"--from", "ews://" + proxy.Addr, "--from-user", mbx, "--batch", "8",
		"--to", "imap://" + back.Addr(), "--to-user", "kim", "--allow-plaintext", "--data-dir", t.TempDir()}
	kills := 0
	killing := func(fromPW, toPW string, args []string, wantKills int) *migrate.Result {
		t.Helper()
		delays := []time.Duration{60, 150, 250, 400, 100, 320, 200}
		killed := 0
		for runs := 0; ; runs++ {
			if runs > 60 {
				t.Fatalf("no run finished after %d attempts", runs)
			}
			cmd := h.cmd(fromPW, toPW, args...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var timer <-chan time.Time
			if killed < wantKills {
				timer = time.After(delays[runs%len(delays)] * time.Millisecond)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("run %d failed: %v\n%s", runs, err, out.String())
				}
				return summaryOf(t, []byte(out.String()))
			case <-timer:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				if err := <-exited; err != nil {
					killed++
					kills++
				} else {
					return summaryOf(t, []byte(out.String()))
				}
			}
		}
	}

	killing(pw, ewsAdminPW, toEWS, 4)
	ewsSeed(t, src, "kim", 240, 60)
	killing(pw, ewsAdminPW, toEWS, 3)
	if res := killing(pw, ewsAdminPW, toEWS, 0); res.Stats.Copied != 0 {
		t.Errorf("a last pass to EWS copied %d more", res.Stats.Copied)
	}
	want := imapAll(t, src, "kim")
	got, _ := ewsMIME(h.s, mbx)
	if len(want) != 300 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after kills Exchange holds %d messages (%d distinct), the source %d", len(got), distinct(got), len(want))
	}

	killing(pw, pw, fromEWS, 4)
	inbox := h.s.Mailbox(mbx).DistinguishedFolderID("inbox")
	for i := 0; i < 40; i++ {
		raw := fmt.Sprintf("Message-ID: <later-%d@example.com>\r\nSubject: later %d\r\n\r\n%s", i, i, strings.Repeat("x\r\n", i))
		if _, err := h.s.Mailbox(mbx).AddItem(inbox, ewsserver.SeedItem{MIME: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	killing(pw, pw, fromEWS, 3)
	if res := killing(pw, pw, fromEWS, 0); res.Stats.Copied != 0 {
		t.Errorf("a last pass from EWS copied %d more", res.Stats.Copied)
	}
	want, _ = ewsMIME(h.s, mbx)
	if got := imapAll(t, back, "kim"); len(want) != 340 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after kills the IMAP copy holds %d messages (%d distinct), Exchange %d", len(got), distinct(got), len(want))
	}
	if kills < 8 {
		t.Errorf("only %d runs were killed mid-pass; the test must cut at least 8", kills)
	}
	t.Logf("%d runs killed by SIGKILL mid-pass", kills)
}

func distinct(s []string) int {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return len(m)
}

// withFlag counts the INBOX messages that carry fl.
func withFlag(t *testing.T, d *testenv.Dovecot, user string, fl imap.Flag) int {
	t.Helper()
	c := d.Dial(t, user, pw)
	defer c.Logout()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{fl}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return len(res.AllUIDs())
}

// TestEWSDroppedConnectionsNoDuplicates drops every connection to
// Exchange (EWS) again and again while a pass writes into it, so that
// CreateItem answers are lost after the server may have stored the
// items. The pass still ends with every message stored exactly once: a
// lost answer is resolved by listing the folder since its cursor
// (SyncFolderItems, Features.ExactNew), never by sending blindly again.
func TestEWSDroppedConnectionsNoDuplicates(t *testing.T) {
	const mbx = "dora@example.com"
	h := newEWSHarness(t, mbx)
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "dora", pw)
	ewsSeed(t, src, "dora", 0, 90)
	proxy := testenv.StartProxy(t, h.s.Host())
	proxy.AddLatency(t, 20)
	cmd := h.cmd(pw, pw, "--from", "imap://"+src.Addr(), "--from-user", "dora", "--allow-plaintext",
		"--to", "ews://"+proxy.Addr, "--to-user", mbx, "--data-dir", t.TempDir(), "--retry-budget", "60s", "--stall-timeout", "3s", "--batch", "8")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	drops := 0
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("copy failed: %v\n%s", err, out.String())
			}
			break wait
		case <-tick.C:
			// Drop only once writing has begun (a login that fails is
			// reported, not retried).
			if n := len(h.s.Mailbox(mbx).AllItems()); drops < 5 && n > 0 && n < 90 {
				proxy.Down()
				drops++
				time.Sleep(30 * time.Millisecond)
				proxy.Up(t)
			}
		}
	}
	res := summaryOf(t, []byte(out.String()))
	want := imapAll(t, src, "dora")
	got, _ := ewsMIME(h.s, mbx)
	if res.Stats.Copied+res.Stats.Present != 90 || res.Stats.Failed != 0 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("with dropped connections: %d copied, %d present, %d failed; Exchange holds %d (%d distinct) of %d",
			res.Stats.Copied, res.Stats.Present, res.Stats.Failed, len(got), distinct(got), len(want))
	}
	if res.Stats.Retried == 0 && res.Stats.Uncertain == 0 {
		t.Error("no request was retried and no answer was lost: the drops did not bite, the test proves nothing")
	}
	t.Logf("%d drops; retried %d, uncertain appends checked %d", drops, res.Stats.Retried, res.Stats.Uncertain)
}
