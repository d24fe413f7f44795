// Package cli implements the mailferry command line. Commands take their
// streams and environment from an Env so that tests run them in process
// exactly as a user would.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Exit codes, documented in the README.
const (
	ExitOK       = 0 // everything copied
	ExitFailures = 1 // the run finished, but some messages failed
	ExitUsage    = 2 // bad flags or input
	ExitStopped  = 3 // the mailbox could not be migrated (login, TLS, connection, full destination)
)

// Env is the outside world of one command.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether a stream is a terminal; nil means ask
	// the operating system.
	IsTerminal func(any) bool
	// SetMemoryLimit sets the process's soft memory limit
	// (runtime/debug.SetMemoryLimit); nil leaves it alone, as in tests,
	// where commands share the test's process.
	SetMemoryLimit func(int64)
}

const usage = `mailferry: move mailboxes between mail servers without losing or duplicating a message.

Usage:
  mailferry copy [flags]    copy one mailbox from an IMAP server to another
  mailferry verify [flags]  prove a migration: compare every message of both mailboxes
  mailferry status [flags]  show what has been synced, per mailbox pair and folder
  mailferry serve [flags]   run the migration service: API, portal and workers
  mailferry worker [flags]  run workers only, for a service on PostgreSQL
  mailferry user add        create a user and print an API token
  mailferry version         print the version
  mailferry help [command]  show help

Run "mailferry copy -h" for the copy flags.
`

// Version is set at build time with -ldflags "-X ...cli.Version=...".
const Version = "0.1.0-dev"

// Main runs the command in args and returns the process exit code.
func Main(ctx context.Context, env Env, args []string) int {
	if env.IsTerminal == nil {
		env.IsTerminal = isTerminal
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "copy":
		return runCopy(ctx, env, args[1:])
	case "verify":
		return runVerify(ctx, env, args[1:])
	case "status":
		return runStatus(ctx, env, args[1:])
	case "serve":
		return runServe(ctx, env, args[1:])
	case "worker":
		return runWorker(ctx, env, args[1:])
	case "user":
		return runUser(ctx, env, args[1:])
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "mailferry", Version)
		return ExitOK
	case "help", "-h", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "copy":
				return runCopy(ctx, env, []string{"-h"})
			case "serve":
				return runServe(ctx, env, []string{"-h"})
			case "worker":
				return runWorker(ctx, env, []string{"-h"})
			}
		}
		if len(args) > 1 && args[1] == "verify" {
			return runVerify(ctx, env, []string{"-h"})
		}
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "mailferry: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

// isTerminal reports whether v is a terminal. A character device is not
// enough: /dev/null is one, and asking it for a password fails with
// "inappropriate ioctl for device".
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}
