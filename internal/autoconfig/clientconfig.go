package autoconfig

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// The autoconfig file format ("config-v1.1.xml"), as specified at
// https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
// and served both by a domain's own autoconfig server and by the ISPDB
// (https://autoconfig.thunderbird.net/v1.1/<domain>):
//
//	<clientConfig version="1.1">
//	  <emailProvider id="example.com">
//	    <domain>example.com</domain>
//	    <displayName>Example Mail</displayName>
//	    <incomingServer type="imap">            imap | pop3 | exchange (others ignored)
//	      <hostname>imap.example.com</hostname>  may hold placeholders
//	      <port>993</port>
//	      <socketType>SSL</socketType>           SSL | STARTTLS | plain
//	      <username>%EMAILADDRESS%</username>
//	      <authentication>password-cleartext</authentication>   repeatable, best first
//	      <owaURL>…</owaURL> <ewsURL>…</ewsURL>  type="exchange" only
//	    </incomingServer>
//	    <outgoingServer type="smtp">…</outgoingServer>   not needed for a migration source
//	  </emailProvider>
//	</clientConfig>
//
// Placeholders: %EMAILADDRESS% (the whole address), %EMAILLOCALPART%
// (before the @), %EMAILDOMAIN% (after the @).

type xmlClientConfig struct {
	XMLName   xml.Name      `xml:"clientConfig"`
	Providers []xmlProvider `xml:"emailProvider"`
}

type xmlProvider struct {
	ID          string      `xml:"id,attr"`
	Domains     []string    `xml:"domain"`
	DisplayName string      `xml:"displayName"`
	ShortName   string      `xml:"displayShortName"`
	Incoming    []xmlServer `xml:"incomingServer"`
}

type xmlServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           string   `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Username       string   `xml:"username"`
	Authentication []string `xml:"authentication"`
	OwaURL         string   `xml:"owaURL"`
	EwsURL         string   `xml:"ewsURL"`
}

// Bounds on what one document may contribute; a real one has a handful
// of servers.
const (
	maxProviders = 8
	maxServers   = 32
)

// ClientConfigServer is one incoming server of an autoconfig document,
// placeholders filled in and values checked.
type ClientConfigServer struct {
	Protocol     Protocol
	Host         string
	Port         int
	Security     Security
	URL          string // EWS endpoint, for type="exchange"
	Username     string
	UsernameForm UsernameForm
	Auth         []Auth
	Provider     string
}

// ParseClientConfig reads an autoconfig document (config-v1.1.xml or an
// ISPDB entry) for addr. It returns the incoming servers it could use
// and, for each it had to skip, a sentence saying why; the error is for
// a document that is not a clientConfig at all.
func ParseClientConfig(data []byte, addr Address) ([]ClientConfigServer, []string, error) {
	var doc xmlClientConfig
	if err := decodeXML(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not an autoconfig document: %s", cleanText(err.Error(), 160))
	}
	var out []ClientConfigServer
	var skipped []string
	count := 0
	for pi, p := range doc.Providers {
		if pi >= maxProviders {
			skipped = append(skipped, fmt.Sprintf("more than %d emailProvider elements; the rest were ignored", maxProviders))
			break
		}
		provider := cleanText(p.DisplayName, 100)
		if provider == "" {
			provider = cleanText(p.ShortName, 100)
		}
		for _, s := range p.Incoming {
			if count >= maxServers {
				skipped = append(skipped, fmt.Sprintf("more than %d incomingServer elements; the rest were ignored", maxServers))
				break
			}
			count++
			srv, why := readServer(s, addr)
			if why != "" {
				skipped = append(skipped, why)
				continue
			}
			if srv == nil {
				continue // a type a migration source does not use
			}
			srv.Provider = provider
			out = append(out, *srv)
		}
	}
	if len(doc.Providers) == 0 {
		skipped = append(skipped, "the document has no emailProvider")
	}
	return out, skipped, nil
}

// readServer checks one incomingServer. It returns nil, "" for a type
// that is not wanted (nntp, …), nil and a reason for one it cannot use.
func readServer(s xmlServer, addr Address) (*ClientConfigServer, string) {
	typ := strings.ToLower(strings.TrimSpace(s.Type))
	var proto Protocol
	switch typ {
	case "imap":
		proto = ProtocolIMAP
	case "pop3":
		proto = ProtocolPOP3
	case "exchange":
		proto = ProtocolEWS
	default:
		return nil, ""
	}
	label := fmt.Sprintf("the %s server %q", typ, cleanText(s.Hostname, 60))
	host := cleanHost(expand(s.Hostname, addr))
	srv := &ClientConfigServer{Protocol: proto, Host: host, Auth: readAuth(s.Authentication)}
	srv.Username, srv.UsernameForm = readUsername(s.Username, addr)
	if proto == ProtocolEWS {
		return readExchange(s, srv, addr, label)
	}
	if host == "" {
		return nil, label + " has no valid host name"
	}
	if srv.Port = parsePort(s.Port); srv.Port == 0 {
		return nil, fmt.Sprintf("%s has no valid port (%q)", label, cleanText(s.Port, 20))
	}
	switch strings.ToUpper(strings.TrimSpace(s.SocketType)) {
	case "SSL":
		srv.Security = SecurityTLS
	case "STARTTLS":
		srv.Security = SecuritySTARTTLS
	case "PLAIN":
		srv.Security = SecurityNone
	case "":
		return nil, label + " does not say whether it uses TLS (no socketType)"
	default:
		return nil, fmt.Sprintf("%s has an unknown socketType %q", label, cleanText(s.SocketType, 20))
	}
	return srv, ""
}

// readExchange fills in an incomingServer of type "exchange": the EWS
// URL as given, else derived from the OWA URL or the host name the way
// Exchange lays them out (https://HOST/EWS/Exchange.asmx).
func readExchange(s xmlServer, srv *ClientConfigServer, addr Address, label string) (*ClientConfigServer, string) {
	if u, host, port, ok := httpsURL(expand(s.EwsURL, addr)); ok {
		srv.URL, srv.Host, srv.Port = u.String(), host, port
	} else if _, host, port, ok := httpsURL(expand(s.OwaURL, addr)); ok {
		srv.URL, srv.Host, srv.Port = ewsURLFor(host, port), host, port
	} else if srv.Host != "" {
		srv.Port = 443
		srv.URL = ewsURLFor(srv.Host, 443)
	} else {
		return nil, label + " has neither an https ewsURL nor a valid host name"
	}
	srv.Security = SecurityTLS
	return srv, ""
}

// ewsURLFor is the usual EWS endpoint of an Exchange host.
func ewsURLFor(host string, port int) string {
	h := host
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		h = "[" + host + "]"
	}
	if port != 443 {
		h = fmt.Sprintf("%s:%d", h, port)
	}
	return "https://" + h + "/EWS/Exchange.asmx"
}

var placeholder = regexp.MustCompile(`%[A-Za-z_]+%`)

// expand fills in the placeholders of the format.
func expand(s string, addr Address) string {
	return strings.NewReplacer(
		"%EMAILADDRESS%", addr.Full,
		"%EMAILLOCALPART%", addr.LocalPart,
		"%EMAILDOMAIN%", addr.Domain,
	).Replace(strings.TrimSpace(s))
}

// readUsername expands a username template and says what it is made of.
// A template with a placeholder this lookup cannot fill (e.g.
// %REALNAME%) or none at all becomes a guess of the whole address.
func readUsername(tmpl string, addr Address) (string, UsernameForm) {
	tmpl = strings.TrimSpace(tmpl)
	switch tmpl {
	case "%EMAILADDRESS%":
		return addr.Full, UsernameAddress
	case "%EMAILLOCALPART%":
		return addr.LocalPart, UsernameLocalPart
	case "":
		return addr.Full, UsernameGuess
	}
	u := expand(tmpl, addr)
	if placeholder.MatchString(u) || len(u) > 256 {
		return addr.Full, UsernameGuess
	}
	u = cleanText(u, 256)
	switch u {
	case addr.Full:
		return u, UsernameAddress
	case addr.LocalPart:
		return u, UsernameLocalPart
	case "":
		return addr.Full, UsernameGuess
	}
	return u, UsernameCustom
}

// readAuth normalises <authentication> values, keeping their order and
// dropping unknown ones.
func readAuth(values []string) []Auth {
	var out []Auth
	for _, v := range values {
		var a Auth
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "password-cleartext", "plain":
			a = AuthPassword
		case "password-encrypted", "secure":
			a = AuthPasswordEncrypted
		case "oauth2":
			a = AuthOAuth2
		case "ntlm":
			a = AuthNTLM
		case "gssapi":
			a = AuthGSSAPI
		case "tls-client-cert":
			a = AuthClientCert
		case "none", "client-ip-address":
			a = AuthNone
		default:
			continue
		}
		if !containsAuth(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func containsAuth(as []Auth, a Auth) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// candidates turns parsed servers into candidates found at src.
func configCandidates(servers []ClientConfigServer, src Source, conf Confidence) []Candidate {
	var out []Candidate
	for _, s := range servers {
		c := Candidate{
			Protocol:     s.Protocol,
			Host:         s.Host,
			Port:         s.Port,
			Security:     s.Security,
			URL:          s.URL,
			Username:     s.Username,
			UsernameForm: s.UsernameForm,
			Auth:         s.Auth,
			Provider:     s.Provider,
			Confidence:   conf,
			Sources:      []Source{src},
		}
		if src.Plaintext {
			c.Confidence = ConfidenceLow
			c.Notes = append(c.Notes, "found over plain http, which anyone on the way could have changed: check it against the provider's documentation")
		}
		out = append(out, c)
	}
	return out
}
