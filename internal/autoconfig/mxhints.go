package autoconfig

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// mxProvider is a mail provider recognised by the host names of its MX
// servers. The table is small on purpose: providers that host many
// customer domains under one MX name, whose settings are stable and
// published. Anything else is left to the ISPDB lookup by MX domain
// (see mxISPDBNames), which knows far more providers.
//
// Sources of the settings: the ISPDB entries office365.com (which also
// names mail.protection.outlook.com as its MX domain), googlemail.com
// (MX domain google.com), emailsrvr.com, messagingengine.com and me.com
// in github.com/thunderbird/autoconfig; the Microsoft 365 notes from
// shared/reference/exchange-graph-facts.md.
type mxProvider struct {
	name string
	// exact host names and suffixes (with the leading dot) that match.
	exact    []string
	suffixes []string
	// candidates offered when it matches; a Graph hint has no host.
	candidates []Candidate
	// notes for the whole result.
	notes []string
	// gateway marks a filtering service in front of the real mailbox
	// server: a note, no settings.
	gateway bool
}

func mxProviders() []mxProvider {
	m365 := "Microsoft 365"
	google := "Google Workspace / Gmail"
	return []mxProvider{
		{
			name:     m365,
			suffixes: []string{".mail.protection.outlook.com", ".mail.protection.outlook.de"},
			candidates: []Candidate{
				{Protocol: ProtocolGraph, Provider: m365, Notes: []string{
					"Microsoft Graph with an app registration in the tenant (OAuth2 client credentials) reads every mailbox without the users' passwords",
				}},
				{Protocol: ProtocolIMAP, Host: "outlook.office365.com", Port: 993, Security: SecurityTLS, Provider: m365, Auth: []Auth{AuthOAuth2}, Notes: []string{
					"Microsoft 365 IMAP accepts only OAuth2 (XOAUTH2), not the password",
				}},
				{Protocol: ProtocolEWS, Host: "outlook.office365.com", Port: 443, Security: SecurityTLS, URL: "https://outlook.office365.com/EWS/Exchange.asmx", Provider: m365, Auth: []Auth{AuthOAuth2}, Notes: []string{
					"EWS in Exchange Online is turned off tenant by tenant from 2026-10-01 and removed on 2027-04-01: prefer Microsoft Graph",
				}},
				{Protocol: ProtocolPOP3, Host: "outlook.office365.com", Port: 995, Security: SecurityTLS, Provider: m365, Auth: []Auth{AuthOAuth2}},
			},
		},
		{
			name:     google,
			exact:    []string{"aspmx.l.google.com", "smtp.google.com"},
			suffixes: []string{".aspmx.l.google.com", ".google.com", ".googlemail.com"},
			candidates: []Candidate{
				{Protocol: ProtocolIMAP, Host: "imap.gmail.com", Port: 993, Security: SecurityTLS, Provider: google, Auth: []Auth{AuthOAuth2, AuthPassword}, Notes: []string{
					"Gmail takes OAuth2 or an app password (with 2-step verification), not the account password; labels appear as folders, so a message with several labels is in several folders",
				}},
				{Protocol: ProtocolPOP3, Host: "pop.gmail.com", Port: 995, Security: SecurityTLS, Provider: google, Auth: []Auth{AuthOAuth2, AuthPassword}},
			},
		},
		{
			name:     "Rackspace Email",
			suffixes: []string{".emailsrvr.com"},
			candidates: []Candidate{
				{Protocol: ProtocolIMAP, Host: "secure.emailsrvr.com", Port: 993, Security: SecurityTLS, Provider: "Rackspace Email", Auth: []Auth{AuthPassword}},
			},
		},
		{
			name:     "Fastmail",
			suffixes: []string{".messagingengine.com"},
			candidates: []Candidate{
				{Protocol: ProtocolIMAP, Host: "imap.fastmail.com", Port: 993, Security: SecurityTLS, Provider: "Fastmail", Auth: []Auth{AuthPassword}},
				{Protocol: ProtocolPOP3, Host: "pop.fastmail.com", Port: 995, Security: SecurityTLS, Provider: "Fastmail", Auth: []Auth{AuthPassword}},
			},
		},
		{
			name:     "Apple iCloud",
			suffixes: []string{".mail.icloud.com"},
			candidates: []Candidate{
				{Protocol: ProtocolIMAP, Host: "imap.mail.me.com", Port: 993, Security: SecurityTLS, Provider: "Apple iCloud", Auth: []Auth{AuthPassword}, Notes: []string{
					"iCloud logs in with the Apple ID and an app-specific password",
				}},
			},
		},
		{name: "Proofpoint", suffixes: []string{".pphosted.com"}, gateway: true},
		{name: "Mimecast", suffixes: []string{".mimecast.com"}, gateway: true},
		{name: "Barracuda", suffixes: []string{".barracudanetworks.com"}, gateway: true},
	}
}

// matchMX returns the provider the MX host belongs to.
func matchMX(host string) (mxProvider, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range mxProviders() {
		for _, e := range p.exact {
			if host == e {
				return p, true
			}
		}
		for _, s := range p.suffixes {
			if strings.HasSuffix(host, s) {
				return p, true
			}
		}
	}
	return mxProvider{}, false
}

// mxISPDBNames are the names to look up in the ISPDB for an MX host, as
// Thunderbird does ("for mx1.mail.hoster.com, look up hoster.com"): the
// registrable domain of the MX host (by the public suffix list), and the
// MX host's parent domain when that is longer (ISPDB entries name e.g.
// mail.protection.outlook.com). Names that are the address's own domain
// or inside it are skipped: the domain was looked up already, and its own
// mail host says nothing more.
func mxISPDBNames(mx, domain string) []string {
	var out []string
	add := func(n string) {
		if n == "" || n == domain || strings.HasSuffix(n, "."+domain) || !strings.Contains(n, ".") {
			return
		}
		for _, x := range out {
			if x == n {
				return
			}
		}
		out = append(out, n)
	}
	if i := strings.IndexByte(mx, '.'); i > 0 {
		parent := mx[i+1:]
		base, err := publicsuffix.EffectiveTLDPlusOne(mx)
		if err == nil && parent != base && len(parent) > len(base) {
			add(parent)
		}
		if err == nil {
			add(base)
		}
	}
	return out
}
