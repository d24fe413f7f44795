package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mailferry/mailferry/internal/connector/all"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/verify"
)

const verifyUsage = `Usage: mailferry verify --from ADDRESS [--from-user NAME] --to ADDRESS [--to-user NAME] [flags]

Proves a migration: reads both mailboxes (read only, independently of the
sync state), matches every source message to its copy on the destination
by identity and compares their bytes by SHA-256 as they stream. Prints
per folder: source messages and bytes, destination messages, matched
byte for byte, matched with other flags or date, altered, missing,
failed in an earlier pass (with the reason), extra on the destination,
skipped by a filter; then a one-line verdict and the report's SHA-256.

Give the same addresses, folder rules and filters as to "mailferry copy".
With the same --data-dir, folders are compared where the copy put them
(the recorded folder plan) and messages a pass could not copy are shown
with their reason; nothing else of the state is trusted.

Addresses and passwords: as for "mailferry copy" (see "mailferry copy -h").

Exit status: 0 exact, 1 not exact (a difference, or a folder that could
not be compared), 2 bad usage, 3 a mailbox could not be read.

Flags:
`

func runVerify(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f copyFlags
	f.registerEndpoints(fs)
	fs.Func("include", "only verify folders whose path matches this regex (repeatable; as given to copy)", appendTo(&f.include))
	fs.Func("exclude", "leave out folders whose path matches this regex (repeatable; as given to copy)", appendTo(&f.exclude))
	fs.Func("map", "folder mapping rule '^Source/Path->Destination/Path' (repeatable; as given to copy)", appendTo(&f.mappings))
	fs.StringVar(&f.since, "since", "", "messages received before this date (YYYY-MM-DD) count as skipped by a filter")
	fs.StringVar(&f.before, "before", "", "messages received on or after this date count as skipped by a filter")
	fs.BoolVar(&f.includeDeleted, "include-deleted", false, "messages flagged \\Deleted were copied too (else they count as skipped)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON instead of a table")
	fs.IntVar(&f.connections, "connections", 6, "connections per server (1-16)")
	fs.IntVar(&f.batch, "batch", 64, "messages per pipelined FETCH")
	fs.DurationVar(&f.stallTimeout, "stall-timeout", 2*time.Minute, "drop a connection that moves no data for this long and retry")
	fs.StringVar(&f.dataDir, "data-dir", "", "the copy's state directory, for its folder plan and failures (default as for copy; \"none\" to ignore it)")
	csvOut := fs.String("csv", "", "also write the report as CSV to this file")
	pdfOut := fs.String("pdf", "", "also write the report as PDF to this file")
	jsonFile := fs.String("json-file", "", "also write the report as JSON to this file")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), verifyUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "mailferry verify: %d unexpected argument(s) after the flags (passwords are never given as arguments; see -h)\n", fs.NArg())
		return ExitUsage
	}
	f.pipeline, f.spoolMemory, f.retryBudget = 1, 16, 5*time.Minute
	reg := all.Registry()
	srcA, dstA, opts, err := f.build(env, reg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry verify: %v\n", err)
		return ExitUsage
	}
	vo := verify.Options{Copy: opts, Version: Version, Source: srcA.e.Redacted, Destination: dstA.e.Redacted,
		Batch: f.batch, Settings: verify.Settings{Include: f.include, Exclude: f.exclude, Map: f.mappings,
			Since: f.since, Before: f.before, IncludeDeleted: f.includeDeleted}}
	vo.Copy.State = nil
	if f.dataDir != "none" {
		dir, err := dataDir(env, f.dataDir)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailferry verify: %v\n", err)
			return ExitUsage
		}
		// A state that does not exist is not created: verify writes nothing.
		if store.ExistsSQLite(dir) {
			st, err := store.OpenSQLite(ctx, dir)
			if err != nil {
				fmt.Fprintf(env.Stderr, "mailferry verify: %v\n", err)
				return ExitStopped
			}
			defer st.Close()
			vo.Copy.State, vo.Copy.Pair = st, pairKey(srcA, dstA)
		}
	}

	src, err := reg.OpenSource(ctx, srcA.e, srcA.o)
	if err != nil {
		fmt.Fprintln(env.Stderr, fatalMessage("source", err))
		return ExitStopped
	}
	defer src.Close()
	// The destination is read as a source: listed and fetched, never
	// written to.
	dst, err := reg.OpenSource(ctx, dstA.e, dstA.o)
	if err != nil {
		fmt.Fprintln(env.Stderr, fatalMessage("destination", err))
		return ExitStopped
	}
	defer dst.Close()

	rep, err := verify.Run(ctx, src, dst, vo)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(env.Stderr, "mailferry verify: interrupted")
		} else {
			fmt.Fprintln(env.Stderr, fatalMessage("", err))
		}
		return ExitStopped
	}
	for _, o := range []struct {
		path  string
		write func(io.Writer) error
	}{{*csvOut, rep.WriteCSV}, {*pdfOut, rep.WritePDF}, {*jsonFile, rep.WriteJSON}} {
		if o.path == "" {
			continue
		}
		if err := writeFile(o.path, o.write); err != nil {
			fmt.Fprintf(env.Stderr, "mailferry verify: %v\n", err)
			return ExitStopped
		}
	}
	if f.jsonOut {
		err = rep.WriteJSON(env.Stdout)
	} else {
		err = rep.WriteText(env.Stdout)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry verify: %v\n", err)
		return ExitStopped
	}
	if !rep.Exact {
		return ExitFailures
	}
	return ExitOK
}

// writeFile writes a report file whole or not at all.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mailferry-report-*")
	if err != nil {
		return fmt.Errorf("write %s: %w (is the directory there and writable?)", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
