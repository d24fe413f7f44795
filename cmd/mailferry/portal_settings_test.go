package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"
)

// zone is an in-process DNS server (github.com/miekg/dns, as in the
// autoconfig package's tests) answering from a table of records over UDP.
// A name with no records is NXDOMAIN; questions about names under
// slowSuffix are answered only after slowDelay.
type zone struct {
	addr       string
	mu         sync.Mutex
	rrs        map[string][]dns.RR
	slowSuffix string
	slowDelay  time.Duration
}

func startZone(t *testing.T, records ...string) *zone {
	t.Helper()
	z := &zone{rrs: map[string][]dns.RR{}}
	for _, l := range records {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		n := strings.ToLower(rr.Header().Name)
		z.rrs[n] = append(z.rrs[n], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: z}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	z.mu.Lock()
	rrs, ok := z.rrs[name]
	slow := z.slowSuffix != "" && strings.HasSuffix(name, z.slowSuffix)
	z.mu.Unlock()
	if slow {
		time.Sleep(z.slowDelay)
	}
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	_ = w.WriteMsg(m)
}

// TestPortalSettingsFromTheAddress: on "Start new migration" an address
// offers the source settings that public data gives, in Chromium against
// `mailferry serve`: RFC 6186 SRV records from an in-process DNS server,
// the ISPDB from an in-process HTTP server. A host that the outbound
// policy refuses (10.9.9.9) is not offered. "Use these settings" fills
// the form, the project is created with them, and a lookup that takes
// long does not hold up the form.
func TestPortalSettingsFromTheAddress(t *testing.T) {
	z := startZone(t,
		"_imaps._tcp.acme.test. 60 IN SRV 0 1 993 imap.acme.test.",
		"_pop3s._tcp.acme.test. 60 IN SRV 0 1 995 pop.acme.test.",
		"imap.acme.test. 60 IN A 127.0.0.1",
		"pop.acme.test. 60 IN A 10.9.9.9",
		"mail.hoster.test. 60 IN A 127.0.0.2",
		"_imaps._tcp.slow.test. 60 IN SRV 0 1 993 imap.slow.test.",
	)
	z.slowSuffix, z.slowDelay = "slow.test.", 3*time.Second
	var ispdbMu sync.Mutex
	var ispdbAsked []string
	ispdb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ispdbMu.Lock()
		ispdbAsked = append(ispdbAsked, r.URL.RequestURI())
		ispdbMu.Unlock()
		if r.URL.Path != "/v1.1/hoster.test" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="hoster.test"><domain>hoster.test</domain><displayName>Hoster Mail</displayName>
  <incomingServer type="imap"><hostname>mail.hoster.test</hostname><port>143</port><socketType>STARTTLS</socketType>
    <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication></incomingServer>
</emailProvider></clientConfig>`))
	}))
	t.Cleanup(ispdb.Close)

	p := startPortalServer(t, "imaps://127.0.0.1:1", "--settings-lookup-dns", z.addr, "--settings-lookup-ispdb", ispdb.URL+"/v1.1/")
	tb := newTab(t, p.url)
	tb.login(p, "admin@acme.test", 1)
	tb.open("/migrations/new")
	tb.waitVisible("#lookup-email", 5*time.Second)
	tb.shot("settings-lookup-empty")

	tb.typeIn("#lookup-email", "anna@acme.test")
	tb.do(chromedp.Click(chromedp.CSS("#lookup-button")))
	tb.waitVisible("#use-settings-0", 10*time.Second)
	found := tb.text("#settings-found")
	if !strings.Contains(found, "IMAP · imap.acme.test · port 993 · SSL/TLS") || !strings.Contains(found, "DNS SRV records (RFC 6186)") {
		t.Errorf("suggestions for acme.test: %q", found)
	}
	if strings.Contains(found, "pop.acme.test") || strings.Contains(found, "10.9.9.9") {
		t.Errorf("a host the outbound policy refuses is offered: %q", found)
	}
	tb.shot("settings-lookup-found")
	tb.do(chromedp.Click(chromedp.CSS("#use-settings-0")))
	if h, port := tb.value("#host"), tb.value("#port"); h != "imap.acme.test" || port != "993" {
		t.Errorf("after Use these settings: host %q port %q", h, port)
	}

	// The ISPDB answers for the domain only; its setting is STARTTLS.
	tb.typeIn("#lookup-email", "bo@hoster.test")
	tb.do(chromedp.Click(chromedp.CSS("#lookup-button")))
	tb.waitVisible("#use-settings-0", 10*time.Second)
	tb.do(chromedp.WaitVisible(chromedp.CSS(`#settings-found .suggestion`)))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(tb.text("#settings-found"), "mail.hoster.test") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	found = tb.text("#settings-found")
	if !strings.Contains(found, "IMAP · mail.hoster.test · port 143 · STARTTLS") || !strings.Contains(found, "the Thunderbird ISPDB") {
		t.Errorf("suggestions for hoster.test: %q", found)
	}
	tb.do(chromedp.Click(chromedp.CSS("#use-settings-0")))
	starttls, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`document.getElementById('security-starttls').checked`))
	if h, port := tb.value("#host"), tb.value("#port"); h != "mail.hoster.test" || port != "143" || !starttls {
		t.Errorf("after Use these settings: host %q port %q starttls %v", h, port, starttls)
	}
	tb.shot("settings-lookup-filled")
	ispdbMu.Lock()
	for _, u := range ispdbAsked {
		if strings.Contains(u, "bo") && strings.Contains(u, "@") {
			t.Errorf("the ISPDB learned the address: %s", u)
		}
	}
	ispdbMu.Unlock()

	// A slow lookup does not hold up the form: it is submitted while the
	// lookup still runs, with what the user typed.
	tb.typeIn("#lookup-email", "cy@slow.test")
	tb.do(chromedp.Click(chromedp.CSS("#lookup-button")))
	if !strings.Contains(tb.text("#settings-found"), "Looking up the settings of slow.test") {
		t.Errorf("no progress shown for the slow lookup: %q", tb.text("#settings-found"))
	}
	tb.typeIn("#name", "Hoster move")
	start := time.Now()
	if code := tb.submit("#create-project"); code != 200 {
		t.Fatalf("create project while a lookup runs: %d", code)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("submitting the form took %v while a lookup ran", d)
	}
	if loc := tb.location(); !strings.Contains(loc, "/mailboxes") {
		t.Errorf("after submit: %s", loc)
	}
	if !strings.Contains(tb.text("main"), "mail.hoster.test") {
		t.Error("the project page does not show the server filled in from the ISPDB")
	}
	tb.checkConsole()
}
