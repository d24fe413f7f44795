package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RefuseLogin makes the server answer every login as user with a NO that
// carries reason as its text, whatever the password: Dovecot's passdb
// extra fields "nopassword nologin reason=..." (doc.dovecot.org,
// PasswordDatabase/ExtraFields). Providers configured this way tell a
// mailbox that does not exist (yet) apart from a wrong password; Dovecot
// sends the reason with the response code [CONTACTADMIN].
//
// The passwd-file splits extra fields at spaces, so the reason's words
// are joined with tabs, which IMAP carries in a response text as they are.
func (d *Dovecot) RefuseLogin(t testing.TB, user, reason string) {
	t.Helper()
	name := strings.ToLower(user)
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !strings.ContainsRune(usernameChars, r) }) {
		t.Fatalf("testenv: user name %q: Dovecot only accepts the characters %q", user, usernameChars)
	}
	d.usersMu.Lock()
	defer d.usersMu.Unlock()
	line := name + ":::::::nopassword=y nologin=y reason=" + strings.Join(strings.Fields(reason), "\t") + "\n"
	tmp := filepath.Join(d.Dir, "passwd.tmp")
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.Dir, "passwd.d", name)); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
