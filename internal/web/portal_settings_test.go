package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/autoconfig"
)

type fakeFinder struct{ asked []string }

func (f *fakeFinder) Lookup(ctx context.Context, address string) (*autoconfig.Result, error) {
	f.asked = append(f.asked, address)
	if _, err := autoconfig.ParseAddress(address); err != nil {
		return nil, err
	}
	return &autoconfig.Result{Address: address, Domain: "example.com", Candidates: []autoconfig.Candidate{
		{Protocol: autoconfig.ProtocolEWS, Host: "mail.example.com", Port: 443, URL: "https://mail.example.com/EWS/Exchange.asmx",
			Sources: []autoconfig.Source{{Method: autoconfig.MethodAutodiscover}}},
		{Protocol: autoconfig.ProtocolIMAP, Host: "imap.example.com", Port: 993, Security: autoconfig.SecurityTLS, Confidence: autoconfig.ConfidenceHigh,
			Sources: []autoconfig.Source{{Method: autoconfig.MethodSRV}, {Method: autoconfig.MethodISPDB}}},
		{Protocol: autoconfig.ProtocolGraph, URL: "https://graph.microsoft.com", Sources: []autoconfig.Source{{Method: autoconfig.MethodAutodiscover}}},
	}}, nil
}

// settings.json needs a session, says what to type for a bad address,
// offers Exchange (EWS) and IMAP settings with where they were found, and
// names a source type that is not offered yet (Microsoft 365) as a note
// only.
func TestPortalSettingsLookup(t *testing.T) {
	f := &fakeFinder{}
	e := newPortalEnvWith(t, func(c *PortalConfig) { c.Settings = f })
	b := e.newBrowser()
	// Without a session: the login page, and the finder is not asked.
	if code, body := b.get("/migrations/new/settings.json?email=a@example.com"); code != 200 || !strings.Contains(body, "Send me a login link") || len(f.asked) != 0 {
		t.Errorf("without a session: %d, finder asked %v", code, f.asked)
	}
	b.login("owner@example.com")
	if _, body := b.get("/migrations/new"); !strings.Contains(body, `id="lookup-email"`) {
		t.Error("the new-migration page has no address field for the lookup")
	}
	code, body := b.get("/migrations/new/settings.json?email=a@example.com")
	if code != http.StatusOK {
		t.Fatalf("lookup: %d %s", code, body)
	}
	var a settingsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Suggestions) != 2 || a.Suggestions[0] != (settingsSuggestion{Type: "exchange", Host: "mail.example.com", Port: 443, Security: "tls",
		Label: "Exchange (OWA address) · mail.example.com · port 443 · SSL/TLS", From: "Exchange Autodiscover"}) ||
		a.Suggestions[1] != (settingsSuggestion{Type: "imap", Host: "imap.example.com", Port: 993, Security: "tls",
			Label: "IMAP · imap.example.com · port 993 · SSL/TLS", From: "DNS SRV records (RFC 6186), the Thunderbird ISPDB", Confidence: "high"}) {
		t.Errorf("suggestions = %+v", a.Suggestions)
	}
	if len(a.Notes) != 1 || !strings.Contains(a.Notes[0], "Microsoft 365") || !strings.Contains(a.Notes[0], "https://graph.microsoft.com") ||
		!strings.Contains(a.Notes[0], "choose Microsoft 365 as the source") {
		t.Errorf("notes = %q", a.Notes)
	}
	if code, body := b.get("/migrations/new/settings.json?email=nonsense"); code != 400 || !strings.Contains(body, "enter a whole email address") {
		t.Errorf("bad address: %d %s", code, body)
	}
	// Turned off: 404, and the page has no field.
	e = newPortalEnv(t)
	b = e.newBrowser()
	b.login("owner@example.com")
	if code, _ := b.get("/migrations/new/settings.json?email=a@example.com"); code != 404 {
		t.Errorf("lookup turned off: %d", code)
	}
	if _, body := b.get("/migrations/new"); strings.Contains(body, `id="lookup-email"`) {
		t.Error("the address field is shown with the lookup turned off")
	}
}
