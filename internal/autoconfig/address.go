package autoconfig

import (
	"fmt"
	"net/mail"
	"strings"

	"golang.org/x/net/idna"
)

// Address is an email address split for the lookup.
type Address struct {
	// Full is LocalPart@Domain.
	Full string
	// LocalPart is the part before the last @, as typed.
	LocalPart string
	// Domain is lower case, without a trailing dot, in ASCII (IDNA
	// A-label) form: bücher.example becomes xn--bcher-kva.example.
	Domain string
}

// ParseAddress checks that s is an email address whose domain is a host
// name that can be looked up. A display name ("Alice <alice@example.com>")
// is accepted and dropped.
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (Address, error) {
		return Address{}, fmt.Errorf("%q is not an email address that can be looked up (%s): write it like alice@example.com", truncate(s, 80), why)
	}
	if s == "" {
		return bad("it is empty")
	}
	if len(s) > 320 {
		return bad("it is longer than 320 characters")
	}
	// A trailing dot (a fully qualified domain) is not address syntax.
	a, err := mail.ParseAddress(strings.TrimSuffix(s, "."))
	if err != nil {
		return bad("it cannot be read as an address")
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return bad("it needs a name, an @ and a domain")
	}
	local, domain := a.Address[:at], a.Address[at+1:]
	if strings.HasPrefix(domain, "[") {
		return bad("the part after the @ must be a domain name, not an IP address")
	}
	ascii, err := normaliseDomain(domain)
	if err != nil {
		return bad(err.Error())
	}
	return Address{Full: local + "@" + ascii, LocalPart: local, Domain: ascii}, nil
}

// normaliseDomain returns the A-label form of a domain name and checks
// that it is a host name of at least two labels (RFC 1123 section 2.1).
func normaliseDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("the domain %q is not a valid domain name", truncate(d, 80))
	}
	if !validHostname(ascii) || !strings.Contains(ascii, ".") {
		return "", fmt.Errorf("the domain %q is not a valid domain name", truncate(d, 80))
	}
	return ascii, nil
}

// validHostname reports whether h is a DNS host name: labels of 1 to 63
// letters, digits and hyphens, not starting or ending with a hyphen, at
// most 253 characters, and a last label that is not all digits (so that
// it is not an IPv4 address). Underscores are refused: no mail host has
// them.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
