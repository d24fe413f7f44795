//go:build !linux

package testenv

import (
	"errors"
	"syscall"
)

// procSupported is false: process-group handling, parent-death signals and
// subreaping are only implemented for Linux, where CI runs.
const procSupported = false

func sysProcAttr() *syscall.SysProcAttr { return nil }

func becomeSubreaper() {}

func reapGroup(int) bool { return true }

func killGroup(int) error { return errors.New("testenv: unsupported OS") }

func groupAlive(int) bool { return false }

func sysProcAttrMountNS() *syscall.SysProcAttr { return nil }

func pgidOf(int) int { return 0 }
