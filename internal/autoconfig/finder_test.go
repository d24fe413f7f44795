package autoconfig

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// publicA is an address record for host with a public address (no
// connection is ever made to it: only the host check reads it).
func publicA(host string) string { return host + ". 300 IN A 93.184.215.14" }

const imapConfig = `<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="example.com">
  <domain>example.com</domain><displayName>Example Mail</displayName>
  <incomingServer type="imap"><hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType>
    <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication></incomingServer>
  <incomingServer type="pop3"><hostname>pop.example.com</hostname><port>995</port><socketType>SSL</socketType>
    <username>%EMAILLOCALPART%</username></incomingServer>
</emailProvider></clientConfig>`

func TestLookupSRVRecords(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t,
		"_imaps._tcp.example.com. 300 IN SRV 10 1 993 imap2.example.com.",
		"_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.",
		"_imap._tcp.example.com. 300 IN SRV 0 0 0 .",
		"_pop3s._tcp.example.com. 300 IN SRV 0 1 995 pop.example.com.",
		publicA("imap.example.com"), publicA("imap2.example.com"), publicA("pop.example.com"),
	)
	res := e.lookup(t, e.options(), "alice@example.com")
	if len(res.Candidates) != 3 {
		t.Fatalf("got %d candidates, want 3:\n%s", len(res.Candidates), dumpCandidates(res))
	}
	want := []struct {
		p    Protocol
		host string
		port int
	}{{ProtocolIMAP, "imap.example.com", 993}, {ProtocolIMAP, "imap2.example.com", 993}, {ProtocolPOP3, "pop.example.com", 995}}
	for i, w := range want {
		c := res.Candidates[i]
		if c.Protocol != w.p || c.Host != w.host || c.Port != w.port || c.Security != SecurityTLS || c.Confidence != ConfidenceHigh ||
			c.Username != "alice@example.com" || c.UsernameForm != UsernameGuess {
			t.Errorf("candidate %d = %+v, want %v %s:%d tls high", i, c, w.p, w.host, w.port)
		}
	}
	mustNote(t, res, "_imap._tcp.example.com", "not offered")
	mustNote(t, res, "_pop3._tcp.example.com", "no record")
}

func TestLookupSTARTTLSFromSRV(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "_imap._tcp.example.org. 300 IN SRV 0 1 143 mail.example.org.", publicA("mail.example.org"))
	res := e.lookup(t, e.options(), "bob@example.org")
	c := mustCandidate(t, res, ProtocolIMAP, "mail.example.org", 143)
	if c.Security != SecuritySTARTTLS {
		t.Errorf("security %q, want starttls", c.Security)
	}
}

func TestLookupAutoconfigOfTheDomain(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var gotQuery string
	e.web.handle("autoconfig.example.com", "GET /mail/config-v1.1.xml", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotQuery = r.URL.Query().Get("emailaddress")
		mu.Unlock()
		xmlHandler(imapConfig)(rw, r)
	})
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.", publicA("imap.example.com"), publicA("pop.example.com"))
	res := e.lookup(t, e.options(), "Alice@Example.com")
	mu.Lock()
	if gotQuery != "Alice@example.com" {
		t.Errorf("emailaddress=%q, want the address", gotQuery)
	}
	mu.Unlock()
	best, ok := res.Best()
	if !ok {
		t.Fatal("no candidate")
	}
	if best.Protocol != ProtocolIMAP || best.Host != "imap.example.com" || best.Port != 993 || best.Username != "Alice" ||
		best.UsernameForm != UsernameLocalPart || best.Provider != "Example Mail" || best.Confidence != ConfidenceHigh {
		t.Errorf("best = %+v", best)
	}
	// Found by the autoconfig file and the SRV record: one candidate,
	// both sources, the autoconfig one first.
	if len(best.Sources) != 2 || best.Sources[0].Method != MethodAutoconfig || best.Sources[1].Method != MethodSRV ||
		best.Sources[0].Where != "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=Alice%40example.com" {
		t.Errorf("sources = %+v", best.Sources)
	}
	mustCandidate(t, res, ProtocolPOP3, "pop.example.com", 995)
}

func TestLookupWellKnownAutoconfig(t *testing.T) {
	e := newEnv(t)
	e.web.handle("example.net", "GET /.well-known/autoconfig/mail/config-v1.1.xml", xmlHandler(strings.ReplaceAll(imapConfig, "example.com", "example.net")))
	e.dns.add(t, publicA("imap.example.net"), publicA("pop.example.net"))
	res := e.lookup(t, e.options(), "carol@example.net")
	c := mustCandidate(t, res, ProtocolIMAP, "imap.example.net", 993)
	if c.Sources[0].Where != "https://example.net/.well-known/autoconfig/mail/config-v1.1.xml" {
		t.Errorf("source %+v", c.Sources)
	}
}

// The ISPDB is asked for the domain only: the address stays with the
// domain's own servers.
func TestLookupISPDBGetsTheDomainOnly(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var requests []string
	e.web.handle("ispdb.test", "GET /v1.1/", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path != "/v1.1/example.org" {
			http.NotFound(rw, r)
			return
		}
		xmlHandler(strings.ReplaceAll(imapConfig, "example.com", "provider.example.net"))(rw, r)
	})
	e.dns.add(t, publicA("imap.provider.example.net"), publicA("pop.provider.example.net"))
	res := e.lookup(t, e.options(), "dave@example.org")
	c := mustCandidate(t, res, ProtocolIMAP, "imap.provider.example.net", 993)
	if c.Confidence != ConfidenceHigh || c.Sources[0].Method != MethodISPDB {
		t.Errorf("candidate %+v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range requests {
		if strings.Contains(r, "dave") || strings.Contains(r, "?") {
			t.Errorf("the ISPDB was sent %q", r)
		}
	}
}

func TestLookupDisableISPDB(t *testing.T) {
	e := newEnv(t)
	e.web.handle("ispdb.test", "/", xmlHandler(imapConfig))
	opts := e.options()
	opts.DisableISPDB = true
	e.lookup(t, opts, "dave@example.org")
	if e.web.wasDialed("ispdb.test:443") {
		t.Error("the ISPDB was asked although disabled")
	}
}

// Thunderbird's fourth mechanism: the ISPDB entry of the MX host's
// domain serves domains hosted by a provider.
func TestLookupISPDBOfTheMXDomain(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "customer.test. 300 IN MX 10 mx1.mail.hoster.test.", publicA("imap.hoster.test"), publicA("pop.hoster.test"))
	var mu sync.Mutex
	var asked []string
	e.web.handle("ispdb.test", "GET /v1.1/", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/v1.1/hoster.test" {
			http.NotFound(rw, r)
			return
		}
		xmlHandler(strings.ReplaceAll(imapConfig, "example.com", "hoster.test"))(rw, r)
	})
	res := e.lookup(t, e.options(), "erin@customer.test")
	c := mustCandidate(t, res, ProtocolIMAP, "imap.hoster.test", 993)
	if c.Confidence != ConfidenceMedium || c.Sources[0].Method != MethodISPDBMX || c.Sources[0].Where != "https://ispdb.test/v1.1/hoster.test" {
		t.Errorf("candidate %+v", c)
	}
	if len(res.MX) != 1 || res.MX[0] != "mx1.mail.hoster.test" {
		t.Errorf("MX = %q", res.MX)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{"/v1.1/customer.test": true, "/v1.1/mail.hoster.test": true, "/v1.1/hoster.test": true}
	for _, a := range asked {
		delete(want, a)
	}
	if len(want) != 0 {
		t.Errorf("ISPDB not asked for %v (asked %v)", want, asked)
	}
}

func TestLookupProviderFromMX(t *testing.T) {
	for _, tc := range []struct {
		mx, provider, host string
		proto              Protocol
		port               int
	}{
		{"example-org.mail.protection.outlook.com", "Microsoft 365", "outlook.office365.com", ProtocolIMAP, 993},
		{"aspmx.l.google.com", "Google Workspace / Gmail", "imap.gmail.com", ProtocolIMAP, 993},
		{"mx1.emailsrvr.com", "Rackspace Email", "secure.emailsrvr.com", ProtocolIMAP, 993},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			e := newEnv(t)
			e.dns.add(t, "example.org. 300 IN MX 0 "+tc.mx+".", "example.org. 300 IN MX 10 backup.example.org.", publicA(tc.host))
			res := e.lookup(t, e.options(), "frank@example.org")
			if res.Provider != tc.provider {
				t.Errorf("Provider = %q, want %q", res.Provider, tc.provider)
			}
			c := mustCandidate(t, res, tc.proto, tc.host, tc.port)
			if c.Confidence != ConfidenceMedium || c.Security != SecurityTLS || c.Sources[0].Method != MethodMX || c.Username != "frank@example.org" {
				t.Errorf("candidate %+v", c)
			}
			if best, _ := res.Best(); best.Host != tc.host {
				t.Errorf("best is %s, want %s", best.Host, tc.host)
			}
		})
	}
}

func TestLookupMicrosoft365Hints(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "example.org. 300 IN MX 0 example-org.mail.protection.outlook.com.", publicA("outlook.office365.com"))
	res := e.lookup(t, e.options(), "gina@example.org")
	var graph bool
	for _, c := range res.Candidates {
		if c.Protocol == ProtocolGraph && c.Host == "" && c.Provider == "Microsoft 365" {
			graph = true
		}
	}
	if !graph {
		t.Errorf("no Graph hint:\n%s", dumpCandidates(res))
	}
	imap := mustCandidate(t, res, ProtocolIMAP, "outlook.office365.com", 993)
	if len(imap.Auth) != 1 || imap.Auth[0] != AuthOAuth2 || !strings.Contains(strings.Join(imap.Notes, " "), "OAuth2") {
		t.Errorf("IMAP candidate %+v should say OAuth2", imap)
	}
	ews := mustCandidate(t, res, ProtocolEWS, "outlook.office365.com", 443)
	if ews.URL != "https://outlook.office365.com/EWS/Exchange.asmx" || !strings.Contains(strings.Join(ews.Notes, " "), "2026-10-01") {
		t.Errorf("EWS candidate %+v", ews)
	}
}

func TestLookupMailGatewayIsANoteOnly(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "example.org. 300 IN MX 10 mx0a-0012.pphosted.com.")
	res := e.lookup(t, e.options(), "hank@example.org")
	mustNote(t, res, "example.org", "Proofpoint")
	if res.Provider != "" || len(res.Candidates) != 0 {
		t.Errorf("provider %q, candidates:\n%s", res.Provider, dumpCandidates(res))
	}
}

func TestLookupNullMX(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "example.org. 300 IN MX 0 .")
	res := e.lookup(t, e.options(), "ivan@example.org")
	n := mustNote(t, res, "example.org", "receives no email")
	if n.Level != LevelWarning {
		t.Errorf("level %q", n.Level)
	}
}

const ewsAnswer = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
 <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
  <Account><AccountType>email</AccountType><Action>settings</Action>
   <Protocol><Type>EXPR</Type><Server>mail.example.com</Server><EwsUrl>https://mail.example.com/EWS/Exchange.asmx</EwsUrl></Protocol>
   <Protocol><Type>WEB</Type><External><OWAUrl AuthenticationMethod="Fba">https://mail.example.com/owa/</OWAUrl></External></Protocol>
  </Account>
 </Response>
</Autodiscover>`

// autodiscoverServer checks that the request is the documented POX
// request for want, then answers.
func autodiscoverServer(t *testing.T, want string, answer http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req struct {
			XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006 Autodiscover"`
			Request struct {
				EMailAddress             string
				AcceptableResponseSchema string
			}
		}
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
			t.Errorf("autodiscover got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := xml.Unmarshal(body, &req); err != nil || req.Request.EMailAddress != want ||
			req.Request.AcceptableResponseSchema != "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a" {
			t.Errorf("autodiscover request %q (%v)", body, err)
		}
		answer(rw, r)
	}
}

func TestLookupAutodiscoverWithEWSURL(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autodiscover.example.com", "/autodiscover/autodiscover.xml", autodiscoverServer(t, "judy@example.com", xmlHandler(ewsAnswer)))
	e.dns.add(t, publicA("mail.example.com"))
	res := e.lookup(t, e.options(), "judy@example.com")
	c := mustCandidate(t, res, ProtocolEWS, "mail.example.com", 443)
	if c.URL != "https://mail.example.com/EWS/Exchange.asmx" || c.Confidence != ConfidenceHigh || c.Security != SecurityTLS ||
		c.Sources[0].Where != "https://autodiscover.example.com/autodiscover/autodiscover.xml" {
		t.Errorf("candidate %+v", c)
	}
}

func TestLookupAutodiscoverNeedsCredentials(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autodiscover.example.com", "/autodiscover/autodiscover.xml", autodiscoverServer(t, "kim@example.com", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Add("WWW-Authenticate", "Negotiate")
		rw.Header().Add("WWW-Authenticate", `NTLM, Basic realm="autodiscover.example.com"`)
		rw.WriteHeader(http.StatusUnauthorized)
	}))
	e.dns.add(t, publicA("autodiscover.example.com"))
	res := e.lookup(t, e.options(), "kim@example.com")
	mustNote(t, res, "https://autodiscover.example.com/autodiscover/autodiscover.xml",
		"Exchange Autodiscover found at https://autodiscover.example.com/autodiscover/autodiscover.xml (needs the user's credentials)")
	c := mustCandidate(t, res, ProtocolEWS, "autodiscover.example.com", 443)
	if c.AutodiscoverURL != "https://autodiscover.example.com/autodiscover/autodiscover.xml" || c.URL != "" || c.Confidence != ConfidenceLow {
		t.Errorf("candidate %+v", c)
	}
	if len(c.Auth) != 2 || c.Auth[0] != AuthNTLM || c.Auth[1] != AuthPassword {
		t.Errorf("auth %v, want ntlm then password", c.Auth)
	}
}

// A login prompt at the domain's own web site is weaker evidence than
// one at autodiscover.<domain>, and the note says so.
func TestLookupAutodiscoverAtTheRootDomainIsOnlyAMaybe(t *testing.T) {
	e := newEnv(t)
	e.web.handle("example.com", "POST /autodiscover/autodiscover.xml", func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusUnauthorized)
	})
	e.dns.add(t, publicA("example.com"))
	res := e.lookup(t, e.options(), "kim@example.com")
	mustNote(t, res, "https://example.com/autodiscover/autodiscover.xml", "it may be Exchange Autodiscover (needs the user's credentials)")
	c := mustCandidate(t, res, ProtocolEWS, "example.com", 443)
	if c.Confidence != ConfidenceLow {
		t.Errorf("candidate %+v", c)
	}
}

func TestLookupAutodiscoverSRVRecord(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "_autodiscover._tcp.example.org. 300 IN SRV 0 0 443 exchange.hoster.test.", publicA("exchange.hoster.test"))
	e.web.handle("exchange.hoster.test", "POST /autodiscover/autodiscover.xml", autodiscoverServer(t, "leo@example.org", func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusUnauthorized)
	}))
	res := e.lookup(t, e.options(), "leo@example.org")
	if !e.web.wasDialed("exchange.hoster.test:443") {
		t.Fatal("the SRV target was not asked")
	}
	mustNote(t, res, "", "Exchange Autodiscover found at https://exchange.hoster.test/autodiscover/autodiscover.xml")
	mustCandidate(t, res, ProtocolEWS, "exchange.hoster.test", 443)
}

// A 302 is followed with the same POST ([MS-OXDSCLI]); so is an
// Action redirectUrl in the answer.
func TestLookupAutodiscoverRedirects(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autodiscover.example.com", "/autodiscover/autodiscover.xml", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "https://cas.hoster.test/autodiscover/autodiscover.xml", http.StatusFound)
	})
	e.web.handle("cas.hoster.test", "/autodiscover/autodiscover.xml", autodiscoverServer(t, "mia@example.com", xmlHandler(
		`<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>https://ews.hoster.test/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>`)))
	e.web.handle("ews.hoster.test", "/autodiscover/autodiscover.xml", autodiscoverServer(t, "mia@example.com", xmlHandler(strings.ReplaceAll(ewsAnswer, "mail.example.com", "ews.hoster.test"))))
	e.dns.add(t, publicA("ews.hoster.test"))
	res := e.lookup(t, e.options(), "mia@example.com")
	c := mustCandidate(t, res, ProtocolEWS, "ews.hoster.test", 443)
	if c.URL != "https://ews.hoster.test/EWS/Exchange.asmx" || c.Sources[0].Where != "https://ews.hoster.test/autodiscover/autodiscover.xml" {
		t.Errorf("candidate %+v", c)
	}
}

func TestLookupAutodiscoverRedirectAddrToMicrosoft365(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autodiscover.example.com", "/autodiscover/autodiscover.xml", xmlHandler(
		`<Autodiscover><Response><Account><Action>redirectAddr</Action><RedirectAddr>nina@example.mail.onmicrosoft.com</RedirectAddr></Account></Response></Autodiscover>`))
	res := e.lookup(t, e.options(), "nina@example.com")
	mustNote(t, res, "", "nina@example.mail.onmicrosoft.com (Microsoft 365)")
	var graph bool
	for _, c := range res.Candidates {
		graph = graph || c.Protocol == ProtocolGraph
	}
	if !graph {
		t.Errorf("no Graph hint:\n%s", dumpCandidates(res))
	}
}

// Redirects are followed a few times, to https only, and every hop is
// dialled through the hook.
func TestLookupRedirectRules(t *testing.T) {
	e := newEnv(t)
	// autoconfig.example.com → autoconfig.hoster.test: followed.
	e.web.handle("autoconfig.example.com", "/mail/config-v1.1.xml", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "https://autoconfig.hoster.test/mail/config-v1.1.xml", http.StatusMovedPermanently)
	})
	e.web.handle("autoconfig.hoster.test", "/mail/config-v1.1.xml", xmlHandler(strings.ReplaceAll(imapConfig, "example.com", "hoster.test")))
	// example.com/.well-known → http://: not followed.
	e.web.handle("example.com", "/.well-known/autoconfig/mail/config-v1.1.xml", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "http://plain.example.com/config.xml", http.StatusFound)
	})
	e.web.handle("plain.example.com", "/", xmlHandler(imapConfig))
	// ISPDB → a loop: stopped.
	e.web.handle("ispdb.test", "/", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "/v1.1/loop"+r.URL.Path[len("/v1.1/"):], http.StatusTemporaryRedirect)
	})
	// autodiscover.example.com → a host the dial hook does not know.
	e.web.handle("autodiscover.example.com", "/autodiscover/autodiscover.xml", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "https://elsewhere.example.net/autodiscover/autodiscover.xml", http.StatusFound)
	})
	e.dns.add(t, publicA("imap.hoster.test"), publicA("pop.hoster.test"))
	res := e.lookup(t, e.options(), "olga@example.com")

	c := mustCandidate(t, res, ProtocolIMAP, "imap.hoster.test", 993)
	if c.Sources[0].Where != "https://autoconfig.hoster.test/mail/config-v1.1.xml" {
		t.Errorf("source %+v, want the address redirected to", c.Sources)
	}
	mustNote(t, res, "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml", "plain http:// address, which is not followed")
	if e.web.wasDialed("plain.example.com:80") || e.web.wasDialed("plain.example.com:443") {
		t.Error("the http:// redirect was followed")
	}
	mustNote(t, res, "https://ispdb.test/v1.1/example.com", "redirects too many times")
	if !e.web.wasDialed("elsewhere.example.net:443") {
		t.Error("the redirect to elsewhere.example.net did not go through the dial hook")
	}
	mustNote(t, res, "https://autodiscover.example.com/autodiscover/autodiscover.xml", "not published (the name does not exist)")
}

func TestLookupUnusableAnswers(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autoconfig.example.com", "/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/xml")
		_, _ = rw.Write([]byte("<clientConfig><emailProvider><incomingServer type=\"imap\"><hostname>imap.example.com</host"))
	})
	e.web.handle("example.com", "/.well-known/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/xml")
		_, _ = rw.Write([]byte("<clientConfig>"))
		chunk := []byte(strings.Repeat("<!-- padding padding padding -->", 1000))
		for range 40 { // about 1.3 MB
			if _, err := rw.Write(chunk); err != nil {
				return
			}
		}
	})
	e.web.handle("ispdb.test", "/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		_, _ = rw.Write([]byte("<!DOCTYPE html><html><body>Not here</body></html>"))
	})
	e.web.handle("autodiscover.example.com", "/", func(rw http.ResponseWriter, r *http.Request) {
		_, _ = rw.Write([]byte("\x00\x01garbage\xff"))
	})
	e.web.handle("example.com", "/autodiscover/", func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "broken", http.StatusInternalServerError)
	})
	res := e.lookup(t, e.options(), "paul@example.com")
	if len(res.Candidates) != 0 {
		t.Errorf("candidates from unusable answers:\n%s", dumpCandidates(res))
	}
	for where, text := range map[string]string{
		"https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=paul%40example.com": "not a valid autoconfig document",
		"https://example.com/.well-known/autoconfig/mail/config-v1.1.xml":                     "larger than 64 KiB",
		"https://ispdb.test/v1.1/example.com":                                                 "a web page answered",
		"https://autodiscover.example.com/autodiscover/autodiscover.xml":                      "not a valid Autodiscover response",
		"https://example.com/autodiscover/autodiscover.xml":                                   "HTTP 500",
	} {
		mustNote(t, res, where, text)
	}
}

// A server that does not answer costs one request timeout, and the
// other methods' findings are kept.
func TestLookupSlowServerTimesOut(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e.web.handle("autoconfig.example.com", "/", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.", publicA("imap.example.com"))
	opts := e.options()
	opts.RequestTimeout = 300 * time.Millisecond
	start := time.Now()
	res := e.lookup(t, opts, "quinn@example.com")
	if took := time.Since(start); took > opts.Timeout+time.Second {
		t.Errorf("the lookup took %s with a %s budget", took, opts.Timeout)
	}
	mustNote(t, res, "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=quinn%40example.com", "no answer within 300ms")
	mustCandidate(t, res, ProtocolIMAP, "imap.example.com", 993)
}

// A dial hook that never returns (ignoring its context) cannot hold the
// lookup past its budget. The request timeout is as long as the whole
// budget here, so it is the lookup's own deadline that gives up on the
// method, not the request's.
func TestLookupNeverBlocksOnAStuckDial(t *testing.T) {
	e := newEnv(t)
	e.web.hangDial("autoconfig.example.com:443")
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.", publicA("imap.example.com"))
	opts := e.options()
	opts.Timeout = 800 * time.Millisecond
	opts.RequestTimeout = 800 * time.Millisecond
	done := make(chan *Result, 1)
	go func() {
		res, _ := e.finder(opts).Lookup(context.Background(), "rita@example.com")
		done <- res
	}()
	select {
	case res := <-done:
		mustNote(t, res, "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=rita%40example.com", "time limit")
		mustCandidate(t, res, ProtocolIMAP, "imap.example.com", 993)
	case <-time.After(10 * time.Second):
		t.Fatal("Lookup did not return")
	}
}

// The caller's context ends the lookup early too, and the time kept
// for checking hosts is taken from what the caller left, so the quick
// methods' findings still count.
func TestLookupHonoursTheCallersContext(t *testing.T) {
	e := newEnv(t)
	e.web.hangDial("autoconfig.example.com:443")
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.", publicA("imap.example.com"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	type answer struct {
		res *Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := e.finder(e.options()).Lookup(ctx, "sam@example.com")
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatalf("err = %v", a.err)
		}
		mustCandidate(t, a.res, ProtocolIMAP, "imap.example.com", 993)
	case <-time.After(10 * time.Second):
		t.Fatal("Lookup did not return after its context ended")
	}
}

func TestLookupUntrustedCertificate(t *testing.T) {
	e := newEnv(t)
	other := httptest.NewUnstartedServer(xmlHandler(imapConfig))
	other.Config.ErrorLog = quietLog()
	other.StartTLS() // with httptest's own certificate, not one from the test CA
	t.Cleanup(other.Close)
	e.web.route("autoconfig.example.com:443", other.Listener.Addr().String())
	res := e.lookup(t, e.options(), "tina@example.com")
	mustNote(t, res, "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=tina%40example.com", "TLS certificate")
	if len(res.Candidates) != 0 {
		t.Errorf("candidates:\n%s", dumpCandidates(res))
	}
}

// Plain http is used only when allowed, only for the autoconfig host,
// and what it finds is marked.
func TestLookupHTTPAutoconfig(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autoconfig.example.com", "/mail/config-v1.1.xml", func(rw http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			http.NotFound(rw, r)
			return
		}
		xmlHandler(imapConfig)(rw, r)
	})
	e.dns.add(t, publicA("imap.example.com"), publicA("pop.example.com"))

	res := e.lookup(t, e.options(), "uma@example.com")
	if e.web.wasDialed("autoconfig.example.com:80") || len(res.Candidates) != 0 {
		t.Fatalf("http was used without AllowHTTPAutoconfig:\n%s", dumpCandidates(res))
	}

	opts := e.options()
	opts.AllowHTTPAutoconfig = true
	res = e.lookup(t, opts, "uma@example.com")
	c := mustCandidate(t, res, ProtocolIMAP, "imap.example.com", 993)
	if c.Confidence != ConfidenceLow || !c.Sources[0].Plaintext || !strings.Contains(strings.Join(c.Notes, " "), "plain http") {
		t.Errorf("candidate %+v should be marked as plaintext and low confidence", c)
	}
	for _, d := range e.web.dialed {
		if strings.HasSuffix(d, ":80") && d != "autoconfig.example.com:80" {
			t.Errorf("http used for %s", d)
		}
	}
}

// Settings that point into the operator's own network are not offered
// unless the options allow it.
func TestLookupDropsNonPublicHosts(t *testing.T) {
	e := newEnv(t)
	doc := `<clientConfig><emailProvider>
	  <incomingServer type="imap"><hostname>10.1.2.3</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	  <incomingServer type="imap"><hostname>imap.internal.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	  <incomingServer type="imap"><hostname>mail.localhost</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	  <incomingServer type="imap"><hostname>::1</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	  <incomingServer type="imap"><hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	</emailProvider></clientConfig>`
	e.web.handle("autoconfig.example.com", "/mail/config-v1.1.xml", xmlHandler(doc))
	e.dns.add(t, "imap.internal.example.com. 300 IN A 192.168.1.5", publicA("imap.example.com"))

	res := e.lookup(t, e.options(), "vic@example.com")
	if len(res.Candidates) != 1 || res.Candidates[0].Host != "imap.example.com" {
		t.Errorf("candidates:\n%s", dumpCandidates(res))
	}
	for _, h := range []string{"10.1.2.3", "imap.internal.example.com", "mail.localhost", "::1"} {
		n := mustNote(t, res, h, "not on the internet")
		if n.Level != LevelWarning {
			t.Errorf("%s: level %q", h, n.Level)
		}
	}

	opts := e.options()
	opts.AllowNonPublic = true
	res = e.lookup(t, opts, "vic@example.com")
	if len(res.Candidates) != 5 {
		t.Errorf("with AllowNonPublic, candidates:\n%s", dumpCandidates(res))
	}
}

func TestLookupHostThatDoesNotResolveIsLowConfidence(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 gone.example.com.")
	res := e.lookup(t, e.options(), "walt@example.com")
	c := mustCandidate(t, res, ProtocolIMAP, "gone.example.com", 993)
	if c.Confidence != ConfidenceLow || !strings.Contains(strings.Join(c.Notes, " "), "does not resolve") {
		t.Errorf("candidate %+v", c)
	}
}

// A truncated UDP answer is asked again over TCP (RFC 7766).
func TestLookupDNSTruncationFallsBackToTCP(t *testing.T) {
	e := newEnv(t)
	e.dns.add(t, "_imaps._tcp.example.com. 300 IN SRV 0 1 993 imap.example.com.", publicA("imap.example.com"))
	e.dns.truncate("_imaps._tcp.example.com.")
	res := e.lookup(t, e.options(), "xena@example.com")
	mustCandidate(t, res, ProtocolIMAP, "imap.example.com", 993)
	if !e.dns.asked("tcp", "_imaps._tcp.example.com", "SRV") {
		t.Error("not asked over TCP")
	}
}

// With nothing published anywhere, every method says so and the lookup
// still succeeds.
func TestLookupNothingPublished(t *testing.T) {
	e := newEnv(t)
	res := e.lookup(t, e.options(), "yann@example.org")
	if len(res.Candidates) != 0 || res.Candidates == nil {
		t.Errorf("candidates %#v, want an empty list", res.Candidates)
	}
	for _, where := range []string{
		"https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=yann%40example.org",
		"https://example.org/.well-known/autoconfig/mail/config-v1.1.xml",
		"https://ispdb.test/v1.1/example.org",
		"_imaps._tcp.example.org", "_imap._tcp.example.org", "_pop3s._tcp.example.org", "_pop3._tcp.example.org",
		"example.org",
		"https://autodiscover.example.org/autodiscover/autodiscover.xml",
		"https://example.org/autodiscover/autodiscover.xml",
		"_autodiscover._tcp.example.org",
	} {
		if _, ok := findNote(res, where, ""); !ok {
			t.Errorf("no note about %s:\n%s", where, dumpNotes(res))
		}
	}
	for _, n := range res.Notes {
		if n.Level != LevelInfo && n.Method != MethodMX {
			t.Errorf("note %+v is not informational", n)
		}
	}
}

func TestLookupRefusesWhatIsNotAnAddress(t *testing.T) {
	e := newEnv(t)
	_, err := e.finder(e.options()).Lookup(context.Background(), "not an address")
	if err == nil || !strings.Contains(err.Error(), "write it like") {
		t.Errorf("err = %v", err)
	}
}

func TestLookupWithoutDNSServerStillAsksTheWeb(t *testing.T) {
	e := newEnv(t)
	e.web.handle("autoconfig.example.com", "/mail/config-v1.1.xml", xmlHandler(imapConfig))
	opts := e.options()
	opts.DNSServer = ""
	f := e.finder(opts)
	f.resolvConf = t.TempDir() + "/missing-resolv.conf"
	res, err := f.Lookup(context.Background(), "zoe@example.com")
	if err != nil {
		t.Fatal(err)
	}
	mustNote(t, res, "", "no DNS server is configured")
	mustCandidate(t, res, ProtocolIMAP, "imap.example.com", 993)
}

// Without a Dial hook, connections go only to public addresses: the
// in-process servers on 127.0.0.1 are refused.
func TestDefaultDialRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(xmlHandler(imapConfig))
	defer srv.Close()
	dial := refusingDial(time.Second)
	_, err := dial(context.Background(), "tcp", srv.Listener.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("dial to %s: %v, want a refusal", srv.Listener.Addr(), err)
	}
	fx := newFetcher(dial, nil, time.Second, DefaultMaxBody, DefaultMaxRedirects, DefaultUserAgent)
	defer fx.close()
	_, err = fx.fetch(context.Background(), http.MethodGet, srv.URL+"/mail/config-v1.1.xml", nil, "")
	if err == nil {
		t.Fatal("fetch succeeded")
	}
	if text, _, _ := describe(err, &Options{Timeout: time.Second, RequestTimeout: time.Second, MaxBody: DefaultMaxBody}); text != "could not connect" {
		t.Errorf("described as %q", text)
	}
	// A Finder built without Options.Dial uses it.
	f := New(Options{})
	if _, err := f.opts.Dial(context.Background(), "tcp", srv.Listener.Addr().String()); err == nil {
		t.Error("the default Finder dialled loopback")
	}
}

func TestNonPublic(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
		"::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1", "255.255.255.255"} {
		if nonPublic(netip.MustParseAddr(a)) == "" {
			t.Errorf("%s counted as public", a)
		}
	}
	for _, a := range []string{"93.184.215.14", "8.8.8.8", "2606:4700::1111"} {
		if why := nonPublic(netip.MustParseAddr(a)); why != "" {
			t.Errorf("%s counted as %s", a, why)
		}
	}
}

// With CheckAddr (the operator's outbound policy), what the policy
// allows is offered even when it is not on the internet, and what it
// refuses is dropped even when it is.
func TestLookupCheckAddrDecidesWhatIsOffered(t *testing.T) {
	e := newEnv(t)
	doc := `<clientConfig><emailProvider>
	  <incomingServer type="imap"><hostname>imap.internal.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	  <incomingServer type="imap"><hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	</emailProvider></clientConfig>`
	e.web.handle("autoconfig.example.com", "/mail/config-v1.1.xml", xmlHandler(doc))
	e.dns.add(t, "imap.internal.example.com. 300 IN A 10.1.2.3", publicA("imap.example.com"))
	allowed := netip.MustParsePrefix("10.0.0.0/8")
	opts := e.options()
	opts.CheckAddr = func(a netip.Addr) error {
		if allowed.Contains(a) {
			return nil
		}
		return errors.New("refused")
	}
	res := e.lookup(t, opts, "vic@example.com")
	if len(res.Candidates) != 1 || res.Candidates[0].Host != "imap.internal.example.com" {
		t.Errorf("candidates:\n%s", dumpCandidates(res))
	}
	mustNote(t, res, "imap.example.com", "refused by the outbound policy")
}
