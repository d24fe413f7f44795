package all

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
)

// Every backend registers, every address form parses to its backend with
// the right role abilities, and a password never shows in what is
// logged.
func TestRegistry(t *testing.T) {
	r := Registry()
	for _, c := range []struct {
		raw, backend string
		local        bool
		source, dest bool
		host         string
		port         int
	}{
		{"imaps://alice@mail.example.com", "imap", false, true, true, "mail.example.com", 993},
		{"imap+starttls://mail.example.com:1143", "imap", false, true, true, "mail.example.com", 1143},
		{"imap://10.0.0.1", "imap", false, true, true, "10.0.0.1", 143},
		{"pop3s://pop.example.com", "pop3", false, true, false, "pop.example.com", 995},
		{"pop3+starttls://pop.example.com", "pop3", false, true, false, "pop.example.com", 110},
		{"maildir:/backup/alice", "maildir", true, true, true, "", 0},
		{"mbox:/backup/alice.mbox", "mbox", true, true, true, "", 0},
		{"eml:/exports/alice", "eml", true, true, false, "", 0},
		{"ews://mail.example.com", "ews", false, true, true, "mail.example.com", 443},
		{"ews+https://mail.example.com:8443/EWS/Exchange.asmx?auth=ntlm", "ews", false, true, true, "mail.example.com", 8443},
		{"graph://contoso.onmicrosoft.com/alice@contoso.com", "graph", false, true, true, "graph.microsoft.com", 443},
	} {
		e, b, err := r.Parse(c.raw)
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if b.Name != c.backend || b.Local != c.local || b.Source != c.source || b.Destination != c.dest || e.Host != c.host || e.Port != c.port {
			t.Errorf("%s: backend %q local %v source %v destination %v host %q port %d", c.raw, b.Name, b.Local, b.Source, b.Destination, e.Host, e.Port)
		}
		if e.Redacted == "" {
			t.Errorf("%s: no redacted form", c.raw)
		}
	}
	for _, bad := range []string{"imaps://alice:hunter2@mail.example.com", "pop3s://bob:hunter2@pop.example.com"} {
		_, _, err := r.Parse(bad)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v; want a refusal that does not repeat the password", bad, err)
		}
	}
	if _, _, err := r.Parse("ftp://files.example.com"); err == nil || !strings.Contains(err.Error(), "maildir") {
		t.Errorf("unknown scheme: %v; want the known ones listed", err)
	}
	if _, err := r.OpenDestination(t.Context(), connector.Endpoint{Scheme: "pop3s", Redacted: "pop3s://x"}, connector.OpenOptions{}); err == nil {
		t.Error("POP3 was opened as a destination")
	}
}

// Acting on another mailbox with an admin login (Credentials.Mailbox) is
// EWS impersonation only: every other backend refuses it with a clear
// configuration error before it touches the network or a file, rather
// than opening the login's own mailbox.
func TestOnlyEWSActsOnAnotherMailbox(t *testing.T) {
	r := Registry()
	dir := t.TempDir()
	for _, raw := range []string{"imaps://127.0.0.1:1", "pop3s://127.0.0.1:1", "maildir:" + dir + "/md", "mbox:" + dir + "/a.mbox", "eml:" + dir,
		"graph://contoso.onmicrosoft.com/alice@contoso.com"} {
		e, b, err := r.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		o := connector.OpenOptions{Credentials: connector.Credentials{Username: "admin", Password: "pw", Mailbox: "alice@example.com"}}
		_, err = b.Open(t.Context(), e, o)
		if connector.KindOf(err) != connector.KindConfig || !strings.Contains(err.Error(), "alice@example.com") ||
			!strings.Contains(connector.HintOf(err), "EWS") {
			t.Errorf("%s with Mailbox: %v (kind %v, hint %q); want a configuration error naming the mailbox", raw, err, connector.KindOf(err), connector.HintOf(err))
		}
	}
}
