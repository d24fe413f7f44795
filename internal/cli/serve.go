package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/mailferry/mailferry/internal/connector/ews"
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

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
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
state and jobs live in SQLite files in the data directory, and the API
listens on 127.0.0.1:8080.

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

type serveFlags struct {
	listen, dataDir, presetsFile, baseURL    string
	agreementFile                            string
	presets                                  []string
	smtpHost, smtpUser, smtpFrom, smtpSec    string
	smtpPassFile                             string
	smtpPort, workers, hostLimit, connection int
	apiOnly, jsonLogs                        bool
	leaseTTL, rescueAfter, stallTimeout      time.Duration
	allowNets, denyNets                      []string
	denyPrivate                              bool
	readTimeout, writeTimeout, idleTimeout   time.Duration
	retryBudget                              time.Duration
}

func runServe(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f serveFlags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve the API and portal on")
	fs.StringVar(&f.dataDir, "data-dir", "", "state, jobs, key and outbox (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	fs.StringVar(&f.presetsFile, "presets", "", "JSON file of destination presets")
	fs.Func("preset", "destination preset 'Name=imaps://host[:port]' (repeatable; ?insecure=1&allow_plaintext=1 for test servers)", appendTo(&f.presets))
	fs.StringVar(&f.baseURL, "base-url", "", "public URL of this service, for links in emails (default http://LISTEN)")
	fs.StringVar(&f.agreementFile, "agreement-file", "", "text file with the user agreement shown on the portal's login page (blank lines separate paragraphs)")
	fs.StringVar(&f.smtpHost, "smtp-host", "", "SMTP server for outgoing mail (none: log and outbox)")
	fs.IntVar(&f.smtpPort, "smtp-port", 0, "SMTP port (default 587, or 465 with --smtp-security tls)")
	fs.StringVar(&f.smtpUser, "smtp-user", "", "SMTP user name")
	fs.StringVar(&f.smtpPassFile, "smtp-password-file", "", "file with the SMTP password (or MAILFERRY_SMTP_PASSWORD)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "Mailferry <mailferry@localhost>", "sender of outgoing mail")
	fs.StringVar(&f.smtpSec, "smtp-security", "", "starttls, tls or none")
	fs.IntVar(&f.workers, "workers", 10, "mailboxes migrated at once by this process")
	fs.IntVar(&f.hostLimit, "host-limit", 5, "mailboxes migrated at once per source server, across all workers")
	fs.IntVar(&f.connection, "connections", 4, "connections per server and mailbox")
	fs.DurationVar(&f.retryBudget, "retry-budget", migrate.DefaultRetryBudget,
		"how long a pass keeps retrying a server that stopped answering before it ends and reports what was not copied")
	fs.BoolVar(&f.apiOnly, "api-only", false, "serve the API without running jobs (workers run elsewhere)")
	fs.BoolVar(&f.jsonLogs, "json-logs", false, "structured logs as JSON")
	fs.DurationVar(&f.stallTimeout, "stall-timeout", connector.DefaultStallTimeout,
		"drop a connection that moves no data for this long while an answer is awaited, and retry on a new one")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", 30*time.Second, "advanced: how long a dead worker keeps its mailboxes locked")
	fs.DurationVar(&f.rescueAfter, "rescue-after", time.Minute, "advanced: when the job of a dead worker is run again")
	fs.Func("allow-net", "address range (CIDR, or one address) that users' source servers may be in although it is not public, e.g. 10.1.2.0/24 (repeatable)", appendTo(&f.allowNets))
	fs.Func("deny-net", "address range that users' source servers may never be in, public or not (repeatable; wins over --allow-net)", appendTo(&f.denyNets))
	fs.BoolVar(&f.denyPrivate, "deny-private", true, "refuse users' source servers at loopback, private, link-local and other non-public addresses")
	fs.DurationVar(&f.readTimeout, "read-timeout", time.Minute, "advanced: longest a client may take to send a request, body included (uploads get 5 minutes)")
	fs.DurationVar(&f.writeTimeout, "write-timeout", 2*time.Minute, "advanced: longest a response may take to send (downloads get 10 minutes)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 2*time.Minute, "advanced: how long an idle keep-alive connection stays open")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if f.retryBudget <= 0 {
		fmt.Fprintln(env.Stderr, "mailferry serve: --retry-budget must be a positive duration, e.g. 5m")
		return ExitUsage
	}
	if f.stallTimeout < time.Second {
		fmt.Fprintln(env.Stderr, "mailferry serve: --stall-timeout must be at least 1s, e.g. --stall-timeout 60s")
		return ExitUsage
	}
	var handler slog.Handler = slog.NewTextHandler(env.Stderr, nil)
	if f.jsonLogs {
		handler = slog.NewJSONHandler(env.Stderr, nil)
	}
	log := slog.New(handler)
	if err := serve(ctx, env, f, log); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "mailferry serve: %v\n", err)
			return ExitUsage
		}
		log.Error("mailferry serve stopped", "error", err)
		return ExitStopped
	}
	return ExitOK
}

// outboundPolicy builds the policy of --allow-net, --deny-net and
// --deny-private.
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

func serve(ctx context.Context, env Env, f serveFlags, log *slog.Logger) error {
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
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-timeout", f.readTimeout}, {"--write-timeout", f.writeTimeout}, {"--idle-timeout", f.idleTimeout},
		{"--lease-ttl", f.leaseTTL}, {"--rescue-after", f.rescueAfter}} {
		if d.v <= 0 {
			return usageError{fmt.Sprintf("%s %v: must be longer than zero", d.name, d.v)}
		}
	}
	for _, n := range []struct {
		name      string
		v, lo, hi int
	}{{"--workers", f.workers, 1, 1000}, {"--host-limit", f.hostLimit, 1, 1000}, {"--connections", f.connection, 1, 16}} {
		if n.v < n.lo || n.v > n.hi {
			return usageError{fmt.Sprintf("%s %d: must be between %d and %d", n.name, n.v, n.lo, n.hi)}
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
	svc, st, err := openService(ctx, env, dir, presets, log)
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
	runner := &jobs.Runner{Service: svc, State: st, Metrics: jobs.NewMetrics(reg), Log: log,
		Holder: fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano()), HostLimit: f.hostLimit, Connections: f.connection, LeaseTTL: f.leaseTTL,
		SourceDial:   policy.DialContext,
		RetryBudget:  f.retryBudget,
		StallTimeout: f.stallTimeout}
	q, err := jobs.OpenSQLite(ctx, dir, runner, jobs.Config{MaxWorkers: f.workers, Work: !f.apiOnly, Log: log, RescueAfter: f.rescueAfter})
	if err != nil {
		return err
	}
	svc.SetQueue(q)
	reg.MustRegister(svc.StatusCollector())

	base := f.baseURL
	if base == "" {
		base = "http://" + f.listen
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

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another mailferry running? choose another address with --listen)", f.listen, err)
	}
	handler := web.New(svc, log, reg)
	// The portal mails login links with the same sender as pass reports.
	handler.SetPortal(web.PortalConfig{BaseURL: base, Agreement: agreement, SendMail: send})
	srv := httpServer(handler, f.readTimeout, f.writeTimeout, f.idleTimeout)
	if !f.apiOnly {
		n, err := q.Recover(ctx, svc)
		if err != nil {
			return fmt.Errorf("recover unfinished passes: %w", err)
		}
		if n > 0 {
			log.Info("resuming mailbox passes left unfinished by the last run", "count", n)
		}
		if err := q.Start(ctx); err != nil {
			return err
		}
	}
	log.Info("mailferry serving", "url", "http://"+ln.Addr().String(), "data_dir", dir, "presets", len(presets), "workers", !f.apiOnly)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	// Graceful shutdown: stop taking requests, then cancel running jobs;
	// they checkpoint and resume after the next start.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := q.Stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("job queue stop", "error", err)
	}
	return nil
}

// openService opens the database, the secret key and the service.
func openService(ctx context.Context, env Env, dir string, presets []service.Preset, log *slog.Logger) (*service.Service, *store.Store, error) {
	st, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	key, created, err := secrets.LoadKey(env.Getenv("MAILFERRY_SECRET_KEY"), filepath.Join(dir, "secret.key"))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if created && log != nil {
		log.Warn("created a new secret key for stored passwords; back it up with the database", "file", filepath.Join(dir, "secret.key"))
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return service.New(st.DB(), box, presets), st, nil
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
	if p.Type != "imap" {
		return fmt.Errorf("%s: type %q is not supported; destinations are IMAP (\"type\": \"imap\") or Exchange (\"type\": \"exchange\") servers", what, p.Type)
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
		fmt.Fprintln(env.Stderr, "Usage: mailferry user add --email ADDRESS [--data-dir DIR]\n\nCreates (or finds) the user and prints a new API token.")
		return ExitUsage
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	email := fs.String("email", "", "the user's contact email")
	dir := fs.String("data-dir", "", "data directory (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	if err := fs.Parse(args[1:]); err != nil {
		return ExitUsage
	}
	d, err := dataDir(env, *dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitUsage
	}
	svc, st, err := openService(ctx, env, d, nil, nil)
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
	token, err := svc.IssueToken(ctx, o.ID)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry user: %v\n", err)
		return ExitStopped
	}
	fmt.Fprintln(env.Stdout, token)
	fmt.Fprintf(env.Stderr, "API token for %s printed above; send it as 'Authorization: Bearer <token>'. It is shown only once.\n", o.Email)
	return ExitOK
}
