package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

// server is a `mailferry serve` process.
type server struct {
	t    *testing.T
	bin  string
	args []string
	env  []string
	url  string
	cmd  *exec.Cmd
	log  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server did not come up:\n%s", s.log.String())
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.kill()
	}
}

// api does one request and decodes the JSON answer into out (if given).
func api(t *testing.T, base, token, method, path, contentType string, body []byte, out any) int {
	t.Helper()
	return testenv.API(t, base, token, method, path, contentType, body, out)
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

type mailboxPass struct {
	MailboxID  string `json:"mailbox_id"`
	Status     string `json:"status"`
	Copied     int64  `json:"copied"`
	Present    int64  `json:"already_present"`
	Skipped    int64  `json:"skipped"`
	Failed     int64  `json:"failed"`
	TotalMsgs  int64  `json:"total_messages"`
	ErrorClass string `json:"error_class"`
	LastError  string `json:"last_error"`
	Warning    string `json:"warning"`
	Plan       []struct {
		Source, Destination string
		Messages            int64
	} `json:"plan"`
}

type pass struct {
	ID        string        `json:"id"`
	State     string        `json:"state"`
	Mailboxes []mailboxPass `json:"mailboxes"`
}

type mailbox struct {
	ID          string `json:"id"`
	SourceEmail string `json:"source_email"`
	Status      string `json:"status"`
	StatusLabel string `json:"status_label"`
	MoreInfo    string `json:"more_info"`
	SolveIssue  *struct {
		Class string   `json:"class"`
		Title string   `json:"title"`
		Steps []string `json:"steps"`
	} `json:"solve_issue"`
	HasPasswords bool `json:"has_passwords"`
}

func waitPass(t *testing.T, base, token, project, id string, timeout time.Duration) pass {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var p pass
	for time.Now().Before(deadline) {
		if code := api(t, base, token, "GET", "/api/projects/"+project+"/passes/"+id, "", nil, &p); code != 200 {
			t.Fatalf("get pass: %d", code)
		}
		if p.State == "completed" || p.State == "stopped" {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pass %s did not finish in %v: %+v", id, timeout, p)
	return p
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func seedUser(t *testing.T, d *testenv.Dovecot, user string, from, n int) {
	seedSized(t, d, user, from, n, 0)
}

// seedSized appends n messages; pad adds that many bytes to each.
func seedSized(t *testing.T, d *testenv.Dovecot, user string, from, n, pad int) {
	c := d.Dial(t, user, pw)
	_ = c.Create("INBOX.Projects", nil).Wait()
	var cmds []*imapclient.AppendCommand
	for i := from; i < from+n; i++ {
		raw := fmt.Sprintf("Message-ID: <%s-%d@x>\r\nFrom: a@x\r\nSubject: %d\r\n\r\n%s\r\n", user, i, i, strings.Repeat("y", i%500+pad))
		mbox := []string{"INBOX", "INBOX.Projects"}[i%2]
		cmd := c.Append(mbox, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2020, 1, 1, 0, 0, i%60, 0, time.UTC)})
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

// TestServiceEndToEnd drives the whole service through its HTTP API:
// project, CSV import, trial with a failing mailbox, Solve Issue, fix,
// migration, notification, Migrate new items, a server killed mid-pass,
// ownership on every route, export and finish.
func TestServiceEndToEnd(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	users := []string{"ann", "ben", "cat", "dan", "eve"}
	for i, u := range users {
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
		seedUser(t, src, u, 0, 30+i*10)
	}
	smtp := testenv.StartSMTP(t)
	// Latency on the destination keeps the big pass below long enough to
	// kill the server in the middle of it.
	proxy := testenv.StartProxy(t, dst.Addr())
	dataDir := t.TempDir()
	env := append(os.Environ(), "MAILFERRY_DATA_DIR="+dataDir)
	user := func(email string) string {
		cmd := exec.Command(bin, "user", "add", "--email", email)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("user add: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	token, intruder := user("owner@example.com"), user("intruder@example.com")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv := &server{t: t, bin: bin, env: env, url: base, log: &syncBuffer{}, args: []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--preset", "Test Destination=imap://" + proxy.Addr + "?allow_plaintext=1",
		"--smtp-host", smtp.Host, "--smtp-port", fmt.Sprint(smtp.Port), "--smtp-security", "none",
		"--lease-ttl", "2s", "--rescue-after", "3s", "--connections", "2",
		// The source Dovecot is on loopback, which API users may not
		// reach by default (TestOutboundPolicy).
		"--allow-net", "127.0.0.0/8"}}
	srv.start()
	defer func() {
		srv.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", srv.log.String())
		}
	}()

	var presets []struct{ ID string }
	api(t, base, token, "GET", "/api/presets", "", nil, &presets)
	if len(presets) != 1 || presets[0].ID != "test-destination" {
		t.Fatalf("presets: %+v", presets)
	}
	var project struct{ ID string }
	code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{
		"name": "Acme move", "destination_preset": "test-destination",
		"source": map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true},
	}), &project)
	if code != 201 {
		t.Fatalf("create project: %d", code)
	}
	pp := "/api/projects/" + project.ID

	// CSV import: MigrationWiz's header; dan's source password is wrong.
	var csv strings.Builder
	csv.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags\r\n")
	for _, u := range users {
		p := pw
		if u == "dan" {
			p = "wrong-password"
		}
		fmt.Fprintf(&csv, "%s@old.example,%s,%s,%s@new.example,%s,%s,\r\n", u, u, p, u, u, pw)
	}
	var imported []mailbox
	if code := api(t, base, token, "POST", pp+"/mailboxes/import", "text/csv", []byte(csv.String()), &imported); code != 201 || len(imported) != 5 {
		t.Fatalf("import: %d %+v", code, imported)
	}
	// Importing again is refused as duplicates, with nothing half-done.
	var errBody struct{ Error string }
	if code := api(t, base, token, "POST", pp+"/mailboxes/import", "text/csv", []byte(csv.String()), &errBody); code != 409 || !strings.Contains(errBody.Error, "already in this project") {
		t.Errorf("duplicate import: %d %+v", code, errBody)
	}
	ids := map[string]string{}
	for _, m := range imported {
		ids[strings.Split(m.SourceEmail, "@")[0]] = m.ID
	}

	// Trial: dan fails with the authentication class.
	var p pass
	if code := api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "trial"}), &p); code != 201 {
		t.Fatalf("start trial: %d", code)
	}
	p = waitPass(t, base, token, project.ID, p.ID, time.Minute)
	for _, m := range p.Mailboxes {
		want := "ready"
		if m.MailboxID == ids["dan"] {
			want = "failed"
		}
		if m.Status != want {
			t.Errorf("trial: mailbox %s is %s, want %s (%s)", m.MailboxID, m.Status, want, m.LastError)
		}
		if m.Status == "ready" && (len(m.Plan) == 0 || m.TotalMsgs == 0) {
			t.Errorf("trial of %s has no folder plan/counts: %+v", m.MailboxID, m)
		}
	}
	var dan mailbox
	api(t, base, token, "GET", pp+"/mailboxes/"+ids["dan"], "", nil, &dan)
	if dan.StatusLabel != "Failed" || dan.SolveIssue == nil || dan.SolveIssue.Class != "authentication" || len(dan.SolveIssue.Steps) < 2 ||
		!strings.Contains(dan.MoreInfo, "log in") {
		t.Fatalf("failed mailbox lacks More info / Solve Issue: %+v", dan)
	}
	// Fix the password and re-run the trial for dan only.
	if code := api(t, base, token, "PATCH", pp+"/mailboxes/"+ids["dan"], "application/json", jsonBody(map[string]string{"source_password": pw}), &dan); code != 200 {
		t.Fatalf("fix password: %d", code)
	}
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "trial", "mailbox_ids": []string{ids["dan"]}}), &p)
	p = waitPass(t, base, token, project.ID, p.ID, time.Minute)
	if len(p.Mailboxes) != 1 || p.Mailboxes[0].Status != "ready" {
		t.Fatalf("dan's second trial: %+v", p.Mailboxes)
	}

	// Migrate everything.
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "full"}), &p)
	p = waitPass(t, base, token, project.ID, p.ID, 2*time.Minute)
	for _, m := range p.Mailboxes {
		if m.Status != "completed" {
			t.Errorf("full pass: mailbox %s is %s (%s)", m.MailboxID, m.Status, m.LastError)
		}
	}
	for _, u := range users {
		sameMailbox(t, src, dst, u)
	}
	balancedPass(t, p)
	// The owner was told, with a summary and a link.
	var report []byte
	for deadline := time.Now().Add(10 * time.Second); report == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range smtp.Messages() {
			if bytes.Contains(m.Data, []byte("full pass")) && strings.Contains(strings.Join(m.To, ","), "owner@example.com") {
				report = m.Data
			}
		}
	}
	if !bytes.Contains(report, []byte("5 succeeded, 0 failed")) || !bytes.Contains(report, []byte("/projects/"+project.ID)) {
		t.Errorf("pass report: %s", report)
	}

	// Migrate new items: only the new mail arrives.
	seedUser(t, src, "ann", 1000, 7)
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "delta"}), &p)
	p = waitPass(t, base, token, project.ID, p.ID, time.Minute)
	var copied, total int64
	for _, m := range p.Mailboxes {
		copied += m.Copied
		total += m.TotalMsgs
		if m.MailboxID == ids["ann"] && m.TotalMsgs != 7 {
			t.Errorf("ann's delta pass counts %d messages to do, want 7: the 7 new ones, not the whole mailbox", m.TotalMsgs)
		}
	}
	if copied != 7 || total != 7 {
		t.Errorf("delta pass: %d of %d messages, want 7 of 7 (the new ones)", copied, total)
	}
	balancedPass(t, p)
	sameMailbox(t, src, dst, "ann")

	// Kill the server in the middle of a big pass; after a restart the
	// pass completes without duplicates.
	seedSized(t, src, "eve", 2000, 400, 20000)
	proxy.AddLatency(t, 20)
	proxy.LimitBandwidth(t, 2000)
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "delta", "mailbox_ids": []string{ids["eve"]}}), &p)
	deadline := time.Now().Add(time.Minute)
	for {
		var cur pass
		api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &cur)
		if len(cur.Mailboxes) == 1 && cur.Mailboxes[0].Copied > 20 {
			if cur.Mailboxes[0].Copied >= 400 {
				t.Fatal("the pass finished before the server could be killed")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress to kill in: %+v", cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	srv.start()
	p = waitPass(t, base, token, project.ID, p.ID, 2*time.Minute)
	if !strings.Contains(srv.log.String(), "taking over a mailbox pass whose worker stopped renewing its lease") {
		t.Error("the restarted server did not take over the interrupted pass")
	}
	if p.Mailboxes[0].Status != "completed" {
		t.Errorf("after the restart eve is %s: %s", p.Mailboxes[0].Status, p.Mailboxes[0].LastError)
	}
	proxy.Clear()
	sameMailbox(t, src, dst, "eve")

	// Stop a pass midway: the mailbox ends Stopped, and the next pass
	// resumes without duplicates. A Stop still delivers the appends
	// already on the wire (up to the engine's 8 MiB WireBytes), so the
	// pass carries more than that: 1,000 messages of 20 KB at 2 MB/s.
	seedSized(t, src, "cat", 3000, 1000, 20000)
	proxy.LimitBandwidth(t, 2000)
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "delta", "mailbox_ids": []string{ids["cat"]}}), &p)
	waitCopied(t, base, token, pp, p.ID, 5)
	if code := api(t, base, token, "POST", pp+"/passes/"+p.ID+"/stop", "", nil, &p); code != 200 {
		t.Fatalf("stop: %d", code)
	}
	p = waitPass(t, base, token, project.ID, p.ID, time.Minute)
	if p.State != "stopped" || p.Mailboxes[0].Status != "stopped" || p.Mailboxes[0].Copied >= 1000 {
		t.Errorf("after Stop: pass %s, mailbox %s, %d copied", p.State, p.Mailboxes[0].Status, p.Mailboxes[0].Copied)
	}

	// Graceful shutdown (SIGTERM) in the middle of the resumed pass: it
	// is checkpointed and finishes after the restart.
	api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "delta", "mailbox_ids": []string{ids["cat"]}}), &p)
	waitCopied(t, base, token, pp, p.ID, 5)
	srv.stop()
	srv.start()
	p = waitPass(t, base, token, project.ID, p.ID, 2*time.Minute)
	if p.Mailboxes[0].Status != "completed" {
		t.Errorf("after a graceful restart cat is %s: %s", p.Mailboxes[0].Status, p.Mailboxes[0].LastError)
	}
	proxy.Clear()
	sameMailbox(t, src, dst, "cat")

	// Every route checks ownership: the intruder gets 404 everywhere.
	var mb []mailbox
	api(t, base, token, "GET", pp+"/mailboxes", "", nil, &mb)
	routes := [][2]string{
		{"GET", pp}, {"POST", pp + "/finish"}, {"GET", pp + "/mailboxes"}, {"POST", pp + "/mailboxes"},
		{"POST", pp + "/mailboxes/import"}, {"GET", pp + "/mailboxes/export"}, {"GET", pp + "/mailboxes/" + ids["ann"]},
		{"PATCH", pp + "/mailboxes/" + ids["ann"]}, {"DELETE", pp + "/mailboxes/" + ids["ann"]},
		{"GET", pp + "/mailboxes/" + ids["ann"] + "/failures"}, {"GET", pp + "/passes"}, {"POST", pp + "/passes"},
		{"GET", pp + "/passes/" + p.ID}, {"POST", pp + "/passes/" + p.ID + "/stop"},
	}
	for _, r := range routes {
		body := []byte(`{}`)
		if strings.HasSuffix(r[1], "/mailboxes") && r[0] == "POST" {
			body = jsonBody(map[string]string{"source_email": "x@y.z", "source_password": "p", "destination_email": "x@y.z", "destination_password": "p"})
		}
		if strings.HasSuffix(r[1], "/passes") && r[0] == "POST" {
			body = []byte(`{"kind":"full"}`)
		}
		var out string
		if code := api(t, base, intruder, r[0], r[1], "application/json", body, &out); code != 404 && code != 403 {
			t.Errorf("%s %s as another user: %d %s", r[0], r[1], code, out)
		}
		if code := api(t, base, "", r[0], r[1], "application/json", body, &out); code != 401 {
			t.Errorf("%s %s without a token: %d", r[0], r[1], code)
		}
	}
	var intruderProjects []any
	api(t, base, intruder, "GET", "/api/projects", "", nil, &intruderProjects)
	if len(intruderProjects) != 0 {
		t.Errorf("another user sees %d projects", len(intruderProjects))
	}

	// Export: statuses and statistics, no passwords.
	var export string
	api(t, base, token, "GET", pp+"/mailboxes/export", "", nil, &export)
	if !strings.Contains(export, "ann@old.example") || !strings.Contains(export, "Completed") || strings.Contains(export, pw) ||
		strings.Contains(strings.ToLower(export), "password") {
		t.Errorf("export:\n%s", export)
	}
	// No password ever in an API answer or the server log.
	for _, path := range []string{pp + "/mailboxes", pp + "/passes/" + p.ID, pp} {
		var raw string
		api(t, base, token, "GET", path, "", nil, &raw)
		if strings.Contains(raw, pw) {
			t.Errorf("%s returned a password", path)
		}
	}
	if strings.Contains(srv.log.String(), pw) {
		t.Error("a password appeared in the server log")
	}
	var metrics string
	api(t, base, "", "GET", "/metrics", "", nil, &metrics)
	// Counters are per process (this one restarted); the mailbox gauge
	// comes from the database.
	for _, series := range []string{"mailferry_messages_copied_total", "mailferry_bytes_copied_total", "mailferry_mailboxes{status=\"completed\"} 5"} {
		if !strings.Contains(metrics, series) {
			t.Errorf("metrics lack %s", series)
		}
	}

	// Finish: read-only, passwords erased.
	var fin struct{ State string }
	if code := api(t, base, token, "POST", pp+"/finish", "", nil, &fin); code != 200 || fin.State != "finished" {
		t.Fatalf("finish: %d %+v", code, fin)
	}
	api(t, base, token, "GET", pp+"/mailboxes", "", nil, &mb)
	for _, m := range mb {
		if m.HasPasswords {
			t.Errorf("mailbox %s still has passwords after Finish", m.SourceEmail)
		}
	}
	if code := api(t, base, token, "POST", pp+"/passes", "application/json", []byte(`{"kind":"delta"}`), &errBody); code != 400 {
		t.Errorf("a pass on a finished project: %d", code)
	}
}

// balancedPass checks the stored statistics of a finished pass: every
// message a mailbox's part had to deal with is copied, already there,
// skipped or failed.
func balancedPass(t *testing.T, p pass) {
	t.Helper()
	for _, m := range p.Mailboxes {
		if m.Status == "stopped" {
			continue
		}
		if sum := m.Copied + m.Present + m.Skipped + m.Failed; sum != m.TotalMsgs {
			t.Errorf("mailbox %s (%s): %d messages to deal with, but %d copied + %d present + %d skipped + %d failed = %d",
				m.MailboxID, m.Status, m.TotalMsgs, m.Copied, m.Present, m.Skipped, m.Failed, sum)
		}
	}
}

// waitCopied waits until the pass's only mailbox has copied more than n.
func waitCopied(t *testing.T, base, token, pp, passID string, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var cur pass
		api(t, base, token, "GET", pp+"/passes/"+passID, "", nil, &cur)
		if len(cur.Mailboxes) == 1 && cur.Mailboxes[0].Copied > n {
			return
		}
		if time.Now().After(deadline) || cur.State == "completed" {
			t.Fatalf("pass never got past %d copied messages while running: %+v", n, cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameMailbox compares every folder of a user on both servers.
func sameMailbox(t *testing.T, src, dst *testenv.Dovecot, user string) {
	t.Helper()
	want, got := contents(t, src, user), contents(t, dst, user)
	rename := map[string]string{"INBOX": "INBOX", "INBOX.Projects": "Projects"}
	for f, msgs := range want {
		if g := got[rename[f]]; strings.Join(g, "\n") != strings.Join(msgs, "\n") {
			t.Errorf("%s: folder %s has %d messages on the destination, %d on the source (or they differ)", user, f, len(g), len(msgs))
		}
	}
}
