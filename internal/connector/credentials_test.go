package connector

import (
	"fmt"
	"strings"
	"testing"
)

// Printing credentials by mistake (%v, %+v, %#v, %s) must show no secret.
func TestCredentialsPrintNoSecrets(t *testing.T) {
	c := Credentials{
		Username: "alice@example.com",
		Password: "pw-SECRET-1",
		OAuth: &OAuth{
			Tenant:         "contoso.onmicrosoft.com",
			ClientID:       "11111111-2222-3333-4444-555555555555",
			ClientSecret:   "cs-SECRET-2",
			CertificatePEM: []byte("-----BEGIN PRIVATE KEY-----\nKEY-SECRET-3\n"),
			RefreshToken:   "rt-SECRET-4",
		},
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, &c, c.OAuth, *c.OAuth} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "SECRET") {
				t.Errorf("%s of %T shows a secret: %s", verb, v, out)
			}
		}
	}
	if out := fmt.Sprint(c); !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "contoso.onmicrosoft.com") {
		t.Errorf("String hides what is not secret too: %s", out)
	}
}
