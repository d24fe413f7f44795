package cli

import (
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// Gmail (the test server) -> Dovecot through `mailferry copy`: every
// message arrives once although Gmail shows it in several folders, the
// others count as skipped (copied from another folder) so that each
// folder balances, and a second pass copies nothing.
func TestCopyGmailOnce(t *testing.T) {
	gm := gmailimap.Start(t, nil)
	const user, pw = "alice@gmail.com", "abcd efgh ijkl mnop"
	if err := gm.AddAccount(user, &gmailimap.AccountOptions{AppPassword: pw}); err != nil {
		t.Fatal(err)
	}
	for i, labels := range [][]string{{`\Inbox`, "Work"}, {"Work"}, nil, {`\Sent`}, {`\Inbox`, `\Important`}} {
		raw := []byte(fmt.Sprintf("Message-ID: <g%d@example.com>\r\nFrom: b@example.com\r\nSubject: g%d\r\n\r\nbody\r\n", i, i))
		if _, err := gm.Seed(user, gmailimap.Message{Raw: raw, Labels: labels}); err != nil {
			t.Fatal(err)
		}
	}
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{SpecialUse: true})
	dst.AddUser(t, "alice", secret)
	env := withState(t, map[string]string{"MAILFERRY_FROM_PASSWORD": pw, "MAILFERRY_TO_PASSWORD": secret})
	args := []string{"copy", "--from", "imaps://" + gm.Addr, "--from-user", user, "--insecure",
		"--to", imapURL(dst), "--to-user", "alice", "--allow-plaintext", "--json"}
	r := runCLI(t, env, args...)
	if r.code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	stats, folders := summaryOf(t, r)
	// Shown 9 times (INBOX 2, Work 2, Sent 1, Important 1, All Mail 4
	// minus the Sent one, which All Mail also holds: 5), copied 5 times.
	if stats["copied"] != 5 || stats["failed"] != 0 || stats["skipped"] != stats["total_messages"]-5 {
		t.Fatalf("stats %v", stats)
	}
	var elsewhere float64
	for _, f := range folders {
		n, _ := f["copied_from_another_folder"].(float64)
		elsewhere += n
	}
	if elsewhere != stats["skipped"] {
		t.Errorf("%v skipped, %v of them said to be copied from another folder", stats["skipped"], elsewhere)
	}
	total := uint32(0)
	for _, f := range []string{"INBOX", "Work", "Sent", "Archive", "All Mail", "[Gmail]/All Mail", "Important", "[Gmail]/Important"} {
		total += count(t, dst, "alice", f)
	}
	if total != 5 {
		t.Errorf("the destination holds %d messages, want 5 (each once)", total)
	}
	r = runCLI(t, env, args...)
	stats, _ = summaryOf(t, r)
	if r.code != ExitOK || stats["copied"] != 0 {
		t.Fatalf("second pass: exit %d, %v", r.code, stats)
	}
}
