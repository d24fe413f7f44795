package jobs

import (
	"context"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/verify"
)

// proof runs a "Verify migration" pass for one mailbox (issue 15): both
// mailboxes are opened as sources, read only, and compared by
// internal/verify with the project's folder rules and filters and the
// folder plan the copying passes recorded for this pair. The sealed
// report is stored before the part is finished, so that a finished part
// always has its report.
func (r *Runner) proof(ctx context.Context, reg *connector.Registry, w service.Work, s, d side) service.Outcome {
	opts, err := engineOptions(w)
	if err != nil {
		return service.Outcome{Status: service.StatusFailed, Class: service.ClassConfig, Error: err.Error()}
	}
	opts.State = r.State
	opts.Pair = "mailbox:" + w.MailboxID
	opts.RetryBudget = r.RetryBudget
	src, err := reg.OpenSource(ctx, s.e, s.o)
	if err != nil {
		return failed(w, service.SideSource, err)
	}
	defer src.Close()
	// The destination is read as a source: listed and fetched, never
	// written to.
	dst, err := reg.OpenSource(ctx, d.e, d.o)
	if err != nil {
		return failed(w, service.SideDestination, err)
	}
	defer dst.Close()
	o := w.Project.Options
	version := r.Version
	if version == "" {
		version = "dev"
	}
	rep, err := verify.Run(ctx, src, dst, verify.Options{Copy: opts, Version: version, Source: s.e.Redacted, Destination: d.e.Redacted,
		Settings: verify.Settings{Include: o.Include, Exclude: o.Exclude, Map: o.Mappings, Since: o.Since, Before: o.Before}})
	if err != nil {
		if ctx.Err() != nil {
			return service.Outcome{Status: service.StatusStopped}
		}
		return failed(w, sideOf(err), err)
	}
	if err := r.Service.SaveProof(ctx, w, rep); err != nil {
		return service.Outcome{Status: service.StatusFailed, Class: service.ClassOther, Error: err.Error()}
	}
	t := rep.Totals
	out := service.Outcome{Status: service.StatusCompleted, Detail: "Verify migration: " + rep.Verdict,
		// Source counts only: a proof copies nothing, and the mailbox's
		// copy statistics (copied, already there, failed) add up passes.
		Progress: &service.Progress{TotalMsgs: t.SourceMessages, TotalBytes: t.SourceBytes}}
	if !rep.Exact {
		out.Status = service.StatusCompletedWithErrors
	}
	return out
}
