package autoconfig

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkServer asserts what every server the parsers return must satisfy,
// whatever the input: a host that is a valid name or address, a real
// port, a known protocol and security, an https EWS URL, printable
// strings.
func checkServer(t *testing.T, s ClientConfigServer) {
	t.Helper()
	if s.Host == "" || cleanHost(s.Host) != s.Host {
		t.Errorf("host %q is not clean", s.Host)
	}
	if s.Port < 1 || s.Port > 65535 {
		t.Errorf("port %d", s.Port)
	}
	switch s.Protocol {
	case ProtocolIMAP, ProtocolPOP3, ProtocolEWS:
	default:
		t.Errorf("protocol %q", s.Protocol)
	}
	switch s.Security {
	case SecurityTLS, SecuritySTARTTLS, SecurityNone:
	default:
		t.Errorf("security %q", s.Security)
	}
	if s.Protocol == ProtocolEWS {
		if _, _, _, ok := httpsURL(s.URL); !ok || s.Security != SecurityTLS {
			t.Errorf("EWS server with URL %q, security %q", s.URL, s.Security)
		}
	}
	for _, str := range []string{s.Username, s.Provider} {
		if !utf8.ValidString(str) || strings.ContainsAny(str, "\x00\r\n\t") {
			t.Errorf("unclean text %q", str)
		}
	}
	if s.Username == "" || s.UsernameForm == "" {
		t.Errorf("username %q form %q", s.Username, s.UsernameForm)
	}
}

func FuzzParseClientConfig(f *testing.F) {
	for _, seed := range []string{
		sampleClientConfig,
		imapConfig,
		`<clientConfig version="1.1"><emailProvider id="x"><incomingServer type="exchange"><owaURL>https://m.example.com/owa</owaURL></incomingServer></emailProvider></clientConfig>`,
		`<clientConfig><emailProvider><incomingServer type="imap"><hostname>%EMAILDOMAIN%</hostname><port>143</port><socketType>STARTTLS</socketType><username>x-%EMAILLOCALPART%</username></incomingServer></emailProvider></clientConfig>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><clientConfig><emailProvider><displayName>` + "\xe9" + `</displayName></emailProvider></clientConfig>`,
		`<clientConfig><emailProvider><incomingServer type="pop3"><hostname>[::1]</hostname><port>995</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>`,
		`<!DOCTYPE clientConfig [<!ENTITY x SYSTEM "file:///etc/passwd">]><clientConfig><emailProvider><displayName>&x;</displayName></emailProvider></clientConfig>`,
		"<clientConfig>" + strings.Repeat("<a>", 200),
		"",
	} {
		f.Add([]byte(seed))
	}
	addr := Address{Full: "fuzz@example.com", LocalPart: "fuzz", Domain: "example.com"}
	f.Fuzz(func(t *testing.T, data []byte) {
		servers, skipped, err := ParseClientConfig(data, addr)
		if err != nil {
			if len(servers) != 0 || len(skipped) != 0 {
				t.Errorf("error %v with results", err)
			}
			return
		}
		if len(servers) > maxServers {
			t.Errorf("%d servers", len(servers))
		}
		for _, s := range servers {
			checkServer(t, s)
		}
		// Reading is deterministic.
		again, _, _ := ParseClientConfig(bytes.Clone(data), addr)
		if !reflect.DeepEqual(servers, again) {
			t.Error("a second parse differs")
		}
		// No document can make the parser read a file.
		for _, s := range servers {
			if strings.Contains(s.Provider, "root:") {
				t.Errorf("external entity expanded: %q", s.Provider)
			}
		}
	})
}

func FuzzParseAutodiscover(f *testing.F) {
	for _, seed := range []string{
		sampleAutodiscoverExchange,
		ewsAnswer,
		`<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>https://x.example.com/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>`,
		`<Autodiscover><Response><Account><Action>redirectAddr</Action><RedirectAddr>a@b.example</RedirectAddr></Account></Response></Autodiscover>`,
		`<Autodiscover><Response><Error><ErrorCode>600</ErrorCode><Message>Invalid Request</Message></Error></Response></Autodiscover>`,
		`<Autodiscover><Response><Account><Protocol><Type>IMAP</Type><Server>imap.example.com</Server><SSL>off</SSL></Protocol><Protocol><Type>POP3</Type><Server>pop.example.com</Server><Port>995</Port><Encryption>Auto</Encryption></Protocol></Account></Response></Autodiscover>`,
		"<Autodiscover>",
	} {
		f.Add([]byte(seed))
	}
	addr := Address{Full: "fuzz@example.com", LocalPart: "fuzz", Domain: "example.com"}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAutodiscover(data, addr)
		if err != nil {
			if a != nil {
				t.Error("an answer with an error")
			}
			return
		}
		for _, u := range append(append([]string{}, a.EWSURLs...), a.OWAURLs...) {
			if _, _, _, ok := httpsURL(u); !ok {
				t.Errorf("URL %q is not https", u)
			}
		}
		if a.RedirectURL != "" {
			if _, _, _, ok := httpsURL(a.RedirectURL); !ok {
				t.Errorf("redirect URL %q is not https", a.RedirectURL)
			}
		}
		if a.RedirectAddr != "" {
			if _, err := ParseAddress(a.RedirectAddr); err != nil {
				t.Errorf("redirect address %q: %v", a.RedirectAddr, err)
			}
		}
		for _, s := range a.Mail {
			checkServer(t, s)
		}
		if len(a.Mail) > maxServers || len(a.EWSURLs) > 8 || len(a.OWAURLs) > 8 {
			t.Errorf("unbounded: %d mail, %d EWS, %d OWA", len(a.Mail), len(a.EWSURLs), len(a.OWAURLs))
		}
	})
}
