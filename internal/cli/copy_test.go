package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv"
)

const secret = "Tr0ub4dor&3-secret"

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }, IsTerminal: func(any) bool { return false }}
	code := Main(context.Background(), e, args)
	r := result{code, out.String(), errb.String()}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatalf("the password appeared in the output:\n%s\n%s", r.stdout, r.stderr)
	}
	return r
}

// passwords is the environment of a run: both passwords, and a state
// directory of the test's own (a later call in the same test shares it).
func passwords() map[string]string {
	return map[string]string{"MAILFERRY_FROM_PASSWORD": secret, "MAILFERRY_TO_PASSWORD": secret}
}

func withState(t *testing.T, env map[string]string) map[string]string {
	out := map[string]string{"MAILFERRY_DATA_DIR": t.TempDir()}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func imapURL(d *testenv.Dovecot) string { return fmt.Sprintf("imap://%s", d.Addr()) }

func seedCLI(t *testing.T, d *testenv.Dovecot, user string, n int, folders ...string) {
	t.Helper()
	c := d.Dial(t, user, secret)
	for _, f := range folders {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]string{"INBOX"}, folders...)
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("Message-ID: <cli%d@x>\r\nFrom: a@x\r\nSubject: private subject %d\r\n\r\nbody %d\r\n", i, i, i)
		if i == 3 {
			raw += strings.Repeat("x", 2<<20) // too big for the limited destination
		}
		cmd := c.Append(all[i%len(all)], int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2019, 1, 1, 0, 0, i, 0, time.UTC)})
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
}

func count(t *testing.T, d *testenv.Dovecot, user, mbox string) uint32 {
	t.Helper()
	c := d.Dial(t, user, secret)
	st, err := c.Status(mbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0
	}
	return *st.NumMessages
}

func TestCopyCLI(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true, MaxMailSize: 1 << 20})
	src.AddUser(t, "alice", secret)
	dst.AddUser(t, "alice", secret)
	seedCLI(t, src, "alice", 12, "INBOX.Sent Items", "INBOX.Projekte")
	base := []string{"copy", "--from", imapURL(src), "--from-user", "alice", "--to", imapURL(dst), "--to-user", "alice", "--allow-plaintext"}
	env := withState(t, passwords())

	t.Run("dry run prints the plan and copies nothing", func(t *testing.T) {
		r := runCLI(t, env, append(base, "--dry-run")...)
		if r.code != ExitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{"Dry run", "Sent Items", "Sent", `special use \Sent`, "Projekte (new)", "TOTAL", "12"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("plan lacks %q:\n%s", want, r.stdout)
			}
		}
		if n := count(t, dst, "alice", "INBOX"); n != 0 {
			t.Errorf("dry run copied %d messages", n)
		}
	})

	t.Run("copy reports failures and exits 1", func(t *testing.T) {
		r := runCLI(t, env, base...)
		if r.code != ExitFailures {
			t.Fatalf("exit %d, want %d\n%s\n%s", r.code, ExitFailures, r.stdout, r.stderr)
		}
		for _, want := range []string{"11 copied", "1 failed", "Failed messages (1)", "INBOX", "limit", "What to do:", "msgs/s"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("summary lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout+r.stderr, "private subject") {
			t.Error("subjects printed without --log-subjects")
		}
		if !strings.Contains(r.stderr, "folder Projekte -> Projekte") {
			t.Errorf("no plain progress lines on a non-terminal:\n%s", r.stderr)
		}
		if n := count(t, dst, "alice", "Sent"); n != 4 {
			t.Errorf("Sent has %d messages, want 4", n)
		}
	})

	t.Run("second run is a delta with nothing new, JSON events", func(t *testing.T) {
		r := runCLI(t, env, append(base, "--json", "--log-subjects")...)
		if r.code != ExitFailures {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var last map[string]any
		types := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(r.stdout))
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("not JSON: %q", sc.Text())
			}
			types[ev["type"].(string)]++
			last = ev
		}
		if last["type"] != "summary" || types["folder_done"] != 3 || types["failure"] != 1 {
			t.Fatalf("events %v, last %v", types, last)
		}
		stats := last["stats"].(map[string]any)
		// INBOX, with its failed message, is checked again by identity
		// (3 present, the big one fails again); the two other folders
		// are skipped after one STATUS each.
		if stats["copied"].(float64) != 0 || stats["already_present"].(float64) != 3 {
			t.Errorf("second run stats: %v", stats)
		}
		unchanged := 0
		for _, f := range last["folders"].([]any) {
			if f.(map[string]any)["unchanged"] == true {
				unchanged++
			}
		}
		if unchanged != 2 {
			t.Errorf("%d folders skipped as unchanged, want 2", unchanged)
		}
		f := last["failures"].([]any)[0].(map[string]any)
		if id, _ := f["id"].(string); f["subject"] != "private subject 3" || !strings.HasSuffix(id, ".2") || f["folder"] != "INBOX" {
			t.Errorf("failure record: %v", f)
		}
	})
}

func TestStatusAfterCopy(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "sam", secret)
	dst.AddUser(t, "sam", secret)
	seedCLI(t, src, "sam", 6, "Reports")
	env := withState(t, passwords())
	if r := runCLI(t, env, "status"); r.code != ExitUsage || !strings.Contains(r.stderr, "nothing has been copied") {
		t.Errorf("status before any copy: exit %d, %q", r.code, r.stderr)
	}
	cpu, mem := filepath.Join(t.TempDir(), "cpu.pprof"), filepath.Join(t.TempDir(), "mem.pprof")
	r := runCLI(t, env, "copy", "--from", imapURL(src), "--from-user", "sam", "--to", imapURL(dst), "--to-user", "sam", "--allow-plaintext",
		"--cpuprofile", cpu, "--memprofile", mem)
	if r.code != ExitOK {
		t.Fatalf("copy: exit %d %s", r.code, r.stderr)
	}
	for _, f := range []string{cpu, mem} {
		// pprof files are gzip-compressed protocol buffers.
		if b, err := os.ReadFile(f); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("profile %s: %v, %d bytes", f, err, len(b))
		}
	}
	r = runCLI(t, env, "status")
	if r.code != ExitOK {
		t.Fatalf("status: exit %d %s", r.code, r.stderr)
	}
	for _, want := range []string{"sam@" + src.Addr(), "sam@" + dst.Addr(), "INBOX", "Reports", "LAST SYNCED"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, env, "status", "--json")
	var pairs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &pairs); err != nil || len(pairs) != 1 {
		t.Fatalf("status --json: %v %q", err, r.stdout)
	}
	if n := len(pairs[0]["folders"].([]any)); n != 2 {
		t.Errorf("status --json lists %d folders, want 2", n)
	}
	if pairs[0]["messages_by_state"].(map[string]any)["copied"].(float64) != 6 {
		t.Errorf("status --json counts: %v", pairs[0]["messages_by_state"])
	}
}

func TestCopyCLIErrors(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, TLS: true})
	d.AddUser(t, "bob", secret)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(passFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrongFile, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsURL := fmt.Sprintf("imaps://%s", d.TLSAddr())
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"wrong password", nil, []string{"--from", imapURL(d), "--from-user", "bob", "--from-password-file", wrongFile, "--allow-plaintext", "--to", imapURL(d), "--to-user", "bob", "--to-password-file", passFile},
			ExitStopped, []string{"source:", "log in to", "What to do:", "app password"}},
		{"unknown host", passwords(), []string{"--from", "imaps://mail.nonexistent.invalid", "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob"},
			ExitStopped, []string{"source:", "mail.nonexistent.invalid", "What to do:", "server name"}},
		{"refused certificate", passwords(), []string{"--from", tlsURL, "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob"},
			ExitStopped, []string{"source:", "certificate", "--insecure"}},
		{"plaintext refused", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob"},
			ExitStopped, []string{"unencrypted", "--allow-plaintext"}},
		{"no password", nil, []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob"},
			ExitUsage, []string{"no source password", "MAILFERRY_FROM_PASSWORD"}},
		{"password in URL refused", passwords(), []string{"--from", "imaps://bob:pw@host", "--to", imapURL(d), "--to-user", "bob"},
			ExitUsage, []string{"do not put the password in the URL"}},
		{"bad date", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", "--since", "01/02/2020"},
			ExitUsage, []string{"--since", "2024-01-31"}},
		{"bad regex", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", "--exclude", "(["},
			ExitUsage, []string{"not a valid regular expression"}},
		{"bad mapping", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", "--map", "Inbox"},
			ExitUsage, []string{"^Source/Path->Destination/Path"}},
		{"stall timeout too short", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", "--stall-timeout", "0s"},
			ExitUsage, []string{"--stall-timeout must be at least 1s"}},
		{"stall timeout not a duration", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", "--stall-timeout", "60"},
			ExitUsage, []string{"-stall-timeout"}},
		{"password as argument", passwords(), []string{"--from", imapURL(d), "--from-user", "bob", "--to", imapURL(d), "--to-user", "bob", secret + "x"},
			ExitUsage, []string{"passwords are never given as arguments"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, withState(t, c.env), append([]string{"copy"}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Errorf("stack trace shown to the user:\n%s", r.stderr)
			}
		})
	}
	t.Run("--insecure accepts the self-signed certificate", func(t *testing.T) {
		r := runCLI(t, withState(t, passwords()), "copy", "--from", tlsURL, "--from-user", "bob", "--to", tlsURL, "--to-user", "bob", "--insecure")
		if r.code != ExitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
}

// On a terminal the live bar is drawn (here into a buffer standing in
// for the terminal) with counts, rate and ETA.
func TestCopyCLIProgressBar(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "tty", secret)
	dst.AddUser(t, "tty", secret)
	seedCLI(t, src, "tty", 3)
	var out, errb bytes.Buffer
	e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return withState(t, passwords())[k] }, IsTerminal: func(any) bool { return true }}
	code := Main(context.Background(), e, []string{"copy", "--from", imapURL(src), "--from-user", "tty", "--to", imapURL(dst), "--to-user", "tty", "--allow-plaintext"})
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"3/3 msgs", "msg/s", "ETA"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("progress bar lacks %q: %q", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "folder INBOX ->") {
		t.Error("plain progress lines printed on a terminal")
	}
}
