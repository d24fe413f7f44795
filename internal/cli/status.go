package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

func runStatus(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("data-dir", "", "where the sync state is kept (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	jsonOut := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: mailferry status [--data-dir DIR] [--json]\n\nShows, per mailbox pair and folder, what has been synced and when.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	d, err := dataDir(env, *dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry status: %v\n", err)
		return ExitUsage
	}
	if !store.ExistsSQLite(d) {
		fmt.Fprintf(env.Stderr, "mailferry status: no state in %s yet: nothing has been copied with this data directory\n", d)
		return ExitUsage
	}
	st, err := store.OpenSQLite(ctx, d)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry status: %v\n", err)
		return ExitStopped
	}
	defer st.Close()
	pairs, err := st.Pairs(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry status: %v\n", err)
		return ExitStopped
	}
	type pairOut struct {
		store.PairInfo
		Folders []store.FolderState `json:"folders"`
		States  map[string]int64    `json:"messages_by_state"`
	}
	var out []pairOut
	for _, p := range pairs {
		fsx, err := st.Folders(ctx, p.Key)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailferry status: %v\n", err)
			return ExitStopped
		}
		counts, err := st.CountStates(ctx, p.Key)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailferry status: %v\n", err)
			return ExitStopped
		}
		out = append(out, pairOut{PairInfo: p, Folders: fsx, States: counts})
	}
	if *jsonOut {
		jsonLine(env.Stdout, out)
		return ExitOK
	}
	if len(out) == 0 {
		fmt.Fprintf(env.Stdout, "No mailbox pairs in %s yet.\n", d)
		return ExitOK
	}
	for _, p := range out {
		fmt.Fprintf(env.Stdout, "%s -> %s (last run %s)\n", p.Source, p.Destination, p.LastRunAt.Format(time.DateTime))
		if n := p.States[store.StateIntent]; n > 0 {
			fmt.Fprintf(env.Stdout, "  %d messages were being copied when a run stopped; the next run checks them on the destination\n", n)
		}
		if n := p.States[store.StateFailed]; n > 0 {
			fmt.Fprintf(env.Stdout, "  %d messages failed; the next run tries them again\n", n)
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 8, 2, ' ', 0)
		// The folders' cursors are their connectors' own; what they say
		// (UIDs, sync tokens) is not for people.
		fmt.Fprintln(tw, "  FOLDER\tDESTINATION\tMESSAGES\tCOPIED\tPRESENT\tFAILED\tLAST SYNCED")
		for _, f := range p.Folders {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%s\n", f.SrcPath, f.DstPath, f.Messages, f.Copied, f.Present, f.Failed,
				f.SyncedAt.Format(time.DateTime))
		}
		_ = tw.Flush()
	}
	return ExitOK
}
