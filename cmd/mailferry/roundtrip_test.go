package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/cli"
	"github.com/mailferry/mailferry/internal/testenv"
)

// runCopy runs mailferry copy in process with the test password for
// both sides, and returns the summary's counts.
func runCopy(t *testing.T, want int, args ...string) upgradeSummary {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, IsTerminal: func(any) bool { return false },
		Getenv: func(k string) string {
			switch k {
			case "MAILFERRY_FROM_PASSWORD", "MAILFERRY_TO_PASSWORD":
				return pw
			}
			return ""
		}}
	code := cli.Main(context.Background(), env, append(append([]string{"copy"}, args...), "--json", "--no-progress"))
	if code != want {
		t.Fatalf("copy %v: exit %d, want %d\n%s\n%s", args, code, want, stdout.String(), stderr.String())
	}
	var sum upgradeSummary
	for _, line := range strings.Split(stdout.String(), "\n") {
		var ev struct {
			Type  string         `json:"type"`
			Stats upgradeSummary `json:"stats"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "summary" {
			sum = ev.Stats
		}
	}
	return sum
}

// roundTripSeed fills a mailbox with what a round trip must keep:
// nested, special-use and non-ASCII folders, every system flag and
// keywords, dates to the second, messages without Message-ID or final
// line break, 8-bit headers, binary bytes, a line that starts with
// "From " (mbox quoting) and one with ">From ".
func roundTripSeed(t *testing.T, d *testenv.Dovecot, user string) int {
	c := d.Dial(t, user, pw)
	defer c.Logout()
	folders := []string{"INBOX", "Sent", "Work", "Work/2019", "Ärger & Co", "Dots.in.name"}
	for _, f := range folders[2:] {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	flagSets := [][]imap.Flag{{imap.FlagSeen}, {imap.FlagSeen, imap.FlagAnswered}, {imap.FlagFlagged, "$Label1"}, nil,
		{imap.FlagDraft}, {imap.FlagSeen, "Work", "$Forwarded"}}
	n := 0
	for fi, f := range folders {
		for i := 0; i < 6; i++ {
			raw := fmt.Sprintf("Message-ID: <rt-%d-%d@old.example>\r\nFrom: Bob <bob@old.example>\r\nTo: alice@old.example\r\n"+
				"Date: Tue, 3 Mar 2015 10:%02d:%02d +0100\r\nSubject: %s %d\r\n\r\nHello\r\nFrom the start of a line\r\n>From quoted\r\nbye\r\n",
				fi, i, fi, i, f, i)
			switch i {
			case 3:
				raw = fmt.Sprintf("From: cron@old.example\r\nSubject: job %d in %d\r\nDate: Wed, 4 Mar 2015 03:00:00 +0000\r\n\r\nno final newline", i, fi)
			case 4:
				raw = "Message-ID: <8bit-" + fmt.Sprint(fi) + "@x>\r\nSubject: caf\xc3\xa9 \xe9\r\nContent-Type: application/octet-stream\r\n\r\n" +
					string(bytes.Repeat([]byte{0x00, 0x01, 0xff, 0xfe, '\r', '\n'}, 300))
			}
			date := time.Date(2014, 1+time.Month(fi), 1+i, 8, 30, 15+i, 0, time.UTC)
			appendTo(t, c, f, raw, flagSets[(fi+i)%len(flagSets)], date)
			n++
		}
	}
	return n
}

// IMAP → Maildir → IMAP and IMAP → mbox → IMAP on Dovecot: what the
// second server serves at the end is what the first one served, byte for
// byte, with the same flags, keywords and dates, in the same folders;
// and running each copy again copies nothing.
func TestRoundTripThroughLocalFiles(t *testing.T) {
	for _, via := range []struct{ name, addr string }{
		{"maildir", "maildir:%s/backup"},
		{"mbox-tree", "mbox:%s/backup"},
		{"maildir-fs", "maildir:%s/backup?layout=fs"},
	} {
		t.Run(via.name, func(t *testing.T) {
			t.Parallel()
			src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
			dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
			src.AddUser(t, "ria", pw)
			dst.AddUser(t, "ria", pw)
			n := roundTripSeed(t, src, "ria")
			dir := t.TempDir()
			local := fmt.Sprintf(via.addr, dir)
			state := filepath.Join(dir, "state")
			out := []string{"--from", "imap://" + src.Addr(), "--from-user", "ria", "--to", local, "--allow-plaintext", "--data-dir", state}
			back := []string{"--from", local, "--to", "imap://" + dst.Addr(), "--to-user", "ria", "--allow-plaintext", "--data-dir", state}
			if s := runCopy(t, cli.ExitOK, out...); s.Copied != int64(n) {
				t.Fatalf("into %s: %+v, want %d copied", local, s, n)
			}
			if s := runCopy(t, cli.ExitOK, back...); s.Copied != int64(n) {
				t.Fatalf("back from %s: %+v, want %d copied", local, s, n)
			}
			want, got := contents(t, src, "ria"), contents(t, dst, "ria")
			compared := 0
			for _, msgs := range want {
				compared += len(msgs)
			}
			if compared != n || len(want) != 6 {
				t.Fatalf("the first server serves %d messages in %d folders, want %d in 6", compared, len(want), n)
			}
			for folder, msgs := range want {
				if strings.Join(got[folder], "\n") != strings.Join(msgs, "\n") {
					t.Errorf("folder %s: %d messages on the first server, %d after the round trip, or bytes, flags or dates differ:\n%s\n--\n%s",
						folder, len(msgs), len(got[folder]), strings.Join(msgs, "\n"), strings.Join(got[folder], "\n"))
				}
			}
			for folder := range got {
				if _, ok := want[folder]; !ok && len(got[folder]) > 0 {
					t.Errorf("the round trip made a folder %q with %d messages", folder, len(got[folder]))
				}
			}
			// Delta passes both ways: nothing new, nothing copied.
			if s := runCopy(t, cli.ExitOK, out...); s.Copied != 0 {
				t.Errorf("second pass into %s: %+v", local, s)
			}
			if s := runCopy(t, cli.ExitOK, back...); s.Copied != 0 {
				t.Errorf("second pass back: %+v", s)
			}
		})
	}
}
