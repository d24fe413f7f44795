package testenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// procSupported reports whether instances can be managed on this OS.
const procSupported = true

// sysProcAttr puts the Dovecot master into its own process group, so that
// the master and every child it forks can be signalled together by that
// group id (never by name), and asks the kernel to SIGTERM the master if the
// test binary dies without running its cleanups (e.g. on a go test -timeout
// panic), so a crashed test does not leave servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER from <linux/prctl.h>

// becomeSubreaper makes this process adopt its orphaned descendants instead
// of init. Killing a Dovecot master orphans its children; adopted, they can
// be reaped at once by reapGroup rather than lingering as zombies until init
// (which in some containers never reaps) gets round to them. The attribute
// is process-wide and idempotent; its only other effect is that daemons
// started by other code in the same test binary are reparented to the test
// binary instead of init. Failure (very old kernels) just means zombies are
// left to init.
func becomeSubreaper() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapGroup collects every exited child of ours in the group and reports
// whether none is left. Call it only after the master itself has been
// waited for, or it may steal the master's status from exec.Cmd.Wait.
func reapGroup(pgid int) bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.ECHILD):
			return true
		case err != nil, pid == 0:
			return false
		}
	}
}

// killGroup sends SIGKILL to every process in the group.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// groupAlive reports whether any process in the group is still running.
// Zombies do not count: they hold no ports or files, and any that were not
// adopted by becomeSubreaper are init's to reap.
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited while scanning
		}
		// The command name in parentheses may contain spaces and
		// parentheses, so parse from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		// Fields after the name: state ppid pgrp ...
		if len(f) < 3 || string(f[0]) == "Z" || string(f[0]) == "X" {
			continue
		}
		if g, err := strconv.Atoi(string(f[2])); err == nil && g == pgid {
			return true
		}
	}
	return false
}

// sysProcAttrMountNS is sysProcAttr plus a private mount namespace, in
// which the child may bind-mount its own files over compiled-in paths
// without anyone else seeing them. Go makes the new namespace's mounts
// private (MS_REC|MS_PRIVATE on /) before the child runs.
func sysProcAttrMountNS() *syscall.SysProcAttr {
	a := sysProcAttr()
	a.Unshareflags = syscall.CLONE_NEWNS
	return a
}

// pgidOf returns the process group of pid, 0 if it is gone.
func pgidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || string(f[0]) == "Z" {
		return 0
	}
	g, _ := strconv.Atoi(string(f[2]))
	return g
}
