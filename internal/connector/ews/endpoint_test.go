package ews

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
)

// What users type (an OWA address, a host, the EWS URL) all becomes the
// same canonical ews:// address, which Parse reads back to the HTTPS URL
// https://HOST/EWS/Exchange.asmx.
func TestEndpointFromUserInput(t *testing.T) {
	for _, tc := range []struct{ in, want, url string }{
		{"https://mail.domain.com/owa", "ews://mail.domain.com", "https://mail.domain.com/EWS/Exchange.asmx"},
		{"https://mail.domain.com/owa/", "ews://mail.domain.com", ""},
		{"https://Mail.Domain.com/OWA/#path=/mail", "ews://mail.domain.com", ""},
		{"https://mail.domain.com/owa/auth/logon.aspx?replaceCurrent=1&url=https%3a%2f%2fmail.domain.com%2fowa%2f", "ews://mail.domain.com", ""},
		{"https://mail.domain.com/exchange", "ews://mail.domain.com", ""},
		{"http://mail.domain.com/owa", "ews://mail.domain.com", ""},
		{"http://mail.domain.com:80/owa", "ews://mail.domain.com", ""},
		{"mail.domain.com", "ews://mail.domain.com", ""},
		{"  mail.domain.com  ", "ews://mail.domain.com", ""},
		{"mail.domain.com/owa", "ews://mail.domain.com", ""},
		{"mail.domain.com:8443", "ews://mail.domain.com:8443", "https://mail.domain.com:8443/EWS/Exchange.asmx"},
		{"192.0.2.7", "ews://192.0.2.7", "https://192.0.2.7/EWS/Exchange.asmx"},
		{"https://[2001:db8::1]/owa", "ews://[2001:db8::1]", "https://[2001:db8::1]/EWS/Exchange.asmx"},
		{"https://mail.domain.com/EWS/Exchange.asmx", "ews://mail.domain.com", ""},
		{"https://mail.domain.com/ews/exchange.asmx", "ews://mail.domain.com", ""},
		{"https://proxy.example/mail/EWS/Exchange.asmx", "ews+https://proxy.example/mail/EWS/Exchange.asmx", "https://proxy.example/mail/EWS/Exchange.asmx"},
		{"https://alice@mail.domain.com/owa", "ews://alice@mail.domain.com", ""},
		{"ews://mail.domain.com", "ews://mail.domain.com", ""},
		{"EWS://MAIL.domain.com/EWS/Exchange.asmx", "ews://mail.domain.com", ""},
	} {
		got, err := EndpointFromUserInput(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
		e, err := Parse(got)
		if err != nil {
			t.Errorf("%q: Parse(%q): %v", tc.in, got, err)
			continue
		}
		if e.Redacted != got {
			t.Errorf("%q: Parse(%q).Redacted = %q", tc.in, got, e.Redacted)
		}
		if tc.url != "" {
			if u := serviceURL(e).String(); u != tc.url {
				t.Errorf("%q: service URL %q, want %q", tc.in, u, tc.url)
			}
		}
	}
}

func TestEndpointFromUserInputRefuses(t *testing.T) {
	for _, in := range []string{"", "   ", "imap://mail.domain.com", "https://alice:secret@mail.domain.com/owa", "https:///owa", "mail.domain.com:99999"} {
		got, err := EndpointFromUserInput(in)
		if err == nil {
			t.Errorf("%q: accepted as %q", in, got)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", in, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw                string
		host, path, user   string
		port               int
		redacted, dialAddr string
		params             map[string]string
	}{
		{raw: "ews://mail.example.com", host: "mail.example.com", port: 443, path: DefaultPath, redacted: "ews://mail.example.com", dialAddr: "mail.example.com:443"},
		{raw: "ews://mail.example.com/", host: "mail.example.com", port: 443, path: DefaultPath, redacted: "ews://mail.example.com"},
		{raw: "ews://mail.example.com:8443/custom/ews.asmx", host: "mail.example.com", port: 8443, path: "/custom/ews.asmx", redacted: "ews://mail.example.com:8443/custom/ews.asmx", dialAddr: "mail.example.com:8443"},
		{raw: "ews+https://mail.example.com/EWS/Exchange.asmx", host: "mail.example.com", port: 443, path: DefaultPath, redacted: "ews+https://mail.example.com/EWS/Exchange.asmx"},
		{raw: "ews://CORP%5Calice@mail.example.com", host: "mail.example.com", port: 443, path: DefaultPath, user: `CORP\alice`, redacted: "ews://CORP%5Calice@mail.example.com"},
		{raw: "ews://mail.example.com?auth=basic", host: "mail.example.com", port: 443, path: DefaultPath, redacted: "ews://mail.example.com?auth=basic", params: map[string]string{"auth": "basic"}},
		{raw: "ews://mail.example.com?impersonate=bob%40example.com&auth=NTLM", host: "mail.example.com", port: 443, path: DefaultPath,
			redacted: "ews://mail.example.com?auth=ntlm&impersonate=bob%40example.com", params: map[string]string{"auth": "ntlm", "impersonate": "bob@example.com"}},
		{raw: "ews://[2001:db8::1]:444", host: "2001:db8::1", port: 444, path: DefaultPath, redacted: "ews://[2001:db8::1]:444", dialAddr: "[2001:db8::1]:444"},
	} {
		e, err := Parse(tc.raw)
		if err != nil {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		if e.Host != tc.host || e.Port != tc.port || e.Path != tc.path || e.User != tc.user || e.Redacted != tc.redacted || e.Raw != tc.raw {
			t.Errorf("%q: got host %q port %d path %q user %q redacted %q", tc.raw, e.Host, e.Port, e.Path, e.User, e.Redacted)
		}
		if tc.dialAddr != "" && dialAddress(e) != tc.dialAddr {
			t.Errorf("%q: dials %q", tc.raw, dialAddress(e))
		}
		for k, v := range tc.params {
			if e.Params[k] != v {
				t.Errorf("%q: param %s = %q, want %q", tc.raw, k, e.Params[k], v)
			}
		}
		if e2, err := Parse(e.Redacted); err != nil || e2.Redacted != e.Redacted {
			t.Errorf("%q: Redacted %q does not parse back to itself: %v", tc.raw, e.Redacted, err)
		}
	}
}

// A password in the address is refused and never echoed; unknown
// settings and schemes are refused with what is known.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"ews://alice:hunter2@mail.example.com", "password"},
		{"ews+https://alice:hunter2@mail.example.com/EWS/Exchange.asmx", "password"},
		{"ews://", "no host"},
		{"ews:mail.example.com", "no host"},
		{"ews+https://mail.example.com", "full path"},
		{"ews://mail.example.com:0", "bad port"},
		{"ews://mail.example.com?insecure=1", "unknown setting"},
		{"ews://mail.example.com?auth=kerberos", "auth="},
		{"ews://mail.example.com?impersonate=CORP%5Cbob", "not an email address"},
		{"ews://mail.example.com?auth=basic&auth=ntlm", "2 times"},
		{"ews://mail.example.com#x", "'#'"},
		{"https://mail.example.com", "unknown scheme"},
	} {
		_, err := Parse(tc.raw)
		if err == nil {
			t.Errorf("%q: accepted", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not say %q", tc.raw, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: error shows the password: %v", tc.raw, err)
		}
	}
}

// The registry reaches this backend by both schemes, as a source and as
// a destination, not as a local one.
func TestBackend(t *testing.T) {
	b := Backend()
	if b.Local || !b.Source || !b.Destination || b.Name != "ews" {
		t.Errorf("backend %+v", b)
	}
	r, err := connector.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"ews://mail.example.com", "ews+https://mail.example.com/EWS/Exchange.asmx"} {
		e, got, err := r.Parse(raw)
		if err != nil || got.Name != "ews" || e.Host != "mail.example.com" {
			t.Errorf("%q: %v %v %+v", raw, err, got.Name, e)
		}
	}
}

// FuzzAddress: no input panics; what is accepted is canonical (its
// Redacted form parses back to itself), and a password given in the
// address never shows in an error.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"https://mail.domain.com/owa", "ews://a@b:1/x?auth=basic", "ews+https://h/p", "mail.x", "https://u:pw@h/owa", "ews://[::1]:8443", "http://h:80/exchange#x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := EndpointFromUserInput(s); err == nil {
			e, err := Parse(got)
			if err != nil || e.Redacted != got {
				t.Fatalf("%q → %q does not parse back: %v %q", s, got, err, e.Redacted)
			}
		} else if strings.Contains(s, ":secretpw@") && strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("password in error: %v", err)
		}
		if e, err := Parse(s); err == nil {
			e2, err := Parse(e.Redacted)
			if err != nil || e2.Redacted != e.Redacted || e2.Host != e.Host || e2.Port != e.Port || e2.Path != e.Path {
				t.Fatalf("%q: Redacted %q does not parse back: %v", s, e.Redacted, err)
			}
		} else if strings.Contains(s, ":secretpw@") && strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("password in error: %v", err)
		}
	})
}
