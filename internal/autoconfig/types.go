package autoconfig

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Protocol is how the mailbox is reached.
type Protocol string

const (
	ProtocolIMAP Protocol = "imap"
	ProtocolPOP3 Protocol = "pop3"
	// ProtocolEWS is Exchange Web Services; Candidate.URL holds the
	// endpoint when it is known.
	ProtocolEWS Protocol = "ews"
	// ProtocolGraph is a hint that the mailbox lives in Microsoft 365,
	// where Microsoft Graph (OAuth2, no server settings) is the way in.
	ProtocolGraph Protocol = "graph"
)

// rank orders protocols for a migration: IMAP keeps folders and flags,
// EWS and Graph do too but need Exchange-specific work, POP3 sees only
// the inbox.
func (p Protocol) rank() int {
	switch p {
	case ProtocolIMAP:
		return 0
	case ProtocolEWS:
		return 1
	case ProtocolGraph:
		return 2
	case ProtocolPOP3:
		return 3
	}
	return 4
}

// Security is the transport protection, in the words of the service
// package's Endpoint.Security.
type Security string

const (
	// SecurityTLS is implicit TLS from the first byte (imaps, pop3s,
	// https), which RFC 8314 section 3 prefers.
	SecurityTLS Security = "tls"
	// SecuritySTARTTLS upgrades a plain connection (RFC 3501 section
	// 6.2.1, RFC 2595).
	SecuritySTARTTLS Security = "starttls"
	// SecurityNone is no encryption; logging in needs an explicit opt-in.
	SecurityNone Security = "none"
)

func (s Security) rank() int {
	switch s {
	case SecurityTLS:
		return 0
	case SecuritySTARTTLS:
		return 1
	}
	return 2
}

// Confidence says how much a finding can be trusted.
type Confidence string

const (
	// ConfidenceHigh: published by the domain itself over an
	// authenticated channel (its autoconfig over https, its SRV records,
	// its Autodiscover answer), or the ISPDB entry for exactly this
	// domain.
	ConfidenceHigh Confidence = "high"
	// ConfidenceMedium: inferred from who receives the domain's mail (the
	// MX host's provider or its ISPDB entry).
	ConfidenceMedium Confidence = "medium"
	// ConfidenceLow: fetched without TLS, guessed from a partial answer,
	// or the host name does not resolve.
	ConfidenceLow Confidence = "low"
)

func (c Confidence) rank() int {
	switch c {
	case ConfidenceHigh:
		return 0
	case ConfidenceMedium:
		return 1
	}
	return 2
}

// UsernameForm says what the login name is made of.
type UsernameForm string

const (
	// UsernameAddress: the whole email address.
	UsernameAddress UsernameForm = "address"
	// UsernameLocalPart: the part before the @.
	UsernameLocalPart UsernameForm = "localpart"
	// UsernameCustom: something else the provider published (e.g. a
	// customer number); Candidate.Username holds it.
	UsernameCustom UsernameForm = "custom"
	// UsernameGuess: the source says nothing about it (SRV, the MX
	// table); Candidate.Username is the address, the usual choice. Try
	// the local part if the login is refused.
	UsernameGuess UsernameForm = "guess"
)

// Method names a way of finding settings.
type Method string

const (
	MethodSRV          Method = "srv"          // RFC 6186 SRV records
	MethodAutoconfig   Method = "autoconfig"   // the domain's config-v1.1.xml
	MethodISPDB        Method = "ispdb"        // the ISPDB entry of the domain
	MethodISPDBMX      Method = "ispdb-mx"     // the ISPDB entry of the MX host's domain
	MethodAutodiscover Method = "autodiscover" // Exchange POX Autodiscover
	MethodMX           Method = "mx"           // the MX host, matched against a table
	MethodLookup       Method = "lookup"       // the lookup as a whole (budget, host checks)
)

// rank orders sources of equal confidence: what the domain publishes for
// mail clients first.
func (m Method) rank() int {
	switch m {
	case MethodAutoconfig:
		return 0
	case MethodSRV:
		return 1
	case MethodISPDB:
		return 2
	case MethodAutodiscover:
		return 3
	case MethodISPDBMX:
		return 4
	case MethodMX:
		return 5
	}
	return 6
}

// Auth names a login method, normalised from the autoconfig
// <authentication> values and Autodiscover.
type Auth string

const (
	AuthPassword          Auth = "password"           // cleartext password inside TLS (LOGIN, AUTH PLAIN)
	AuthPasswordEncrypted Auth = "password-encrypted" // CRAM-MD5 / DIGEST-MD5
	AuthOAuth2            Auth = "oauth2"             // XOAUTH2 / OAUTHBEARER
	AuthNTLM              Auth = "ntlm"
	AuthGSSAPI            Auth = "gssapi"
	AuthClientCert        Auth = "client-cert"
	AuthNone              Auth = "none"
)

// Source is one place a candidate was found.
type Source struct {
	Method Method `json:"method"`
	// Where is the URL fetched or the DNS name asked, e.g.
	// "_imaps._tcp.example.com" or
	// "https://autoconfig.example.com/mail/config-v1.1.xml".
	Where string `json:"where"`
	// Plaintext is set when the answer came over http, which anyone on
	// the path could have changed.
	Plaintext bool `json:"plaintext,omitempty"`
}

// Candidate is one possible setting for the source server.
type Candidate struct {
	Protocol Protocol `json:"protocol"`
	// Host and Port of the server; for EWS the host and port of URL.
	// Empty for a Graph hint.
	Host     string   `json:"host,omitempty"`
	Port     int      `json:"port,omitempty"`
	Security Security `json:"security,omitempty"`
	// URL is the EWS endpoint (https://host/EWS/Exchange.asmx) for
	// ProtocolEWS, when known.
	URL string `json:"url,omitempty"`
	// AutodiscoverURL is where Exchange Autodiscover answered; set when
	// it asked for credentials, so that a later step can ask again with
	// the user's password.
	AutodiscoverURL string `json:"autodiscover_url,omitempty"`
	// Username is the login name to suggest, placeholders filled in.
	Username     string       `json:"username,omitempty"`
	UsernameForm UsernameForm `json:"username_form,omitempty"`
	// Auth lists the login methods the source named, best first.
	Auth []Auth `json:"auth,omitempty"`
	// Provider is a display name such as "Google Workspace / Gmail",
	// when a source gave one.
	Provider   string     `json:"provider,omitempty"`
	Confidence Confidence `json:"confidence"`
	// Sources lists where the same setting was found, best first.
	Sources []Source `json:"sources"`
	// Notes are remarks for the user about this setting (e.g. that it
	// needs OAuth2).
	Notes []string `json:"notes,omitempty"`
}

// key identifies the setting for merging duplicates from several sources.
func (c *Candidate) key() string {
	return strings.Join([]string{string(c.Protocol), strings.ToLower(c.Host), strconv.Itoa(c.Port), string(c.Security), strings.ToLower(c.URL)}, "|")
}

// Level says whether a note is worth the user's attention.
type Level string

const (
	// LevelInfo: nothing published there, the common case.
	LevelInfo Level = "info"
	// LevelWarning: something is published but unusable or unsafe
	// (garbage, too large, a redirect to http, a timeout).
	LevelWarning Level = "warning"
)

// Note is what one method found or why it found nothing. Notes never
// hold secrets; Text is for the user, Detail for the operator's log (it
// may name a refused address).
type Note struct {
	Method Method `json:"method"`
	Where  string `json:"where,omitempty"`
	Level  Level  `json:"level"`
	Text   string `json:"text"`
	Detail string `json:"detail,omitempty"`
}

// Result is what a lookup found.
type Result struct {
	// Address is the address looked up; Domain its domain in ASCII
	// (IDNA) form.
	Address string `json:"address"`
	Domain  string `json:"domain"`
	// Candidates are ordered best first.
	Candidates []Candidate `json:"candidates"`
	// Provider names the mail provider recognised from the MX hosts,
	// e.g. "Microsoft 365"; empty when unknown.
	Provider string `json:"provider,omitempty"`
	// MX lists the domain's MX hosts, most preferred first.
	MX []string `json:"mx,omitempty"`
	// Notes say, per method, what was asked and what came back.
	Notes []Note `json:"notes"`
	// Elapsed is how long the lookup took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Best returns the first candidate, or false when none was found.
func (r *Result) Best() (Candidate, bool) {
	if len(r.Candidates) == 0 {
		return Candidate{}, false
	}
	return r.Candidates[0], true
}

// merge folds candidates describing the same setting into one, keeping
// the highest confidence, the most specific username and every source.
func merge(in []Candidate) []Candidate {
	var out []Candidate
	index := map[string]int{}
	for _, c := range in {
		k := c.key()
		i, ok := index[k]
		if !ok {
			index[k] = len(out)
			c.Sources = slices.Clone(c.Sources)
			c.Notes = slices.Clone(c.Notes)
			out = append(out, c)
			continue
		}
		m := &out[i]
		if c.Confidence.rank() < m.Confidence.rank() {
			m.Confidence = c.Confidence
		}
		if m.UsernameForm == UsernameGuess && c.UsernameForm != UsernameGuess && c.UsernameForm != "" {
			m.Username, m.UsernameForm = c.Username, c.UsernameForm
		}
		if len(m.Auth) == 0 {
			m.Auth = c.Auth
		}
		if m.Provider == "" {
			m.Provider = c.Provider
		}
		if m.AutodiscoverURL == "" {
			m.AutodiscoverURL = c.AutodiscoverURL
		}
		for _, s := range c.Sources {
			if !slices.Contains(m.Sources, s) {
				m.Sources = append(m.Sources, s)
			}
		}
		for _, n := range c.Notes {
			if !slices.Contains(m.Notes, n) {
				m.Notes = append(m.Notes, n)
			}
		}
	}
	for i := range out {
		slices.SortStableFunc(out[i].Sources, func(a, b Source) int {
			return cmp.Or(cmp.Compare(b2i(a.Plaintext), b2i(b.Plaintext)), cmp.Compare(a.Method.rank(), b.Method.rank()))
		})
	}
	return out
}

// order sorts candidates best first: by confidence; then anything that
// logs in without encryption last; then by protocol (IMAP before POP3,
// since POP3 sees only the inbox, whatever the SRV priorities say); then
// implicit TLS before STARTTLS (RFC 8314 section 3); then by source; and
// otherwise in the order found (which keeps SRV priority/weight order,
// RFC 2782).
func order(cs []Candidate) {
	slices.SortStableFunc(cs, func(a, b Candidate) int {
		return cmp.Or(
			cmp.Compare(a.Confidence.rank(), b.Confidence.rank()),
			cmp.Compare(b2i(a.Security == SecurityNone), b2i(b.Security == SecurityNone)),
			cmp.Compare(a.Protocol.rank(), b.Protocol.rank()),
			cmp.Compare(a.Security.rank(), b.Security.rank()),
			cmp.Compare(bestMethod(a).rank(), bestMethod(b).rank()),
		)
	})
}

func bestMethod(c Candidate) Method {
	if len(c.Sources) == 0 {
		return ""
	}
	return c.Sources[0].Method
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
