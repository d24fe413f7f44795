package migrate

import (
	"testing"

	"github.com/mailferry/mailferry/internal/mail"
)

func TestParseRules(t *testing.T) {
	r, err := ParseRules([]string{"^inbox", "^work/"}, []string{"^work/old$"}, []string{"^work/->Archive/Work/", "^INBOX->"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{"INBOX": true, "Work/2020": true, "Work/Old": false, "Spam": false} {
		if got := r.Selected(mail.ParsePath(path)); got != want {
			t.Errorf("Selected(%q) = %v, want %v", path, got, want)
		}
	}
	if p, ok := r.Map(mail.ParsePath("Work/2020")); !ok || p.String() != "Archive/Work/2020" {
		t.Errorf("Map(Work/2020) = %q %v", p, ok)
	}
	if p, ok := r.Map(mail.ParsePath("INBOX")); !ok || !p.IsInbox() {
		t.Errorf("^INBOX-> must map the inbox to the inbox, got %q", p)
	}
	for _, bad := range [][3][]string{{{"("}, nil, nil}, {nil, {"["}, nil}, {nil, nil, {"no arrow"}}, {nil, nil, {"(->x"}}} {
		if _, err := ParseRules(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("ParseRules(%q) accepted an invalid rule", bad)
		}
	}
}
