package autoconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Address
	}{
		{"alice@example.com", Address{Full: "alice@example.com", LocalPart: "alice", Domain: "example.com"}},
		{"  Alice.Smith@Example.COM.  ", Address{Full: "Alice.Smith@example.com", LocalPart: "Alice.Smith", Domain: "example.com"}},
		{"Alice <alice@mail.example.co.uk>", Address{Full: "alice@mail.example.co.uk", LocalPart: "alice", Domain: "mail.example.co.uk"}},
		{"jörg@bücher.example", Address{Full: "jörg@xn--bcher-kva.example", LocalPart: "jörg", Domain: "xn--bcher-kva.example"}},
		{`"a@b"@example.com`, Address{Full: "a@b@example.com", LocalPart: "a@b", Domain: "example.com"}},
	} {
		got, err := ParseAddress(tc.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseAddressRefusesWithAHint(t *testing.T) {
	for _, in := range []string{
		"", "alice", "alice@", "@example.com", "alice@localhost", "alice@[192.0.2.1]",
		"alice@exa mple.com", "alice@-bad-.com", "alice@example.123", "alice@under_score.com",
		"alice@" + strings.Repeat("a", 64) + ".com", strings.Repeat("x", 400) + "@example.com",
	} {
		_, err := ParseAddress(in)
		if err == nil {
			t.Errorf("ParseAddress(%q): no error", in)
			continue
		}
		if !strings.Contains(err.Error(), "write it like alice@example.com") {
			t.Errorf("ParseAddress(%q): %q has no hint", in, err)
		}
	}
}
