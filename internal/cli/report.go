package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/migrate"
)

// reporter shows a run: a live bar on a terminal, plain lines otherwise,
// or JSON events with --json.
type reporter struct {
	env      Env
	json     bool
	bar      bool
	stats    *accounting.Stats
	cancel   context.CancelFunc
	done     sync.WaitGroup
	mu       sync.Mutex
	progress *mpb.Progress
}

func newReporter(env Env, jsonOut, bar bool) *reporter {
	return &reporter{env: env, json: jsonOut, bar: bar}
}

// line writes one JSON event. Events come from the engine's goroutines
// and progress from a ticker: one line at a time, never interleaved.
func (r *reporter) line(v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	jsonLine(r.env.Stdout, v)
}

func (r *reporter) event(e migrate.Event) {
	switch {
	case r.json:
		r.line(e)
	case e.Type == "folder_done" && !r.bar:
		r.mu.Lock()
		defer r.mu.Unlock()
		f := e.Folder
		fmt.Fprintf(r.env.Stderr, "folder %s -> %s: %d copied, %d already present, %d skipped, %d failed\n",
			f.Source, f.Dest, f.Copied, f.Present, f.Skipped, f.Failed)
		if f.Left > 0 {
			fmt.Fprintf(r.env.Stderr, "folder %s: %d left for the next pass\n", f.Source, f.Left)
		}
	}
}

// start begins periodic progress output.
func (r *reporter) start(stats *accounting.Stats) {
	r.stats = stats
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done.Add(1)
	switch {
	case r.bar:
		go r.runBar(ctx)
	case r.json:
		go r.tick(ctx, time.Second, func(s accounting.Snapshot) {
			r.line(struct {
				Type string `json:"type"`
				accounting.Snapshot
			}{"progress", s})
		})
	default:
		go r.tick(ctx, 10*time.Second, func(s accounting.Snapshot) {
			r.mu.Lock()
			defer r.mu.Unlock()
			fmt.Fprintf(r.env.Stderr, "progress: %s\n", progressLine(s))
		})
	}
}

func (r *reporter) tick(ctx context.Context, every time.Duration, fn func(accounting.Snapshot)) {
	defer r.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(r.stats.Snapshot())
		}
	}
}

func (r *reporter) runBar(ctx context.Context) {
	defer r.done.Done()
	// The caller already decided the output is a terminal. Auto refresh
	// makes mpb draw even when the stream is wrapped and not an *os.File
	// (it then uses the fixed width instead of asking the terminal).
	p := mpb.New(mpb.WithOutput(r.env.Stderr), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithWidth(100), mpb.WithAutoRefresh())
	snap := func() accounting.Snapshot { return r.stats.Snapshot() }
	bar := p.AddBar(0,
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			s := snap()
			return fmt.Sprintf("%d/%d msgs", s.Done(), s.TotalMsgs)
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			s := snap()
			eta := "--"
			if s.ETA > 0 {
				eta = s.ETA.Round(time.Second).String()
			}
			return fmt.Sprintf("%s  %.0f msg/s  %s/s  ETA %s  %s", humanBytes(s.CopiedBytes), s.MsgsPerSec,
				humanBytes(int64(s.BytesPerSec)), eta, truncate(s.Folder, 30))
		})),
	)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	update := func() {
		s := snap()
		bar.SetTotal(max(s.TotalMsgs, s.Done()), false)
		bar.SetCurrent(s.Done())
	}
	for {
		select {
		case <-ctx.Done():
			update()
			bar.SetTotal(-1, true)
			p.Wait()
			return
		case <-t.C:
			update()
		}
	}
}

func (r *reporter) stop() {
	if r.cancel != nil {
		r.cancel()
		r.done.Wait()
	}
}

func (r *reporter) fatal(side string, err error) {
	if r.json {
		r.line(map[string]string{"type": "error", "side": side, "error": err.Error(), "hint": hintOf(err)})
	}
	fmt.Fprintln(r.env.Stderr, fatalMessage(side, err))
}

func (r *reporter) summary(res *migrate.Result) {
	if res == nil {
		return
	}
	if r.json {
		r.line(struct {
			Type string `json:"type"`
			*migrate.Result
		}{"summary", res})
		return
	}
	w := r.env.Stdout
	if res.DryRun {
		printPlan(w, res)
		return
	}
	s := res.Stats
	created, unchanged := 0, 0
	for _, f := range res.Folders {
		if f.Created {
			created++
		}
		if f.Unchanged {
			unchanged++
		}
	}
	var earlier int64
	for _, f := range res.Folders {
		earlier += f.Earlier
	}
	fmt.Fprintf(w, "\nFolders:  %d (%d created, %d unchanged since the last pass)\n", len(res.Folders), created, unchanged)
	fmt.Fprintf(w, "Messages: %d to deal with: %d copied, %d already present, %d skipped, %d failed", s.TotalMsgs, s.Copied, s.Present, s.Skipped, s.Failed)
	if s.Left > 0 {
		fmt.Fprintf(w, ", %d left for the next pass (stopped)", s.Left)
	}
	fmt.Fprintf(w, "; %d flag updates", s.FlagUpdates)
	if s.Deleted > 0 {
		fmt.Fprintf(w, ", %d deleted (gone from the source)", s.Deleted)
	}
	fmt.Fprintln(w)
	if earlier > 0 {
		fmt.Fprintf(w, "          %d more were copied by earlier passes and not looked at again\n", earlier)
	}
	var rebuilt int64
	for _, f := range res.Folders {
		rebuilt += f.Rebuilt
	}
	if rebuilt > 0 {
		fmt.Fprintf(w, "          %d of the copies were rebuilt by the destination from their content (content-equivalent, not byte-exact)\n", rebuilt)
	}
	secs := s.Elapsed.Seconds()
	fmt.Fprintf(w, "Bytes:    %s copied in %s (%.1f msgs/s, %s/s)\n", humanBytes(s.CopiedBytes),
		s.Elapsed.Round(time.Millisecond), float64(s.Copied)/max(secs, 1e-9), humanBytes(int64(float64(s.CopiedBytes)/max(secs, 1e-9))))
	if res.Unreachable != "" {
		fmt.Fprintf(w, "\nThe pass ended early: %s. Run the same command again once it is back: only what is missing is sent.\n", res.Unreachable)
	}
	if len(res.Failures) > 0 {
		fmt.Fprintf(w, "\nFailed messages (%d):\n", s.Failed)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  FOLDER\tID\tSIZE\tREASON")
		for _, f := range res.Failures {
			reason := f.Reason
			if f.Subject != "" {
				reason += fmt.Sprintf(" (subject: %q)", f.Subject)
			}
			uid, size := f.ID, humanBytes(f.Size)
			switch {
			case f.ID == "" && f.Messages == 0:
				uid, size = "-", "-" // no message left uncopied
			case f.ID == "":
				uid = fmt.Sprintf("all %d", f.Messages)
				if f.Size == 0 {
					size = "-"
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Folder, uid, size, reason)
		}
		_ = tw.Flush()
		hints := map[string]bool{}
		for _, f := range res.Failures {
			if f.Hint != "" && !hints[f.Hint] {
				hints[f.Hint] = true
				fmt.Fprintf(w, "  What to do: %s\n", f.Hint)
			}
		}
	}
}

func printPlan(w io.Writer, res *migrate.Result) {
	fmt.Fprintln(w, "Dry run: nothing was copied. Plan:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDESTINATION\tWHY\tPLAN\tMESSAGES\tTO COPY\tPRESENT\tSKIPPED\tBYTES TO COPY")
	var msgs, copyN, present, skipped, bytes int64
	for _, f := range res.Folders {
		dest := f.Dest
		if f.Created {
			dest += " (new)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", f.Source, dest, f.Why, planOrigin(f), f.Listed, f.ToCopy, f.Present, f.Skipped, humanBytes(f.ToCopyBytes))
		msgs += f.Listed
		copyN += f.ToCopy
		present += f.Present
		skipped += f.Skipped
		bytes += f.ToCopyBytes
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t%d\t%d\t%d\t%d\t%s\n", msgs, copyN, present, skipped, humanBytes(bytes))
	_ = tw.Flush()
	fmt.Fprintln(w, "PLAN: recorded = the destination an earlier pass decided, kept on every pass; new = decided now and kept from now on;")
	fmt.Fprintln(w, "      rule changed = a changed --map rule moves this folder (it will be recorded when the copy runs).")
}

// planOrigin says where a folder's destination comes from.
func planOrigin(f *migrate.FolderResult) string {
	if f.Plan == migrate.PlanRuleChanged && f.Was != "" {
		return fmt.Sprintf("rule changed (was %s)", f.Was)
	}
	return f.Plan
}

func progressLine(s accounting.Snapshot) string {
	return fmt.Sprintf("%d/%d messages, %s, %.1f msgs/s, folder %s", s.Done(), s.TotalMsgs, humanBytes(s.CopiedBytes), s.MsgsPerSec, s.Folder)
}

func humanBytes(n int64) string { return accounting.HumanBytes(n) }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func hintOf(err error) string { return connector.HintOf(err) }
