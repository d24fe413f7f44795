package autoconfig

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout        = 4 * time.Second
	DefaultRequestTimeout = 2 * time.Second
	DefaultMaxBody        = 64 << 10
	DefaultMaxRedirects   = 3
	DefaultISPDBURL       = "https://autoconfig.thunderbird.net/v1.1/"
	DefaultUserAgent      = "Mailferry-autoconfig/1"
)

// Options configure a Finder. The zero value is usable: system DNS
// server, public addresses only, https only, the Thunderbird ISPDB.
type Options struct {
	// Dial opens every HTTP connection, redirects included. Pass the
	// operator's outbound policy here (internal/netpolicy's
	// Policy.DialContext): it resolves the name and refuses what the
	// policy forbids. Nil means a dialer that connects only to public
	// addresses.
	Dial DialFunc
	// DNSServer is the recursive DNS server ("host:port") asked for SRV,
	// MX and address records. It is contacted directly, not through
	// Dial. Empty means the first server in /etc/resolv.conf.
	DNSServer string
	// RootCAs verifies https servers; nil means the system's roots.
	RootCAs *x509.CertPool
	// ISPDBURL is the base URL of the ISPDB; the domain is appended.
	// Empty means DefaultISPDBURL.
	ISPDBURL string
	// DisableISPDB skips the ISPDB (a third party: it learns the domain,
	// never the address).
	DisableISPDB bool
	// AllowHTTPAutoconfig also fetches
	// http://autoconfig.<domain>/mail/config-v1.1.xml, as Thunderbird
	// does for hosting providers that serve many customer domains
	// without certificates (the Thunderbird autoconfig documentation,
	// section "SSL", calls it deprecated but supported). Its findings
	// get ConfidenceLow and a note. Off by default.
	AllowHTTPAutoconfig bool
	// AllowNonPublic keeps candidates whose host is an address or name
	// that is not on the internet (loopback, private networks, .local…);
	// otherwise they are dropped with a note. For single-tenant installs
	// that migrate from a server in their own network.
	AllowNonPublic bool
	// CheckAddr, when set, decides instead of AllowNonPublic which
	// addresses a candidate's host may have: the operator's outbound
	// policy (netpolicy's Policy.Check), so that nothing is offered that
	// a pass could not connect to. A non-nil error drops the candidate
	// with a note.
	CheckAddr func(netip.Addr) error
	// Timeout bounds the whole lookup (DefaultTimeout); RequestTimeout
	// each HTTP exchange, redirects included, and each DNS question
	// (DefaultRequestTimeout).
	Timeout        time.Duration
	RequestTimeout time.Duration
	// MaxBody bounds a response body (DefaultMaxBody); MaxRedirects the
	// redirects followed per request (DefaultMaxRedirects).
	MaxBody      int64
	MaxRedirects int
	// UserAgent is sent with every request (DefaultUserAgent).
	UserAgent string
}

// Finder looks up mail server settings. It keeps no state between
// lookups and may be used by many goroutines at once.
type Finder struct {
	opts Options
	// pick returns a uniform integer in [0, n) for RFC 2782's weighted
	// choice; tests make it deterministic.
	pick func(n int) int
	// resolvConf is read when Options.DNSServer is empty.
	resolvConf string
}

// New returns a Finder with opts, defaults filled in.
func New(opts Options) *Finder {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.RequestTimeout > opts.Timeout {
		opts.RequestTimeout = opts.Timeout
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxRedirects < 0 {
		opts.MaxRedirects = 0
	} else if opts.MaxRedirects == 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	if opts.ISPDBURL == "" {
		opts.ISPDBURL = DefaultISPDBURL
	}
	if !strings.HasSuffix(opts.ISPDBURL, "/") {
		opts.ISPDBURL += "/"
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Dial == nil {
		opts.Dial = refusingDial(opts.RequestTimeout)
	}
	return &Finder{opts: opts, pick: rand.IntN, resolvConf: "/etc/resolv.conf"}
}

// Lookup finds settings for the mailbox at address. It returns an error
// only when address is not an email address; whatever a method finds or
// fails to find is in the Result (Candidates and Notes). It returns
// within Options.Timeout (or earlier when ctx ends), whatever the
// servers asked do: a method still running then is reported in a note
// and abandoned.
func (f *Finder) Lookup(ctx context.Context, address string) (*Result, error) {
	start := time.Now()
	addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	// The methods get the budget less a reserve for checking the hosts
	// they found.
	deadline, _ := ctx.Deadline() // the earlier of ours and the caller's
	reserve := min(time.Until(deadline)/5, 600*time.Millisecond)
	mctx, mcancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	defer mcancel()

	r := &run{f: f, addr: addr, fx: newFetcher(f.opts.Dial, f.opts.RootCAs, f.opts.RequestTimeout, f.opts.MaxBody, f.opts.MaxRedirects, f.opts.UserAgent)}
	defer r.fx.close()
	server := f.opts.DNSServer
	var dnsErr error
	if server == "" {
		server, dnsErr = systemDNSServer(f.resolvConf)
	}
	if dnsErr == nil {
		r.dns = &resolver{server: server, timeout: f.opts.RequestTimeout}
	}

	res := &Result{Address: addr.Full, Domain: addr.Domain}
	tasks := r.tasks()
	reports := make(chan report, 4*len(tasks))
	for i, t := range tasks {
		go func() {
			// Once a report could not be delivered in time, nothing more
			// is sent, not even "done": the collector then names the
			// task as unfinished instead of losing its findings quietly.
			var late atomic.Bool
			send := func(rep report) {
				if late.Load() {
					return
				}
				rep.task = i
				select {
				case reports <- rep:
				case <-mctx.Done():
					late.Store(true)
				}
			}
			t.run(mctx, send)
			send(report{done: true})
		}()
	}
	perTask := make([][]Note, len(tasks))
	done := make([]bool, len(tasks))
	var cands []Candidate
	var extraNotes []Note
	if dnsErr != nil {
		extraNotes = append(extraNotes, Note{Method: MethodLookup, Level: LevelWarning, Text: "DNS lookups (SRV, MX) were skipped: no DNS server is configured", Detail: dnsErr.Error()})
	}
	pending := len(tasks)
	take := func(rep report) {
		if rep.done {
			done[rep.task] = true
			pending--
			return
		}
		cands = append(cands, rep.cands...)
		perTask[rep.task] = append(perTask[rep.task], rep.notes...)
		if rep.mx != nil {
			res.MX = rep.mx
		}
		if rep.provider != "" {
			res.Provider = rep.provider
		}
	}
collect:
	for pending > 0 {
		select {
		case rep := <-reports:
			take(rep)
		case <-mctx.Done():
			// Take what arrived just in time, then give up on the rest.
			for {
				select {
				case rep := <-reports:
					take(rep)
					continue
				default:
				}
				break
			}
			for i, t := range tasks {
				if !done[i] {
					perTask[i] = append(perTask[i], Note{Method: t.method, Where: t.where, Level: LevelWarning,
						Text: fmt.Sprintf("no complete answer within the lookup's time limit (%s)", f.opts.Timeout)})
				}
			}
			break collect
		}
	}
	cands = merge(cands)
	cands, checkNotes := r.checkHosts(ctx, cands)
	order(cands)
	res.Candidates = cands
	res.Notes = append(res.Notes, extraNotes...)
	for _, ns := range perTask {
		res.Notes = append(res.Notes, ns...)
	}
	res.Notes = append(res.Notes, checkNotes...)
	if res.Candidates == nil {
		res.Candidates = []Candidate{}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// run is one lookup.
type run struct {
	f    *Finder
	addr Address
	dns  *resolver // nil when no DNS server is configured
	fx   *fetcher
}

// report is part of what a task found.
type report struct {
	task     int
	cands    []Candidate
	notes    []Note
	mx       []string
	provider string
	done     bool
}

// task is one method, run in its own goroutine; it may send several
// reports (a method that needs the answer of another, such as the ISPDB
// lookup of the MX domain, runs in the task of the one it needs).
type task struct {
	method Method
	where  string
	run    func(ctx context.Context, send func(report))
}

func (r *run) tasks() []task {
	d := r.addr.Domain
	q := url.Values{"emailaddress": {r.addr.Full}}.Encode()
	autoconfigURL := "https://autoconfig." + d + "/mail/config-v1.1.xml?" + q
	wellKnownURL := "https://" + d + "/.well-known/autoconfig/mail/config-v1.1.xml"
	adURL := "https://autodiscover." + d + "/autodiscover/autodiscover.xml"
	adRootURL := "https://" + d + "/autodiscover/autodiscover.xml"

	ts := []task{
		{MethodAutoconfig, autoconfigURL, func(ctx context.Context, send func(report)) {
			send(r.clientConfig(ctx, MethodAutoconfig, autoconfigURL, ConfidenceHigh))
		}},
		{MethodAutoconfig, wellKnownURL, func(ctx context.Context, send func(report)) {
			send(r.clientConfig(ctx, MethodAutoconfig, wellKnownURL, ConfidenceHigh))
		}},
	}
	if r.f.opts.AllowHTTPAutoconfig {
		httpURL := "http://autoconfig." + d + "/mail/config-v1.1.xml?" + q
		ts = append(ts, task{MethodAutoconfig, httpURL, func(ctx context.Context, send func(report)) {
			send(r.clientConfig(ctx, MethodAutoconfig, httpURL, ConfidenceLow))
		}})
	}
	if !r.f.opts.DisableISPDB {
		ispdbURL := r.f.opts.ISPDBURL + d
		ts = append(ts, task{MethodISPDB, ispdbURL, func(ctx context.Context, send func(report)) {
			send(r.clientConfig(ctx, MethodISPDB, ispdbURL, ConfidenceHigh))
		}})
	}
	for _, s := range srvServices {
		name := s.label + "._tcp." + d
		ts = append(ts, task{MethodSRV, name, func(ctx context.Context, send func(report)) {
			send(r.srv(ctx, s, name))
		}})
	}
	ts = append(ts,
		task{MethodMX, d, func(ctx context.Context, send func(report)) { r.mx(ctx, send) }},
		task{MethodAutodiscover, adURL, func(ctx context.Context, send func(report)) {
			send(r.autodiscover(ctx, adURL, true))
		}},
		task{MethodAutodiscover, adRootURL, func(ctx context.Context, send func(report)) {
			send(r.autodiscover(ctx, adRootURL, false))
		}},
		task{MethodAutodiscover, "_autodiscover._tcp." + d, func(ctx context.Context, send func(report)) {
			r.autodiscoverSRV(ctx, adURL, send)
		}},
	)
	return ts
}

func (r *run) note(m Method, where string, level Level, text, detail string) Note {
	return Note{Method: m, Where: where, Level: level, Text: text, Detail: detail}
}

func (r *run) errNote(m Method, where string, err error) Note {
	text, level, detail := describe(err, &r.f.opts)
	return r.note(m, where, level, text, detail)
}

// clientConfig fetches and reads an autoconfig document.
func (r *run) clientConfig(ctx context.Context, m Method, where string, conf Confidence) report {
	got, err := r.fx.fetch(ctx, http.MethodGet, where, nil, "")
	if err != nil {
		return report{notes: []Note{r.errNote(m, where, err)}}
	}
	if got.Status != http.StatusOK {
		level := LevelInfo
		if got.Status >= 500 {
			level = LevelWarning
		}
		return report{notes: []Note{r.note(m, where, level, fmt.Sprintf("not published (HTTP %d)", got.Status), "")}}
	}
	if looksLikeHTML(got) {
		return report{notes: []Note{r.note(m, where, LevelInfo, "not published (a web page answered, not a configuration)", "")}}
	}
	servers, skipped, err := ParseClientConfig(got.Body, r.addr)
	if err != nil {
		return report{notes: []Note{r.note(m, where, LevelWarning, "the answer is not a valid autoconfig document", err.Error())}}
	}
	src := Source{Method: m, Where: got.URL, Plaintext: got.Plaintext}
	rep := report{cands: configCandidates(servers, src, conf)}
	for _, s := range skipped {
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelWarning, "skipped: "+s, ""))
	}
	if len(rep.cands) == 0 {
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, "the document names no IMAP, POP3 or Exchange server", ""))
	} else {
		text := fmt.Sprintf("found %d setting(s)", len(rep.cands))
		if got.URL != where {
			text += " (after a redirect to " + got.URL + ")"
		}
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, text, ""))
	}
	return rep
}

// looksLikeHTML tells a web site's catch-all page from an XML document.
func looksLikeHTML(got *fetched) bool {
	ct := strings.ToLower(got.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "text/html") {
		return true
	}
	head := bytes.ToLower(bytes.TrimSpace(got.Body[:min(len(got.Body), 512)]))
	return bytes.HasPrefix(head, []byte("<!doctype html")) || bytes.HasPrefix(head, []byte("<html"))
}

// srvService is one RFC 6186 service name.
type srvService struct {
	label    string
	protocol Protocol
	security Security
}

// srvServices are the RFC 6186 section 3.2 access services, and the
// implicit-TLS ones RFC 8314 section 5.1 prefers.
var srvServices = []srvService{
	{"_imaps", ProtocolIMAP, SecurityTLS},
	{"_imap", ProtocolIMAP, SecuritySTARTTLS},
	{"_pop3s", ProtocolPOP3, SecurityTLS},
	{"_pop3", ProtocolPOP3, SecuritySTARTTLS},
}

// srv asks one SRV name. A record for _imap or _pop3 means the plain port
// with STARTTLS: RFC 8314 section 5 has clients insist on TLS, and RFC
// 6186 section 6 on STARTTLS before logging in.
func (r *run) srv(ctx context.Context, s srvService, name string) report {
	if r.dns == nil {
		return report{}
	}
	recs, notOffered, err := r.dns.lookupSRV(ctx, name, r.f.pick)
	if err != nil {
		n := r.errNote(MethodSRV, name, err)
		if errors.Is(err, errNoSuchName) {
			n.Text = "no record"
		}
		return report{notes: []Note{n}}
	}
	if notOffered {
		return report{notes: []Note{r.note(MethodSRV, name, LevelInfo, "the domain says this service is not offered (target \".\")", "")}}
	}
	if len(recs) == 0 {
		return report{notes: []Note{r.note(MethodSRV, name, LevelInfo, "no record", "")}}
	}
	var rep report
	for _, rec := range recs {
		rep.cands = append(rep.cands, Candidate{
			Protocol: s.protocol, Host: rec.Target, Port: rec.Port, Security: s.security,
			Username: r.addr.Full, UsernameForm: UsernameGuess,
			Confidence: ConfidenceHigh, Sources: []Source{{Method: MethodSRV, Where: name}},
		})
	}
	rep.notes = append(rep.notes, r.note(MethodSRV, name, LevelInfo, fmt.Sprintf("found %d server(s)", len(recs)), ""))
	return rep
}

// mx looks up the MX hosts, matches them against the provider table,
// then asks the ISPDB about the most preferred host's domain.
func (r *run) mx(ctx context.Context, send func(report)) {
	if r.dns == nil {
		return
	}
	d := r.addr.Domain
	hosts, null, err := r.dns.lookupMX(ctx, d)
	if err != nil {
		n := r.errNote(MethodMX, d, err)
		if errors.Is(err, errNoSuchName) {
			n.Level, n.Text = LevelWarning, "the domain does not exist in DNS: check the address"
		}
		send(report{notes: []Note{n}})
		return
	}
	if null {
		send(report{notes: []Note{r.note(MethodMX, d, LevelWarning, "the domain says it receives no email (null MX, RFC 7505)", "")}})
		return
	}
	if len(hosts) == 0 {
		send(report{notes: []Note{r.note(MethodMX, d, LevelInfo, "no MX record", "")}})
		return
	}
	rep := report{mx: make([]string, 0, len(hosts))}
	for _, h := range hosts {
		rep.mx = append(rep.mx, h.Host)
	}
	matched := false
	for _, h := range hosts {
		p, ok := matchMX(h.Host)
		if !ok {
			continue
		}
		matched = true
		if p.gateway {
			rep.notes = append(rep.notes, r.note(MethodMX, d, LevelInfo, fmt.Sprintf("the domain's mail passes through %s (%s), a filtering service; the mailbox server is elsewhere", p.name, h.Host), ""))
			break
		}
		rep.provider = p.name
		for _, c := range p.candidates {
			c.Confidence = ConfidenceMedium
			c.Sources = []Source{{Method: MethodMX, Where: h.Host}}
			if c.Protocol != ProtocolGraph {
				c.Username, c.UsernameForm = r.addr.Full, UsernameGuess
				if p.name == "Microsoft 365" || strings.HasPrefix(p.name, "Google") {
					c.UsernameForm = UsernameAddress
				}
			}
			rep.cands = append(rep.cands, c)
		}
		rep.notes = append(rep.notes, r.note(MethodMX, d, LevelInfo, fmt.Sprintf("the mail is received by %s (%s)", p.name, h.Host), ""))
		break
	}
	if !matched {
		rep.notes = append(rep.notes, r.note(MethodMX, d, LevelInfo, "the mail is received by "+hosts[0].Host+", a provider this lookup does not know", ""))
	}
	send(rep)
	if r.f.opts.DisableISPDB {
		return
	}
	names := mxISPDBNames(hosts[0].Host, d)
	if len(names) > 2 {
		names = names[:2]
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(r.clientConfig(ctx, MethodISPDBMX, r.f.opts.ISPDBURL+n, ConfidenceMedium))
		}()
	}
	wg.Wait()
}

// autodiscover POSTs the Autodiscover request to where. Answers without
// credentials tell little; a 401 at least says Exchange is there.
func (r *run) autodiscover(ctx context.Context, where string, dedicated bool) report {
	rep, _ := r.autodiscoverHop(ctx, where, dedicated, r.addr, 0)
	return rep
}

func (r *run) autodiscoverHop(ctx context.Context, where string, dedicated bool, addr Address, hop int) (report, bool) {
	m := MethodAutodiscover
	got, err := r.fx.fetch(ctx, http.MethodPost, where, autodiscoverRequest(addr.Full), autodiscoverContentType)
	if err != nil {
		return report{notes: []Note{r.errNote(m, where, err)}}, false
	}
	switch {
	case got.Status == http.StatusUnauthorized:
		host := where
		if u, err := url.Parse(got.URL); err == nil {
			host = u.Hostname()
		}
		text := "Exchange Autodiscover found at " + got.URL + " (needs the user's credentials)"
		if !dedicated {
			text = got.URL + " asks for a login; it may be Exchange Autodiscover (needs the user's credentials)"
		}
		c := Candidate{
			Protocol: ProtocolEWS, Host: host, Port: 443, Security: SecurityTLS,
			AutodiscoverURL: got.URL, Username: addr.Full, UsernameForm: UsernameGuess,
			Confidence: ConfidenceLow, Sources: []Source{{Method: m, Where: got.URL}},
			Notes: []string{"Autodiscover gives the EWS address only with the user's password; it is often https://" + host + "/EWS/Exchange.asmx"},
		}
		if auth := got.Header.Values("Www-Authenticate"); len(auth) > 0 {
			c.Auth = authFromChallenge(auth)
		}
		return report{cands: []Candidate{c}, notes: []Note{r.note(m, got.URL, LevelInfo, text, strings.Join(got.Header.Values("Www-Authenticate"), "; "))}}, true
	case got.Status != http.StatusOK:
		level := LevelInfo
		if got.Status >= 500 {
			level = LevelWarning
		}
		return report{notes: []Note{r.note(m, got.URL, level, fmt.Sprintf("not published (HTTP %d)", got.Status), "")}}, false
	case looksLikeHTML(got):
		return report{notes: []Note{r.note(m, got.URL, LevelInfo, "not published (a web page answered, not Autodiscover)", "")}}, false
	}
	a, err := ParseAutodiscover(got.Body, addr)
	if err != nil {
		return report{notes: []Note{r.note(m, got.URL, LevelWarning, "the answer is not a valid Autodiscover response", err.Error())}}, false
	}
	src := Source{Method: m, Where: got.URL}
	var rep report
	switch {
	case a.ErrorCode != "":
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, fmt.Sprintf("Exchange Autodiscover found, but it answered error %s: %s", a.ErrorCode, a.ErrorMessage), ""))
		return rep, true
	case a.Action == "redirectUrl":
		if a.RedirectURL == "" || hop >= 1 {
			rep.notes = append(rep.notes, r.note(m, got.URL, LevelWarning, "Autodiscover redirects to another server, which is not followed (not https, or a second redirect)", ""))
			return rep, true
		}
		next, ok := r.autodiscoverHop(ctx, a.RedirectURL, true, addr, hop+1)
		next.notes = append([]Note{r.note(m, got.URL, LevelInfo, "Autodiscover redirects to "+a.RedirectURL, "")}, next.notes...)
		return next, ok
	case a.Action == "redirectAddr":
		text := "Autodiscover says the mailbox has another address"
		if a.RedirectAddr != "" {
			text += ": " + a.RedirectAddr
			if strings.HasSuffix(a.RedirectAddr, ".onmicrosoft.com") {
				text += " (Microsoft 365)"
				rep.cands = append(rep.cands, Candidate{Protocol: ProtocolGraph, Provider: "Microsoft 365", Confidence: ConfidenceMedium, Sources: []Source{src},
					Notes: []string{"the mailbox is in Microsoft 365 as " + a.RedirectAddr}})
			}
		}
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, text, ""))
		return rep, true
	}
	provider := ""
	if a.MicrosoftOnline {
		provider = "Microsoft 365"
	}
	for i, e := range a.EWSURLs {
		u, host, port, _ := httpsURL(e)
		conf := ConfidenceHigh
		if i > 0 {
			conf = ConfidenceMedium
		}
		rep.cands = append(rep.cands, Candidate{Protocol: ProtocolEWS, Host: host, Port: port, Security: SecurityTLS, URL: u.String(),
			Username: addr.Full, UsernameForm: UsernameGuess, Provider: provider, Confidence: conf, Sources: []Source{src}})
	}
	if len(a.EWSURLs) == 0 {
		for _, o := range a.OWAURLs {
			_, host, port, _ := httpsURL(o)
			rep.cands = append(rep.cands, Candidate{Protocol: ProtocolEWS, Host: host, Port: port, Security: SecurityTLS, URL: ewsURLFor(host, port),
				Username: addr.Full, UsernameForm: UsernameGuess, Provider: provider, Confidence: ConfidenceMedium, Sources: []Source{src},
				Notes: []string{"the EWS address is derived from the Outlook on the web address " + o}})
		}
	}
	if a.MicrosoftOnline {
		rep.cands = append(rep.cands, Candidate{Protocol: ProtocolGraph, Provider: provider, Confidence: ConfidenceHigh, Sources: []Source{src}})
	}
	rep.cands = append(rep.cands, configCandidates(a.Mail, src, ConfidenceMedium)...)
	if len(rep.cands) == 0 {
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, "Autodiscover answered without any server settings", ""))
	} else {
		rep.notes = append(rep.notes, r.note(m, got.URL, LevelInfo, fmt.Sprintf("Autodiscover answered with %d setting(s)", len(rep.cands)), ""))
	}
	return rep, true
}

// authFromChallenge reads the schemes of WWW-Authenticate headers (RFC
// 9110 section 11.6.1).
func authFromChallenge(values []string) []Auth {
	var out []Auth
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			scheme := strings.ToLower(strings.Fields(strings.TrimSpace(part) + " ")[0])
			var a Auth
			switch scheme {
			case "basic":
				a = AuthPassword
			case "ntlm", "negotiate":
				a = AuthNTLM
			case "bearer":
				a = AuthOAuth2
			default:
				continue
			}
			if !containsAuth(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// autodiscoverSRV asks _autodiscover._tcp ([MS-OXDISCO] section 3.1.5.3)
// and POSTs to the first two targets not already asked.
func (r *run) autodiscoverSRV(ctx context.Context, dedicatedURL string, send func(report)) {
	if r.dns == nil {
		return
	}
	name := "_autodiscover._tcp." + r.addr.Domain
	recs, notOffered, err := r.dns.lookupSRV(ctx, name, r.f.pick)
	if err != nil {
		n := r.errNote(MethodAutodiscover, name, err)
		if errors.Is(err, errNoSuchName) {
			n.Text = "no record"
		}
		send(report{notes: []Note{n}})
		return
	}
	if len(recs) == 0 || notOffered {
		send(report{notes: []Note{r.note(MethodAutodiscover, name, LevelInfo, "no record", "")}})
		return
	}
	var wg sync.WaitGroup
	asked := 0
	for _, rec := range recs {
		if asked == 2 {
			break
		}
		host := rec.Target
		if rec.Port != 443 {
			host = fmt.Sprintf("%s:%d", host, rec.Port)
		}
		u := "https://" + host + "/autodiscover/autodiscover.xml"
		if strings.EqualFold(u, dedicatedURL) {
			send(report{notes: []Note{r.note(MethodAutodiscover, name, LevelInfo, "points at "+rec.Target+", asked already", "")}})
			continue
		}
		asked++
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := r.autodiscover(ctx, u, true)
			rep.notes = append([]Note{r.note(MethodAutodiscover, name, LevelInfo, "points at "+u, "")}, rep.notes...)
			send(rep)
		}()
	}
	wg.Wait()
}

// checkHosts resolves the host of every candidate: one that is, or
// resolves only to, a non-public address is dropped unless the options
// allow it; one whose name does not resolve is kept with low confidence.
// It uses what is left of the lookup's time; a host whose answer does
// not come in time is kept as it is.
// refused says why a candidate's host may not have address a, or "".
func (r *run) refused(a netip.Addr) string {
	if r.f.opts.CheckAddr == nil {
		return nonPublic(a)
	}
	if err := r.f.opts.CheckAddr(a); err != nil {
		return "refused by the outbound policy"
	}
	return ""
}

func (r *run) checkHosts(ctx context.Context, cands []Candidate) ([]Candidate, []Note) {
	type verdict struct {
		drop   string // why it is dropped
		noName bool
	}
	verdicts := map[string]*verdict{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range cands {
		h := c.Host
		if h == "" || verdicts[h] != nil {
			continue
		}
		v := &verdict{}
		verdicts[h] = v
		if a, err := netip.ParseAddr(h); err == nil {
			v.drop = r.refused(a)
			continue
		}
		if localName(h) && r.f.opts.CheckAddr == nil {
			v.drop = "a local name"
			continue
		}
		if r.dns == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			addrs, err := r.dns.lookupAddrs(ctx, h)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errNoSuchName), errors.Is(err, errNoAddress):
				v.noName = true
			case err != nil:
			default:
				why := ""
				for _, a := range addrs {
					if why = r.refused(a); why == "" {
						break
					}
				}
				if why != "" {
					v.drop = "resolves to " + addrs[0].String() + ", " + why
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	var out []Candidate
	var notes []Note
	for _, c := range cands {
		v := verdicts[c.Host]
		if v == nil {
			out = append(out, c)
			continue
		}
		if v.drop != "" && (!r.f.opts.AllowNonPublic || r.f.opts.CheckAddr != nil) {
			notes = append(notes, r.note(MethodLookup, c.Host, LevelWarning,
				fmt.Sprintf("a %s setting for %s was not offered: the host is not on the internet (%s)", c.Protocol, c.Host, v.drop), ""))
			continue
		}
		if v.noName {
			c.Confidence = ConfidenceLow
			c.Notes = append(c.Notes, "the host name "+c.Host+" does not resolve in DNS")
		}
		out = append(out, c)
	}
	return out, notes
}
