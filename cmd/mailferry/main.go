// Command mailferry migrates mailboxes between mail servers.
//
// The commands live in internal/cli so that tests can run them in
// process; this file only wires the process's streams and exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mailferry/mailferry/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := cli.Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		SetMemoryLimit: func(n int64) {
			// GOMEMLIMIT set by the user wins.
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(n)
			}
		},
	}
	os.Exit(cli.Main(ctx, env, os.Args[1:]))
}
