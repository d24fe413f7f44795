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
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

const pw = "crash-Test-pw"

// TestSIGKILLAnywhereNoDuplicates kills `mailferry copy` with SIGKILL at
// many points of a run, each time starting it again, until a run
// finishes. The destination must then hold exactly the source: same
// bytes, flags, dates and folders, nothing twice, nothing missing.
func TestSIGKILLAnywhereNoDuplicates(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	src.AddUser(t, "kim", pw)
	dst.AddUser(t, "kim", pw)
	folders := []string{"INBOX.Sent Items", "INBOX.Work", "INBOX.Work.2020", "INBOX.Lists"}
	seedMany(t, src, "kim", folders, 1500)

	// Latency makes a run last long enough to be cut in many places.
	proxy := testenv.StartProxy(t, dst.Addr())
	proxy.AddLatency(t, 20)
	dataDir := t.TempDir()
	args := []string{"copy", "--from", "imap://" + src.Addr(), "--from-user", "kim", "--to", "imap://" + proxy.Addr, "--to-user", "kim",
		"--allow-plaintext", "--data-dir", dataDir, "--connections", "2", "--batch", "8", "--pipeline", "4", "--no-progress"}
	env := append(os.Environ(), "MAILFERRY_FROM_PASSWORD="+pw, "MAILFERRY_TO_PASSWORD="+pw)

	kills, runs := 0, 0
	delays := []time.Duration{30, 60, 100, 150, 210, 280, 360, 120, 80}
	for finished := false; !finished; runs++ {
		if runs > 200 {
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
		// Once 25 kills are in, let a run finish.
		var timer <-chan time.Time
		if kills < 25 {
			timer = time.After(delays[runs%len(delays)] * time.Millisecond)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run %d failed: %v\n%s", runs, err, out.String())
			}
			finished = true
		case <-timer:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			if err := <-exited; err != nil {
				kills++
			} else {
				finished = true // it completed just before the signal
			}
		}
	}
	t.Logf("%d runs, %d killed by SIGKILL mid-run", runs, kills)
	proxy.Clear()
	want, got := contents(t, src, "kim"), contents(t, dst, "kim")
	rename := map[string]string{"INBOX.Sent Items": "Sent", "INBOX.Work": "Work", "INBOX.Work.2020": "Work/2020", "INBOX.Lists": "Lists", "INBOX": "INBOX"}
	for folder, msgs := range want {
		g := got[rename[folder]]
		if strings.Join(g, "\n") != strings.Join(msgs, "\n") {
			t.Errorf("folder %s -> %s: %d messages on the destination, %d on the source, or content differs", folder, rename[folder], len(g), len(msgs))
		}
	}
	total := 0
	for _, g := range got {
		total += len(g)
	}
	if kills < 20 {
		t.Errorf("only %d runs were killed mid-run; the test must cut at least 20", kills)
	}
	if total != 1500 {
		t.Errorf("destination holds %d messages, want exactly 1500", total)
	}
}

func seedMany(t *testing.T, d *testenv.Dovecot, user string, folders []string, n int) {
	c := d.Dial(t, user, pw)
	for _, f := range folders {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]string{"INBOX"}, folders...)
	var cmds []*imapclient.AppendCommand
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("Message-ID: <k%d@x>\r\nFrom: a@x\r\nDate: Mon, 2 Jan 2006 15:04:%02d +0000\r\nSubject: %d\r\n\r\n%s\r\n", i, i%60, i, strings.Repeat("z", i%3000))
		if i%10 == 0 { // some without Message-ID
			raw = fmt.Sprintf("From: cron@x\r\nSubject: job %d\r\n\r\nok\r\n", i)
		}
		flags := []imap.Flag{imap.FlagSeen}
		if i%4 == 0 {
			flags = append(flags, imap.FlagFlagged, "Work")
		}
		cmd := c.Append(all[i%len(all)], int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: time.Date(2012, 1, 1, 0, 0, i, 0, time.UTC)})
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

// contents maps each folder's server name to the sorted descriptions
// (sha256, flags, date) of its messages.
func contents(t *testing.T, d *testenv.Dovecot, user string) map[string][]string {
	c := d.Dial(t, user, pw)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range list {
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var fl []string
			for _, f := range m.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					fl = append(fl, strings.ToLower(string(f)))
				}
			}
			sort.Strings(fl)
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			out[l.Mailbox] = append(out[l.Mailbox], fmt.Sprintf("%x %v %d", sha256.Sum256(body), fl, m.InternalDate.Unix()))
		}
		sort.Strings(out[l.Mailbox])
	}
	return out
}
