package testenv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const requireServersEnv = "MAILFERRY_REQUIRE_SERVERS"

// RequireServers reports whether MAILFERRY_REQUIRE_SERVERS=1 is set.
func RequireServers() bool { return os.Getenv(requireServersEnv) == "1" }

// unavailable skips the test, or fails it when servers are required, so that
// CI cannot pass by skipping everything that needs a server.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireServers() {
		t.Fatalf("%s (%s=1, so this is a failure, not a skip)", msg, requireServersEnv)
	}
	t.Skipf("%s; skipping (set %s=1 to turn this into a failure)", msg, requireServersEnv)
}

// Layout of the instance's personal namespace.
type Layout int

const (
	LayoutSlash   Layout = iota // separator "/", no prefix, maildir LAYOUT=fs so '.' is allowed in names
	LayoutCourier               // separator ".", prefix "INBOX.", Maildir++ layout
)

func (l Layout) String() string {
	switch l {
	case LayoutSlash:
		return "slash"
	case LayoutCourier:
		return "courier"
	}
	return "Layout(" + strconv.Itoa(int(l)) + ")"
}

// Separator is the namespace's hierarchy separator.
func (l Layout) Separator() rune {
	if l == LayoutCourier {
		return '.'
	}
	return '/'
}

// Prefix is the personal namespace prefix ("" or "INBOX.").
func (l Layout) Prefix() string {
	if l == LayoutCourier {
		return "INBOX."
	}
	return ""
}

// DovecotOptions select the server behaviour a test needs.
type DovecotOptions struct {
	Layout Layout
	// TLS also opens an implicit-TLS listener (993-style) with a freshly
	// generated self-signed certificate for 127.0.0.1 and localhost; STARTTLS
	// is then offered on the plain port too.
	TLS bool
	// SpecialUse creates Sent, Drafts, Trash, Junk and Archive with their
	// SPECIAL-USE attributes, subscribed, for every user.
	SpecialUse bool
	// MaxMailSize, if > 0, makes APPEND refuse larger messages with
	// "NO [LIMIT] ..." and advertises APPENDLIMIT=MaxMailSize. It must fit
	// in 32 bits, as APPENDLIMIT parsers (go-imap's included) expect.
	MaxMailSize int64
	// QuotaBytes, if > 0, gives every user a storage quota of that many
	// bytes, reported by GETQUOTAROOT (in KiB, rounded up, as IMAP does).
	QuotaBytes int64
	// ParentDir is where the instance's directory (configuration, logs,
	// mail) is created; "" means os.TempDir(). Benchmarks put it on tmpfs.
	ParentDir string
	// CondStore has no effect: Dovecot always supports CONDSTORE (and
	// QRESYNC). It documents that a test relies on it.
	CondStore bool
}

// Dovecot is a running throwaway Dovecot instance.
type Dovecot struct {
	Host        string         // "127.0.0.1"
	Port        int            // plain IMAP (STARTTLS offered when TLS)
	TLSPort     int            // implicit TLS IMAP; 0 unless TLS
	POP3Port    int            // plain POP3 (STLS offered when TLS)
	POP3TLSPort int            // implicit TLS POP3 (pop3s); 0 unless TLS
	CACert      *x509.CertPool // trusts the instance's certificate when TLS, else nil
	Dir         string         // the instance's private directory (config, logs, mail)
	Layout      Layout

	confPath   string
	logPath    string
	stderrPath string
	doveadmBin string

	pgid   int
	exited chan struct{} // closed once the master process has been reaped

	stopOnce sync.Once
	stopErr  error

	usersMu    sync.Mutex // serialises AddUser's read-modify-write of a user file
	specialUse bool       // the instance has SPECIAL-USE folders (DovecotOptions.SpecialUse)
	id         identity   // who owns the mail
}

const (
	startTimeout  = 10 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 3
)

// constError lets sentinel errors be constants rather than package variables.
type constError string

func (e constError) Error() string { return string(e) }

// errAddrInUse marks a start attempt that lost a race for a port.
const errAddrInUse = constError("port already in use")

// StartDovecot starts an instance on free loopback ports with its own
// configuration and directories, and stops it (and removes its directory) on
// t.Cleanup. Without Dovecot installed it skips the test, or fails it if
// RequireServers().
//
// The directory is a short one directly under os.TempDir rather than
// t.TempDir(): Dovecot's unix sockets live in it and socket paths are
// limited to 107 bytes, which t.TempDir's name-derived paths can exceed.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	d, bin, id := newDovecot(t, opts)
	for attempt := 1; ; attempt++ {
		p, err := freePorts(opts.TLS)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		err = d.start(bin, renderConfig(d.Dir, id, opts, p), p)
		if err == nil {
			d.Port, d.TLSPort, d.POP3Port, d.POP3TLSPort = p.imap, p.imaps, p.pop3, p.pop3s
			break
		}
		if errors.Is(err, errAddrInUse) && attempt < startAttempts {
			t.Logf("testenv: dovecot lost a port race (attempt %d), retrying on new ports", attempt)
			continue
		}
		t.Fatalf("testenv: starting dovecot: %v\n%s", err, d.diagnostics())
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: dovecot %s log tail:\n%s", d.Addr(), d.diagnostics())
		}
		if err := d.stop(); err != nil {
			t.Errorf("testenv: stopping dovecot: %v", err)
		}
	})
	return d
}

// newDovecot validates the environment and prepares an instance's
// directory, without starting anything.
func newDovecot(t testing.TB, opts DovecotOptions) (d *Dovecot, bin string, id identity) {
	t.Helper()
	if !procSupported {
		unavailable(t, "testenv: Dovecot instances are only supported on Linux, not %s", runtime.GOOS)
	}
	bin = findBinary("dovecot")
	if bin == "" {
		unavailable(t, "testenv: dovecot is not installed (Debian: apt-get install dovecot-imapd dovecot-pop3d)")
	}
	id, err := currentIdentity()
	if err != nil {
		unavailable(t, "testenv: cannot run dovecot: %v", err)
	}
	if opts.Layout != LayoutSlash && opts.Layout != LayoutCourier {
		t.Fatalf("testenv: unknown layout %v", opts.Layout)
	}
	if opts.MaxMailSize > math.MaxUint32 {
		t.Fatalf("testenv: MaxMailSize %d does not fit APPENDLIMIT's 32 bits", opts.MaxMailSize)
	}

	dir, err := os.MkdirTemp(opts.ParentDir, "mfdc")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: removing %s: %v", dir, err)
		}
	})
	// Written verbatim into dovecot.conf, where these characters would be
	// parsed (quotes, comments) or expanded (%).
	if strings.ContainsAny(dir, " \t\"'%#\\{}") {
		t.Fatalf("testenv: temp dir %q contains characters Dovecot's config would misparse; set TMPDIR", dir)
	}

	d = &Dovecot{
		id:         id,
		Host:       "127.0.0.1",
		Dir:        dir,
		Layout:     opts.Layout,
		specialUse: opts.SpecialUse,
		confPath:   filepath.Join(dir, "dovecot.conf"),
		logPath:    filepath.Join(dir, "dovecot.log"),
		stderrPath: filepath.Join(dir, "dovecot.stderr"),
		doveadmBin: findBinary("doveadm"),
	}
	if err := prepareDirs(dir, id); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if opts.TLS {
		if d.CACert, err = writeSelfSignedCert(filepath.Join(dir, "tls")); err != nil {
			t.Fatalf("testenv: generating certificate: %v", err)
		}
	}

	return d, bin, id
}

// findBinary looks in PATH and then in the sbin directories, which a normal
// user's PATH often lacks.
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func currentIdentity() (identity, error) {
	if os.Geteuid() == 0 {
		for _, name := range []string{"dovenull", "dovecot"} {
			if _, err := user.Lookup(name); err != nil {
				return identity{}, fmt.Errorf("running as root needs the system user %q (created by the dovecot-core package): %w", name, err)
			}
		}
		if _, err := user.LookupGroup("dovecot"); err != nil {
			return identity{}, fmt.Errorf("running as root needs the group \"dovecot\": %w", err)
		}
		nobody, err := user.Lookup("nobody")
		if err != nil {
			return identity{}, fmt.Errorf("running as root needs the user \"nobody\" to own mail: %w", err)
		}
		uid, err1 := strconv.Atoi(nobody.Uid)
		gid, err2 := strconv.Atoi(nobody.Gid)
		if err := errors.Join(err1, err2); err != nil {
			return identity{}, fmt.Errorf("user nobody: %w", err)
		}
		return identity{root: true, loginUser: "dovenull", internalUser: "dovecot", internalGroup: "dovecot", mailUID: uid, mailGID: gid}, nil
	}
	u, err := user.Current()
	if err != nil {
		return identity{}, err
	}
	g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		return identity{}, err
	}
	return identity{loginUser: u.Username, internalUser: u.Username, internalGroup: g.Name, mailUID: os.Geteuid(), mailGID: os.Getegid()}, nil
}

func prepareDirs(dir string, id identity) error {
	if id.root {
		// The mail processes (nobody) and auth (dovecot) must traverse the
		// directory, which MkdirTemp creates as 0700.
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	}
	for _, sub := range []string{"state", "passwd.d"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for _, sub := range []string{"mail", "home"} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if id.root {
			if err := os.Chown(p, id.mailUID, id.mailGID); err != nil {
				return err
			}
		}
	}
	return nil
}

// freePorts asks the kernel for unused loopback ports. They are released
// before Dovecot binds them, so another process can take one in between;
// StartDovecot retries when that happens. All listeners stay open until every
// port is chosen so the same port is never handed out twice.
func freePorts(withTLS bool) (ports, error) {
	n := 2
	if withTLS {
		n = 4
	}
	var got []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		got = append(got, l.Addr().(*net.TCPAddr).Port)
	}
	p := ports{imap: got[0], pop3: got[1]}
	if withTLS {
		p.imaps, p.pop3s = got[2], got[3]
	}
	return p, nil
}

// start runs one attempt; on error nothing of the attempt is left running.
func (d *Dovecot) start(bin, conf string, p ports) error {
	// A master.pid left by a failed attempt would make Dovecot refuse to
	// start if its pid had been reused, so every attempt gets a fresh
	// base_dir.
	if err := os.RemoveAll(filepath.Join(d.Dir, "run")); err != nil {
		return err
	}
	if err := os.WriteFile(d.confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	// Each attempt starts with empty logs so that a failure is judged
	// (port race or not) by its own messages only.
	if err := os.Remove(d.logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Startup errors that happen before the log process runs go to stderr.
	stderr, err := os.Create(d.stderrPath)
	if err != nil {
		return err
	}
	// -F keeps the master as our child so we can reap it and know for
	// certain when it is gone; daemonizing would orphan it.
	cmd := exec.Command(bin, "-F", "-c", d.confPath)
	// An *os.File (not a buffer) so that Wait does not also wait for every
	// child that inherited the descriptor.
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = sysProcAttr()
	becomeSubreaper()
	err = cmd.Start()
	stderr.Close()
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.pgid, d.exited = cmd.Process.Pid, exited

	if err := d.waitReady(p); err != nil {
		if kerr := d.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return err
	}
	return nil
}

func (d *Dovecot) waitReady(p ports) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		select {
		case <-d.exited:
			if d.lostPortRace() {
				return errAddrInUse
			}
			return errors.New("dovecot exited during startup")
		default:
		}
		// The master takes about two seconds to exit after failing to
		// bind, and meanwhile the port's real owner may accept the probe.
		if d.lostPortRace() {
			return errAddrInUse
		}
		if lastErr = d.probe(p); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", startTimeout, lastErr)
		}
		select {
		case <-d.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lostPortRace reports whether this attempt failed to bind a port.
func (d *Dovecot) lostPortRace() bool {
	for _, path := range []string{d.stderrPath, d.logPath} {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("Address already in use")) {
			return true
		}
	}
	return false
}

// probe succeeds once every listener greets. For IMAP that means the real
// greeting: right after startup imap-login first sends "* OK Waiting for
// authentication process to respond.." and logins would still stall.
func (d *Dovecot) probe(p ports) error {
	// Short timeouts: a probe that fails is simply repeated until
	// startTimeout, and a port lost to another program must not stall it.
	dialer := &net.Dialer{Timeout: 500 * time.Millisecond}
	check := func(port int, useTLS bool, ok func(line string) (done bool, err error)) error {
		addr := net.JoinHostPort(d.Host, strconv.Itoa(port))
		var conn net.Conn
		var err error
		if useTLS {
			conn, err = tls.DialWithDialer(dialer, "tcp", addr, d.TLSConfig())
		} else {
			conn, err = dialer.Dial("tcp", addr)
		}
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("%s: reading greeting: %w", addr, err)
			}
			done, err := ok(strings.TrimRight(line, "\r\n"))
			if err != nil {
				return fmt.Errorf("%s: %w", addr, err)
			}
			if done {
				return nil
			}
		}
	}
	imapGreeting := func(line string) (bool, error) {
		switch {
		case strings.HasPrefix(line, "* OK Waiting for authentication"):
			return false, nil
		case strings.HasPrefix(line, "* OK"):
			return true, nil
		}
		return false, fmt.Errorf("unexpected IMAP greeting %q", line)
	}
	pop3Greeting := func(line string) (bool, error) {
		if strings.HasPrefix(line, "+OK") {
			return true, nil
		}
		return false, fmt.Errorf("unexpected POP3 greeting %q", line)
	}
	if err := check(p.imap, false, imapGreeting); err != nil {
		return err
	}
	if err := check(p.pop3, false, pop3Greeting); err != nil {
		return err
	}
	if p.imaps != 0 {
		if err := check(p.imaps, true, imapGreeting); err != nil {
			return err
		}
	}
	if p.pop3s != 0 {
		return check(p.pop3s, true, pop3Greeting)
	}
	return nil
}

// Stop stops the instance now, e.g. to simulate a server outage. It is safe
// to call more than once; the cleanup registered by StartDovecot calls it too.
func (d *Dovecot) Stop(t testing.TB) {
	t.Helper()
	if err := d.stop(); err != nil {
		t.Fatalf("testenv: stopping dovecot: %v", err)
	}
}

func (d *Dovecot) stop() error {
	d.stopOnce.Do(func() { d.stopErr = d.kill() })
	return d.stopErr
}

// kill SIGKILLs the whole process group, reaps it and waits until none of
// it runs. A graceful SIGTERM costs over a second per instance (the master
// sleeps a fixed second for its children to close their listeners), which
// adds up across a test suite, and a throwaway instance has nothing worth
// flushing. Killing the children while the master shuts down is no faster
// in general: the master respawns log and anvil and then sleeps anyway.
func (d *Dovecot) kill() error { return killAndReap(d.pgid, d.exited, "dovecot master") }

// killAndReap SIGKILLs process group pgid, whose leader's exit closes
// exited, and waits until none of the group runs.
func killAndReap(pgid int, exited <-chan struct{}, leader string) error {
	if err := killGroup(pgid); err != nil {
		return fmt.Errorf("killing process group %d: %w", pgid, err)
	}
	timeout := time.After(stopTimeout)
	select {
	case <-exited:
	case <-timeout:
		return fmt.Errorf("%s (pid %d) did not exit within %v", leader, pgid, stopTimeout)
	}
	// Only now, with the leader reaped by cmd.Wait, may its orphans be
	// reaped by group: earlier, reapGroup could steal the leader's exit
	// status from cmd.Wait.
	for !reapGroup(pgid) || groupAlive(pgid) {
		select {
		case <-timeout:
			return fmt.Errorf("processes of group %d still running after %v", pgid, stopTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// diagnostics returns the end of Dovecot's stderr and log for error messages.
func (d *Dovecot) diagnostics() string {
	var b strings.Builder
	for _, f := range []struct{ name, path string }{{"stderr", d.stderrPath}, {"log", d.logPath}} {
		data, err := os.ReadFile(f.path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "--- dovecot %s (%s) ---\n%s\n", f.name, f.path, strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return "(dovecot wrote no log)"
	}
	return b.String()
}

// Addr is host:port of the plain IMAP listener.
func (d *Dovecot) Addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// TLSAddr is host:port of the implicit-TLS IMAP listener ("" unless TLS).
func (d *Dovecot) TLSAddr() string {
	if d.TLSPort == 0 {
		return ""
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(d.TLSPort))
}

// POP3Addr is host:port of the plain POP3 listener.
func (d *Dovecot) POP3Addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.POP3Port)) }

// POP3TLSAddr is host:port of the implicit-TLS POP3 listener ("" unless TLS).
func (d *Dovecot) POP3TLSAddr() string {
	if d.POP3TLSPort == 0 {
		return ""
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(d.POP3TLSPort))
}

// TLSConfig is a client configuration that trusts only this instance's
// certificate; nil unless TLS. ServerName is left empty so that go-imap and
// crypto/tls derive it from the address dialled (127.0.0.1 or localhost).
func (d *Dovecot) TLSConfig() *tls.Config {
	if d.CACert == nil {
		return nil
	}
	return &tls.Config{RootCAs: d.CACert, MinVersion: tls.VersionTLS12}
}

// usernameChars is Dovecot's default auth_username_chars: anything else is
// rejected at login, so AddUser refuses it up front.
const usernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"

// AddUser adds a user, or replaces the password of an existing one. New
// users can log in immediately; a replaced password takes effect before
// AddUser returns, which may take up to a second (see below).
//
// User names are case-insensitive, as Dovecot lowercases them at login
// (auth_username_format = %Lu). The password may contain any bytes: it is
// stored base64-encoded ({PLAIN.b64}), so ':' and newlines are safe.
func (d *Dovecot) AddUser(t testing.TB, user, password string) {
	t.Helper()
	name := strings.ToLower(user)
	invalid := func(r rune) bool { return !strings.ContainsRune(usernameChars, r) }
	if name == "" || name == "." || name == ".." || strings.ContainsFunc(name, invalid) {
		t.Fatalf("testenv: user name %q: Dovecot only accepts the characters %q", user, usernameChars)
	}
	d.usersMu.Lock()
	defer d.usersMu.Unlock()

	path := filepath.Join(d.Dir, "passwd.d", name)
	old, statErr := os.Stat(path)
	replacing := statErr == nil

	tmp := filepath.Join(d.Dir, "passwd.tmp")
	line := name + ":{PLAIN.b64}" + base64.StdEncoding.EncodeToString([]byte(password)) + "\n"
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if replacing {
		// Dovecot notices a changed passwd-file only by its mtime in whole
		// seconds plus its size, so a same-length password written within
		// the same second would go unnoticed: force a later mtime.
		mtime := time.Now().Truncate(time.Second)
		if !mtime.After(old.ModTime()) {
			mtime = old.ModTime().Truncate(time.Second).Add(time.Second)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	// Rename so the auth process never reads a half-written file.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if replacing {
		// Dovecot also skips the stat entirely if it already looked at the
		// file during the current second. Waiting for the next second
		// guarantees the next login re-reads it.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
		return
	}
	if d.specialUse {
		d.openSpecialFolders(t, name, password)
	}
}

// openSpecialFolders opens a new user's special-use folders once, one
// after the other. Dovecot 2.3 creates "auto = subscribe" folders on first
// access, and two sessions opening one of them at the same moment make
// one fail with "NO [ALREADYEXISTS] Mailbox already exists" (and, under
// load, a Dovecot process panic on its list index lock): a server race
// that would fail whichever test happened to open them concurrently.
func (d *Dovecot) openSpecialFolders(t testing.TB, user, password string) {
	t.Helper()
	c := d.Dial(t, user, password)
	for _, m := range specialUseMailboxes() {
		if _, err := c.Select(d.Layout.Prefix()+m.name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("testenv: opening %s of %s: %v", m.name, user, err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("testenv: logging out %s: %v", user, err)
	}
}

// Dial logs in as user over plain IMAP and returns the client, which is
// closed on t.Cleanup. Meant for seeding and verifying mailboxes.
func (d *Dovecot) Dial(t testing.TB, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.Addr(), &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatalf("testenv: dialing %s: %v", d.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("testenv: logging in to %s as %q: %v", d.Addr(), user, err)
	}
	return c
}

// MailDir is where a user's mail is stored: a Maildir (Maildir++ for
// LayoutCourier, LAYOUT=fs for LayoutSlash) holding Dovecot's own files
// too (dovecot-uidlist, dovecot-uidvalidity, indexes).
func (d *Dovecot) MailDir(user string) string {
	return filepath.Join(d.Dir, "mail", strings.ToLower(user))
}

// RestoreMail copies the directory tree src into user's mail directory
// (which must not exist yet: call it before the user's first login),
// owned by the instance's mail user. With Dovecot's dovecot-uidlist,
// dovecot-uidvalidity and index files included, the user's folders come
// back with their UIDs, UIDVALIDITY and HIGHESTMODSEQ: tests restore a
// mailbox another program left (cmd/mailferry's upgrade test).
func (d *Dovecot) RestoreMail(t testing.TB, user, src string) {
	t.Helper()
	dst := d.MailDir(user)
	if _, err := os.Stat(dst); err == nil {
		t.Fatalf("testenv: restoring mail of %s: %s exists already", user, dst)
	}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				return err
			}
			// Mail files' mtimes are their INTERNALDATEs.
			if err := os.Chtimes(to, fi.ModTime(), fi.ModTime()); err != nil {
				return err
			}
		default:
			return nil
		}
		if d.id.root {
			return os.Chown(to, d.id.mailUID, d.id.mailGID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: restoring mail of %s from %s: %v", user, src, err)
	}
	// Git keeps no empty directories, so a saved tree checked out from
	// the repository lacks the empty cur/, new/ or tmp/ of its folders,
	// and Dovecot then sees such a folder as empty or missing. Every
	// folder (the root, and each directory with Dovecot's uidlist) gets
	// all three back.
	err = filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return err
		}
		if _, err := os.Stat(filepath.Join(p, "dovecot-uidlist")); p != dst && err != nil {
			return nil
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			to := filepath.Join(p, sub)
			if _, err := os.Stat(to); err == nil {
				continue
			}
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			if d.id.root {
				if err := os.Chown(to, d.id.mailUID, d.id.mailGID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: restoring mail of %s from %s: %v", user, src, err)
	}
}

// Doveadm runs doveadm against this instance (e.g. "mailbox", "list", "-u",
// "alice") and returns its standard output; it fails the test on error.
func (d *Dovecot) Doveadm(t testing.TB, args ...string) string {
	t.Helper()
	if d.doveadmBin == "" {
		t.Fatalf("testenv: doveadm is not installed")
	}
	cmd := exec.Command(d.doveadmBin, append([]string{"-c", d.confPath}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: doveadm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
