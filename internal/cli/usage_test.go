package cli

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mistakes on the command line are told as such (exit 2, a message that
// says what to change) before any server is contacted. The servers named
// here do not exist: reaching them would be exit 3.
func TestCopyUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"copy", "--from", "imaps://mail.old.invalid", "--from-user", "a", "--to", "imaps://mail.new.invalid", "--to-user", "b"}
	with := func(args ...string) []string {
		out := append([]string{}, base...)
		for i := 0; i+1 < len(args); i += 2 {
			found := false
			for j := range out {
				if out[j] == args[i] {
					out[j+1], found = args[i+1], true
				}
			}
			if !found {
				out = append(out, args[i], args[i+1])
			}
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"colons only", with("--from", ":::"), []string{"source", "IPv6 address goes in brackets"}},
		{"unspecified address", with("--to", "imaps://0.0.0.0"), []string{"destination", "not the address of a server"}},
		{"path after the host", with("--from", "imaps://mail.old.example/INBOX"), []string{"has a path (/INBOX)", "imaps://mail.old.example", "--include"}},
		{"query after the host", with("--to", "imap://mail.new.example?x=1"), []string{"something after the host"}},
		{"port out of range", with("--from", "imaps://mail.old.example:99999"), []string{"port"}},
		{"no host", with("--from", "imaps://:993"), []string{"no host name"}},
		{"batch 0", with("--batch", "0"), []string{"--batch 0", "between 1 and"}},
		{"spool memory 0", with("--spool-memory", "0"), []string{"--spool-memory 0", "between 1 and"}},
		{"pipeline -1", with("--pipeline", "-1"), []string{"--pipeline -1", "between 1 and"}},
		{"connections 0", with("--connections", "0"), []string{"--connections 0", "between 1 and 16"}},
		{"data dir is a file", with("--data-dir", file), []string{"is a file, not a directory"}},
		{"data dir cannot be created", with("--data-dir", filepath.Join(file, "sub")), []string{"cannot be created"}},
		{"map a folder to nothing", with("--map", "^Junk$->"), []string{"empty target", "into INBOX", "'^Junk$->INBOX'"}},
		{"map with a blank target", with("--map", "^Archive->  "), []string{"empty target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, withState(t, passwords()), tt.args...)
			if r.code != ExitUsage {
				t.Fatalf("exit %d, want %d: %s", r.code, ExitUsage, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("message lacks %q: %s", w, r.stderr)
				}
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
				t.Errorf("more than a clear message: %s", r.stderr)
			}
		})
	}
}

// Without a password and without a terminal to ask on (stdin is
// /dev/null, a character device but no terminal) the copy says so and
// exits 2, instead of trying to prompt ("inappropriate ioctl for device").
func TestCopyNoPasswordNoTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var out, errb bytes.Buffer
	e := Env{Stdin: null, Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		return map[string]string{"MAILFERRY_DATA_DIR": t.TempDir(), "MAILFERRY_TO_PASSWORD": secret}[k]
	}}
	code := Main(context.Background(), e, []string{"copy", "--from", "imaps://mail.old.invalid", "--from-user", "a",
		"--to", "imaps://mail.new.invalid", "--to-user", "b"})
	if code != ExitUsage || !strings.Contains(errb.String(), "no source password and no terminal") ||
		!strings.Contains(errb.String(), "--from-password-file") || strings.Contains(errb.String(), "ioctl") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}

// A destination preset that cannot work is refused when `mailferry serve`
// starts, with what to change, and so are other bad settings.
func TestServeRefusesBadSettings(t *testing.T) {
	presets := filepath.Join(t.TempDir(), "presets.json")
	if err := os.WriteFile(presets, []byte(`{"presets":[{"id":"plain","name":"Plain","host":"mail.new.example","port":143,"security":"none"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(t.TempDir(), "unknown.json")
	if err := os.WriteFile(unknown, []byte(`{"presets":[{"name":"X","host":"h.example","secure":"tls"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badSec := filepath.Join(t.TempDir(), "sec.json")
	if err := os.WriteFile(badSec, []byte(`{"presets":[{"name":"X","host":"h.example","security":"ssl3"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"plain --preset", []string{"--preset", "Plain=imap://mail.new.example"}, []string{`preset "Plain"`, "no encryption", "allow_plaintext=1", "imaps://"}},
		{"plain presets file", []string{"--presets", presets}, []string{`preset "Plain"`, "no encryption", `"allow_plaintext": true`}},
		{"unknown field", []string{"--presets", unknown}, []string{"unknown field", "allow_plaintext", "README"}},
		{"unknown security", []string{"--presets", badSec}, []string{`security "ssl3"`, "tls, starttls or none"}},
		{"preset with a path", []string{"--preset", "X=imaps://h.example/INBOX"}, []string{"has a path"}},
		{"preset option", []string{"--preset", "X=imaps://h.example?insecur=1"}, []string{`unknown option "insecur"`}},
		{"bad range", []string{"--allow-net", "10.0.0.0/33"}, []string{"--allow-net", "not an address range"}},
		{"no workers", []string{"--workers", "0"}, []string{"--workers 0"}},
		{"no connections", []string{"--connections", "0"}, []string{"--connections 0"}},
		{"zero timeout", []string{"--read-timeout", "0s"}, []string{"--read-timeout"}},
		{"plain sign-in endpoint", []string{"--m365-token-url", "http://login.example/{tenant}/token"}, []string{"--m365-token-url", "https URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			dir := t.TempDir()
			e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, IsTerminal: func(any) bool { return false },
				Getenv: func(k string) string { return map[string]string{"MAILFERRY_DATA_DIR": dir}[k] }}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := Main(ctx, e, append([]string{"serve", "--listen", "127.0.0.1:0"}, tt.args...))
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("message lacks %q: %s", w, errb.String())
				}
			}
		})
	}
}

// `mailferry serve` drops slow and idle clients: one that sends half a
// request line and stops, one that sends its headers and half the body it
// announced, and a keep-alive connection left idle. Before, only the
// header had a deadline (10 s); a client could hold a connection open
// forever by sending its headers and then nothing.
func TestServeDropsSlowAndIdleClients(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out, errb syncBuf
	dir := t.TempDir()
	e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, IsTerminal: func(any) bool { return false },
		Getenv: func(k string) string { return map[string]string{"MAILFERRY_DATA_DIR": dir}[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, e, []string{"serve", "--listen", addr, "--read-timeout", "1s", "--idle-timeout", "1s", "--write-timeout", "5s"})
		close(done)
	}()
	defer func() {
		cancel()
		for range done {
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up: %s", errb.String())
		}
	}
	for _, c := range []struct {
		name, send string
		respond    bool // a complete request: read the answer, then idle
	}{
		{"half a request line", "GET /heal", false},
		{"headers, half the body", "POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":", false},
		{"idle after a request", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(c.send)); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			if c.respond {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
					t.Fatalf("answer: %q %v", line, err)
				}
				for line != "ok\n" && err == nil {
					line, err = r.ReadString('\n')
				}
			}
			// The server must close the connection well before this
			// deadline; reading until then drains whatever it answers.
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
			for {
				if _, err := r.ReadByte(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("still connected after %v", time.Since(start).Round(time.Second))
					}
					break // closed by the server
				}
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("dropped only after %v", d)
			}
		})
	}
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The roles of a cluster need a shared PostgreSQL database: serve
// --no-workers and mailferry worker refuse to start without one (with
// the embedded SQLite database nobody else could run the jobs, or give
// the worker any), and a --database that is not a PostgreSQL URL is
// refused without repeating its password.
func TestClusterRolesNeedPostgres(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"api without database", []string{"serve", "--listen", "127.0.0.1:0", "--no-workers"},
			[]string{"--no-workers needs a PostgreSQL database", "MAILFERRY_DATABASE_URL"}},
		{"worker without database", []string{"worker"},
			[]string{"mailferry worker needs a PostgreSQL database", "MAILFERRY_DATABASE_URL"}},
		{"not postgres", []string{"worker", "--database", "mysql://mf:Hunter2-db@db.example/mf"},
			[]string{"give a PostgreSQL URL", "postgres://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			dir := t.TempDir()
			e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, IsTerminal: func(any) bool { return false },
				Getenv: func(k string) string { return map[string]string{"MAILFERRY_DATA_DIR": dir}[k] }}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if code := Main(ctx, e, tt.args); code != ExitUsage {
				t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("message lacks %q: %s", w, errb.String())
				}
			}
			if strings.Contains(errb.String(), "Hunter2-db") {
				t.Errorf("the database password appeared in the message: %s", errb.String())
			}
		})
	}
}

// verify reaches every server copy can: it takes copy's login flags
// (OAuth for Microsoft 365 and Gmail, a private CA, national clouds).
// Before, it registered only addresses and passwords, so a Graph or
// XOAUTH2 mailbox could be copied but not verified.
func TestVerifyTakesCopysLoginFlags(t *testing.T) {
	for _, cmd := range []string{"copy", "verify"} {
		var out, errb syncBuf
		e := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, IsTerminal: func(any) bool { return false },
			Getenv: func(string) string { return "" }}
		if code := Main(context.Background(), e, []string{cmd, "-h"}); code != ExitOK {
			t.Fatalf("%s -h: exit %d", cmd, code)
		}
		help := out.String() + errb.String()
		for _, flag := range []string{"-from-oauth-client-id", "-to-oauth-tenant", "-to-oauth-secret-file", "-graph-url", "-oauth-token-url", "-ca-file", "-gmail-labels"} {
			if !strings.Contains(help, flag) {
				t.Errorf("%s -h does not list %s", cmd, flag)
			}
		}
	}
}

// A copy sets the process's soft memory limit from its spool (issue 14:
// without one, Go's collector let a 300k-message copy reach 139 MiB);
// tests leave it alone (nil SetMemoryLimit).
func TestCopySetsMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, 16<<20 + 48<<20},
		{[]string{"--spool-memory", "64"}, 64<<20 + 48<<20},
	} {
		var got int64
		var errb bytes.Buffer
		e := Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(k string) string {
			return map[string]string{"MAILFERRY_DATA_DIR": t.TempDir(), "MAILFERRY_FROM_PASSWORD": secret, "MAILFERRY_TO_PASSWORD": secret}[k]
		}, SetMemoryLimit: func(n int64) { got = n }}
		args := append([]string{"copy", "--from", "imaps://mail.old.invalid", "--from-user", "a",
			"--to", "imaps://mail.new.invalid", "--to-user", "b", "--no-progress"}, c.args...)
		Main(context.Background(), e, args)
		if got != c.want {
			t.Errorf("%v: memory limit %d, want %d (%s)", c.args, got, c.want, errb.String())
		}
	}
}
