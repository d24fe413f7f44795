package main

import (
	"crypto/sha256"
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

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestPOP3DeltaPassesSurviveSIGKILL copies a POP3 maildrop (Dovecot's
// real POP3 service) to IMAP with mailferry copy, killing it with
// SIGKILL again and again in the first pass and in a delta pass after
// new mail arrived. At the end the destination's INBOX holds exactly
// the maildrop's messages, byte for byte, each once; nothing was
// deleted from the source; and a last pass copies nothing.
func TestPOP3DeltaPassesSurviveSIGKILL(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "pia", pw)
	dst.AddUser(t, "pia", pw)
	seedInbox(t, src, "pia", 0, 400)

	proxy := testenv.StartProxy(t, dst.Addr())
	proxy.AddLatency(t, 20)
	dataDir := t.TempDir()
	args := []string{"copy", "--from", "pop3://" + src.POP3Addr(), "--from-user", "pia", "--to", "imap://" + proxy.Addr, "--to-user", "pia",
		"--allow-plaintext", "--data-dir", dataDir, "--batch", "8", "--pipeline", "4", "--no-progress"}
	env := append(os.Environ(), "MAILFERRY_FROM_PASSWORD="+pw, "MAILFERRY_TO_PASSWORD="+pw)
	kills := 0
	pass := func(wantKills int) {
		t.Helper()
		delays := []time.Duration{40, 90, 150, 220, 300, 120, 70}
		killed := 0
		for runs := 0; ; runs++ {
			if runs > 100 {
				t.Fatalf("no run finished after %d attempts", runs)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = env
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
				return
			case <-timer:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				if err := <-exited; err != nil {
					killed++
					kills++
				} else {
					return // it completed just before the signal
				}
			}
		}
	}
	pass(6)
	seedInbox(t, src, "pia", 400, 200) // new mail: the next pass is a delta pass
	pass(6)
	if kills < 8 {
		t.Errorf("only %d runs were killed mid-run; the test must cut at least 8", kills)
	}
	pass(0) // nothing new

	want, got := bodies(t, src, "pia", "INBOX"), bodies(t, dst, "pia", "INBOX")
	if len(want) != 600 {
		t.Fatalf("the POP3 maildrop holds %d messages, want all 600 (nothing may be deleted)", len(want))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		dup := 0
		seen := map[string]int{}
		for _, g := range got {
			if seen[g]++; seen[g] == 2 {
				dup++
			}
		}
		t.Errorf("destination INBOX holds %d messages (%d duplicated), the maildrop %d, or bytes differ", len(got), dup, len(want))
	}
	t.Logf("%d runs killed by SIGKILL mid-pass", kills)
}

// seedInbox appends n distinct messages to user's INBOX over IMAP.
func seedInbox(t *testing.T, d *testenv.Dovecot, user string, from, n int) {
	c := d.Dial(t, user, pw)
	defer c.Logout()
	for i := from; i < from+n; i++ {
		raw := fmt.Sprintf("Received: from mx.old.example by pop.old.example; Tue, 3 Mar 2015 10:%02d:%02d +0000\r\n"+
			"Message-ID: <pop-%d@old.example>\r\nFrom: Bob <bob@old.example>\r\nSubject: pop %d\r\n\r\n%s\r\n.leading dot\r\n",
			i/60%60, i%60, i, i, strings.Repeat("line of text\r\n", 5+i%200))
		if i%9 == 0 {
			raw = fmt.Sprintf("From: cron@old.example\r\nSubject: nightly\r\n\r\nrun %d\r\n", i) // no Message-ID, no date
		}
		appendTo(t, c, "INBOX", raw, nil, time.Date(2015, 3, 3, 0, 0, 0, 0, time.UTC))
	}
}

// bodies is the sorted SHA-256 of every message of a folder.
func bodies(t *testing.T, d *testenv.Dovecot, user, folder string) []string {
	c := d.Dial(t, user, pw)
	defer c.Logout()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, fmt.Sprintf("%x", sha256.Sum256(b.Bytes)))
		}
	}
	sort.Strings(out)
	return out
}
