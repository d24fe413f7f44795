package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Courier-IMAP and Cyrus IMAP cannot be installed next to Dovecot: their
// Debian packages conflict with dovecot-imapd (all three provide
// imap-server). scripts/test therefore unpacks the conflicting packages
// with dpkg -x into this directory, one subdirectory per server
// ("courier", "cyrus"), and installs only the libraries they link with.
// MAILFERRY_TESTENV_SERVERS points elsewhere.
const (
	serversRootEnv     = "MAILFERRY_TESTENV_SERVERS"
	defaultServersRoot = "/opt/mailferry-testenv"
)

func serversRoot() string {
	if r := os.Getenv(serversRootEnv); r != "" {
		return r
	}
	return defaultServersRoot
}

// unpackedServer returns the root of an unpacked server, after checking
// that every file in need (relative to it, or absolute for files from
// installed packages) exists; otherwise the test is skipped, or failed
// when servers are required.
func unpackedServer(t testing.TB, name string, need ...string) string {
	t.Helper()
	if !procSupported {
		unavailable(t, "testenv: %s instances are only supported on Linux, not %s", name, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		unavailable(t, "testenv: %s instances need root (they switch to the mail user and, for Courier, "+
			"use a private mount namespace); run the tests as root, as scripts/test does in CI", name)
	}
	root := filepath.Join(serversRoot(), name)
	for _, f := range need {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, f)
		}
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "testenv: %s is not unpacked (%s missing); scripts/test does it as root", name, p)
		}
	}
	return root
}

// mailIdentity is the unprivileged user that owns test mail.
func mailIdentity() (uid, gid int, err error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("the user \"nobody\" must exist to own mail: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	return uid, gid, errors.Join(err1, err2)
}

// newServerDir makes a short private directory under parent (or the
// system temp dir), removed on cleanup. Short, because unix socket paths
// inside it are limited to 107 bytes.
func newServerDir(t testing.TB, parent, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: removing %s: %v", dir, err)
		}
	})
	// Written into shell scripts and config files, where these would be
	// parsed.
	if strings.ContainsAny(dir, " \t\"'%#\\{}$`") {
		t.Fatalf("testenv: temp dir %q contains characters a config file would misparse; set TMPDIR", dir)
	}
	// The mail user must traverse it; MkdirTemp makes it 0700.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

// freePort asks the kernel for an unused loopback port. It is released
// before the server binds it; callers retry on a lost race.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// group is a server started as the leader of its own process group.
type group struct {
	pgid   int
	exited chan struct{}
}

// startGroup starts cmd in its own process group, with stdout and
// stderr appended to logPath.
func startGroup(cmd *exec.Cmd, logPath string) (*group, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// An *os.File (not a buffer) so that Wait does not also wait for
	// every child that inherited the descriptor.
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = sysProcAttr()
	}
	becomeSubreaper()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, err
	}
	g := &group{pgid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(g.exited)
	}()
	return g, nil
}

func (g *group) kill(leader string) error { return killAndReap(g.pgid, g.exited, leader) }

// killAndWait SIGKILLs a process group that is not our child's (a daemon
// that made itself a group leader) and waits until none of it runs; its
// members, orphaned, are ours to reap (becomeSubreaper).
func killAndWait(pgid int) error {
	if err := killGroup(pgid); err != nil {
		return fmt.Errorf("killing process group %d: %w", pgid, err)
	}
	timeout := time.After(stopTimeout)
	for {
		reapGroup(pgid)
		if !groupAlive(pgid) {
			return nil
		}
		select {
		case <-timeout:
			return fmt.Errorf("processes of group %d still running after %v", pgid, stopTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitIMAP waits until addr greets with "* OK", or fails when the group
// exits or the timeout passes.
func waitIMAP(addr string, g *group, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		select {
		case <-g.exited:
			return errors.New("the server exited during startup")
		default:
		}
		if lastErr = probeIMAP(addr); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, lastErr)
		}
		select {
		case <-g.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func probeIMAP(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: reading greeting: %w", addr, err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("%s: unexpected greeting %q", addr, strings.TrimSpace(line))
	}
	return nil
}

// dialPlain logs in over plain IMAP; the client is closed on cleanup.
func dialPlain(t testing.TB, addr, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatalf("testenv: dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("testenv: logging in to %s as %q: %v", addr, user, err)
	}
	return c
}

// tail returns the last lines of a log file, for failure messages.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "(" + filepath.Base(path) + " is empty)"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
