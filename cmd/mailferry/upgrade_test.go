package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/cli"
	"github.com/mailferry/mailferry/internal/testenv"
)

// The upgrade data (testdata/upgrade, made by its make.sh with the
// release before the connector model, commit ca96ec5) is a state
// database and the two Dovecot mailboxes it describes. mailferry copy
// keys its state by the servers' addresses, so both the making and the
// test reach the servers through forwarders at these fixed ports (below
// the kernel's ephemeral range, so no other test's connections take
// them).
const (
	upgradeSrcAddr = "127.0.0.1:29143"
	upgradeDstAddr = "127.0.0.1:29144"
	upgradeUser    = "alice"
	upgradePass    = pw // contents() logs in with it
	upgradeDir     = "testdata/upgrade"
)

func upgradeServers(t *testing.T) (src, dst *testenv.Dovecot) {
	src = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier, SpecialUse: true, MaxMailSize: 64 << 10})
	return src, dst
}

func upgradeArgs(dataDir string, extra ...string) []string {
	return append([]string{"copy", "--from", "imap://" + upgradeSrcAddr, "--from-user", upgradeUser,
		"--to", "imap://" + upgradeDstAddr, "--to-user", upgradeUser, "--allow-plaintext", "--data-dir", dataDir, "--no-progress"}, extra...)
}

// TestMakeUpgradeData writes testdata/upgrade with the release binary
// named by MAILFERRY_MAKE_UPGRADE_DATA (see testdata/upgrade/make.sh); it
// is skipped otherwise. It is how the committed data was made, not a test.
func TestMakeUpgradeData(t *testing.T) {
	release := os.Getenv("MAILFERRY_MAKE_UPGRADE_DATA")
	if release == "" {
		t.Skip("set MAILFERRY_MAKE_UPGRADE_DATA to the release binary to remake testdata/upgrade (see its make.sh)")
	}
	src, dst := upgradeServers(t)
	src.AddUser(t, upgradeUser, upgradePass)
	dst.AddUser(t, upgradeUser, upgradePass)
	testenv.StartProxyAt(t, upgradeSrcAddr, src.Addr())
	testenv.StartProxyAt(t, upgradeDstAddr, dst.Addr())
	// Folders: INBOX, the special-use Sent and Archive (with a child), a
	// "Sent Items" that stays an ordinary folder next to \Sent, and a
	// non-ASCII name.
	seedUpgrade(t, src, "INBOX", 0, 12, []imap.Flag{imap.FlagSeen})
	seedUpgrade(t, src, "Sent", 100, 6, []imap.Flag{imap.FlagSeen})
	seedUpgrade(t, src, "Sent Items", 200, 4, nil)
	seedUpgrade(t, src, "Ärger & Co", 300, 5, []imap.Flag{imap.FlagAnswered})
	seedUpgrade(t, src, "Archive/2019", 400, 3, []imap.Flag{imap.FlagSeen})
	// A message the destination refuses for its size (MaxMailSize 64 KiB).
	c := src.Dial(t, upgradeUser, upgradePass)
	big := "Message-ID: <big@old.example>\r\nFrom: Bob <bob@old.example>\r\nSubject: holiday photos\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 100<<10/18)
	appendTo(t, c, "INBOX", big, nil, time.Date(2015, 3, 4, 12, 0, 0, 0, time.UTC))

	state := t.TempDir()
	env := append(os.Environ(), "MAILFERRY_FROM_PASSWORD="+upgradePass, "MAILFERRY_TO_PASSWORD="+upgradePass)
	runRelease := func(want int, extra ...string) {
		cmd := exec.Command(release, upgradeArgs(state, extra...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("release %v: exit %d\n%s", extra, code, out)
		if code != want {
			t.Fatalf("release run %v: exit %d, want %d", extra, code, want)
		}
	}
	runRelease(1) // the big message fails
	// New mail and changed flags, then a delta pass.
	seedUpgrade(t, src, "INBOX", 20, 3, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	runRelease(1)
	runRelease(1, "--full-rescan")
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}

	out := upgradeDir
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(state, "mailferry.db"), filepath.Join(out, "mailferry.db"))
	if _, err := os.Stat(filepath.Join(state, "mailferry.db-wal")); err == nil {
		if fi, _ := os.Stat(filepath.Join(state, "mailferry.db-wal")); fi.Size() > 0 {
			t.Fatal("the release left a non-empty WAL: the database file alone would miss commits")
		}
	}
	src.Stop(t) // nothing writes to the mail directories while they are copied
	dst.Stop(t)
	copyTree(t, src.MailDir(upgradeUser), filepath.Join(out, "src-mail"))
	copyTree(t, dst.MailDir(upgradeUser), filepath.Join(out, "dst-mail"))
}

func seedUpgrade(t *testing.T, d *testenv.Dovecot, folder string, from, n int, flags []imap.Flag) {
	c := d.Dial(t, upgradeUser, upgradePass)
	defer c.Logout()
	if folder != "INBOX" {
		_ = c.Create(folder, nil).Wait() // the special-use ones exist
	}
	for i := from; i < from+n; i++ {
		raw := fmt.Sprintf("Message-ID: <up-%d@old.example>\r\nFrom: Bob <bob@old.example>\r\nTo: alice@old.example\r\n"+
			"Date: Tue, 3 Mar 2015 10:%02d:00 +0100\r\nSubject: message %d in %s\r\n\r\n%s\r\n", i, i%60, i, folder, strings.Repeat("text ", 20+i))
		if i%7 == 3 {
			// No Message-ID: recognised by its other headers and size.
			raw = fmt.Sprintf("From: cron@old.example\r\nSubject: nightly job\r\nDate: Wed, 4 Mar 2015 03:00:00 +0000\r\n\r\nrun %d ok\r\n", i)
		}
		fl := flags
		if i%3 == 0 {
			fl = append(append([]imap.Flag(nil), flags...), imap.FlagFlagged, "$Label1")
		}
		appendTo(t, c, folder, raw, fl, time.Date(2015, 3, 3, 9, 0, i%60, 0, time.UTC))
	}
}

func appendTo(t *testing.T, c *imapclient.Client, folder, raw string, flags []imap.Flag, date time.Time) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		if err := o.Close(); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// TestUpgradeFromRelease restores the state and the two mailboxes the
// release before the connector model left (testdata/upgrade) and runs
// this code on them: the first pass after the upgrade copies nothing and
// duplicates nothing (the folders without a failure are skipped after
// one STATUS; the one with the too-large message is compared by
// identity and fails it again), and mail that arrives after the upgrade
// is copied exactly once.
func TestUpgradeFromRelease(t *testing.T) {
	src, dst := upgradeServers(t)
	src.RestoreMail(t, upgradeUser, filepath.Join(upgradeDir, "src-mail"))
	dst.RestoreMail(t, upgradeUser, filepath.Join(upgradeDir, "dst-mail"))
	src.AddUser(t, upgradeUser, upgradePass)
	dst.AddUser(t, upgradeUser, upgradePass)
	testenv.StartProxyAt(t, upgradeSrcAddr, src.Addr())
	testenv.StartProxyAt(t, upgradeDstAddr, dst.Addr())
	state := t.TempDir()
	copyTree(t, filepath.Join(upgradeDir, "mailferry.db"), filepath.Join(state, "mailferry.db"))
	before := contents(t, dst, upgradeUser)

	sum, events := runUpgraded(t, state, cli.ExitFailures)
	if sum.Copied != 0 || sum.Failed != 1 {
		t.Errorf("first pass after the upgrade: %+v; want nothing copied and the too-large message failed again", sum)
	}
	unchanged := 0
	for _, f := range events {
		if f.Unchanged {
			unchanged++
		}
	}
	if unchanged != len(events)-1 {
		t.Errorf("%d of %d folders skipped as unchanged; want all but INBOX (it holds the failed message)", unchanged, len(events))
	}
	after := contents(t, dst, upgradeUser)
	if diff := compareContents(before, after); diff != "" {
		t.Fatalf("the destination changed though nothing was copied:\n%s", diff)
	}

	// New mail after the upgrade: copied once, and only it.
	seedUpgrade(t, src, "Sent", 150, 1, nil)
	seedUpgrade(t, src, "Ärger & Co", 350, 2, nil)
	sum, _ = runUpgraded(t, state, cli.ExitFailures)
	if sum.Copied != 3 {
		t.Errorf("pass with 3 new messages: %+v", sum)
	}
	sum, _ = runUpgraded(t, state, cli.ExitFailures)
	if sum.Copied != 0 {
		t.Errorf("pass after that: %+v; want nothing copied", sum)
	}
	final := contents(t, dst, upgradeUser)
	added := 0
	for folder, msgs := range final {
		n := len(msgs) - len(before[folder])
		if n < 0 {
			t.Errorf("folder %s lost %d messages", folder, -n)
		}
		added += n
	}
	if added != 3 {
		t.Errorf("the destination gained %d messages, want the 3 new ones exactly once", added)
	}
	// And the source matches the destination, folder by folder, except
	// for the message too large for it.
	want := contents(t, src, upgradeUser)
	rename := map[string]string{"INBOX": "INBOX", "Sent": "INBOX.Sent", "Sent Items": "INBOX.Sent Items", "Ärger & Co": "INBOX.Ärger & Co",
		"Archive/2019": "INBOX.Archive.2019"}
	for folder, target := range rename {
		w, g := want[folder], final[target]
		if folder == "INBOX" && len(w) == len(g)+1 {
			continue // the too-large one
		}
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("%s -> %s: source %d messages, destination %d, or content differs", folder, target, len(w), len(g))
		}
	}
}

type upgradeSummary struct {
	Copied  int64 `json:"copied"`
	Present int64 `json:"already_present"`
	Failed  int64 `json:"failed"`
}

type upgradeFolder struct {
	Source    string `json:"source"`
	Unchanged bool   `json:"unchanged"`
}

// runUpgraded runs this code's mailferry copy in process and returns the
// summary's counts and the folders it reported.
func runUpgraded(t *testing.T, state string, want int) (upgradeSummary, []upgradeFolder) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, IsTerminal: func(any) bool { return false },
		Getenv: func(k string) string {
			switch k {
			case "MAILFERRY_FROM_PASSWORD", "MAILFERRY_TO_PASSWORD":
				return upgradePass
			}
			return ""
		}}
	code := cli.Main(context.Background(), env, upgradeArgs(state, "--json"))
	if code != want {
		t.Fatalf("copy: exit %d, want %d\n%s\n%s", code, want, stdout.String(), stderr.String())
	}
	var sum upgradeSummary
	var folders []upgradeFolder
	for _, line := range strings.Split(stdout.String(), "\n") {
		var ev struct {
			Type    string          `json:"type"`
			Stats   upgradeSummary  `json:"stats"`
			Folders []upgradeFolder `json:"folders"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "summary" {
			sum, folders = ev.Stats, ev.Folders
		}
	}
	return sum, folders
}

func compareContents(a, b map[string][]string) string {
	var out strings.Builder
	for f, msgs := range a {
		if strings.Join(msgs, "\n") != strings.Join(b[f], "\n") {
			fmt.Fprintf(&out, "  %s: %d messages before, %d after\n", f, len(msgs), len(b[f]))
		}
	}
	for f, msgs := range b {
		if _, ok := a[f]; !ok {
			fmt.Fprintf(&out, "  %s: new folder with %d messages\n", f, len(msgs))
		}
	}
	return out.String()
}
