package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// apiServer is a `mailferry serve` driven through its API, with one user.
type apiServer struct {
	*server
	bin, dataDir, token string
}

func startAPIServer(t *testing.T, env []string, args ...string) *apiServer {
	t.Helper()
	a := &apiServer{bin: buildMailferry(t), dataDir: t.TempDir()}
	env = append(append(os.Environ(), "MAILFERRY_DATA_DIR="+a.dataDir), env...)
	add := exec.Command(a.bin, "user", "add", "--email", "owner@example.com")
	add.Env = env
	out, err := add.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	a.token = strings.TrimSpace(string(out))
	port := freePort(t)
	a.server = &server{t: t, bin: a.bin, env: env, url: fmt.Sprintf("http://127.0.0.1:%d", port), log: &syncBuffer{},
		args: append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)}
	a.start()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", a.log.String())
		}
	})
	return a
}

func (a *apiServer) call(method, path string, body any, out any) int {
	a.t.Helper()
	var b []byte
	if body != nil {
		b = jsonBody(body)
	}
	return api(a.t, a.url, a.token, method, path, "application/json", b, out)
}

// project creates a project with one mailbox and returns their IDs.
func (a *apiServer) project(source map[string]any, preset, srcUser, dstUser string) (string, string) {
	a.t.Helper()
	var p struct{ ID string }
	if code := a.call("POST", "/api/projects", map[string]any{"name": "p", "destination_preset": preset, "source": source}, &p); code != 201 {
		a.t.Fatalf("create project %v: %d", source, code)
	}
	var ms []mailbox
	if code := a.call("POST", "/api/projects/"+p.ID+"/mailboxes", map[string]string{"source_email": srcUser + "@old.example", "source_login": srcUser,
		"source_password": pw, "destination_email": dstUser + "@new.example", "destination_login": dstUser, "destination_password": pw}, &ms); code != 201 {
		a.t.Fatalf("add mailbox: %d", code)
	}
	return p.ID, ms[0].ID
}

// trial runs a trial pass and returns the mailbox as the API shows it.
func (a *apiServer) trial(project, mailboxID string, timeout time.Duration) mailbox {
	a.t.Helper()
	var p pass
	if code := a.call("POST", "/api/projects/"+project+"/passes", map[string]any{"kind": "trial"}, &p); code != 201 {
		a.t.Fatalf("start trial: %d", code)
	}
	waitPass(a.t, a.url, a.token, project, p.ID, timeout)
	var m mailbox
	a.call("GET", "/api/projects/"+project+"/mailboxes/"+mailboxID, nil, &m)
	return m
}

// A portal or API user cannot make the service connect to the network it
// runs in: a source at 127.0.0.1 (here a real IMAP server with the right
// password), at 10.x, at [::1], or a name that resolves to 127.0.0.1, is
// refused at dial time. What the user sees for a refused address, a
// closed port and an open port whose service sends a banner (both at an
// address the operator allowed with --allow-net) is the same: status,
// class, Solve Issue, and the error with the address left out, which
// quotes none of the banner. Operator presets on loopback stay reachable.
func TestOutboundPolicy(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ann", pw)
	dst.AddUser(t, "ann", pw)
	banner := listenOn(t, "127.0.0.2:0", func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = bufio.NewReader(c).ReadString(0)
	})
	closed := listenOn(t, "127.0.0.2:0", nil)
	a := startAPIServer(t, nil, "--preset", "Test Destination=imap://"+dst.Addr()+"?allow_plaintext=1", "--allow-net", "127.0.0.2/32")

	plain := func(host string, port int) map[string]any {
		return map[string]any{"host": host, "port": port, "security": "none", "allow_plaintext": true}
	}
	_, closedPort, _ := net.SplitHostPort(closed)
	_, bannerPort, _ := net.SplitHostPort(banner)
	cases := []struct {
		name   string
		source map[string]any
	}{
		{"loopback IMAP server", plain("127.0.0.1", src.Port)},
		{"private network", plain("10.255.255.1", 143)},
		{"IPv6 loopback", plain("[::1]", src.Port)},
		{"name of loopback", plain("localhost", src.Port)},
		{"IPv4-mapped loopback", plain("::ffff:127.0.0.1", src.Port)},
		{"closed port (allowed)", plain("127.0.0.2", atoi(closedPort))},
		{"banner (allowed)", plain("127.0.0.2", atoi(bannerPort))},
		{"TLS to the banner (allowed)", map[string]any{"host": "127.0.0.2", "port": atoi(bannerPort), "security": "tls"}},
	}
	addrRe := regexp.MustCompile(`connect to \S+:`)
	seen := map[string][]string{}
	for _, c := range cases {
		project, mb := a.project(c.source, "test-destination", "ann", "ann")
		m := a.trial(project, mb, 20*time.Second)
		if m.Status != "failed" || m.SolveIssue == nil || m.SolveIssue.Class != "connection" {
			t.Errorf("%s: %s %+v (%s)", c.name, m.Status, m.SolveIssue, m.MoreInfo)
			continue
		}
		for _, leak := range []string{"SSH", "refused", "policy", "loopback", "greeting", "EOF"} {
			if strings.Contains(m.MoreInfo, leak) {
				t.Errorf("%s: More info tells %q: %s", c.name, leak, m.MoreInfo)
			}
		}
		shown := fmt.Sprintf("%s|%s|%s|%v|%s", m.Status, m.StatusLabel, addrRe.ReplaceAllString(m.MoreInfo, "connect to ADDR:"), m.SolveIssue.Steps, m.SolveIssue.Title)
		seen[shown] = append(seen[shown], c.name)
	}
	if len(seen) != 1 {
		for shown, names := range seen {
			t.Errorf("%v see: %s", names, shown)
		}
	}
	// The operator sees why, in the log; the user does not.
	if log := a.log.String(); !strings.Contains(log, "outbound connection refused by policy") || !strings.Contains(log, "10.255.255.1") {
		t.Error("the refusals are not in the server log")
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// listenOn serves handle on addr (a closed port when handle is nil: the
// address is freed again at once).
func listenOn(t *testing.T, addr string, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	if handle == nil {
		a := l.Addr().String()
		l.Close()
		return a
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// A server whose secret key changed (restored without its key file, or
// another MAILFERRY_SECRET_KEY) cannot read the stored passwords. Every
// pass fails at once with its own Solve Issue class, in the API and the
// portal, instead of the job being retried by River for days with the
// mailbox left "Queued"; the start-up log says so too.
func TestSecretKeyChangedFailsAtOnce(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ann", pw)
	dst.AddUser(t, "ann", pw)
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1")
	owner := newClient(t, p.url)
	owner.get("/login")
	owner.post("/login", map[string][]string{"email": {"owner@example.com"}, "agree": {"yes"}})
	link := p.loginLink(t, "owner@example.com", 1)
	lu, _ := url.Parse(link)
	owner.get(lu.RequestURI())
	owner.post("/login/verify", url.Values{"token": {lu.Query().Get("token")}})
	_, body := owner.post("/migrations/new", map[string][]string{"name": {"Acme"}, "type": {"imap"}, "host": {"127.0.0.1"},
		"security": {"none"}, "port": {fmt.Sprint(src.Port)}, "allow_plaintext": {"yes"}, "preset": {"test-destination"}})
	m := regexp.MustCompile(`/projects/([0-9a-f]{24})/`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("create project:\n%s", body)
	}
	pp := "/projects/" + m[1]
	owner.post(pp+"/mailboxes", map[string][]string{"source_email": {"ann@old.example"}, "source_login": {"ann"}, "source_password": {pw},
		"destination_email": {"ann@new.example"}, "destination_login": {"ann"}, "destination_password": {pw}})

	// The same data directory, another key.
	p.stop()
	key := make([]byte, 32)
	key[0] = 7
	p.server.env = append(p.server.env, "MAILFERRY_SECRET_KEY="+base64.StdEncoding.EncodeToString(key))
	p.start()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.log.String(), "the secret key does not open the stored passwords") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.log.String(), "the secret key does not open the stored passwords") {
		t.Error("no warning at start-up")
	}
	owner.get(pp + "/trial")
	started := time.Now()
	owner.post(pp+"/trial", nil)
	var page string
	for time.Since(started) < 15*time.Second {
		_, page = owner.get(pp + "/trial")
		if strings.Contains(page, `data-status="failed"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(page, `data-status="failed"`) {
		t.Fatalf("the trial did not fail within 15 s of starting:\n%s", page)
	}
	for _, want := range []string{"The stored passwords can no longer be read", "secret key changed", "Re-enter the passwords"} {
		if !strings.Contains(page, want) {
			t.Errorf("the portal's trial page lacks %q", want)
		}
	}
	cmd := exec.Command(p.bin, "user", "add", "--email", "owner@example.com")
	cmd.Env = p.server.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var mbs []mailbox
	api(t, p.url, strings.TrimSpace(string(out)), "GET", "/api"+pp+"/mailboxes", "", nil, &mbs)
	if len(mbs) != 1 || mbs[0].Status != "failed" || mbs[0].SolveIssue == nil || mbs[0].SolveIssue.Class != "secret-key-changed" ||
		!strings.Contains(mbs[0].MoreInfo, "secret key changed") {
		t.Errorf("API: %+v", mbs)
	}
}

// A destination mailbox that does not exist yet is told apart from a wrong
// password where the server says so (here Dovecot configured with a
// passdb reason), and Solve Issue says to create it on the new service
// first; where the server answers both alike, the authentication advice
// for the destination says it too.
func TestDestinationMailboxMissing(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{})
	for _, u := range []string{"ann", "ben"} {
		src.AddUser(t, u, pw)
	}
	dst.RefuseLogin(t, "ann", "Mailbox does not exist")
	a := startAPIServer(t, nil, "--preset", "Test Destination=imap://"+dst.Addr()+"?allow_plaintext=1", "--allow-net", "127.0.0.0/8")
	source := map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true}
	project, annID := a.project(source, "test-destination", "ann", "ann")
	m := a.trial(project, annID, 30*time.Second)
	if m.Status != "failed" || m.SolveIssue == nil || m.SolveIssue.Class != "destination-mailbox-missing" {
		t.Fatalf("missing mailbox: %s %+v (%s)", m.Status, m.SolveIssue, m.MoreInfo)
	}
	if !strings.Contains(strings.Join(m.SolveIssue.Steps, " "), "Create the mailbox on the new service first") {
		t.Errorf("Solve Issue: %v", m.SolveIssue.Steps)
	}
	// ben does not exist on the destination either, but this server says
	// only "Authentication failed".
	var ms []mailbox
	a.call("POST", "/api/projects/"+project+"/mailboxes", map[string]string{"source_email": "ben@old.example", "source_login": "ben",
		"source_password": pw, "destination_email": "ben@new.example", "destination_login": "ben", "destination_password": pw}, &ms)
	m = a.trial(project, ms[0].ID, 30*time.Second)
	if m.SolveIssue == nil || m.SolveIssue.Class != "authentication" ||
		!strings.Contains(strings.Join(m.SolveIssue.Steps, " "), "Create the mailbox on the new service first") {
		t.Errorf("wrong password or missing mailbox: %+v", m.SolveIssue)
	}
}

// The databases (with their -wal and -shm files), the secret key and the
// outbox are readable by their owner only, even when the service runs
// with umask 0 in a data directory open to everyone.
func TestDataFilesArePrivate(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ann", pw)
	bin := buildMailferry(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "MAILFERRY_DATA_DIR="+dir)
	port := freePort(t)
	srv := &server{t: t, bin: bin, env: env, url: fmt.Sprintf("http://127.0.0.1:%d", port), log: &syncBuffer{},
		args: []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--preset", "T=imap://" + src.Addr() + "?allow_plaintext=1",
			"--allow-net", "127.0.0.0/8"}}
	old := syscall.Umask(0) // inherited by the server started now
	srv.start()
	syscall.Umask(old)
	defer srv.stop()
	// A login link goes to the outbox, and a trial writes both databases.
	c := newClient(t, srv.url)
	c.get("/login")
	c.post("/login", map[string][]string{"email": {"owner@example.com"}, "agree": {"yes"}})
	cmd := exec.Command(bin, "user", "add", "--email", "owner@example.com")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	a := &apiServer{server: srv, token: strings.TrimSpace(string(out))}
	project, mb := a.project(map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true}, "t", "ann", "ann")
	a.trial(project, mb, 30*time.Second)

	var files []string
	_ = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s has mode %04o, want 0600", rel, m)
			}
		}
		return nil
	})
	// The job queue lives in mailferry.db (issue 16): no jobs.db any more.
	for _, f := range files {
		if strings.HasPrefix(f, "jobs.db") {
			t.Errorf("%s was created: the queue belongs in mailferry.db", f)
		}
	}
	for _, want := range []string{"mailferry.db", "mailferry.db-wal", "mailferry.db-shm", "secret.key"} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("%s was not created (files: %v)", want, files)
		}
	}
	outbox, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
	if len(outbox) == 0 {
		t.Error("no outbox file was written")
	}
}
