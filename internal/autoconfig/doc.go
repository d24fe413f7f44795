// Package autoconfig finds the mail server settings of an email address
// from public data, so that "Start new migration" can offer the source
// server's settings for the user to confirm or edit.
//
// # Methods
//
// One Lookup runs these methods at the same time:
//
//   - RFC 6186 SRV records _imaps._tcp, _imap._tcp, _pop3s._tcp and
//     _pop3._tcp, ordered by priority and weight as RFC 2782 says; a
//     target of "." means the service is not offered.
//   - The domain's own autoconfig file (Thunderbird's config-v1.1.xml):
//     https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>
//     and https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml;
//     with Options.AllowHTTPAutoconfig also the http:// form of the first,
//     whose findings are marked as plaintext and low confidence.
//   - The ISPDB (Options.ISPDBURL + domain), and the ISPDB entry of the
//     MX host's domain, as Thunderbird does for hosting providers.
//   - Exchange POX Autodiscover: a POST to
//     https://autodiscover.<domain>/autodiscover/autodiscover.xml,
//     https://<domain>/autodiscover/autodiscover.xml and the targets of
//     the _autodiscover._tcp SRV record, without credentials. Exchange
//     then answers 401, which is reported as "Exchange Autodiscover
//     found at … (needs the user's credentials)"; an answer with an
//     EwsUrl gives an EWS candidate.
//   - The MX hosts, matched against a small table of providers
//     (mxhints.go): Microsoft 365, Google Workspace / Gmail, Rackspace,
//     Fastmail, iCloud, and filtering gateways that hide the real server.
//
// Every method's outcome, success or not, is a Note; no method's
// failure fails the lookup. Findings are merged (the same server from
// several methods is one Candidate with several Sources), their hosts
// are resolved, and candidates are ordered best first: confidence, then
// encrypted before plaintext, IMAP before EWS before POP3, implicit TLS
// before STARTTLS (RFC 8314), and the order of the sources.
//
// # Safety
//
// Every HTTP connection, redirects included, is opened by Options.Dial,
// which should be the operator's outbound policy (internal/netpolicy's
// Policy.DialContext); without one, only public addresses are dialled.
// There is no proxy. Redirects are followed at most
// Options.MaxRedirects times and only to https. Bodies larger than
// Options.MaxBody (64 KiB) are refused. XML is read with encoding/xml,
// which never loads external entities. Candidates whose host is an IP
// address or name that is not on the internet, or that resolves only to
// such addresses, are dropped unless Options.AllowNonPublic. DNS
// questions go straight to Options.DNSServer (the operator's resolver),
// not through Dial. The address is sent to the domain's own servers
// (autoconfig, Autodiscover) only; the ISPDB learns the domain.
//
// # Time
//
// A lookup returns within Options.Timeout (4 s by default) whatever the
// servers do; each HTTP exchange and each DNS question has
// Options.RequestTimeout (2 s). The last fifth of the budget (at most
// 600 ms) is kept for resolving the hosts found; a method still running
// when its time is up is abandoned and named in a note.
//
// # Use
//
// A Finder has no state between lookups; make one at start-up and share
// it. The portal should call Lookup when the user leaves the address
// field (not on every key press), show Result.Candidates as suggestions
// and Result.Notes on demand, and never block the form on it:
//
//	finder := autoconfig.New(autoconfig.Options{
//		Dial:      policy.DialContext, // the operator's outbound policy
//		DNSServer: "127.0.0.53:53",
//	})
//	res, err := finder.Lookup(ctx, "alice@example.com")
//	if err != nil {
//		return err // not an email address; err says what to type
//	}
//	if best, ok := res.Best(); ok {
//		fmt.Println(best.Protocol, best.Host, best.Port, best.Security, best.Username)
//	}
//	for _, n := range res.Notes {
//		fmt.Println(n.Method, n.Where, n.Text)
//	}
//
// Result and its parts have JSON tags for the API.
//
// # Not done
//
//   - Autodiscover with the user's credentials: a Candidate with
//     AutodiscoverURL set is where a later step can ask again once the
//     user has typed the password. Neither SOAP Autodiscover, nor the
//     JSON Autodiscover v2 of Exchange Online, nor the Active Directory
//     (SCP) lookup, nor [MS-OXDISCO]'s redirect by plain HTTP GET.
//   - Guessing by connecting to imap.<domain> or mail.<domain>
//     (Thunderbird's last resort): it opens mail connections and takes
//     seconds; the verify pass does that once the user confirms.
//   - DNSSEC: SRV and MX answers are taken as the resolver gives them,
//     which is why SRV findings still go to the user for confirmation.
//   - Caching: each Lookup asks again; the portal may cache a Result per
//     domain for a few minutes.
//   - Outgoing (SMTP) servers, which a migration source does not need.
package autoconfig
