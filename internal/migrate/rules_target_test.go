package migrate

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/mail"
)

// An empty mapping target strips a prefix; it never silently sends a
// whole folder into INBOX ("^Junk$->" used to), and the refusal says how
// to map to the inbox explicitly.
func TestMappingEmptyTarget(t *testing.T) {
	for _, ok := range []string{"^INBOX/->", "^Old/Archive/->", "^INBOX->", "^inbox$->", "^Junk$->INBOX", "^Work/->Archive/Work/"} {
		if _, err := ParseMapping(ok); err != nil {
			t.Errorf("ParseMapping(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"^Junk$->", "^Junk->", "^Archive->  ", "^.*$->", "Sent Items->"} {
		_, err := ParseMapping(bad)
		if err == nil || !strings.Contains(err.Error(), "empty target") || !strings.Contains(err.Error(), "->INBOX'") {
			t.Errorf("ParseMapping(%q) = %v", bad, err)
		}
	}
	r, err := ParseRules(nil, nil, []string{"^INBOX/->", "^Junk$->INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{"INBOX/Work": "Work", "Junk": "INBOX"} {
		if p, ok := r.Map(mail.ParsePath(src)); !ok || p.String() != want {
			t.Errorf("Map(%s) = %q %v, want %s", src, p, ok, want)
		}
	}
}
