//go:build linux

package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// hwmWatcher follows a running process's peak resident set size.
//
// Why not ru_maxrss from wait4 (ProcessState.SysUsage): Go starts
// children with vfork semantics (CLONE_VM|CLONE_VFORK), so until its exec
// the child runs in the parent's address space, and the kernel folds that
// address space's high-water mark into the child's maxrss at exec. Every
// tool started from this test would then report at least this test
// process's own peak (which holds 40 MB messages while verifying): a
// /bin/true started from a Go process of 300 MB reports 300 MB. VmHWM in
// /proc/PID/status belongs to the new address space only, so it is
// sampled instead, every 10 ms until the process exits; only growth in
// its last 10 ms can be missed.
type hwmWatcher struct {
	stop chan struct{}
	done chan struct{}
	peak int64 // bytes; read after done is closed
}

func watchHWM(pid int) *hwmWatcher {
	w := &hwmWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	path := filepath.Join("/proc", strconv.Itoa(pid), "status")
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb := readHWM(path); kb*1024 > w.peak {
				w.peak = kb * 1024
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the peak in bytes.
func (w *hwmWatcher) Stop() int64 {
	close(w.stop)
	<-w.done
	return w.peak
}

func readHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb
			}
		}
	}
	return 0
}

// clockTicks is USER_HZ, 100 on every mainstream Linux architecture.
const clockTicks = 100

// groupCPU is the CPU time (user+system) used so far by the process
// group pgid: the live processes' own time plus, for every one of them,
// the time of the children it has already reaped. For a Dovecot instance
// (pgid = master) that is the master, its service processes and every
// imap process that has come and gone.
func groupCPU(pgid int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name, in parentheses, may contain spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): pgrp is field 5, utime..cstime 14..17.
		if len(f) < 15 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != pgid {
			continue
		}
		for _, k := range f[11:15] {
			n, _ := strconv.ParseInt(k, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// masterPID reads the pid of a Dovecot instance's master from its
// base_dir (testenv puts it at Dir/run). testenv starts the master in its
// own process group, so this is also the group id.
func masterPID(dovecotDir string) int {
	b, err := os.ReadFile(filepath.Join(dovecotDir, "run", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// logins counts user's IMAP logins in a testenv Dovecot instance's log
// ("imap-login: Info: Login: user=<name>, ...").
func logins(dovecotDir, user string) int {
	b, err := os.ReadFile(filepath.Join(dovecotDir, "dovecot.log"))
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("imap-login: Info: Login: user=<"+user+">"))
}

// machineBusy is the CPU time all processes on the machine have used
// (user, nice, system, irq, softirq, steal), summed over all CPUs.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// machineInfo describes the machine for the report.
func machineInfo() string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				parts = append(parts, "CPU "+strings.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(l); len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			parts = append(parts, "memory "+strconv.FormatInt(kb>>20, 10)+" GiB")
		}
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		parts = append(parts, "Debian "+strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		parts = append(parts, "load average "+strings.Join(strings.Fields(string(b))[:3], " "))
	}
	return strings.Join(parts, ", ")
}

// toolVersion runs a version command and returns its first line.
func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// treeCPU is the CPU time (user+system) used so far by process pid and
// its live children, with the time of the children each has reaped: for
// a PostgreSQL postmaster, the server and its backends, also those that
// have exited.
func treeCPU(pid int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil || pid <= 0 {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[1] is field 4 (ppid); utime..cstime are fields 14..17.
		if len(f) < 15 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); p != pid && ppid != pid {
			continue
		}
		for _, k := range f[11:15] {
			n, _ := strconv.ParseInt(k, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
