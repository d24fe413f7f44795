package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stopping a Courier instance ends its daemons too, although couriertcpd
// makes itself the leader of a process group of its own.
func TestCourierStopLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	c := StartCourier(t, CourierOptions{})
	c.AddUser(t, "alice", "secret")
	c.Dial(t, "alice", "secret") // an imapd that is busy at stop time
	b, err := os.ReadFile(filepath.Join(c.Dir, "daemons.pid"))
	if err != nil {
		t.Fatal(err)
	}
	groups := []int{c.g.pgid}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if pg := pgidOf(pid); pg > 0 {
			groups = append(groups, pg)
		}
	}
	if len(groups) < 2 {
		t.Fatalf("daemons.pid %q names no running daemon", b)
	}
	c.Stop(t)
	c.Stop(t)
	for _, pg := range groups {
		if groupAlive(pg) {
			t.Errorf("process group %d survives Stop", pg)
		}
	}
	assertClosed(t, c.Addr())
}

func TestCyrusStopLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	c := StartCyrus(t, CyrusOptions{})
	c.AddUser(t, "alice", "secret")
	c.Dial(t, "alice", "secret")
	c.Stop(t)
	c.Stop(t)
	if groupAlive(c.g.pgid) {
		t.Errorf("processes of the instance survive Stop")
	}
	assertClosed(t, c.Addr())
}

func assertClosed(t *testing.T, addr string) {
	t.Helper()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
}
