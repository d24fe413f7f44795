package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

// seedFolders puts n small messages, round robin, into INBOX and folders.
func seedFolders(t *testing.T, d *testenv.Dovecot, user string, n int, folders ...string) {
	t.Helper()
	c := d.Dial(t, user, secret)
	for _, f := range folders {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]string{"INBOX"}, folders...)
	var cmds []*imapclient.AppendCommand
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("Message-ID: <o%d@x>\r\nFrom: a@x\r\nSubject: %d\r\n\r\n%s\r\n", i, i, strings.Repeat("x", 200+i%700))
		cmd := c.Append(all[i%len(all)], int64(len(raw)), &imap.AppendOptions{Time: time.Date(2019, 1, 1, 0, 0, i%60, 0, time.UTC)})
		if _, err := cmd.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// whenDelivered calls fn once the destination's INBOX holds n messages
// (polling without the testing.T, from a goroutine).
func whenDelivered(d *testenv.Dovecot, user string, n uint32, fn func()) {
	go func() {
		c, err := imapclient.DialInsecure(d.Addr(), nil)
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.Login(user, secret).Wait(); err != nil {
			return
		}
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
			if err == nil && *st.NumMessages >= n {
				fn()
				return
			}
		}
	}()
}

// --dry-run says, per folder, whether its destination comes from the
// recorded plan, from a --map rule that changed, or is new; and a dry
// run records nothing.
func TestDryRunExplainsThePlan(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "yann", secret)
	dst.AddUser(t, "yann", secret)
	seedFolders(t, src, "yann", 9, "Old", "Old/2001", "Work")
	base := []string{"copy", "--from", imapURL(src), "--from-user", "yann", "--to", imapURL(dst), "--to-user", "yann", "--allow-plaintext"}
	env := withState(t, passwords())
	if r := runCLI(t, env, append(base, "--map", "^Old/2001->Archive/2001")...); r.code != ExitOK {
		t.Fatalf("first pass: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	c := src.Dial(t, "yann", secret)
	if err := c.Create("Kunden", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	row := func(out, folder string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == folder {
				return l
			}
		}
		return ""
	}
	r := runCLI(t, env, append(base, "--dry-run", "--map", "^Old/2001->Archiv/2001")...)
	if r.code != ExitOK {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	for folder, want := range map[string]string{
		"INBOX":    "recorded",
		"Work":     "recorded",
		"Old/2001": "rule changed (was Archive/2001)",
		"Kunden":   "new",
	} {
		if l := row(r.stdout, folder); !strings.Contains(l, want) {
			t.Errorf("dry run row of %s lacks %q: %q\n%s", folder, want, l, r.stdout)
		}
	}
	if l := row(r.stdout, "Old/2001"); !strings.Contains(l, "Archiv/2001 (new)") {
		t.Errorf("Old/2001 should go to a new Archiv/2001: %q", l)
	}
	// Nothing was recorded by the dry run: with the old rule, Old/2001 is
	// still recorded, and Kunden still new.
	r = runCLI(t, env, append(base, "--dry-run", "--map", "^Old/2001->Archive/2001")...)
	if l := row(r.stdout, "Old/2001"); !strings.Contains(l, "recorded") || !strings.Contains(l, "Archive/2001") {
		t.Errorf("after a dry run, Old/2001: %q", l)
	}
	if l := row(r.stdout, "Kunden"); !strings.Contains(l, "new") {
		t.Errorf("after a dry run, Kunden: %q", l)
	}
}

// A source that goes away for ten seconds in the middle of a copy: the
// copy waits, goes on, and finishes with every message and exit 0.
func TestCopyCLISourceOutage(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "zoe", secret)
	dst.AddUser(t, "zoe", secret)
	seedFolders(t, src, "zoe", 150, "Work", "Lists")
	proxy := testenv.StartProxy(t, src.Addr())
	proxy.AddLatency(t, 40)
	down := make(chan struct{})
	whenDelivered(dst, "zoe", 20, func() {
		proxy.Down()
		close(down)
		time.Sleep(10 * time.Second)
		proxy.Up(t)
	})
	r := runCLI(t, withState(t, passwords()), "copy", "--from", "imap://"+proxy.Addr, "--from-user", "zoe", "--to", imapURL(dst), "--to-user", "zoe",
		"--allow-plaintext", "--connections", "2", "--batch", "8")
	select {
	case <-down:
	default:
		t.Fatal("the copy finished before the source went down")
	}
	if r.code != ExitOK || !strings.Contains(r.stdout, "150 to deal with: 150 copied, 0 already present, 0 skipped, 0 failed") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"INBOX", "Work", "Lists"} {
		if n := count(t, dst, "zoe", f); n != 50 {
			t.Errorf("%s has %d messages, want 50", f, n)
		}
	}
}

var (
	summaryLine = regexp.MustCompile(`Messages: (\d+) to deal with: (\d+) copied, (\d+) already present, (\d+) skipped, (\d+) failed`)
	folderLine  = regexp.MustCompile(`(?m)^folder .* -> .*: (\d+) copied, (\d+) already present, (\d+) skipped, (\d+) failed$`)
	failedHead  = regexp.MustCompile(`Failed messages \((\d+)\):`)
)

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

// The text summary, the per-folder lines and the failure list of one
// pass with failures (a message too large, then the source gone for good
// with a short --retry-budget) tell the same numbers; so do the JSON
// events of another such pass.
func TestCopyCLICountsAgree(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, MaxMailSize: 1 << 20})
	src.AddUser(t, "abe", secret)
	dst.AddUser(t, "abe", secret)
	dst.AddUser(t, "abe2", secret)
	// The first message is too large for the destination.
	c := src.Dial(t, "abe", secret)
	big := "Message-ID: <big@x>\r\n\r\n" + strings.Repeat("y", 2<<20)
	cmd := c.Append("INBOX", int64(len(big)), nil)
	if _, err := cmd.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	seedFolders(t, src, "abe", 240, "A", "B", "C", "D", "E")
	copyRun := func(user string, extra ...string) result {
		proxy := testenv.StartProxy(t, src.Addr())
		proxy.AddLatency(t, 40)
		whenDelivered(dst, user, 15, proxy.Down)
		args := append([]string{"copy", "--from", "imap://" + proxy.Addr, "--from-user", "abe", "--to", imapURL(dst), "--to-user", user,
			"--allow-plaintext", "--connections", "2", "--batch", "8", "--retry-budget", "2s"}, extra...)
		return runCLI(t, withState(t, passwords()), args...)
	}

	// Text.
	r := copyRun("abe")
	if r.code != ExitFailures {
		t.Fatalf("exit %d, want %d\n%s\n%s", r.code, ExitFailures, r.stdout, r.stderr)
	}
	m := summaryLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no summary line:\n%s", r.stdout)
	}
	total, copied, present, skipped, failed := atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4]), atoi(m[5])
	if total != 241 || copied+present+skipped+failed != total || failed == 0 {
		t.Errorf("summary: %d to deal with = %d + %d + %d + %d", total, copied, present, skipped, failed)
	}
	var fc, fp, fs, ff int64
	for _, l := range folderLine.FindAllStringSubmatch(r.stderr, -1) {
		fc, fp, fs, ff = fc+atoi(l[1]), fp+atoi(l[2]), fs+atoi(l[3]), ff+atoi(l[4])
	}
	if fc != copied || fp != present || fs != skipped || ff != failed {
		t.Errorf("folder lines add up to %d/%d/%d/%d, the summary says %d/%d/%d/%d\n%s", fc, fp, fs, ff, copied, present, skipped, failed, r.stderr)
	}
	if h := failedHead.FindStringSubmatch(r.stdout); h == nil || atoi(h[1]) != failed {
		t.Errorf("failure list heading %v, want %d", h, failed)
	}
	if !strings.Contains(r.stdout, "source was unreachable for") || !strings.Contains(r.stdout, "limit") ||
		regexp.MustCompile(`(?m)^  \S+\s+0\s+0 B\s`).MatchString(r.stdout) {
		t.Errorf("failures must say why, by folder and ID or count:\n%s", r.stdout)
	}
	// Every row of the failure list stands for 1 message (an ID) or for
	// "all N" of a folder; together, the failed count.
	var rows int64
	for _, l := range strings.Split(r.stdout[strings.Index(r.stdout, "Failed messages"):], "\n")[2:] {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] == "What" {
			continue
		}
		if f[1] == "all" {
			rows += atoi(f[2])
		} else if f[1] != "-" {
			rows++
		}
	}
	if rows != failed {
		t.Errorf("the failure rows stand for %d messages, %d failed\n%s", rows, failed, r.stdout)
	}

	// JSON.
	r = copyRun("abe2", "--json")
	if r.code != ExitFailures {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitFailures, r.stderr)
	}
	var sum struct {
		Stats struct {
			Total   int64 `json:"total_messages"`
			Copied  int64 `json:"copied"`
			Present int64 `json:"already_present"`
			Skipped int64 `json:"skipped"`
			Failed  int64 `json:"failed"`
		} `json:"stats"`
		Unreachable string `json:"unreachable"`
	}
	var evCopied, evPresent, evSkipped, evFailed, evSource, evFailures int64
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			t.Fatalf("not JSON (%v): %q", err, sc.Text())
		}
		if head.Type == "progress" {
			continue
		}
		var ev struct {
			Type   string `json:"type"`
			Folder *struct {
				Messages int64 `json:"source_messages"`
				Copied   int64 `json:"copied"`
				Present  int64 `json:"already_present"`
				Skipped  int64 `json:"skipped"`
				Failed   int64 `json:"failed"`
			} `json:"folder"`
			Failure *struct {
				Messages int64 `json:"messages"`
			} `json:"failure"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %s (%v): %q", head.Type, err, sc.Text())
		}
		switch ev.Type {
		case "folder_done":
			evSource += ev.Folder.Messages
			evCopied += ev.Folder.Copied
			evPresent += ev.Folder.Present
			evSkipped += ev.Folder.Skipped
			evFailed += ev.Folder.Failed
		case "failure":
			evFailures += ev.Failure.Messages
		case "summary":
			if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := sum.Stats
	if s.Total != 241 || s.Copied+s.Present+s.Skipped+s.Failed != s.Total || s.Failed == 0 || sum.Unreachable == "" {
		t.Errorf("JSON summary: %+v, unreachable %q", s, sum.Unreachable)
	}
	if evSource != s.Total || evCopied != s.Copied || evPresent != s.Present || evSkipped != s.Skipped || evFailed != s.Failed || evFailures != s.Failed {
		t.Errorf("folder_done events add up to %d source, %d/%d/%d/%d and failure events to %d; the summary says %+v",
			evSource, evCopied, evPresent, evSkipped, evFailed, evFailures, s)
	}
}
