package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestServiceOutageAndCounts runs passes of `mailferry serve` whose
// source goes away in the middle:
//
//   - for 15 seconds: the pass waits, retries, and completes with every
//     message and nothing failed (it used to end "completed with errors"
//     with part of the mail failed and part never mentioned);
//   - for good, with --retry-budget 3s, after a message too large for the
//     destination: the pass ends completed with errors, and the stored
//     statistics (what the API and the portal show), the failure list and
//     the report email give the same numbers, which balance.
func TestServiceOutageAndCounts(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, MaxMailSize: 1 << 20})
	for _, u := range []string{"fay", "gus"} {
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
	}
	// gus's first message is too large for the destination.
	big := "Message-ID: <gus-big@x>\r\nFrom: a@x\r\n\r\n" + strings.Repeat("z", 2<<20)
	c := src.Dial(t, "gus", pw)
	cmd := c.Append("INBOX", int64(len(big)), &imap.AppendOptions{Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	if _, err := cmd.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	seedSized(t, src, "fay", 0, 300, 20000)
	seedSized(t, src, "gus", 0, 200, 20000)
	smtp := testenv.StartSMTP(t)
	// The project's source is reached through a proxy that can go down;
	// reads are slowed so that a pass is still running when it does.
	proxy := testenv.StartProxy(t, src.Addr())
	proxy.LimitReadBandwidth(t, 1500)
	dataDir := t.TempDir()
	env := append(os.Environ(), "MAILFERRY_DATA_DIR="+dataDir)
	out, err := func() ([]byte, error) {
		cmd := exec.Command(bin, "user", "add", "--email", "owner@example.com")
		cmd.Env = env
		return cmd.Output()
	}()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	token := strings.TrimSpace(string(out))
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--preset", "Test Destination=imap://" + dst.Addr() + "?allow_plaintext=1",
		"--smtp-host", smtp.Host, "--smtp-port", fmt.Sprint(smtp.Port), "--smtp-security", "none", "--connections", "2",
		// The test servers are on loopback, which portal projects may not
		// reach by default (outbound policy).
		"--allow-net", "127.0.0.0/8"}
	srv := &server{t: t, bin: bin, env: env, url: base, log: &syncBuffer{}, args: args}
	srv.start()
	defer func() {
		srv.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", srv.log.String())
		}
	}()
	host, portText, _ := strings.Cut(proxy.Addr, ":")
	proxyPort, _ := strconv.Atoi(portText)
	var project struct{ ID string }
	if code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{
		"name": "Outages", "destination_preset": "test-destination",
		"source": map[string]any{"host": host, "port": proxyPort, "security": "none", "allow_plaintext": true},
	}), &project); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	pp := "/api/projects/" + project.ID
	ids := map[string]string{}
	for _, u := range []string{"fay", "gus"} {
		var added []mailbox
		if code := api(t, base, token, "POST", pp+"/mailboxes", "application/json", jsonBody(map[string]string{
			"source_email": u + "@old.example", "source_login": u, "source_password": pw,
			"destination_email": u + "@new.example", "destination_login": u, "destination_password": pw,
		}), &added); code != 201 || len(added) != 1 {
			t.Fatalf("add mailbox %s: %d %+v", u, code, added)
		}
		ids[u] = added[0].ID
	}
	// startPass starts a full pass of one mailbox and returns once it has
	// copied some messages and failed at least failed.
	startPass := func(user string, failed int64) pass {
		var p pass
		if code := api(t, base, token, "POST", pp+"/passes", "application/json",
			jsonBody(map[string]any{"kind": "full", "mailbox_ids": []string{ids[user]}}), &p); code != 201 {
			t.Fatalf("start pass: %d", code)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			var cur pass
			api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &cur)
			if m := cur.Mailboxes; len(m) == 1 && m[0].Copied > 10 && m[0].Failed >= failed {
				return p
			}
			if time.Now().After(deadline) || cur.State == "completed" {
				t.Fatalf("the pass never got far enough while running: %+v", cur)
			}
		}
	}

	// 1. Fifteen seconds without the source.
	p := startPass("fay", 0)
	proxy.Down()
	time.Sleep(15 * time.Second)
	proxy.Up(t)
	p = waitPass(t, base, token, project.ID, p.ID, 2*time.Minute)
	m := p.Mailboxes[0]
	if m.Status != "completed" || m.Copied != 300 || m.Failed != 0 || m.TotalMsgs != 300 {
		t.Errorf("after a 15 s outage: %s, %d of %d copied, %d failed (%s)", m.Status, m.Copied, m.TotalMsgs, m.Failed, m.LastError)
	}
	balancedPass(t, p)
	proxy.Clear()
	sameMailbox(t, src, dst, "fay")

	// 2. The source gone for good, with a short budget.
	srv.stop()
	srv.args = append(args, "--retry-budget", "3s")
	srv.start()
	proxy.LimitReadBandwidth(t, 1500)
	p = startPass("gus", 1)
	proxy.Down()
	p = waitPass(t, base, token, project.ID, p.ID, time.Minute)
	m = p.Mailboxes[0]
	if m.Status != "completed_with_errors" || m.TotalMsgs != 201 || m.Failed < 2 {
		t.Errorf("source gone for good: %s, %d of %d copied, %d failed (%s)", m.Status, m.Copied, m.TotalMsgs, m.Failed, m.LastError)
	}
	balancedPass(t, p)
	var failures []struct {
		Folder   string `json:"folder"`
		ID       string `json:"id"`
		Messages int64  `json:"messages"`
		Reason   string `json:"reason"`
	}
	if code := api(t, base, token, "GET", pp+"/mailboxes/"+ids["gus"]+"/failures", "", nil, &failures); code != 200 {
		t.Fatalf("failures: %d", code)
	}
	var listed int64
	tooLarge := false
	for _, f := range failures {
		listed += f.Messages
		switch {
		case strings.Contains(f.Reason, "limit"):
			tooLarge = true
		case !strings.Contains(f.Reason, "not copied: the source was unreachable for"):
			t.Errorf("failure without the reason: %+v", f)
		}
		if f.Folder == "" || (f.ID == "") != (f.Messages != 1) {
			t.Errorf("a failure names a folder and an ID, or counts a folder's messages: %+v", f)
		}
	}
	if listed != m.Failed || !tooLarge {
		t.Errorf("the failure list stands for %d messages (too large among them: %v), the pass counts %d failed", listed, tooLarge, m.Failed)
	}
	// The report email tells the same.
	var report string
	for deadline := time.Now().Add(10 * time.Second); report == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, msg := range smtp.Messages() {
			if strings.Contains(string(msg.Data), "gus@old.example") {
				report = string(msg.Data)
			}
		}
	}
	want := fmt.Sprintf("(%d copied, %d already there, %d failed)", m.Copied, m.Present, m.Failed)
	total := fmt.Sprintf("Messages copied: %d, messages that could not be copied: %d", m.Copied, m.Failed)
	if flat := regexp.MustCompile(`=\r?\n`).ReplaceAllString(report, ""); !strings.Contains(flat, want) || !strings.Contains(flat, total) {
		t.Errorf("the report email lacks %q and %q:\n%s", want, total, report)
	}
}
