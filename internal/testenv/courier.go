package testenv

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // the {SHA} password scheme of courier-authlib, for throwaway test users
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Files of courier-authlib, installed by apt (scripts/test): its module
// loader and authdaemond use these compiled-in paths.
const (
	courierAuthdaemond = "/usr/lib/courier/courier-authlib/authdaemond"
	courierMakeuserdb  = "/usr/sbin/makeuserdb"
	courierUserdbLib   = "/usr/lib/courier-authlib/libauthuserdb.so.0"
	// courier-authlib reads its configuration and user database from
	// /etc/courier and the IMAP login talks to authdaemond through a
	// socket in /run/courier/authdaemon, all compiled in. Each instance
	// runs in a private mount namespace with its own directories
	// bind-mounted over these two, so instances (and a system Courier,
	// if any) never see each other's users. The two directories are
	// created empty on the host if missing, as mount points.
	courierEtc = "/etc/courier"
	courierRun = "/run/courier"
)

// CourierOptions select the instance. There is only one layout: Courier
// always uses Maildir++ with '.' as separator and the "INBOX." prefix.
type CourierOptions struct {
	// ParentDir is where the instance's directory is created; "" means
	// os.TempDir().
	ParentDir string
}

// Courier is a running throwaway Courier-IMAP 5 instance (plain IMAP on
// loopback; LOGIN over plain text is allowed). Its behaviour, which the
// tests rely on and which differs from Dovecot:
//
//   - no LITERAL+, no MULTIAPPEND, no UNSELECT, no SPECIAL-USE, no
//     CONDSTORE; UIDPLUS and QUOTA are offered;
//   - CREATE of an existing folder answers "NO Cannot create this
//     folder." with no response code;
//   - lone CRs in a message are removed when it is stored, so a message
//     is served without them;
//   - Debian's default of purging Trash after 7 days (IMAP_EMPTYTRASH) is
//     switched off here.
type Courier struct {
	Host string // "127.0.0.1"
	Port int
	Dir  string // the instance's private directory

	root    string
	logPath string
	uid     int
	gid     int
	g       *group

	stopOnce sync.Once
	stopErr  error
	usersMu  sync.Mutex
}

// StartCourier starts an instance on a free loopback port with its own
// authdaemond, user database and mail directory, and stops it (and
// removes its directory) on t.Cleanup. It needs root and the packages
// scripts/test installs and unpacks; without them it skips the test, or
// fails it if RequireServers().
func StartCourier(t testing.TB, opts CourierOptions) *Courier {
	t.Helper()
	root := unpackedServer(t, "courier", "usr/sbin/couriertcpd", "usr/lib/courier/courier/imaplogin", "usr/bin/imapd",
		courierAuthdaemond, courierMakeuserdb, courierUserdbLib)
	mount, err := exec.LookPath("mount")
	if err != nil {
		unavailable(t, "testenv: Courier needs mount(8) (util-linux) for its private mount namespace")
	}
	uid, gid, err := mailIdentity()
	if err != nil {
		unavailable(t, "testenv: %v", err)
	}
	dir := newServerDir(t, opts.ParentDir, "mfco")
	c := &Courier{Host: "127.0.0.1", Dir: dir, root: root, logPath: filepath.Join(dir, "courier.log"), uid: uid, gid: gid}
	for _, d := range []string{"etc", "run/authdaemon", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	for _, d := range []string{courierEtc, courierRun} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			unavailable(t, "testenv: creating the mount point %s: %v", d, err)
		}
	}
	// authmodulelist: only the userdb written by AddUser. daemons=2
	// serves two logins at once, enough for a test's few connections.
	rc := "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=2\n" +
		"authdaemonvar=" + courierRun + "/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n"
	if err := os.WriteFile(filepath.Join(dir, "etc", "authdaemonrc"), []byte(rc), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.writeUserdb(t, nil)

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		err = c.start(mount, port)
		if err == nil {
			c.Port = port
			break
		}
		if c.lostPortRace() && attempt < startAttempts {
			t.Logf("testenv: courier lost a port race (attempt %d), retrying on a new port", attempt)
			continue
		}
		t.Fatalf("testenv: starting courier: %v\n%s", err, tail(c.logPath, 40))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: courier %s log tail:\n%s", c.Addr(), tail(c.logPath, 40))
		}
		if err := c.stop(); err != nil {
			t.Errorf("testenv: stopping courier: %v", err)
		}
	})
	return c
}

func (c *Courier) start(mount string, port int) error {
	if err := os.Truncate(c.logPath, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Join(c.Dir, "run", "authdaemon", "socket"))
	_ = os.Remove(filepath.Join(c.Dir, "daemons.pid"))
	// The shell stays the parent of both daemons so that a SIGTERM (the
	// parent-death signal when the test binary dies) ends them too.
	script := fmt.Sprintf(`# Generated by mailferry internal/testenv; throwaway Courier-IMAP.
set -e
%[1]s --bind %[2]s/etc %[3]s
%[1]s --bind %[2]s/run %[4]s
set +e
(set -a; . %[3]s/authdaemonrc; exec %[5]s) &
auth=$!
%[6]s/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=100 -maxperip=100 -nodnslookup -noidentlookup %[7]d \
	%[6]s/usr/lib/courier/courier/imaplogin %[6]s/usr/bin/imapd Maildir &
tcpd=$!
echo $auth $tcpd >%[2]s/daemons.pid
trap 'kill $auth $tcpd' TERM INT
wait $tcpd
status=$?
kill $auth
exit $status
`, mount, c.Dir, courierEtc, courierRun, courierAuthdaemond, c.root, port)
	path := filepath.Join(c.Dir, "run.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return err
	}
	cmd := exec.Command("/bin/sh", path)
	cmd.Dir = c.Dir
	// What Debian's /etc/courier/imapd sets, minus what needs files we
	// do not have (TLS, shared folders, imapaccess) and the Trash purge.
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"IMAP_CAPABILITY=IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE",
		"IMAP_KEYWORDS=1", "IMAP_ACL=1", "IMAP_PROXY=0", "IMAP_IDLE_TIMEOUT=60", "IMAP_MAILBOX_SANITY_CHECK=1",
		"IMAP_DISABLETHREADSORT=0", "IMAP_CHECK_ALL_FOLDERS=0", "IMAP_OBSOLETE_CLIENT=0", "IMAP_UMASK=022",
		"IMAP_USELOCKS=1", "IMAP_ENHANCEDIDLE=0", "IMAP_TRASHFOLDERNAME=Trash", "IMAP_EMPTYTRASH=",
		"IMAP_MOVE_EXPUNGE_TO_TRASH=0", "HEADERFROM=X-IMAP-Sender",
		"IMAP_SHAREDINDEXFILE=" + filepath.Join(c.Dir, "etc", "shared", "index"),
	}
	cmd.SysProcAttr = sysProcAttrMountNS()
	g, err := startGroup(cmd, c.logPath)
	if err != nil {
		return err
	}
	c.g = g
	err = waitIMAP(net.JoinHostPort(c.Host, strconv.Itoa(port)), g, startTimeout)
	if err == nil {
		err = c.waitAuth()
	}
	if err != nil {
		if kerr := c.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return err
	}
	return nil
}

// waitAuth waits for authdaemond's socket: a login before it exists fails.
func (c *Courier) waitAuth() error {
	sock := filepath.Join(c.Dir, "run", "authdaemon", "socket")
	for deadline := time.Now().Add(startTimeout); ; {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("authdaemond made no socket within %v", startTimeout)
		}
		select {
		case <-c.g.exited:
			return errors.New("courier exited during startup")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Courier) lostPortRace() bool {
	b, _ := os.ReadFile(c.logPath)
	return bytes.Contains(b, []byte("Address already in use"))
}

// Stop stops the instance now, e.g. to simulate an outage. It is safe to
// call more than once; the cleanup calls it too.
func (c *Courier) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(); err != nil {
		t.Fatalf("testenv: stopping courier: %v", err)
	}
}

func (c *Courier) stop() error {
	c.stopOnce.Do(func() {
		if c.g != nil {
			c.stopErr = c.kill()
		}
	})
	return c.stopErr
}

// kill ends the instance. couriertcpd makes itself the leader of a
// process group of its own (and so may authdaemond), which killing the
// shell's group would miss: those groups are killed first, by the pids
// the script recorded.
func (c *Courier) kill() error {
	var errs []error
	if b, err := os.ReadFile(filepath.Join(c.Dir, "daemons.pid")); err == nil {
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 {
				continue
			}
			if pg := pgidOf(pid); pg > 1 && pg != c.g.pgid {
				errs = append(errs, killAndWait(pg))
			}
		}
	}
	errs = append(errs, c.g.kill("courier"))
	return errors.Join(errs...)
}

// Addr is host:port of the IMAP listener.
func (c *Courier) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// courierUserChars are the characters AddUser accepts in a user name:
// the userdb is a tab- and '|'-separated text file.
const courierUserChars = "abcdefghijklmnopqrstuvwxyz0123456789.-_@"

// AddUser adds a user with an empty Maildir, or replaces the password of
// an existing one. Only the password's SHA-1 is stored ({SHA} scheme), so
// it may hold any bytes but CR and LF, with which Courier's LOGIN fails.
// The change takes effect before AddUser returns.
func (c *Courier) AddUser(t testing.TB, user, password string) {
	t.Helper()
	if user == "" || user == "." || user == ".." || strings.ContainsFunc(user, func(r rune) bool { return !strings.ContainsRune(courierUserChars, r) }) {
		t.Fatalf("testenv: courier user name %q: use only %q", user, courierUserChars)
	}
	if strings.ContainsAny(password, "\r\n") {
		t.Fatalf("testenv: courier cannot log in with a password that contains CR or LF")
	}
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	home := filepath.Join(c.Dir, "home", user)
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(home, "Maildir", d), 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	for _, p := range []string{home, filepath.Join(home, "Maildir"), filepath.Join(home, "Maildir", "cur"),
		filepath.Join(home, "Maildir", "new"), filepath.Join(home, "Maildir", "tmp")} {
		if err := os.Chown(p, c.uid, c.gid); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	sum := sha1.Sum([]byte(password)) //nolint:gosec // see import
	line := fmt.Sprintf("%s\tuid=%d|gid=%d|home=%s|mail=%s|systempw={SHA}%s", user, c.uid, c.gid, home,
		filepath.Join(home, "Maildir"), base64.StdEncoding.EncodeToString(sum[:]))
	c.writeUserdb(t, map[string]string{user: line})
}

// writeUserdb adds or replaces lines (by user) in the userdb text file and
// compiles it with makeuserdb, which authuserdb notices by its mtime.
func (c *Courier) writeUserdb(t testing.TB, lines map[string]string) {
	t.Helper()
	path := filepath.Join(c.Dir, "etc", "userdb")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("testenv: %v", err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(old)), "\n") {
		name, _, _ := strings.Cut(l, "\t")
		if _, replaced := lines[name]; l != "" && !replaced {
			out = append(out, l)
		}
	}
	for _, l := range lines {
		out = append(out, l)
	}
	// makeuserdb refuses a userdb that others may read.
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cmd := exec.Command(courierMakeuserdb, "-f", path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: makeuserdb: %v\n%s", err, b)
	}
}

// Dial logs in as user over plain IMAP and returns the client, which is
// closed on t.Cleanup. Meant for seeding and verifying mailboxes.
func (c *Courier) Dial(t testing.TB, user, password string) *imapclient.Client {
	t.Helper()
	return dialPlain(t, c.Addr(), user, password)
}
