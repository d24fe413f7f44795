package cli

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
)

const copyUsage = `Usage: mailferry copy --from ADDRESS [--from-user NAME] --to ADDRESS [--to-user NAME] [flags]

Copies every folder of one mailbox to another. Running the same command
again is a delta pass ("Migrate new items"): folders that show no change
are skipped, only new messages are copied, flag changes are carried over,
and nothing is ever written twice or deleted (unless --delete-missing).
The state lives in --data-dir; an interrupted run is simply run again.

Addresses (see the README for each one's limits):
  imaps://host[:port]           IMAP, implicit TLS (default port 993)
  imap+starttls://host[:port]   IMAP, STARTTLS (default port 143)
  imap://host[:port]            IMAP, no encryption (needs --allow-plaintext to log in)
  pop3s://host[:port]           POP3 source, implicit TLS (default port 995)
  pop3+starttls://host[:port]   POP3 source, STLS (default port 110)
  pop3://host[:port]            POP3 source, no encryption (needs --allow-plaintext)
  maildir:/path                 a Maildir tree (Maildir++ or fs layout), source or destination
  mbox:/path/file.mbox          one mbox file (one folder), source or destination
  mbox:/path/dir                a tree of mbox files (Thunderbird, Apple Mail), source or destination
  eml:/path/dir                 a directory tree of .eml files, source only
  graph://TENANT/MAILBOX        Microsoft 365 through Microsoft Graph, source or destination
                                (app credentials: --from-oauth-client-id / --to-oauth-client-id)

Passwords are never taken on the command line. They are read from
--from-password-file / --to-password-file, else from the environment
variables MAILFERRY_FROM_PASSWORD / MAILFERRY_TO_PASSWORD, else asked for
on the terminal. Local files need none.

OAuth (Microsoft 365 through Graph or IMAP, Gmail through IMAP) replaces
the password with an app registration: --from-oauth-client-id (and
--from-oauth-tenant for Microsoft), with its client secret from
--from-oauth-secret-file or MAILFERRY_FROM_OAUTH_SECRET, or a certificate
(PEM, certificate and unencrypted RSA key) from --from-oauth-cert-file, or
a user's refresh token from --from-oauth-refresh-token-file or
MAILFERRY_FROM_OAUTH_REFRESH_TOKEN (the same with --to-). Secrets are
never taken on the command line.

Folder rules use MigrationWiz's syntax: case-insensitive regular
expressions over the source path, with / as separator whatever the server
uses, e.g. --exclude '^Trash$' --map '^INBOX/->'.

Exit status: 0 all copied, 1 some messages failed, 2 bad usage,
3 the mailbox could not be migrated (login, TLS, connection, full).

Flags:
`

type copyFlags struct {
	from, fromUser, fromPassFile string
	to, toUser, toPassFile       string
	insecure, allowPlaintext     bool
	include, exclude, mappings   []string
	since, before                string
	includeDeleted               bool
	dryRun, jsonOut, noProgress  bool
	logSubjects                  bool
	connections, pipeline, batch int
	spoolDir                     string
	spoolMemory                  int
	dataDir                      string
	fullRescan, deleteMissing    bool
	cpuProfile, memProfile       string
	retryBudget                  time.Duration
	stallTimeout                 time.Duration
	connectionsSet               bool // --connections was given
	fromOAuth, toOAuth           oauthFlags
	graphURL, tokenURL, caFile   string
	gmailLabels                  string
}

// oauthFlags are one side's OAuth app registration.
type oauthFlags struct {
	provider, tenant, clientID      string
	secretFile, certFile, tokenFile string
}

func (o *oauthFlags) register(fs *flag.FlagSet, side string) {
	fs.StringVar(&o.provider, side+"-oauth-provider", "", "OAuth provider of the "+side+" side: microsoft (default) or google")
	fs.StringVar(&o.tenant, side+"-oauth-tenant", "", "Microsoft Entra tenant id or domain of the app registration")
	fs.StringVar(&o.clientID, side+"-oauth-client-id", "", "OAuth client (application) id; logs in with OAuth instead of a password")
	fs.StringVar(&o.secretFile, side+"-oauth-secret-file", "", "file holding the app's client secret")
	fs.StringVar(&o.certFile, side+"-oauth-cert-file", "", "PEM file with the app's certificate and its RSA private key (instead of a secret)")
	fs.StringVar(&o.tokenFile, side+"-oauth-refresh-token-file", "", "file holding a user's refresh token (delegated access, Gmail)")
}

// registerEndpoints registers the flags that say where both mailboxes are
// and how to log in to them; copy and verify share them, so that verify
// reaches every server copy can.
func (f *copyFlags) registerEndpoints(fs *flag.FlagSet) {
	fs.StringVar(&f.from, "from", "", "source address, e.g. imaps://mail.old.example, pop3s://pop.old.example, maildir:/backup/alice")
	fs.StringVar(&f.fromUser, "from-user", "", "source login name")
	fs.StringVar(&f.fromPassFile, "from-password-file", "", "file holding the source password")
	fs.StringVar(&f.to, "to", "", "destination address, e.g. imap+starttls://mail.new.example, mbox:/backup/alice.mbox")
	fs.StringVar(&f.toUser, "to-user", "", "destination login name")
	fs.StringVar(&f.toPassFile, "to-password-file", "", "file holding the destination password")
	fs.BoolVar(&f.insecure, "insecure", false, "accept invalid TLS certificates (self-signed, expired, wrong name)")
	fs.BoolVar(&f.allowPlaintext, "allow-plaintext", false, "allow sending passwords over unencrypted connections")
	f.fromOAuth.register(fs, "from")
	f.toOAuth.register(fs, "to")
	fs.StringVar(&f.graphURL, "graph-url", "", "Microsoft Graph service root for national clouds (default https://graph.microsoft.com)")
	fs.StringVar(&f.tokenURL, "oauth-token-url", "", "OAuth token endpoint replacing the provider's ({tenant} is replaced), for national clouds")
	fs.StringVar(&f.gmailLabels, "gmail-labels", "once",
		"a Gmail source's labels: once (each message copied once: INBOX, Sent, Drafts, labels by name, Spam, Trash, All Mail last) or folders (a copy in every label's folder)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of extra certificate authorities to trust (a private CA)")
}

func (f *copyFlags) register(fs *flag.FlagSet) {
	f.registerEndpoints(fs)
	fs.Func("include", "only copy folders whose path matches this regex (repeatable)", appendTo(&f.include))
	fs.Func("exclude", "skip folders whose path matches this regex (repeatable)", appendTo(&f.exclude))
	fs.Func("map", "folder mapping rule '^Source/Path->Destination/Path' (repeatable)", appendTo(&f.mappings))
	fs.StringVar(&f.since, "since", "", "only copy messages received on or after this date (YYYY-MM-DD)")
	fs.StringVar(&f.before, "before", "", "only copy messages received before this date (YYYY-MM-DD)")
	fs.BoolVar(&f.includeDeleted, "include-deleted", false, "also copy messages flagged \\Deleted (without that flag)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "show the folder plan with counts and sizes; copy nothing")
	fs.BoolVar(&f.jsonOut, "json", false, "print machine-readable JSON events, one per line")
	fs.BoolVar(&f.noProgress, "no-progress", false, "no progress bar even on a terminal")
	fs.BoolVar(&f.logSubjects, "log-subjects", false, "show subjects of failed messages (private: off by default)")
	fs.IntVar(&f.connections, "connections", 6, "connections per server (1-16); given explicitly it is pinned, otherwise the most Mailferry adapts up to")
	fs.IntVar(&f.pipeline, "pipeline", 128, "appends awaiting answers per connection")
	fs.IntVar(&f.batch, "batch", 64, "messages per pipelined FETCH")
	fs.DurationVar(&f.stallTimeout, "stall-timeout", connector.DefaultStallTimeout,
		"drop a connection that moves no data for this long while an answer is awaited, and retry on a new one (e.g. 60s, 5m)")
	fs.StringVar(&f.spoolDir, "spool-dir", "", "directory for large messages in transit (default: system temp)")
	fs.IntVar(&f.spoolMemory, "spool-memory", 16, "MiB of messages in transit held in memory; the rest go to --spool-dir")
	fs.StringVar(&f.dataDir, "data-dir", "", "where the sync state is kept (default $MAILFERRY_DATA_DIR, else ~/.local/share/mailferry)")
	fs.BoolVar(&f.fullRescan, "full-rescan", false, "check every message against the destination instead of trusting the saved state")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the run to this file")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile (pprof) of the run to this file")
	fs.DurationVar(&f.retryBudget, "retry-budget", migrate.DefaultRetryBudget,
		"how long to keep retrying a server that stopped answering (e.g. 30s, 10m) before ending the run and reporting what was not copied")
	fs.BoolVar(&f.deleteMissing, "delete-missing", false, "delete from the destination the copies this tool made of messages since deleted on the source (never other mail)")
}

// copyMemoryLimit is the soft memory limit of a copy: the spool's
// memory plus what the rest of a run holds (connections' buffers, the
// index of the folders in flight, the state database's batches). Go's
// collector otherwise lets the heap grow to twice what is live: a
// 300k-message copy peaked at 139 MiB of RSS without a limit and at 90
// MiB with this one, for 5 % more CPU. A tighter limit (spool + 24 MiB)
// held 100k messages to 65 MiB but made the collector run nearly
// continuously once the index of a 150k-message folder was live (41 s
// of CPU instead of 26 at 300k; issue 14, docs/BENCHMARKS.md). It is
// soft: a run that needs more gets it.
func copyMemoryLimit(spool int64) int64 { return spool + 48<<20 }

func appendTo(list *[]string) func(string) error {
	return func(s string) error {
		*list = append(*list, s)
		return nil
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func runCopy(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("copy", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f copyFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), copyUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		// The stray argument is not echoed: it may well be a password.
		fmt.Fprintf(env.Stderr, "mailferry copy: %d unexpected argument(s) after the flags (passwords are never given as arguments; see -h)\n", fs.NArg())
		return ExitUsage
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "connections" {
			f.connectionsSet = true
		}
	})
	reg := all.Registry()
	srcA, dstA, opts, err := f.build(env, reg)
	opts.PinStreams = f.connectionsSet
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
		return ExitUsage
	}
	if env.SetMemoryLimit != nil {
		env.SetMemoryLimit(copyMemoryLimit(opts.SpoolMemory))
	}
	out := newReporter(env, f.jsonOut, !f.noProgress && !f.jsonOut && env.IsTerminal(env.Stderr))
	opts.Stats = accounting.New()
	opts.OnEvent = out.event

	dir, err := dataDir(env, f.dataDir)
	if err == nil {
		err = prepareDataDir(dir)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
		return ExitUsage
	}
	st, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
		return ExitStopped
	}
	defer st.Close()
	opts.State = st
	opts.Pair = pairKey(srcA, dstA)
	opts.FullRescan = f.fullRescan
	opts.DeleteMissing = f.deleteMissing
	if !opts.DryRun {
		if err := st.Pair(ctx, opts.Pair, describe(srcA), describe(dstA)); err != nil {
			fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
			return ExitStopped
		}
	}

	src, dst, srcErr, dstErr := reg.OpenBoth(ctx, srcA.e, srcA.o, dstA.e, dstA.o)
	if srcErr != nil {
		out.fatal("source", srcErr)
		return ExitStopped
	}
	if dstErr != nil {
		out.fatal("destination", dstErr)
		return ExitStopped
	}
	defer src.Close()
	defer dst.Close()
	if opts.DryRun {
		// The engine writes nothing in a dry run; the layer makes sure.
		dst = layer.DryRun(dst)
	}

	stopProfiles, err := startProfiles(f.cpuProfile, f.memProfile)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
		return ExitUsage
	}
	out.start(opts.Stats)
	res, runErr := migrate.Run(ctx, src, dst, opts)
	if err := stopProfiles(); err != nil {
		fmt.Fprintf(env.Stderr, "mailferry copy: %v\n", err)
	}
	out.stop()
	out.summary(res)
	switch {
	case runErr != nil && errors.Is(runErr, context.Canceled):
		fmt.Fprintln(env.Stderr, "mailferry copy: interrupted; run the same command again to continue where it stopped")
		return ExitStopped
	case runErr != nil:
		out.fatal("", runErr)
		return ExitStopped
	case len(res.Failures) > 0:
		return ExitFailures
	}
	return ExitOK
}

// address is one side of a copy: its endpoint, backend and the options
// to open it with.
type address struct {
	e connector.Endpoint
	b connector.Backend
	o connector.OpenOptions
}

// build validates flags and reads passwords.
func (f *copyFlags) build(env Env, reg *connector.Registry) (src, dst address, opts migrate.Options, err error) {
	if f.from == "" || f.to == "" {
		return src, dst, opts, usageError{"both --from and --to are required"}
	}
	if src, err = endpoint("source", f.from, f.fromUser, f.fromPassFile, "MAILFERRY_FROM_PASSWORD", f.fromOAuth, env, reg); err != nil {
		return
	}
	if dst, err = endpoint("destination", f.to, f.toUser, f.toPassFile, "MAILFERRY_TO_PASSWORD", f.toOAuth, env, reg); err != nil {
		return
	}
	var roots *x509.CertPool
	if f.caFile != "" {
		pem, rerr := os.ReadFile(f.caFile)
		if rerr != nil {
			return src, dst, opts, usageError{fmt.Sprintf("--ca-file: %v", errors.Unwrap(rerr))}
		}
		if roots, _ = x509.SystemCertPool(); roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return src, dst, opts, usageError{fmt.Sprintf("--ca-file %s holds no PEM certificate", f.caFile)}
		}
	}
	if !src.b.Source {
		return src, dst, opts, usageError{fmt.Sprintf("source: %s cannot be read from: it is a destination only", src.e.Redacted)}
	}
	if !dst.b.Destination {
		return src, dst, opts, usageError{fmt.Sprintf("destination: %s cannot be written to (%s is a source only); write to an IMAP server, maildir: or mbox:", dst.e.Redacted, dst.b.Name)}
	}
	if f.retryBudget <= 0 {
		return src, dst, opts, usageError{"--retry-budget must be a positive duration, e.g. 5m"}
	}
	opts.RetryBudget = f.retryBudget
	for _, n := range []struct {
		flag      string
		v, lo, hi int
		what      string
	}{
		{"--connections", f.connections, 1, 16, "connections per server"},
		{"--pipeline", f.pipeline, 1, 1024, "appends awaiting an answer per connection"},
		{"--batch", f.batch, 1, 1024, "messages per FETCH"},
		{"--spool-memory", f.spoolMemory, 1, 4096, "MiB of messages in transit held in memory"},
	} {
		if n.v < n.lo || n.v > n.hi {
			return src, dst, opts, usageError{fmt.Sprintf("%s %d: must be between %d and %d (%s)", n.flag, n.v, n.lo, n.hi, n.what)}
		}
	}
	if f.stallTimeout < time.Second {
		return src, dst, opts, usageError{"--stall-timeout must be at least 1s, e.g. --stall-timeout 60s"}
	}
	gmailLabels, gerr := imapconn.ParseGmailLabels(f.gmailLabels)
	if gerr != nil {
		return src, dst, opts, usageError{gerr.Error()}
	}
	src.o.GmailLabels = gmailLabels
	for _, a := range []*address{&src, &dst} {
		a.o.InsecureSkipVerify = f.insecure
		a.o.RootCAs = roots
		a.o.ServiceURL = f.graphURL
		if a.o.Credentials.OAuth != nil {
			a.o.Credentials.OAuth.TokenURL = f.tokenURL
		}
		a.o.AllowPlaintext = f.allowPlaintext
		a.o.StallTimeout = f.stallTimeout
		a.o.SpoolDir = f.spoolDir
		// A POP3 server usually allows one session: only an explicit
		// --connections asks it for more.
		if f.connectionsSet || !a.b.OneSession {
			a.o.MaxConnections = f.connections
		}
	}
	if opts.Rules, err = migrate.ParseRules(f.include, f.exclude, f.mappings); err != nil {
		return src, dst, opts, usageError{err.Error()}
	}
	if opts.Since, err = parseDate("--since", f.since); err != nil {
		return
	}
	if opts.Before, err = parseDate("--before", f.before); err != nil {
		return
	}
	if !opts.Since.IsZero() && !opts.Before.IsZero() && !opts.Since.Before(opts.Before) {
		return src, dst, opts, usageError{"--since must be earlier than --before"}
	}
	opts.IncludeDeleted = f.includeDeleted
	opts.DryRun = f.dryRun
	opts.LogSubjects = f.logSubjects
	opts.PipelineDepth = f.pipeline
	opts.FetchBatch = f.batch
	opts.SpoolDir = f.spoolDir
	opts.SpoolMemory = int64(f.spoolMemory) << 20
	return src, dst, opts, nil
}

func parseDate(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, time.Local)
	if err != nil {
		return t, usageError{fmt.Sprintf("%s %q: expected a date like 2024-01-31", name, s)}
	}
	return t, nil
}

// endpoint parses one side's address through the registry. A bare
// host[:port] means imaps:// (as it always did). Network addresses need
// a user name and a password; local files need neither.
func endpoint(side, raw, user, passFile, passEnv string, oa oauthFlags, env Env, reg *connector.Registry) (address, error) {
	raw = withScheme(raw, reg)
	var a address
	if scheme, _, _ := strings.Cut(raw, ":"); !isLocalScheme(reg, scheme) && !isEWSScheme(scheme) && !strings.EqualFold(scheme, "graph") {
		// graph://TENANT/MAILBOX names no server: its backend checks it.
		if err := checkServerURL(raw, false); err != nil {
			return a, usageError{fmt.Sprintf("%s: %v", side, err)}
		}
	}
	e, b, err := reg.Parse(raw)
	if err != nil {
		return a, usageError{fmt.Sprintf("%s: %v", side, err)}
	}
	a.e, a.b = e, b
	if b.Local {
		return a, nil
	}
	if user == "" {
		user = e.User
	}
	if user == "" {
		return a, usageError{fmt.Sprintf("%s: no user name; give --%s-user", side, flagSide(side))}
	}
	a.o.Credentials.Username = user
	if oa.clientID != "" || b.Name == "graph" {
		a.o.Credentials.OAuth, err = oauthCredentials(side, oa, env)
		return a, err
	}
	a.o.Credentials.Password, err = password(side, passFile, passEnv, user, e.Redacted, env)
	return a, err
}

// oauthCredentials reads one side's app registration; its secret, key
// or refresh token come from files or the environment, never from the
// command line.
func oauthCredentials(side string, oa oauthFlags, env Env) (*connector.OAuth, error) {
	fl := flagSide(side)
	envPrefix := "MAILFERRY_" + strings.ToUpper(fl) + "_OAUTH_"
	if oa.clientID == "" {
		return nil, usageError{fmt.Sprintf("%s: Microsoft 365 logs in with an app registration: give --%s-oauth-client-id and --%s-oauth-tenant, and its secret in --%s-oauth-secret-file or %sSECRET (see the README's Microsoft 365 section)", side, fl, fl, fl, envPrefix)}
	}
	c := &connector.OAuth{Tenant: oa.tenant, ClientID: oa.clientID}
	switch strings.ToLower(oa.provider) {
	case "", "microsoft":
		c.Provider = connector.OAuthMicrosoft
	case "google":
		c.Provider = connector.OAuthGoogle
	default:
		return nil, usageError{fmt.Sprintf("--%s-oauth-provider %q: use microsoft or google", fl, oa.provider)}
	}
	read := func(file, envName, what string) (string, error) {
		if file == "" {
			return env.Getenv(envName), nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{fmt.Sprintf("%s %s file: %v", side, what, errors.Unwrap(err))}
		}
		return strings.TrimSpace(string(b)), nil
	}
	var err error
	if c.ClientSecret, err = read(oa.secretFile, envPrefix+"SECRET", "OAuth client secret"); err != nil {
		return nil, err
	}
	if c.RefreshToken, err = read(oa.tokenFile, envPrefix+"REFRESH_TOKEN", "OAuth refresh token"); err != nil {
		return nil, err
	}
	if oa.certFile != "" {
		if c.CertificatePEM, err = os.ReadFile(oa.certFile); err != nil {
			return nil, usageError{fmt.Sprintf("%s OAuth certificate file: %v", side, errors.Unwrap(err))}
		}
	}
	if c.ClientSecret == "" && len(c.CertificatePEM) == 0 && c.RefreshToken == "" {
		return nil, usageError{fmt.Sprintf("%s: no OAuth secret: give --%s-oauth-secret-file, --%s-oauth-cert-file or --%s-oauth-refresh-token-file, or set %sSECRET", side, fl, fl, fl, envPrefix)}
	}
	return c, nil
}

// withScheme gives a bare host[:port] the imaps:// scheme, as before
// other connectors existed.
func withScheme(raw string, reg *connector.Registry) string {
	if strings.Contains(raw, "://") {
		return raw
	}
	scheme, _, ok := strings.Cut(raw, ":")
	if ok {
		for _, s := range reg.Schemes() {
			if strings.EqualFold(s, scheme) {
				return raw
			}
		}
	}
	return "imaps://" + raw
}

// isEWSScheme: an Exchange (EWS) address may carry a path and settings
// (ews+https://host/path?auth=ntlm&impersonate=…), which the EWS
// connector's own parser checks strictly; checkServerURL is for
// addresses that are a server only.
func isEWSScheme(scheme string) bool {
	s := strings.ToLower(scheme)
	return s == "ews" || s == "ews+https"
}

func isLocalScheme(reg *connector.Registry, scheme string) bool {
	for _, b := range reg.Backends() {
		for _, s := range b.Schemes {
			if strings.EqualFold(s, scheme) {
				return b.Local
			}
		}
	}
	return false
}

func flagSide(side string) string {
	if side == "source" {
		return "from"
	}
	return "to"
}

// password reads a password from a file, the environment or the
// terminal, in that order. It never comes from the command line, which
// other users of the machine can read in the process list.
func password(side, file, envName, user, where string, env Env) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s password file: %v", side, errors.Unwrap(err))
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("%s password file %s is empty", side, file)
		}
		return p, nil
	}
	if p := env.Getenv(envName); p != "" {
		return p, nil
	}
	if in, ok := env.Stdin.(*os.File); ok && env.IsTerminal(in) {
		fmt.Fprintf(env.Stderr, "Password for %s on %s (%s): ", user, where, side)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("read %s password: %v", side, err)
		}
		return string(b), nil
	}
	return "", usageError{fmt.Sprintf("no %s password and no terminal to ask for it on: use --%s-password-file FILE or set %s",
		side, flagSide(side), envName)}
}

// checkServerURL catches the mistakes ParseURL would let through or turn
// into a connection attempt somewhere unexpected: ":::" (read as the
// unspecified address), a path or query after the host, an IPv6 address
// without brackets. withQuery allows a query (the --preset options).
func checkServerURL(raw string, withQuery bool) error {
	example := "write it like imaps://mail.example.com or imaps://mail.example.com:993"
	s := raw
	if !strings.Contains(s, "://") {
		s = "imaps://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("server address %q cannot be read: %s", raw, example)
	}
	switch {
	case u.Opaque != "":
		return fmt.Errorf("server address %q: %s", raw, example)
	case u.Host == "":
		return fmt.Errorf("server address %q has no host name: %s", raw, example)
	case strings.Count(u.Host, ":") > 1 && !strings.HasPrefix(u.Host, "["):
		return fmt.Errorf("server address %q: an IPv6 address goes in brackets, e.g. imaps://[2001:db8::1]:993", raw)
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("server address %q has a path (%s) after the host: give the server only, e.g. imaps://%s "+
			"(folders are chosen with --include, --exclude and --map)", raw, u.Path, u.Host)
	case (u.RawQuery != "" || u.ForceQuery) && !withQuery, u.Fragment != "":
		return fmt.Errorf("server address %q has something after the host: give the server only, e.g. imaps://%s", raw, u.Host)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.IsUnspecified() {
		return fmt.Errorf("server address %q: %s is not the address of a server", raw, u.Hostname())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("server address %q: the port must be a number between 1 and 65535 (IMAP: 993 with TLS, 143 without; POP3: 995 and 110)", raw)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("server address %q: the port after the colon is missing", raw)
	}
	return nil
}

// prepareDataDir creates the data directory if needed and checks that it
// is a directory this process can write to, so that a mistyped --data-dir
// is reported as such before any server is contacted.
func prepareDataDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return usageError{fmt.Sprintf("data directory %s is a file, not a directory: give --data-dir a directory (it is created if missing)", dir)}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return usageError{fmt.Sprintf("data directory %s cannot be created: %v; give --data-dir a directory you can write to",
			dir, errors.Unwrap(err))}
	}
	f, err := os.CreateTemp(dir, ".write-test-*") // mode 0600, removed at once
	if err != nil {
		return usageError{fmt.Sprintf("data directory %s is not writable: %v; give --data-dir a directory you can write to",
			dir, errors.Unwrap(err))}
	}
	name := f.Name()
	f.Close()
	_ = os.Remove(name)
	return nil
}

// jsonLine writes one JSON event.
func jsonLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// fatalMessage renders a mailbox-stopping error for people.
func fatalMessage(side string, err error) string {
	var b strings.Builder
	b.WriteString("mailferry: ")
	if side != "" {
		b.WriteString(side + ": ")
	}
	b.WriteString(err.Error())
	if hint := connector.HintOf(err); hint != "" {
		b.WriteString("\n  What to do: " + hint)
	}
	return b.String()
}

// dataDir resolves the state directory: flag, environment, then the XDG
// data directory of the user.
func dataDir(env Env, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if d := env.Getenv("MAILFERRY_DATA_DIR"); d != "" {
		return d, nil
	}
	if d := env.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mailferry"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data-dir or MAILFERRY_DATA_DIR")
	}
	return filepath.Join(home, ".local", "share", "mailferry"), nil
}

// pairKey identifies a mailbox pair in the state by server and user on
// both sides (or the local path); it holds no secret. For IMAP it is what
// releases before the connector model computed, so that their state
// carries on.
func pairKey(src, dst address) string {
	sum := sha256.Sum256([]byte(describe(src) + "\x00" + describe(dst)))
	return hex.EncodeToString(sum[:16])
}

func describe(a address) string {
	if a.b.Local {
		return a.e.Scheme + ":" + a.e.Path
	}
	user := a.o.Credentials.Username
	hostPort := net.JoinHostPort(a.e.Host, strconv.Itoa(a.e.Port))
	if strings.HasPrefix(a.b.Name, "imap") {
		return strings.ToLower(user) + "@" + strings.ToLower(hostPort)
	}
	d := a.b.Name + ":" + strings.ToLower(user) + "@" + strings.ToLower(hostPort)
	// One admin login acting on many mailboxes (EWS impersonation): each
	// mailbox is a pair of its own.
	if m := a.e.Params["impersonate"]; m != "" {
		d += "/as:" + strings.ToLower(m)
	}
	if m := a.o.Credentials.Mailbox; m != "" {
		d += "/as:" + strings.ToLower(m)
	}
	return d
}
