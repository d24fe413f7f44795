package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailferry/mailferry/internal/autoconfig"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
	"github.com/mailferry/mailferry/internal/connector/ews"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/jobs"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/netpolicy"
	"github.com/mailferry/mailferry/internal/notify"
	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/web"
)

const serveUsage = `Usage: mailferry serve [flags]

Runs the migration service: the JSON API (and the portal) plus workers
that run passes as durable jobs. On embedded defaults it needs no setup:
state and jobs live in one SQLite file (mailferry.db) in the data
directory, and the API listens on 127.0.0.1:8080.

With --database postgres://… (or MAILFERRY_DATABASE_URL) the state and
the job queue are in PostgreSQL, and any number of API processes
(mailferry serve --no-workers) and worker processes (mailferry worker)
on any number of machines share it. They must all be given the same
secret key (MAILFERRY_SECRET_KEY) and the same destination presets.

Destination presets come from --presets FILE (JSON, see README) or
--preset 'Name=imaps://host[:port]' flags; without either, a built-in
"Rackspace Email" preset is offered.

Email (pass reports and portal login links): --smtp-host etc.; without
SMTP, mail is written to the log and to the outbox folder in the data
directory.

The portal (http://LISTEN/) shows the user agreement of --agreement-file,
else a built-in one.

Outbound connections: the source servers that portal and API users enter
may not be at loopback, private, link-local or other non-public
addresses (checked on the resolved address when the connection is made),
so that nobody can use the service to reach the network it runs in.
--allow-net lets users reach a range anyway (e.g. your own mail server
at 10.1.2.3), --deny-net refuses more, and --deny-private=false lifts the
default. Destination presets are the operator's own and always allowed.

Flags:
`

const workerUsage = `Usage: mailferry worker --database postgres://… [flags]

Runs workers only: it takes mailbox jobs from the queue in the PostgreSQL
database and migrates them, with no HTTP API or portal (see --metrics-listen
for Prometheus). Start as many as you like, on as many machines; the
portal and API run in mailferry serve --no-workers. The limits hold across
all of them: --host-limit mailboxes per mail server, --max-mailboxes in
the whole cluster, one worker per mailbox. A worker that dies has its
mailboxes taken over by the others once their leases expire (--lease-ttl);
they resume from the stored sync state without duplicates.

Every process needs the same secret key (MAILFERRY_SECRET_KEY), the same
destination presets (--preset, --presets) and, for the pass reports it
may send, the same email settings as mailferry serve.

Flags:
`

// role is what a process of the service does.
type role int

const (
	roleServe  role = iota // API and portal, and workers unless --no-workers
	roleWorker             // workers only
)

type serveFlags struct {
	listen, dataDir, presetsFile, baseURL    string
	agreementFile                            string
	presets                                  []string
	smtpHost, smtpUser, smtpFrom, smtpSec    string
	smtpPassFile                             string
	smtpPort, workers, hostLimit, connection int
	maxMailboxes, dbPool                     int
	maxPasses                                int
	noWorkers, jsonLogs                      bool
	database, workerName, metricsListen      string
	leaseTTL, rescueAfter, stallTimeout      time.Duration
	allowNets, denyNets                      []string
	denyPrivate                              bool
	readTimeout, writeTimeout, idleTimeout   time.Duration
	retryBudget                              time.Duration
	lookupDNS, lookupISPDB                   string
	lookup                                   bool
	m365AuthorizeURL, m365TokenURL           string
}

func runServe(ctx context.Context, env Env, args []string) int {
	return runRole(ctx, env, args, roleServe)
}

func runWorker(ctx context.Context, env Env, args []string) int {
	return runRole(ctx, env, args, roleWorker)
}

func runRole(ctx context.Context, env Env, args []string, r role) int {
	name, usageText := "serve", serveUsage
	if r == roleWorker {
		name, usageText = "worker", workerUsage
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f serveFlags
	fs.StringVar(&f.database, "database", "", "PostgreSQL database URL, postgres://user@host/db (default $MAILFERRY_DATABASE_URL, else SQLite in the data directory)")
	fs.IntVar(&f.dbPool, "db-pool", 0, "PostgreSQL connections this process may open (default: 2 per worker plus 10; pool_max_conns in the URL wins)")
	fs.StringVar(&f.dataDir, "data-dir", "", "state (SQLite), key, spool and outbox (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	if r == roleServe {
		fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve the API and portal on")
		fs.StringVar(&f.agreementFile, "agreement-file", "", "text file with the user agreement shown on the portal's login page (blank lines separate paragraphs)")
		fs.BoolVar(&f.noWorkers, "no-workers", false, "serve the API and portal only; mailferry worker processes run the jobs (needs --database)")
		fs.BoolVar(&f.noWorkers, "api-only", false, "the same as --no-workers")
		fs.BoolVar(&f.lookup, "settings-lookup", true, "on \"Start new migration\", offer the source settings that public data (DNS SRV records, autoconfig files, the ISPDB, Autodiscover, MX) gives for an address; it goes only where --allow-net/--deny-net allow")
		fs.StringVar(&f.lookupDNS, "settings-lookup-dns", "", "DNS server (host:port) the settings lookup asks (default: the first of /etc/resolv.conf)")
		fs.StringVar(&f.lookupISPDB, "settings-lookup-ispdb", autoconfig.DefaultISPDBURL, "base URL of the ISPDB the settings lookup asks (it learns the domain, never the address); \"off\" to skip it")
		fs.DurationVar(&f.readTimeout, "read-timeout", time.Minute, "advanced: longest a client may take to send a request, body included (uploads get 5 minutes)")
		fs.DurationVar(&f.writeTimeout, "write-timeout", 2*time.Minute, "advanced: longest a response may take to send (downloads get 10 minutes)")
		fs.DurationVar(&f.idleTimeout, "idle-timeout", 2*time.Minute, "advanced: how long an idle keep-alive connection stays open")
	} else {
		fs.StringVar(&f.metricsListen, "metrics-listen", "", "address to serve /metrics and /healthz on, e.g. 127.0.0.1:9464 (default: none, no HTTP at all)")
	}
	fs.StringVar(&f.presetsFile, "presets", "", "JSON file of destination presets")
	fs.Func("preset", "destination preset 'Name=imaps://host[:port]' (repeatable; ?insecure=1&allow_plaintext=1 for test servers)", appendTo(&f.presets))
	fs.StringVar(&f.baseURL, "base-url", "", "public URL of the portal, for links in emails (default http://LISTEN; workers: give the portal's)")
	fs.StringVar(&f.smtpHost, "smtp-host", "", "SMTP server for outgoing mail (none: log and outbox)")
	fs.IntVar(&f.smtpPort, "smtp-port", 0, "SMTP port (default 587, or 465 with --smtp-security tls)")
	fs.StringVar(&f.smtpUser, "smtp-user", "", "SMTP user name")
	fs.StringVar(&f.smtpPassFile, "smtp-password-file", "", "file with the SMTP password (or MAILFERRY_SMTP_PASSWORD)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "Mailferry <mailferry@localhost>", "sender of outgoing mail")
	fs.StringVar(&f.smtpSec, "smtp-security", "", "starttls, tls or none")
	fs.IntVar(&f.workers, "workers", 10, "mailboxes migrated at once by this process")
	fs.IntVar(&f.hostLimit, "host-limit", 5, "mailboxes migrated at once per mail server (source or destination), across all workers")
	fs.IntVar(&f.maxMailboxes, "max-mailboxes", 0, "mailboxes migrated at once in the whole cluster, across all workers (0: no limit but each process's --workers)")
	fs.IntVar(&f.connection, "connections", 4, "connections per server and mailbox")
	fs.IntVar(&f.maxPasses, "max-passes", 0, "migration passes (pre-stage, full, migrate new items, retry errors) one mailbox may take part in; a pass over the limit is refused (0: no limit)")
	fs.StringVar(&f.workerName, "worker-name", "", "this worker's name in the API and in metrics (default HOST:PID)")
	fs.DurationVar(&f.retryBudget, "retry-budget", migrate.DefaultRetryBudget,
		"how long a pass keeps retrying a server that stopped answering before it ends and reports what was not copied")
	fs.BoolVar(&f.jsonLogs, "json-logs", false, "structured logs as JSON")
	fs.DurationVar(&f.stallTimeout, "stall-timeout", connector.DefaultStallTimeout,
		"drop a connection that moves no data for this long while an answer is awaited, and retry on a new one")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", 30*time.Second, "advanced: how long a dead worker keeps its mailboxes locked before another takes them over")
	fs.DurationVar(&f.rescueAfter, "rescue-after", time.Minute, "advanced: when River retires the jobs of dead workers once their mailboxes were taken over")
	fs.Func("allow-net", "address range (CIDR, or one address) that users' source servers may be in although it is not public, e.g. 10.1.2.0/24 (repeatable)", appendTo(&f.allowNets))
	fs.Func("deny-net", "address range that users' source servers may never be in, public or not (repeatable; wins over --allow-net)", appendTo(&f.denyNets))
	fs.BoolVar(&f.denyPrivate, "deny-private", true, "refuse users' source servers at loopback, private, link-local and other non-public addresses")
	fs.StringVar(&f.m365AuthorizeURL, "m365-authorize-url", service.MicrosoftAuthorizeURL, "Microsoft identity authorization endpoint where end users sign in (kind m365-delegated; {tenant} is replaced), for national clouds")
	fs.StringVar(&f.m365TokenURL, "m365-token-url", service.MicrosoftTokenURL, "Microsoft identity token endpoint for end users' sign-ins and their refresh tokens ({tenant} is replaced), for national clouds")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "mailferry %s: unexpected argument %q (flags start with --)\n", name, fs.Arg(0))
		return ExitUsage
	}
	if f.retryBudget <= 0 {
		fmt.Fprintf(env.Stderr, "mailferry %s: --retry-budget must be a positive duration, e.g. 5m\n", name)
		return ExitUsage
	}
	if f.stallTimeout < time.Second {
		fmt.Fprintf(env.Stderr, "mailferry %s: --stall-timeout must be at least 1s, e.g. --stall-timeout 60s\n", name)
		return ExitUsage
	}
	if f.database == "" {
		f.database = env.Getenv("MAILFERRY_DATABASE_URL")
	}
	var handler slog.Handler = slog.NewTextHandler(env.Stderr, nil)
	if f.jsonLogs {
		handler = slog.NewJSONHandler(env.Stderr, nil)
	}
	log := slog.New(handler)
	if err := serve(ctx, env, f, r, log); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "mailferry %s: %v\n", name, err)
			return ExitUsage
		}
		log.Error("mailferry "+name+" stopped", "error", err)
		return ExitStopped
	}
	return ExitOK
}

// settingsFinder is the settings lookup of "Start new migration": every
// connection through the outbound policy, and only hosts the policy
// allows offered.
func settingsFinder(f serveFlags, policy *netpolicy.Policy) *autoconfig.Finder {
	opts := autoconfig.Options{Dial: policy.DialContext, CheckAddr: policy.Check, DNSServer: f.lookupDNS, ISPDBURL: f.lookupISPDB}
	if f.lookupISPDB == "off" || f.lookupISPDB == "" {
		opts.ISPDBURL, opts.DisableISPDB = "", true
	}
	return autoconfig.New(opts)
}

// checkDatabase refuses a --database that is not a PostgreSQL URL, and a
// role that needs one without it.
func checkDatabase(f serveFlags, r role) error {
	if f.database != "" && !store.IsPostgresURL(f.database) {
		return usageError{fmt.Sprintf("--database %s: give a PostgreSQL URL, postgres://user[:password]@host[:port]/database[?sslmode=…], "+
			"or leave it unset for the embedded SQLite database in the data directory", store.RedactURL(f.database))}
	}
	if f.database != "" {
		return nil
	}
	switch {
	case r == roleWorker:
		return usageError{"mailferry worker needs a PostgreSQL database shared with mailferry serve: --database postgres://… or " +
			"MAILFERRY_DATABASE_URL. With the embedded SQLite database, mailferry serve runs the workers itself"}
	case f.noWorkers:
		return usageError{"--no-workers needs a PostgreSQL database shared with mailferry worker processes: --database postgres://… or " +
			"MAILFERRY_DATABASE_URL. With the embedded SQLite database, mailferry serve runs the workers itself"}
	}
	return nil
}

// outboundPolicy builds the policy of --allow-net, --deny-net and
// --deny-private.
// microsoftIdentity is where end users sign in (checked https above),
// reached through the outbound policy like users' servers.
func microsoftIdentity(f serveFlags, policy *netpolicy.Policy) service.MicrosoftIdentity {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: policy.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second}}
	return service.MicrosoftIdentity{AuthorizeURL: f.m365AuthorizeURL, TokenURL: f.m365TokenURL, HTTPClient: client}
}

func outboundPolicy(f serveFlags, log *slog.Logger) (*netpolicy.Policy, error) {
	cfg := netpolicy.Config{AllowNonPublic: !f.denyPrivate}
	for _, l := range []struct {
		flag string
		in   []string
		out  *[]netip.Prefix
	}{{"--allow-net", f.allowNets, &cfg.Allow}, {"--deny-net", f.denyNets, &cfg.Deny}} {
		for _, v := range l.in {
			for _, part := range strings.Split(v, ",") {
				p, err := netpolicy.ParsePrefix(part)
				if err != nil {
					return nil, usageError{fmt.Sprintf("%s: %v", l.flag, err)}
				}
				*l.out = append(*l.out, p)
			}
		}
	}
	cfg.OnRefuse = func(host string, addr netip.Addr, reason string) {
		log.Warn("outbound connection refused by policy (see --allow-net)", "host", host, "address", addr.String(), "reason", reason)
	}
	return netpolicy.New(cfg), nil
}

// httpServer is the portal's and API's server. Every phase of a
// connection has a deadline, so that slow or idle clients cannot hold
// connections (and their goroutines) open: the header must arrive within
// 10 s, the whole request within read, the answer within write, and a
// keep-alive connection is closed after idle. Handlers that move more
// data (CSV uploads and downloads) extend their own deadlines.
func httpServer(h http.Handler, read, write, idle time.Duration) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: min(10*time.Second, read), ReadTimeout: read, WriteTimeout: write,
		IdleTimeout: idle, MaxHeaderBytes: 64 << 10}
}

func serve(ctx context.Context, env Env, f serveFlags, r role, log *slog.Logger) error {
	if err := checkDatabase(f, r); err != nil {
		return err
	}
	dir, err := dataDir(env, f.dataDir)
	if err == nil {
		err = prepareDataDir(dir)
	}
	if err != nil {
		return err
	}
	presets, err := loadPresets(f.presetsFile, f.presets)
	if err != nil {
		return usageError{err.Error()}
	}
	policy, err := outboundPolicy(f, log)
	if err != nil {
		return err
	}
	durations := []struct {
		name string
		v    time.Duration
	}{{"--lease-ttl", f.leaseTTL}, {"--rescue-after", f.rescueAfter}}
	if r == roleServe {
		durations = append(durations, []struct {
			name string
			v    time.Duration
		}{{"--read-timeout", f.readTimeout}, {"--write-timeout", f.writeTimeout}, {"--idle-timeout", f.idleTimeout}}...)
	}
	for _, d := range durations {
		if d.v <= 0 {
			return usageError{fmt.Sprintf("%s %v: must be longer than zero", d.name, d.v)}
		}
	}
	if f.leaseTTL < 300*time.Millisecond {
		return usageError{fmt.Sprintf("--lease-ttl %v: must be at least 300ms (leases are renewed every third of it)", f.leaseTTL)}
	}
	for _, n := range []struct {
		name      string
		v, lo, hi int
	}{{"--workers", f.workers, 1, 1000}, {"--host-limit", f.hostLimit, 1, 1000}, {"--connections", f.connection, 1, 16},
		{"--max-mailboxes", f.maxMailboxes, 0, 100000}, {"--db-pool", f.dbPool, 0, 10000}, {"--max-passes", f.maxPasses, 0, 1000}} {
		if n.v < n.lo || n.v > n.hi {
			return usageError{fmt.Sprintf("%s %d: must be between %d and %d", n.name, n.v, n.lo, n.hi)}
		}
	}
	for _, u := range []struct{ flag, v string }{{"--m365-authorize-url", f.m365AuthorizeURL}, {"--m365-token-url", f.m365TokenURL}} {
		// Codes, client secrets and refresh tokens are sent there.
		if p, err := url.Parse(strings.ReplaceAll(u.v, "{tenant}", "t")); err != nil || p.Scheme != "https" || p.Host == "" {
			return usageError{fmt.Sprintf("%s %q: give an https URL (codes and secrets are sent there)", u.flag, u.v)}
		}
	}
	var agreement string
	if f.agreementFile != "" {
		b, err := os.ReadFile(f.agreementFile)
		if err != nil {
			return fmt.Errorf("agreement file: %w", err)
		}
		agreement = string(b)
	}
	work := r == roleWorker || !f.noWorkers
	pool := f.dbPool
	if pool == 0 {
		pool = 10
		if work {
			pool += 2 * f.workers
		}
	}
	svc, st, err := openService(ctx, env, dir, f.database, pool, presets, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if n, err := svc.UnreadableSecrets(ctx); err == nil && n > 0 {
		log.Warn("the secret key does not open the stored passwords of some mailboxes: their passes fail until the passwords are "+
			"entered again, or the original key is restored (secret.key in the data directory, or MAILFERRY_SECRET_KEY)", "mailboxes", n)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	host, _ := os.Hostname()
	name := f.workerName
	if name == "" {
		name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	runner := &jobs.Runner{Service: svc, State: st, Metrics: jobs.NewMetrics(reg, name), Log: log, Name: name, Version: Version,
		Holder: fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano()), HostLimit: f.hostLimit, Connections: f.connection,
		LeaseTTL: f.leaseTTL, MaxMailboxes: f.maxMailboxes, SourceDial: policy.DialContext, RetryBudget: f.retryBudget,
		StallTimeout: f.stallTimeout}
	q, err := jobs.Open(ctx, st, runner, jobs.Config{MaxWorkers: f.workers, Work: work, Log: log, RescueAfter: f.rescueAfter, DataDir: dir})
	if err != nil {
		return err
	}
	svc.SetQueue(q)
	svc.SetMaxPasses(f.maxPasses)
	svc.SetMicrosoftIdentity(microsoftIdentity(f, policy))
	svc.SetPlanner(runner.Preview)
	reg.MustRegister(svc.StatusCollector())

	base := f.baseURL
	switch {
	case base != "":
	case r == roleServe:
		base = "http://" + f.listen
	default:
		// A worker sends the report of a pass it finishes last; its
		// link must lead to the portal, which it does not serve.
		base = "http://127.0.0.1:8080"
		log.Warn("no --base-url: the links in the pass reports this worker sends point to " + base +
			"; give every worker the portal's public URL with --base-url")
	}
	sender, err := mailer(env, f, dir, log)
	if err != nil {
		return err
	}
	send := func(ctx context.Context, to, subject, text string) error {
		err := sender.Send(ctx, notify.Message{To: to, Subject: subject, Text: text})
		if err != nil {
			log.Error("notification not sent", "to", to, "error", err)
		}
		return err
	}
	svc.SetNotifier(send, base)

	var srv *http.Server
	var ln net.Listener
	switch {
	case r == roleServe:
		if ln, err = net.Listen("tcp", f.listen); err != nil {
			return fmt.Errorf("listen on %s: %w (is another mailferry running? choose another address with --listen)", f.listen, err)
		}
		handler := web.New(svc, log, reg)
		// The portal mails login links with the same sender as pass reports.
		portalCfg := web.PortalConfig{BaseURL: base, Agreement: agreement, SendMail: send, HostLimit: f.hostLimit}
		if f.lookup {
			portalCfg.Settings = settingsFinder(f, policy)
		}
		handler.SetPortal(portalCfg)
		srv = httpServer(handler, f.readTimeout, f.writeTimeout, f.idleTimeout)
	case f.metricsListen != "":
		if ln, err = net.Listen("tcp", f.metricsListen); err != nil {
			return fmt.Errorf("listen on %s: %w (choose another address with --metrics-listen)", f.metricsListen, err)
		}
		srv = httpServer(workerHandler(st, reg), 10*time.Second, time.Minute, time.Minute)
	}
	if work {
		if err := q.Start(ctx); err != nil {
			return err
		}
	}
	attrs := []any{"engine", st.Engine(), "data_dir", dir, "presets", len(presets), "workers", work}
	if f.database != "" {
		attrs = append(attrs, "database", store.RedactURL(f.database))
	}
	if work {
		attrs = append(attrs, "worker", name, "max_workers", f.workers)
	}
	errc := make(chan error, 1)
	if srv != nil {
		attrs = append([]any{"url", "http://" + ln.Addr().String()}, attrs...)
		go func() { errc <- srv.Serve(ln) }()
	}
	log.Info("mailferry "+map[role]string{roleServe: "serving", roleWorker: "working"}[r], attrs...)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	// Graceful shutdown: stop taking requests, then cancel running jobs;
	// each hands its mailbox over to a new job, which resumes after the
	// next start or on another worker.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if srv != nil {
		_ = srv.Shutdown(sctx)
	}
	if work {
		if err := q.Stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("job queue stop", "error", err)
		}
	}
	return nil
}

// workerHandler serves a worker's /metrics, and /healthz, which answers
// 200 while the database answers.
func workerHandler(st *store.Store, reg *prometheus.Registry) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "the database does not answer\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// openService opens the database (SQLite in dir, or PostgreSQL at
// dbURL), the secret key and the service.
func openService(ctx context.Context, env Env, dir, dbURL string, pool int, presets []service.Preset, log *slog.Logger) (*service.Service, *store.Store, error) {
	keyFile := filepath.Join(dir, "secret.key")
	envKey := env.Getenv("MAILFERRY_SECRET_KEY")
	if dbURL != "" && envKey == "" {
		// Every process of a cluster must seal and open passwords with
		// one key; a key made up by each machine would not open what
		// another sealed.
		if _, err := os.Stat(keyFile); err != nil {
			return nil, nil, usageError{"with a PostgreSQL database every process (API and workers) must use the same secret key: " +
				"set MAILFERRY_SECRET_KEY to 32 bytes in base64 or hex (head -c 32 /dev/urandom | base64) for all of them, " +
				"or put the same secret.key file in each one's data directory (" + keyFile + ")"}
		}
	}
	st, err := store.Open(ctx, store.Options{URL: dbURL, Dir: dir, MaxConns: pool})
	if err != nil {
		return nil, nil, err
	}
	key, created, err := secrets.LoadKey(envKey, keyFile)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if created && log != nil {
		log.Warn("created a new secret key for stored passwords; back it up with the database", "file", keyFile)
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return service.New(st, box, presets), st, nil
}

func mailer(env Env, f serveFlags, dir string, log *slog.Logger) (notify.Sender, error) {
	if f.smtpHost == "" {
		return notify.NewOutbox(filepath.Join(dir, "outbox"), log), nil
	}
	pass := env.Getenv("MAILFERRY_SMTP_PASSWORD")
	if f.smtpPassFile != "" {
		b, err := os.ReadFile(f.smtpPassFile)
		if err != nil {
			return nil, fmt.Errorf("SMTP password file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	return notify.NewSMTP(notify.SMTPConfig{Host: f.smtpHost, Port: f.smtpPort, Username: f.smtpUser, Password: pass,
		From: f.smtpFrom, Security: f.smtpSec}), nil
}

// presetFile is the format of --presets.
type presetFile struct {
	Presets []service.Preset `json:"presets"`
}

const presetFields = `{"presets": [{"id", "name", "type", "host", "port", "security", "insecure", "allow_plaintext"}]}`

func loadPresets(file string, flags []string) ([]service.Preset, error) {
	reg := all.Registry()
	var out []service.Preset
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("presets: %w", err)
		}
		var pf presetFile
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pf); err != nil {
			return nil, fmt.Errorf("presets file %s: %v (expected %s; see the README)", file, err, presetFields)
		}
		out = append(out, pf.Presets...)
	}
	for _, p := range flags {
		name, raw, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--preset %q: expected 'Name=imaps://host[:port]'", p)
		}
		if err := checkServerURL(raw, true); err != nil {
			return nil, fmt.Errorf("--preset %q: %v", name, err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("--preset %q: %v", name, err)
		}
		q := u.Query()
		for k := range q {
			if k != "insecure" && k != "allow_plaintext" {
				return nil, fmt.Errorf("--preset %q: unknown option %q; the options are insecure=1 and allow_plaintext=1", name, k)
			}
		}
		u.RawQuery = ""
		e, b, err := reg.Parse(withScheme(u.String(), reg))
		if err != nil {
			return nil, fmt.Errorf("--preset %q: %v", name, err)
		}
		if b.Name == "ews" {
			// Exchange (EWS): TLS always, the default path, NTLM or Basic
			// as the server offers.
			if e.Path != ews.DefaultPath || len(e.Params) > 0 || e.User != "" {
				return nil, fmt.Errorf("--preset %q: an Exchange preset is ews://host[:port] only", name)
			}
			out = append(out, service.Preset{ID: slug(name), Name: strings.TrimSpace(name), Endpoint: service.Endpoint{
				Type: "exchange", Host: e.Host, Port: e.Port, Security: "tls", Insecure: q.Get("insecure") == "1"}})
			continue
		}
		if b.Name != "imap" {
			return nil, fmt.Errorf("--preset %q: destinations are IMAP or Exchange servers: use imaps://, imap+starttls://, imap:// or ews://", name)
		}
		sec := map[string]string{imapconn.SchemeTLS: "tls", imapconn.SchemeStartTLS: "starttls", imapconn.SchemeNone: "none"}[e.Scheme]
		out = append(out, service.Preset{ID: slug(name), Name: strings.TrimSpace(name), Endpoint: service.Endpoint{
			Type: "imap", Host: e.Host, Port: e.Port, Security: sec,
			Insecure: q.Get("insecure") == "1", AllowPlaintext: q.Get("allow_plaintext") == "1"}})
	}
	if len(out) == 0 {
		out = []service.Preset{{ID: "rackspace-email", Name: "Rackspace Email",
			Endpoint: service.Endpoint{Type: "imap", Host: "secure.emailsrvr.com", Port: 993, Security: "tls"}}}
	}
	seen := map[string]bool{}
	for i := range out {
		if err := checkPreset(&out[i]); err != nil {
			return nil, err
		}
		if seen[out[i].ID] {
			return nil, fmt.Errorf("presets: id %q is used twice", out[i].ID)
		}
		seen[out[i].ID] = true
	}
	return out, nil
}

// checkPreset fills a preset's defaults and refuses one that could never
// work, at start-up rather than in every user's first pass.
func checkPreset(p *service.Preset) error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		return fmt.Errorf("a preset has no name; every preset needs a \"name\" that users see, e.g. \"Rackspace Email\"")
	}
	what := fmt.Sprintf("preset %q", p.Name)
	if p.ID == "" {
		p.ID = slug(p.Name)
	}
	if p.ID == "" || p.ID != slug(p.ID) {
		return fmt.Errorf("%s: id %q must be lower-case letters, digits and dashes, e.g. %q", what, p.ID, slug(p.Name))
	}
	if p.Type == "" {
		p.Type = "imap"
	}
	if p.Type == "exchange" {
		// Exchange (EWS, e.g. "Rackspace Exchange 2016"): always TLS.
		p.Host = strings.TrimSpace(p.Host)
		if p.Host == "" || strings.ContainsAny(p.Host, " /@") || strings.Contains(p.Host, "://") {
			return fmt.Errorf("%s needs a host: the Exchange server's name only, e.g. \"host\": \"mail.example.com\"", what)
		}
		if p.Security != "" && p.Security != "tls" {
			return fmt.Errorf("%s: Exchange is reached over TLS only; leave out \"security\"", what)
		}
		p.Security, p.AllowPlaintext = "tls", false
		if p.Port == 0 {
			p.Port = 443
		}
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("%s: port %d: must be between 1 and 65535 (Exchange: 443)", what, p.Port)
		}
		return nil
	}
	if p.Type == service.TypeM365 {
		// Microsoft 365 through Graph: the project's admin enters the
		// app registration; nothing else to configure.
		if p.Host != "" || p.Port != 0 || p.Security != "" || p.Insecure || p.AllowPlaintext {
			return fmt.Errorf("%s: a Microsoft 365 preset (\"type\": \"m365\") takes only an id and a name; leave out host, port and security", what)
		}
		p.Host, p.Port, p.Security = "graph.microsoft.com", 443, "tls"
		return nil
	}
	if p.Type != "imap" {
		return fmt.Errorf("%s: type %q is not supported; destinations are IMAP servers (\"type\": \"imap\"), Exchange (\"type\": \"exchange\") or Microsoft 365 (\"type\": \"m365\")", what, p.Type)
	}
	p.Host = strings.TrimSpace(p.Host)
	if p.Host == "" || strings.ContainsAny(p.Host, " /@") || strings.Contains(p.Host, "://") {
		return fmt.Errorf("%s needs a host: the server name only, e.g. \"host\": \"secure.emailsrvr.com\"", what)
	}
	if p.Security == "" {
		p.Security = "tls"
	}
	sec, err := imapconn.ParseSecurity(p.Security)
	if err != nil {
		return fmt.Errorf("%s: security %q: use tls, starttls or none (no encryption)", what, p.Security)
	}
	p.Security = sec.String()
	if p.Port == 0 {
		p.Port = sec.DefaultPort()
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("%s: port %d: must be between 1 and 65535 (IMAP: 993 with TLS, 143 with STARTTLS or no encryption)", what, p.Port)
	}
	if sec == imapconn.SecurityNone && !p.AllowPlaintext {
		return fmt.Errorf("%s uses no encryption (imap:// or \"security\": \"none\") but does not allow sending passwords without it, "+
			"so every login would be refused. Use imaps:// or imap+starttls:// (\"security\": \"tls\" or \"starttls\"), or, "+
			"only on a network you trust, add ?allow_plaintext=1 to --preset or \"allow_plaintext\": true to the presets file", what)
	}
	return nil
}

func slug(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "-")
	return strings.Trim(s, "-")
}

func runUser(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(env.Stderr, "Usage: mailferry user add --email ADDRESS [--operator[=false]] [--data-dir DIR]\n\n"+
			"Creates (or finds) the user and prints a new API token. --operator makes the user an operator, who sees\n"+
			"every migration, can stop any pass and sees the load on each source server; --operator=false takes that away.")
		return ExitUsage
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	email := fs.String("email", "", "the user's contact email")
	dir := fs.String("data-dir", "", "data directory (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	db := fs.String("database", "", "PostgreSQL database URL (default $MAILFERRY_DATABASE_URL, else SQLite in the data directory)")
	operator := fs.Bool("operator", false, "make the user an operator: sees every migration, can stop any pass, sees the load per source server (=false: an ordinary user again)")
	if err := fs.Parse(args[1:]); err != nil {
		return ExitUsage
	}
	setRole := false
	fs.Visit(func(f *flag.Flag) { setRole = setRole || f.Name == "operator" })
	if *db == "" {
		*db = env.Getenv("MAILFERRY_DATABASE_URL")
	}
	if err := checkDatabase(serveFlags{database: *db}, roleServe); err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitUsage
	}
	d, err := dataDir(env, *dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitUsage
	}
	svc, st, err := openService(ctx, env, d, *db, 2, nil, nil)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitStopped
	}
	defer st.Close()
	o, err := svc.EnsureOwner(ctx, *email)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitUsage
	}
	if setRole {
		if o, err = svc.SetOperator(ctx, o.Email, *operator); err != nil {
			fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
			return ExitStopped
		}
		if *operator {
			fmt.Fprintf(env.Stderr, "%s is an operator: sees every migration, can stop any pass and sees the load per source server.\n", o.Email)
		} else {
			fmt.Fprintf(env.Stderr, "%s is an ordinary user: sees only their own migrations.\n", o.Email)
		}
	}
	token, err := svc.IssueToken(ctx, o.ID)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitStopped
	}
	fmt.Fprintln(env.Stdout, token)
	fmt.Fprintf(env.Stderr, "API token for %s printed above; send it as 'Authorization: Bearer <token>'. It is shown only once.\n", o.Email)
	return ExitOK
}
