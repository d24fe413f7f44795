package testenv

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{TLS: true})
	d.AddUser(t, "alice", "secret")
	c := d.Dial(t, "alice", "secret") // an imap process that is busy at stop time
	_ = c

	if !groupAlive(d.pgid) {
		t.Fatal("groupAlive is false for a running instance")
	}
	d.Stop(t)
	d.Stop(t) // idempotent

	if groupAlive(d.pgid) {
		t.Error("processes of the instance survive Stop")
	}
	if err := syscall.Kill(d.pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("master pid %d still exists (kill 0: %v)", d.pgid, err)
	}
	for _, addr := range []string{d.Addr(), d.TLSAddr(), d.POP3Addr()} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", addr)
		}
	}
}

func TestDirectoryRemovedOnCleanup(t *testing.T) {
	var dir string
	t.Run("instance", func(t *testing.T) {
		d := StartDovecot(t, DovecotOptions{})
		dir = d.Dir
	})
	if dir == "" {
		t.Skip("instance was skipped")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after cleanup (stat: %v)", dir, err)
	}
}

func TestConfigIsolation(t *testing.T) {
	// The instance must not pick up the host's /etc/dovecot, and its
	// listeners must stay on loopback.
	conf := renderConfig("/tmp/x", identity{loginUser: "u", internalUser: "u", internalGroup: "g", mailUID: 1, mailGID: 1},
		DovecotOptions{Layout: LayoutCourier, SpecialUse: true, QuotaBytes: 1, MaxMailSize: 2}, ports{imap: 1, pop3: 2})
	for _, bad := range []string{"!include", "/etc/dovecot"} {
		if strings.Contains(conf, bad) {
			t.Errorf("config contains %q", bad)
		}
	}
	for _, want := range []string{"listen = 127.0.0.1", "separator = .", "prefix = INBOX.", "chroot =", "quota_rule = *:storage=1B", "+APPENDLIMIT=2"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	// mail_plugins must be extended globally before protocol imap extends it again.
	if g, p := strings.Index(conf, "mail_plugins = $mail_plugins quota"), strings.Index(conf, "protocol imap {"); g < 0 || g > p {
		t.Errorf("global mail_plugins not before protocol imap block:\n%s", conf)
	}
}

func TestPortTakenIsRetryable(t *testing.T) {
	t.Parallel()
	opts := DovecotOptions{}
	d, bin, id := newDovecot(t, opts)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p, err := freePorts(false)
	if err != nil {
		t.Fatal(err)
	}
	p.imap = taken.Addr().(*net.TCPAddr).Port
	err = d.start(bin, renderConfig(d.Dir, id, opts, p), p)
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on a taken port: got %v, want errAddrInUse\n%s", err, d.diagnostics())
	}
	if groupAlive(d.pgid) {
		t.Error("failed attempt left processes running")
	}

	// The same directory must then start cleanly, as StartDovecot's retry does.
	if p, err = freePorts(false); err != nil {
		t.Fatal(err)
	}
	if err := d.start(bin, renderConfig(d.Dir, id, opts, p), p); err != nil {
		t.Fatalf("retry: %v\n%s", err, d.diagnostics())
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
}
