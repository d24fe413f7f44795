package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

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
	// HostLimit bounds mailboxes worked at once per server (source and
	// destination host), across all processes (default 5).
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
	// Name names this worker process to operators: in the API's
	// mailbox passes and the metrics' worker label (default Holder).
	Name string
	// MaxMailboxes bounds the mailboxes worked at once in the whole
	// cluster, across all worker processes (0: no bound but each
	// process's own).
	MaxMailboxes int
	// Version is the tool version written into proof reports.
	Version string
	// Queue is where a job hands its mailbox over when this process
	// shuts down (set by Open).
	queue *Queue
	// progressEvery is how often a running pass writes its progress
	// (default a second); tests lengthen it.
	progressEvery time.Duration
	// afterRun, when set, is called when a pass's work has returned and
	// before its outcome is stored (tests: a Stop in that window).
	afterRun func(ctx context.Context)
}

func (r *Runner) leaseTTL() time.Duration {
	if r.LeaseTTL <= 0 {
		return 30 * time.Second
	}
	return r.LeaseTTL
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
	mk := func(sd service.Side, e service.Endpoint, user, pass, mailbox string, admin *service.AdminCredentials, dial func(context.Context, string, string) (net.Conn, error)) (side, error) {
		raw := e.URL()
		// Exchange impersonation: user and pass are the admin's and
		// mailbox is the row's (connector.Credentials.Mailbox).
		creds := connector.Credentials{Username: user, Password: pass, Mailbox: mailbox}
		if admin != nil {
			// Microsoft 365: the app acts on the mailbox the row names.
			raw = e.MailboxURL(admin.Tenant, user)
			// With a refresh token (m365-delegated) it acts as the
			// user who signed in, on their own mailbox.
			creds.OAuth = &connector.OAuth{Provider: connector.OAuthMicrosoft, Tenant: admin.Tenant, ClientID: admin.ClientID,
				ClientSecret: admin.ClientSecret, RefreshToken: admin.RefreshToken, TokenURL: admin.TokenURL}
			if admin.RefreshToken != "" {
				// Keep the newest of the user's rotated refresh
				// tokens, off the token fetch's path.
				creds.OAuth.OnRefreshToken = func(token string) {
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						if err := r.Service.KeepRefreshToken(ctx, w.MailboxID, sd, token); err != nil {
							r.Log.Warn("keep the rotated refresh token", "mailbox", w.MailboxID, "side", sd, "error", err)
						}
					}()
				}
			}
		}
		ep, b, err := reg.Parse(raw)
		if err != nil {
			return side{}, err
		}
		o := connector.OpenOptions{Credentials: creds,
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
	if src, err = mk(service.SideSource, w.Project.Source, w.SourceLogin, w.SourcePassword, w.SourceMailbox, w.SourceAdmin, r.SourceDial); err != nil {
		return
	}
	dst, err = mk(service.SideDestination, w.Destination.Endpoint, w.DestLogin, w.DestPassword, w.DestMailbox, w.DestAdmin, nil)
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
	if w.Pass.Kind == service.PassProof {
		return r.proof(ctx, reg, w, s, d)
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

	// The live progress is written until the engine returns, and not
	// after: a tick still writing once the outcome is stored would put
	// its older counts over the final ones.
	done, reported := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reported)
		r.reportProgress(ctx, w, stats, done)
	}()
	res, runErr := migrate.Run(ctx, src, dst, opts)
	close(done)
	<-reported
	prog := progressOf(stats.Snapshot())
	out := service.Outcome{Progress: &prog}
	if res != nil {
		// Per-folder statistics for the mailbox's pass history.
		for _, f := range res.Folders {
			out.Plan = append(out.Plan, service.PlanRow{Source: f.Source, Destination: f.Dest, Messages: f.Messages, Bytes: f.ListedBytes,
				Copied: f.Copied, Present: f.Present, Skipped: f.Skipped, Failed: f.Failed, Left: f.Left, Earlier: f.Earlier, Unchanged: f.Unchanged})
		}
	}
	if runErr == nil {
		// Folders the rules leave out count as skipped by a filter. The
		// engine finished every folder: a Stop from here on does not
		// change that, nor cut these counts short.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		rows, err := excludedFolders(lctx, src, opts.Rules)
		cancel()
		if err == nil {
			for _, row := range rows {
				out.Plan = append(out.Plan, row)
				prog.TotalMsgs += row.Messages
				prog.Skipped += row.Skipped
			}
		} else if r.Log != nil {
			r.Log.Warn("excluded folders not counted", "mailbox", w.MailboxID, "error", err)
		}
	}
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
	// Whether the engine was cut short is decided here, once, from what
	// it returned: it returns no error only when it finished every
	// folder before its context was cancelled (migrate.Run), so a Stop
	// that arrives later leaves the pass completed (Runner.Work).
	switch {
	case runErr != nil && ctx.Err() != nil:
		out.Status = service.StatusStopped
		out.Detail = "stopped by the user"
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
	every := r.progressEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
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
	p := service.Progress{TotalMsgs: s.TotalMsgs, TotalBytes: s.TotalBytes, Copied: s.Copied, CopiedBytes: s.CopiedBytes,
		Present: s.Present, Skipped: s.Skipped, Failed: s.Failed, FlagUpdates: s.FlagUpdates, Folder: s.Folder,
		Rate: s.MsgsPerSec, ETA: s.ETA}
	if s.Paused != nil {
		p.PauseCause, p.PauseUntil = s.Paused.Cause, s.Paused.Until
	}
	return p
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
