package autoconfig

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
)

// Exchange POX Autodiscover ([MS-OXDSCLI], "Autodiscover Publishing and
// Lookup Protocol"; learn.microsoft.com "POX Autodiscover request for
// Exchange" and "POX Autodiscover response for Exchange"). The client
// POSTs
//
//	<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
//	  <Request>
//	    <EMailAddress>user@example.com</EMailAddress>
//	    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
//	  </Request>
//	</Autodiscover>
//
// to https://autodiscover.<domain>/autodiscover/autodiscover.xml,
// https://<domain>/autodiscover/autodiscover.xml and the targets of the
// _autodiscover._tcp SRV record ([MS-OXDISCO] section 3.1.5). Exchange
// answers only with the user's credentials (HTTP 401 otherwise); hosting
// providers that serve Outlook a static file answer without them.
//
// Microsoft's reference pages print the namespaces with https://; the
// protocol specification and real servers use http://. Element names
// are matched whatever their namespace, so both are read.

const (
	autodiscoverRequestNS   = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	autodiscoverResponseNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	autodiscoverContentType = "text/xml; charset=utf-8"
)

// autodiscoverRequest is the POX request body for address.
func autodiscoverRequest(address string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<Autodiscover xmlns="` + autodiscoverRequestNS + `">` + "\n")
	b.WriteString("  <Request>\n    <EMailAddress>")
	_ = xml.EscapeText(&b, []byte(address))
	b.WriteString("</EMailAddress>\n")
	b.WriteString("    <AcceptableResponseSchema>" + autodiscoverResponseNS + "</AcceptableResponseSchema>\n")
	b.WriteString("  </Request>\n</Autodiscover>\n")
	return b.Bytes()
}

type xmlAutodiscover struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	Response struct {
		Error *xmlADError `xml:"Error"`
		User  struct {
			DisplayName             string `xml:"DisplayName"`
			AutoDiscoverSMTPAddress string `xml:"AutoDiscoverSMTPAddress"`
		} `xml:"User"`
		Account struct {
			AccountType     string          `xml:"AccountType"`
			Action          string          `xml:"Action"`
			RedirectUrl     string          `xml:"RedirectUrl"`
			RedirectURL     string          `xml:"RedirectURL"` // the Exchange 2007 pages spell it so
			RedirectAddr    string          `xml:"RedirectAddr"`
			MicrosoftOnline string          `xml:"MicrosoftOnline"`
			Error           *xmlADError     `xml:"Error"`
			Protocols       []xmlADProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type xmlADError struct {
	ErrorCode string `xml:"ErrorCode"`
	Message   string `xml:"Message"`
}

type xmlADProtocol struct {
	Type       string  `xml:"Type"`
	Server     string  `xml:"Server"`
	Port       string  `xml:"Port"`
	SSL        string  `xml:"SSL"`
	Encryption string  `xml:"Encryption"`
	LoginName  string  `xml:"LoginName"`
	SPA        string  `xml:"SPA"`
	EwsURL     string  `xml:"EwsUrl"`
	ASURL      string  `xml:"ASUrl"`
	Internal   xmlADIO `xml:"Internal"`
	External   xmlADIO `xml:"External"`
}

type xmlADIO struct {
	OWAURLs []struct {
		URL string `xml:",chardata"`
	} `xml:"OWAUrl"`
	Protocols []struct {
		Type  string `xml:"Type"`
		ASURL string `xml:"ASUrl"`
	} `xml:"Protocol"`
}

// AutodiscoverAnswer is what a POX Autodiscover response says, checked.
type AutodiscoverAnswer struct {
	// Action is "settings", "redirectUrl" or "redirectAddr" (lower case).
	Action string
	// RedirectURL (https only) and RedirectAddr are set for the
	// corresponding actions.
	RedirectURL  string
	RedirectAddr string
	// ErrorCode and ErrorMessage are set for an error response.
	ErrorCode    string
	ErrorMessage string
	// EWSURLs are the EWS endpoints, outside-the-network ones first;
	// OWAURLs the Outlook on the web addresses. All https.
	EWSURLs []string
	OWAURLs []string
	// Mail lists IMAP and POP3 servers some hosting providers publish in
	// the same file for Outlook.
	Mail []ClientConfigServer
	// MicrosoftOnline is set when the mailbox is in Exchange Online.
	MicrosoftOnline bool
	DisplayName     string
}

// ParseAutodiscover reads a POX Autodiscover response for addr.
func ParseAutodiscover(data []byte, addr Address) (*AutodiscoverAnswer, error) {
	var doc xmlAutodiscover
	if err := decodeXML(data, &doc); err != nil {
		return nil, fmt.Errorf("not an Autodiscover answer: %s", cleanText(err.Error(), 160))
	}
	r := &doc.Response
	acc := &r.Account
	a := &AutodiscoverAnswer{
		Action:          strings.ToLower(strings.TrimSpace(acc.Action)),
		MicrosoftOnline: strings.EqualFold(strings.TrimSpace(acc.MicrosoftOnline), "true"),
		DisplayName:     cleanText(r.User.DisplayName, 100),
	}
	for _, e := range []*xmlADError{r.Error, acc.Error} {
		if e != nil && a.ErrorCode == "" {
			a.ErrorCode = cleanText(e.ErrorCode, 20)
			a.ErrorMessage = cleanText(e.Message, 200)
			if a.ErrorCode == "" {
				a.ErrorCode = "?"
			}
		}
	}
	switch a.Action {
	case "redirecturl":
		a.Action = "redirectUrl"
		for _, s := range []string{acc.RedirectUrl, acc.RedirectURL} {
			if u, _, _, ok := httpsURL(s); ok {
				a.RedirectURL = u.String()
				break
			}
		}
	case "redirectaddr":
		a.Action = "redirectAddr"
		if ra, err := ParseAddress(acc.RedirectAddr); err == nil {
			a.RedirectAddr = ra.Full
		}
	}
	addURL := func(list *[]string, s string) {
		if u, _, _, ok := httpsURL(s); ok && len(*list) < 8 {
			for _, x := range *list {
				if strings.EqualFold(x, u.String()) {
					return
				}
			}
			*list = append(*list, u.String())
		}
	}
	// EXPR is Outlook Anywhere, the outside-the-network service; EXCH the
	// inside one. EwsUrl is the EWS endpoint; ASUrl (Availability) is
	// the same Exchange.asmx and serves when EwsUrl is missing.
	for _, want := range []string{"EXPR", "EXCH", "WEB"} {
		for _, p := range acc.Protocols {
			if !strings.EqualFold(strings.TrimSpace(p.Type), want) {
				continue
			}
			addURL(&a.EWSURLs, p.EwsURL)
			for _, side := range []xmlADIO{p.External, p.Internal} {
				for _, o := range side.OWAURLs {
					addURL(&a.OWAURLs, o.URL)
				}
			}
		}
	}
	if len(a.EWSURLs) == 0 {
		for _, p := range acc.Protocols {
			addURL(&a.EWSURLs, p.ASURL)
			for _, side := range []xmlADIO{p.External, p.Internal} {
				for _, ip := range side.Protocols {
					addURL(&a.EWSURLs, ip.ASURL)
				}
			}
		}
	}
	for _, p := range acc.Protocols {
		if len(a.Mail) >= maxServers {
			break
		}
		if s, ok := autodiscoverMail(p, addr); ok {
			a.Mail = append(a.Mail, s)
		}
	}
	return a, nil
}

// autodiscoverMail reads an IMAP or POP3 Protocol element. Encryption
// (None, SSL, TLS, Auto) says which TLS, where present; otherwise SSL=on
// means TLS of a kind the port tells: implicit on 993/995, STARTTLS on
// 143/110 (Outlook's own reading; providers are not consistent).
func autodiscoverMail(p xmlADProtocol, addr Address) (ClientConfigServer, bool) {
	var s ClientConfigServer
	switch strings.ToUpper(strings.TrimSpace(p.Type)) {
	case "IMAP":
		s.Protocol = ProtocolIMAP
	case "POP3":
		s.Protocol = ProtocolPOP3
	default:
		return s, false
	}
	if s.Host = cleanHost(p.Server); s.Host == "" {
		return s, false
	}
	if s.Port = parsePort(p.Port); s.Port == 0 {
		s.Port = map[Protocol]int{ProtocolIMAP: 993, ProtocolPOP3: 995}[s.Protocol]
		if !strings.EqualFold(strings.TrimSpace(p.SSL), "on") && strings.TrimSpace(p.SSL) != "" {
			s.Port = map[Protocol]int{ProtocolIMAP: 143, ProtocolPOP3: 110}[s.Protocol]
		}
	}
	implicit := s.Port == 993 || s.Port == 995
	switch strings.ToLower(strings.TrimSpace(p.Encryption)) {
	case "ssl":
		s.Security = SecurityTLS
	case "tls":
		s.Security = SecuritySTARTTLS
	case "none":
		s.Security = SecurityNone
	default: // "auto" or absent
		switch {
		case strings.EqualFold(strings.TrimSpace(p.SSL), "off"):
			s.Security = SecurityNone
		case implicit:
			s.Security = SecurityTLS
		default:
			s.Security = SecuritySTARTTLS
		}
	}
	s.Username, s.UsernameForm = readUsername(p.LoginName, addr)
	if strings.TrimSpace(p.LoginName) != "" && s.UsernameForm == UsernameCustom {
		// A literal login name, not a template.
		s.Username = cleanText(p.LoginName, 256)
	}
	s.Auth = []Auth{AuthPassword}
	if strings.EqualFold(strings.TrimSpace(p.SPA), "on") {
		s.Auth = []Auth{AuthNTLM}
	}
	return s, true
}
