package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
)

// PassArgs identifies one mailbox's part of a pass. IDs only: a job row
// is readable by anyone with database access, passwords stay sealed in
// the mailbox row.
type PassArgs struct {
	PassID    string `json:"pass_id"`
	MailboxID string `json:"mailbox_id"`
}

// Kind is the stable job kind name.
func (PassArgs) Kind() string { return "mailbox_pass" }

// Runner does the work of mailbox jobs.
type Runner struct {
	Service *service.Service
	State   *store.Store
	Metrics *Metrics
	Log     *slog.Logger
	// Holder names this process in leases (host name and pid).
	Holder string
	// HostLimit bounds mailboxes worked at once per source host, across
	// all processes (default 5).
	HostLimit int
	// Connections per side and mailbox (default 4).
	Connections int
	// StallTimeout drops a connection that moves no data for this long
	// while an answer is awaited; the pass retries on a new one (default
	// connector.DefaultStallTimeout).
	StallTimeout time.Duration
	SpoolDir     string
	// OpenHook, when set, adjusts the options a connector is opened with
	// (tests: their own CA).
	OpenHook func(*connector.OpenOptions)
	// regOnce builds the one registry of the runner: backends that keep
	// limits across mailboxes (Graph's 4 concurrent requests per app)
	// must see every pass of the process.
	regOnce sync.Once
	reg     *connector.Registry
	// SourceDial, when set, opens the connections to the source servers
	// that portal users enter: the operator's outbound policy
	// (netpolicy.Policy.DialContext). Destinations are the operator's
	// own presets and are trusted.
	SourceDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RetryBudget is how long a pass keeps retrying a side that stopped
	// answering (migrate.Options.RetryBudget; default 5 minutes).
	RetryBudget time.Duration
	// LeaseTTL is how long a lease outlives its holder's last renewal:
	// the delay before another process may take over a mailbox whose
	// worker died (default 30 s).
	LeaseTTL time.Duration
}

func (r *Runner) leaseTTL() time.Duration {
	if r.LeaseTTL <= 0 {
		return 30 * time.Second
	}
	return r.LeaseTTL
}

// Worker is the River worker for PassArgs.
type Worker struct {
	river.WorkerDefaults[PassArgs]
	R *Runner
}

// Timeout: migrations take as long as they take; a stuck server is
// handled by connection timeouts, and leases guard against a dead worker.
func (w *Worker) Timeout(*river.Job[PassArgs]) time.Duration { return -1 }

// Work runs one mailbox's part of a pass.
func (w *Worker) Work(ctx context.Context, job *river.Job[PassArgs]) error {
	r := w.R
	a := job.Args
	work, err := r.Service.LoadWork(ctx, a.PassID, a.MailboxID)
	if errors.Is(err, service.ErrNotFound) {
		return nil // deleted meanwhile: nothing to do
	}
	keyErr := errors.Is(err, service.ErrSecretKey)
	if err != nil && !keyErr {
		return err
	}
	// A job replaced after a restart (see Queue.Recover), or one whose
	// mailbox pass already ended, has nothing left to do.
	if st, jobID, err := r.Service.MailboxPassStatus(ctx, a.PassID, a.MailboxID); err != nil || (st.Terminal() && st != service.StatusNotStarted) ||
		(jobID != 0 && jobID != job.ID) {
		return nil
	}
	if st, _ := r.Service.PassState(ctx, a.PassID); st == "stopping" || st == "stopped" {
		return r.Service.FinishMailboxPass(ctx, a.PassID, a.MailboxID, service.Outcome{Status: service.StatusStopped, Detail: "stopped"})
	}
	if keyErr {
		// The passwords were sealed with another key: retrying (River
		// would, 25 times over days) cannot help, new passwords can.
		if r.Metrics != nil {
			r.Metrics.failures.WithLabelValues(string(service.ClassSecretKey)).Inc()
		}
		return r.Service.FinishMailboxPass(ctx, a.PassID, a.MailboxID, service.Outcome{Status: service.StatusFailed,
			Class: service.ClassSecretKey, Error: service.ErrSecretKey.Error(), Detail: "the stored passwords cannot be read"})
	}
	// One worker per mailbox, a bounded number per source host. The
	// holder names the job, not just the process: two jobs of one
	// process (a stopped pass still winding down and the next one) must
	// not share a mailbox either.
	holder := fmt.Sprintf("%s/job:%d", r.Holder, job.ID)
	mbLease := "mailbox:" + a.MailboxID
	ok, err := r.Service.AcquireLease(ctx, mbLease, holder, r.leaseTTL())
	if err != nil {
		return err
	}
	if !ok {
		return river.JobSnooze(5 * time.Second)
	}
	defer r.Service.ReleaseLease(context.WithoutCancel(ctx), mbLease, holder) //nolint:errcheck // expires anyway
	hostLease, err := r.waitHostSlot(ctx, work.Project.Source.Host, holder)
	if err != nil {
		return err
	}
	if hostLease == "" {
		return river.JobSnooze(time.Second)
	}
	defer r.Service.ReleaseLease(context.WithoutCancel(ctx), hostLease, holder) //nolint:errcheck // expires anyway

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go r.renew(ctx, cancel, holder, mbLease, hostLease)

	st := service.StatusMigrating
	if !work.Pass.Kind.Copies() {
		st = service.StatusVerifying
	}
	if err := r.Service.BeginMailboxPass(ctx, a.PassID, a.MailboxID, st); err != nil {
		return err
	}
	start := time.Now()
	out := r.run(ctx, work)
	if ctx.Err() != nil {
		// Stopped by the user, or the process is shutting down.
		if s, _ := r.Service.PassState(context.WithoutCancel(ctx), a.PassID); s == "stopping" || s == "stopped" {
			out.Status, out.Class, out.Error, out.Detail = service.StatusStopped, "", "", "stopped by the user"
		} else {
			// Shutting down: the state is checkpointed; run again
			// after the restart, where it resumes without duplicates.
			return river.JobSnooze(time.Second)
		}
	}
	bg := context.WithoutCancel(ctx)
	if err := r.Service.FinishMailboxPass(bg, a.PassID, a.MailboxID, out); err != nil {
		return err
	}
	if r.Metrics != nil {
		r.Metrics.passes.WithLabelValues(string(work.Pass.Kind), string(out.Status)).Inc()
		r.Metrics.passDuration.WithLabelValues(string(work.Pass.Kind)).Observe(time.Since(start).Seconds())
		if out.Class != "" {
			r.Metrics.failures.WithLabelValues(string(out.Class)).Inc()
		}
	}
	return nil
}

// waitHostSlot waits a while for one of the source host's slots. Waiting
// here rather than snoozing the job for seconds lets the next mailbox
// start as soon as one finishes: with 20 mailboxes on one host and 5
// slots, 5-second snoozes made the passes take twice as long as the
// copying. After hostWait the job is snoozed (an empty lease) so that a
// long queue does not hold every worker.
func (r *Runner) waitHostSlot(ctx context.Context, host, holder string) (string, error) {
	deadline := time.Now().Add(hostWait)
	for {
		lease, err := r.hostSlot(ctx, host, holder)
		if err != nil || lease != "" || time.Now().After(deadline) {
			return lease, err
		}
		// Jitter keeps waiting jobs from polling in step.
		wait := hostPoll + time.Duration(rand.Int64N(int64(hostPoll)))
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

const (
	hostWait = 30 * time.Second
	hostPoll = 100 * time.Millisecond
)

func (r *Runner) hostSlot(ctx context.Context, host, holder string) (string, error) {
	limit := r.HostLimit
	if limit <= 0 {
		limit = 5
	}
	for i := 0; i < limit; i++ {
		res := fmt.Sprintf("host:%s:%d", strings.ToLower(host), i)
		ok, err := r.Service.AcquireLease(ctx, res, holder, r.leaseTTL())
		if err != nil {
			return "", err
		}
		if ok {
			return res, nil
		}
	}
	return "", nil
}

// renew keeps the leases alive; losing one (another process took over
// after a long stall) stops the work rather than risk two writers.
func (r *Runner) renew(ctx context.Context, cancel context.CancelCauseFunc, holder string, leases ...string) {
	t := time.NewTicker(r.leaseTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, l := range leases {
				ok, err := r.Service.AcquireLease(ctx, l, holder, r.leaseTTL())
				if err == nil && !ok {
					cancel(fmt.Errorf("lost lease %s", l))
					return
				}
			}
		}
	}
}

// side is one end of a pass as the registry opens it.
type side struct {
	e connector.Endpoint
	o connector.OpenOptions
}

// sides turns the project's source and the destination preset into
// connector addresses. Every connector is opened through the registry
// (connector/all): the service keeps an endpoint as type, host, port and
// security, which make its URL.
func (r *Runner) sides(reg *connector.Registry, w service.Work) (src, dst side, err error) {
	mk := func(e service.Endpoint, user, pass, mailbox string, dial func(context.Context, string, string) (net.Conn, error)) (side, error) {
		ep, b, err := reg.Parse(e.URL())
		if err != nil {
			return side{}, err
		}
		o := connector.OpenOptions{Credentials: connector.Credentials{Username: user, Password: pass, Mailbox: mailbox},
			InsecureSkipVerify: e.Insecure, AllowPlaintext: e.AllowPlaintext, Dial: dial,
			StallTimeout: r.StallTimeout, SpoolDir: r.SpoolDir}
		if !b.OneSession {
			// POP3 servers usually lock the maildrop: one session there.
			o.MaxConnections = r.Connections
			if o.MaxConnections <= 0 {
				o.MaxConnections = 4
			}
		}
		if r.OpenHook != nil {
			r.OpenHook(&o)
		}
		return side{ep, o}, nil
	}
	if src, err = mk(w.Project.Source, w.SourceLogin, w.SourcePassword, w.SourceMailbox, r.SourceDial); err != nil {
		return
	}
	dst, err = mk(w.Destination.Endpoint, w.DestLogin, w.DestPassword, w.DestMailbox, nil)
	return
}

// run does the pass and describes how it ended.
func (r *Runner) run(ctx context.Context, w service.Work) service.Outcome {
	r.regOnce.Do(func() { r.reg = all.Registry() })
	reg := r.reg
	s, d, err := r.sides(reg, w)
	if err != nil {
		return service.Outcome{Status: service.StatusFailed, Class: service.ClassConfig, Error: err.Error()}
	}
	src, dst, srcErr, dstErr := reg.OpenBoth(ctx, s.e, s.o, d.e, d.o)
	if srcErr != nil {
		return failed(w, service.SideSource, srcErr)
	}
	if dstErr != nil {
		return failed(w, service.SideDestination, dstErr)
	}
	defer src.Close()
	defer dst.Close()
	if w.Pass.Kind == service.PassVerify {
		return service.Outcome{Status: service.StatusReady, Detail: "both mailboxes accept the login"}
	}
	opts, err := engineOptions(w)
	if err != nil {
		return service.Outcome{Status: service.StatusFailed, Class: service.ClassConfig, Error: err.Error()}
	}
	stats := accounting.New()
	opts.Stats = stats
	opts.SpoolDir = r.SpoolDir
	opts.RetryBudget = r.RetryBudget
	// The trial reads the recorded folder plan too (a dry run never
	// writes), so that it shows where each folder will really go.
	opts.State = r.State
	opts.Pair = "mailbox:" + w.MailboxID
	if w.Pass.Kind == service.PassTrial {
		return r.trial(ctx, w, src, dst, opts)
	}

	done := make(chan struct{})
	go r.reportProgress(ctx, w, stats, done)
	res, runErr := migrate.Run(ctx, src, dst, opts)
	close(done)
	prog := progressOf(stats.Snapshot())
	out := service.Outcome{Progress: &prog}
	if r.Metrics != nil {
		r.Metrics.copied.Add(float64(prog.Copied))
		r.Metrics.copiedBytes.Add(float64(prog.CopiedBytes))
	}
	for _, f := range res.Failures {
		out.Failures = append(out.Failures, service.FailedItem{Folder: f.Folder, ID: f.ID, Size: f.Size, Messages: f.Messages,
			Kind: f.Kind, Reason: f.Reason, Subject: f.Subject})
		if r.Metrics != nil {
			r.Metrics.failures.WithLabelValues(itemClass(f.Kind)).Inc()
		}
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		out.Status = service.StatusStopped
	case runErr != nil:
		f := failed(w, sideOf(runErr), runErr)
		f.Progress, f.Failures = out.Progress, out.Failures
		return f
	case len(res.Failures) > 0:
		out.Status = service.StatusCompletedWithErrors
		out.Detail = fmt.Sprintf("%d messages could not be copied", prog.Failed)
		if prog.Failed == 0 { // e.g. flag changes that could not be carried over
			out.Detail = res.Failures[0].Reason
		}
		if res.Unreachable != "" {
			out.Detail += "; " + res.Unreachable
		}
	default:
		out.Status = service.StatusCompleted
	}
	return out
}

func itemClass(kind string) string {
	switch kind {
	case connector.KindQuota.String():
		return string(service.ClassQuota)
	case connector.KindTransient.String():
		return string(service.ClassThrottled)
	}
	return string(service.ClassTooLarge)
}

// trial checks both logins, reads the folder plan with counts and sizes,
// and the destination's quota, warning when the source exceeds 70% of
// the destination's capacity (the seed's rule).
func (r *Runner) trial(ctx context.Context, w service.Work, src connector.Source, dst connector.Destination, opts migrate.Options) service.Outcome {
	opts.DryRun = true
	res, err := migrate.Run(ctx, src, layer.DryRun(dst), opts)
	if err != nil {
		return failed(w, sideOf(err), err)
	}
	out := service.Outcome{Status: service.StatusReady, Detail: "trial passed"}
	var total int64
	for _, f := range res.Folders {
		out.Plan = append(out.Plan, service.PlanRow{Source: f.Source, Destination: f.Dest, Messages: f.Listed, Bytes: f.ListedBytes})
		total += f.ListedBytes
	}
	prog := progressOf(res.Stats)
	prog.TotalBytes = total
	out.Progress = &prog
	if qr, can := dst.(connector.QuotaReader); !connector.FeaturesOf(dst).Quota || !can {
		// No quota to read: nothing to compare with.
	} else if q, ok, err := qr.Quota(ctx); err == nil && ok {
		out.Quota.Used, out.Quota.Limit = q.Used, q.Limit
		if free := q.Limit - q.Used; q.Limit > 0 && total > free {
			// It cannot fit: a migration would stop with the mailbox
			// full part way through.
			return service.Outcome{Status: service.StatusFailed, Class: service.ClassQuota, Side: service.SideDestination, Progress: out.Progress,
				Plan: out.Plan, Quota: out.Quota,
				Error: fmt.Sprintf("the source mailbox holds %s, but the destination mailbox has only %s free of its %s quota",
					human(total), human(max(free, 0)), human(q.Limit))}
		}
		if q.Limit > 0 && float64(total) > 0.7*float64(q.Limit) {
			out.Warning = fmt.Sprintf("The source mailbox holds %s, more than 70%% of the destination's capacity of %s. "+
				"Ask for a larger destination mailbox before migrating, or exclude folders.", human(total), human(q.Limit))
		}
	}
	return out
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}

func (r *Runner) reportProgress(ctx context.Context, w service.Work, stats *accounting.Stats, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Service.UpdateProgress(ctx, w.Pass.ID, w.MailboxID, progressOf(stats.Snapshot()))
		}
	}
}

func progressOf(s accounting.Snapshot) service.Progress {
	return service.Progress{TotalMsgs: s.TotalMsgs, TotalBytes: s.TotalBytes, Copied: s.Copied, CopiedBytes: s.CopiedBytes,
		Present: s.Present, Skipped: s.Skipped, Failed: s.Failed, FlagUpdates: s.FlagUpdates, Folder: s.Folder,
		Rate: s.MsgsPerSec, ETA: s.ETA}
}

func engineOptions(w service.Work) (migrate.Options, error) {
	var o migrate.Options
	var err error
	if o.Rules, err = migrate.ParseRules(w.Project.Options.Include, w.Project.Options.Exclude, w.Project.Options.Mappings); err != nil {
		return o, err
	}
	if d := w.Project.Options.Since; d != "" {
		o.Since, _ = time.Parse("2006-01-02", d)
	}
	if d := w.Project.Options.Before; d != "" {
		o.Before, _ = time.Parse("2006-01-02", d)
	}
	if w.Pass.Kind == service.PassPreStage && !w.Pass.Cutoff.IsZero() && (o.Before.IsZero() || w.Pass.Cutoff.Before(o.Before)) {
		o.Before = w.Pass.Cutoff
	}
	o.LogSubjects = w.Project.Options.LogSubjects
	return o, nil
}

func sideOf(err error) service.Side {
	if strings.HasPrefix(err.Error(), "destination:") {
		return service.SideDestination
	}
	return service.SideSource
}

// failed classifies a mailbox-stopping error for Solve Issue.
func failed(w service.Work, side service.Side, err error) service.Outcome {
	class := service.ClassOther
	switch connector.KindOf(err) {
	case connector.KindAuth:
		class = service.ClassAuth
		if w.MigratedBefore {
			// It worked in an earlier pass: the password was changed
			// during the migration, which the seed warns about.
			class = service.ClassPasswordChanged
		}
	case connector.KindHost:
		class = service.ClassHost
	case connector.KindConnect:
		class = service.ClassConnect
	case connector.KindTLS:
		class = service.ClassTLS
	case connector.KindQuota:
		class = service.ClassQuota
	case connector.KindTransient:
		class = service.ClassThrottled
	case connector.KindConfig:
		class = service.ClassConfig
	case connector.KindMissingFolder:
		class = service.ClassOther
	case connector.KindNoAccount:
		class = service.ClassMailboxMissing
	case connector.KindPermission:
		class = service.ClassPermission
	}
	if errors.As(err, new(*migrate.UnreachableError)) {
		// Retried for the whole budget before anything could be
		// planned: a connection problem, not throttling.
		class = service.ClassConnect
	}
	msg := err.Error()
	if hint := connector.HintOf(err); hint != "" {
		msg += " — " + hint
	}
	return service.Outcome{Status: service.StatusFailed, Class: class, Side: side, Error: msg}
}
