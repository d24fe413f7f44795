package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/verify"
)

// seedVerify gives user 8 messages: 4 in INBOX, 2 in Work, 2 in Archive,
// with assorted flags and fixed dates; with big, INBOX also gets a
// message larger than the destination's 1 MiB limit.
func seedVerify(t *testing.T, d *testenv.Dovecot, user string, big bool) {
	t.Helper()
	c := d.Dial(t, user, secret)
	for _, f := range []string{"Work", "Archive"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	folders := []string{"INBOX", "INBOX", "INBOX", "INBOX", "Work", "Work", "Archive", "Archive"}
	for i, f := range folders {
		raw := fmt.Sprintf("Message-ID: <v%d@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:%02d +0000\r\nFrom: a@example.org\r\nSubject: s%d\r\n\r\nbody %d\r\n", i, i, i, i)
		var flags []imap.Flag
		if i%2 == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		appendRaw(t, c, f, raw, flags, time.Date(2024, 1, 1, 10, 0, i, 0, time.UTC))
	}
	if big {
		raw := "Message-ID: <big@example.org>\r\nFrom: a@example.org\r\nSubject: big\r\n\r\n" + strings.Repeat("x", 1100<<10) + "\r\n"
		appendRaw(t, c, "INBOX", raw, nil, time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC))
	}
}

func appendRaw(t *testing.T, c *imapclient.Client, folder, raw string, flags []imap.Flag, date time.Time) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// firstMessage returns the bytes, flags and date of the first message of
// folder on the destination, selected.
func firstMessage(t *testing.T, c *imapclient.Client, folder string) ([]byte, []imap.Flag, time.Time) {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v, %d messages", err, len(msgs))
	}
	var body []byte
	for _, b := range msgs[0].BodySection {
		body = b.Bytes
	}
	var flags []imap.Flag // as APPEND takes them: \Recent is the server's
	for _, f := range msgs[0].Flags {
		if f != "\\Recent" {
			flags = append(flags, f)
		}
	}
	return body, flags, msgs[0].InternalDate
}

func expungeFirst(t *testing.T, c *imapclient.Client) {
	t.Helper()
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

// verified is one run of mailferry verify with every output form.
type verified struct {
	result
	rep      verify.Report
	csv, pdf string // the CSV, and the PDF's text (pdftotext)
}

func runVerifyAll(t *testing.T, env map[string]string, args ...string) verified {
	t.Helper()
	dir := t.TempDir()
	js, cs, pd := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.pdf")
	r := runCLI(t, env, append(append([]string{"verify"}, args...), "--json-file", js, "--csv", cs, "--pdf", pd)...)
	v := verified{result: r}
	if r.code == ExitUsage || r.code == ExitStopped {
		t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v.rep); err != nil {
		t.Fatal(err)
	}
	if !v.rep.Check() {
		t.Error("the report's SHA-256 does not match its content")
	}
	for _, f := range v.rep.Folders {
		if err := f.Balance(); err != nil {
			t.Error(err)
		}
	}
	c, err := os.ReadFile(cs)
	if err != nil {
		t.Fatal(err)
	}
	v.csv = string(c)
	v.pdf = pdfText(t, pd)
	return v
}

// pdfText checks that poppler renders the PDF and returns its text.
func pdfText(t *testing.T, path string) string {
	t.Helper()
	for _, tool := range []string{"pdftoppm", "pdftotext"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.RequireServers() {
				t.Fatalf("%s is not installed (apt-get install poppler-utils; scripts/test does)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	// The first page, rendered, is kept for reviewers to look at.
	out := filepath.Join(testenv.ArtifactsDir(t, "verify"), strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	if b, err := exec.Command("pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", path, out).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm cannot render the PDF: %v\n%s", err, b)
	}
	if st, err := os.Stat(out + "-1.png"); err != nil || st.Size() < 1000 {
		t.Fatalf("pdftoppm rendered no page: %v", err)
	}
	b, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(b)
}

func folderOf(t *testing.T, rep verify.Report, src string) *verify.Folder {
	t.Helper()
	for _, f := range rep.Folders {
		if f.Source == src {
			return f
		}
	}
	t.Fatalf("no row for %s in %+v", src, rep.Folders)
	return nil
}

// TestVerifyCLI copies one mailbox to several destination users, breaks
// each copy in one way and checks that verify puts the damage in the
// right column with the right count, in the table, the JSON, the CSV and
// the PDF's text.
func TestVerifyCLI(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, MaxMailSize: 1 << 20})
	src.AddUser(t, "alice", secret)
	src.AddUser(t, "bob", secret)
	seedVerify(t, src, "alice", false)
	seedVerify(t, src, "bob", true)
	// copyTo copies from to a destination user with its own state and
	// returns the verify arguments and environment for that pair.
	copyTo := func(t *testing.T, from, to string, wantCode int, extra ...string) ([]string, map[string]string) {
		t.Helper()
		dst.AddUser(t, to, secret)
		env := withState(t, passwords())
		args := []string{"--from", imapURL(src), "--from-user", from, "--to", imapURL(dst), "--to-user", to, "--allow-plaintext"}
		if r := runCLI(t, env, append(append([]string{"copy"}, args...), extra...)...); r.code != wantCode {
			t.Fatalf("copy: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		return args, env
	}
	type want struct {
		folder                                  string
		exact, differs, altered, missing, extra int64
		failed, flags                           int64
	}
	check := func(t *testing.T, v verified, ws ...want) {
		t.Helper()
		for _, w := range ws {
			f := folderOf(t, v.rep, w.folder)
			got := want{f.Source, f.Exact, f.Differs, f.Altered, f.Missing, f.Extra, f.FailedEarlier, f.FlagsDiffer}
			if got != w {
				t.Errorf("%s: got %+v, want %+v", w.folder, got, w)
			}
		}
	}
	wantText := func(t *testing.T, v verified, words ...string) {
		t.Helper()
		for _, w := range words {
			if !strings.Contains(v.stdout, w) {
				t.Errorf("table lacks %q:\n%s", w, v.stdout)
			}
			if !strings.Contains(v.pdf, w) {
				t.Errorf("PDF text lacks %q:\n%s", w, v.pdf)
			}
		}
	}

	t.Run("exact after a clean copy", func(t *testing.T) {
		args, env := copyTo(t, "alice", "clean", ExitOK)
		v := runVerifyAll(t, env, args...)
		if v.code != ExitOK || !v.rep.Exact {
			t.Fatalf("exit %d, verdict %q\n%s", v.code, v.rep.Verdict, v.stdout)
		}
		check(t, v, want{folder: "INBOX", exact: 4}, want{folder: "Work", exact: 2}, want{folder: "Archive", exact: 2})
		if v.rep.Totals.SourceMessages != 8 || v.rep.Totals.Matched != 8 || v.rep.Bytes != "sha256" || v.rep.Version != Version {
			t.Errorf("totals %+v, bytes %q, version %q", v.rep.Totals, v.rep.Bytes, v.rep.Version)
		}
		wantText(t, v, "EXACT: all 8 messages of 3 folders are on the destination", v.rep.SHA256)
		if !strings.Contains(v.csv, "INBOX,INBOX,same path,4,") || !strings.Contains(v.csv, "report_sha256,"+v.rep.SHA256) {
			t.Errorf("CSV:\n%s", v.csv)
		}
		// A filter the copy did not have: every source message is
		// skipped by it, and the copies it made are extra.
		v = runVerifyAll(t, env, append(args, "--since", "2030-01-01")...)
		if tot := v.rep.Totals; tot.Skipped != 8 || tot.Matched != 0 || tot.Extra != 8 || v.rep.Exact || v.rep.Settings.Since != "2030-01-01" {
			t.Errorf("with --since: %+v, settings %+v", tot, v.rep.Settings)
		}
	})

	t.Run("a deleted message is missing", func(t *testing.T) {
		args, env := copyTo(t, "alice", "deleted", ExitOK)
		c := dst.Dial(t, "deleted", secret)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		expungeFirst(t, c)
		v := runVerifyAll(t, env, args...)
		if v.code != ExitFailures || v.rep.Exact {
			t.Fatalf("exit %d, verdict %q", v.code, v.rep.Verdict)
		}
		check(t, v, want{folder: "INBOX", exact: 3, missing: 1}, want{folder: "Work", exact: 2})
		wantText(t, v, "NOT EXACT: 7 of 8 messages match exactly; 1 missing", "missing")
	})

	t.Run("a message altered by one byte", func(t *testing.T) {
		args, env := copyTo(t, "alice", "altered", ExitOK)
		c := dst.Dial(t, "altered", secret)
		body, flags, date := firstMessage(t, c, "INBOX")
		changed := bytes.Replace(body, []byte("body "), []byte("bodY "), 1) // one byte
		if len(changed) != len(body) || bytes.Equal(changed, body) {
			t.Fatalf("could not change %q", body)
		}
		expungeFirst(t, c)
		appendRaw(t, c, "INBOX", string(changed), flags, date)
		v := runVerifyAll(t, env, args...)
		check(t, v, want{folder: "INBOX", exact: 3, altered: 1})
		wantText(t, v, "1 altered", "altered")
	})

	t.Run("flags changed", func(t *testing.T) {
		args, env := copyTo(t, "alice", "flags", ExitOK)
		c := dst.Dial(t, "flags", secret)
		if _, err := c.Select("Archive", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		v := runVerifyAll(t, env, args...)
		check(t, v, want{folder: "Archive", exact: 1, differs: 1, flags: 1}, want{folder: "INBOX", exact: 4})
		wantText(t, v, "1 (1 flags)", `\flagged`)
	})

	t.Run("a duplicate added is extra", func(t *testing.T) {
		args, env := copyTo(t, "alice", "dup", ExitOK)
		c := dst.Dial(t, "dup", secret)
		body, flags, date := firstMessage(t, c, "Work")
		appendRaw(t, c, "Work", string(body), flags, date)
		v := runVerifyAll(t, env, args...)
		check(t, v, want{folder: "Work", exact: 2, extra: 1})
		if f := folderOf(t, v.rep, "Work"); f.DestMessages != 3 || f.SourceMessages != 2 {
			t.Errorf("Work: %d source, %d destination messages", f.SourceMessages, f.DestMessages)
		}
		wantText(t, v, "1 extra on the destination")
	})

	t.Run("a folder merged by a rule", func(t *testing.T) {
		args, env := copyTo(t, "alice", "merged", ExitOK, "--map", "^Work$->INBOX")
		// With the copy's rule (and state), Work is compared in INBOX.
		v := runVerifyAll(t, env, append(args, "--map", "^Work$->INBOX")...)
		if !v.rep.Exact || !v.rep.Settings.RecordedPlan {
			t.Fatalf("verdict %q\n%s", v.rep.Verdict, v.stdout)
		}
		if f := folderOf(t, v.rep, "Work"); f.Dest != "INBOX" || f.Why != "mapping rule" || f.Exact != 2 || f.DestMessages != 6 {
			t.Errorf("Work: %+v", f)
		}
		check(t, v, want{folder: "INBOX", exact: 4})
		wantText(t, v, "mapping rule")
		// Without the rule, Work's messages are missing from a Work
		// folder that does not exist, and INBOX holds them as extra; the
		// row says that the rule changed since the copy (as a copy
		// without it would move Work out of INBOX).
		v = runVerifyAll(t, env, args...)
		check(t, v, want{folder: "INBOX", exact: 4, extra: 2}, want{folder: "Work", missing: 2})
		if f := folderOf(t, v.rep, "Work"); f.Plan != migrate.PlanRuleChanged {
			t.Errorf("Work's plan is %q, want %q", f.Plan, migrate.PlanRuleChanged)
		}
		wantText(t, v, "Work (does not exist)", "2 missing", "2 extra on the destination", "rule changed")
		// Without the state, the same.
		v = runVerifyAll(t, env, append(args, "--data-dir", "none")...)
		check(t, v, want{folder: "INBOX", exact: 4, extra: 2}, want{folder: "Work", missing: 2})
	})

	t.Run("a message that failed to copy", func(t *testing.T) {
		args, env := copyTo(t, "bob", "failed", ExitFailures)
		v := runVerifyAll(t, env, args...)
		check(t, v, want{folder: "INBOX", exact: 4, missing: 1, failed: 1})
		if !strings.Contains(v.stdout, "failed earlier") || !strings.Contains(v.pdf, "failed earlier") {
			t.Errorf("the failure's reason is not shown:\n%s", v.stdout)
		}
		wantText(t, v, "1 missing, 1 of them failed earlier")
	})
}

// TestVerifyMaildirWithBareLF copies a Maildir whose messages end their
// lines with a bare LF to IMAP (which stores CRLF) and verifies the copy
// exact: bodies are compared in the CRLF form, as the copy writes them.
func TestVerifyMaildirWithBareLF(t *testing.T) {
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst.AddUser(t, "lf", secret)
	root := t.TempDir()
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i, raw := range []string{
		"Message-ID: <lf1@example.org>\nFrom: a@example.org\nSubject: lf\n\nline one\nline two\n",
		"From: cron@example.org\nSubject: no id\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nrun ok\n",
	} {
		name := filepath.Join(root, "cur", fmt.Sprintf("170000000%d.M1P1.host:2,S", i))
		if err := os.WriteFile(name, []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := withState(t, map[string]string{"MAILFERRY_TO_PASSWORD": secret})
	args := []string{"--from", "maildir:" + root, "--to", imapURL(dst), "--to-user", "lf", "--allow-plaintext"}
	if r := runCLI(t, env, append([]string{"copy"}, args...)...); r.code != ExitOK {
		t.Fatalf("copy: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := runVerifyAll(t, env, args...)
	if !v.rep.Exact || v.rep.Totals.Exact != 2 {
		t.Fatalf("verdict %q\n%s", v.rep.Verdict, v.stdout)
	}
}
