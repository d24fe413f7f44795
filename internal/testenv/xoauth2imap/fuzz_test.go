package xoauth2imap_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv/xoauth2imap"
)

func FuzzParseResponse(f *testing.F) {
	vec, _ := base64.StdEncoding.DecodeString(vectorB64)
	f.Add(vec)
	f.Add([]byte("user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"))
	f.Add([]byte("user=\x01auth=Bearer \x01\x01"))
	f.Add([]byte("n,a=user,\x01auth=Bearer x\x01\x01")) // OAUTHBEARER, not XOAUTH2
	f.Fuzz(func(t *testing.T, b []byte) {
		user, token, err := xoauth2imap.ParseResponse(b)
		if err != nil {
			return
		}
		// Whatever parses rebuilds to the same bytes: the format is exact.
		if got := "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"; got != string(b) {
			t.Fatalf("%q parsed to %q %q", b, user, token)
		}
		if user == "" || token == "" || strings.Contains(token, " ") {
			t.Fatalf("accepted empty or spaced fields: %q", b)
		}
	})
}
