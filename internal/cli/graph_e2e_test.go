package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	e2eTenant = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
	e2eDomain = "contoso.onmicrosoft.com"
	e2eApp    = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
	e2eSecret = "graph~App.Secret-e2e-0123"
)

// summaryOf reads the summary event of a --json run and checks that
// every folder balances: source = copied + already present + skipped +
// failed (+ left when stopped).
func summaryOf(t *testing.T, r result) (stats map[string]float64, folders []map[string]any) {
	t.Helper()
	var last map[string]any
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		last = ev
	}
	if last["type"] != "summary" {
		t.Fatalf("no summary; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	stats = map[string]float64{}
	for k, v := range last["stats"].(map[string]any) {
		if f, ok := v.(float64); ok {
			stats[k] = f
		}
	}
	for _, f := range last["folders"].([]any) {
		m := f.(map[string]any)
		num := func(k string) float64 { v, _ := m[k].(float64); return v }
		if num("source_messages") != num("copied")+num("already_present")+num("skipped")+num("failed")+num("left") {
			t.Errorf("folder %v does not balance: %v", m["source"], m)
		}
		folders = append(folders, m)
	}
	return stats, folders
}

func seedRaw(t *testing.T, d *testenv.Dovecot, user, folder string, raws ...[]byte) {
	t.Helper()
	c := d.Dial(t, user, secret)
	defer c.Logout()
	if folder != "INBOX" {
		_ = c.Create(folder, nil).Wait()
	}
	for i, raw := range raws {
		cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2020, 5, 1, 10, 0, i, 0, time.UTC)})
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func e2eMsg(i int) []byte {
	return []byte(fmt.Sprintf("Message-ID: <e2e%d@example.com>\r\nDate: Fri, 1 May 2020 10:00:%02d +0000\r\nFrom: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: e2e %d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody %d.\r\n", i, i, i, i))
}

// IMAP (a real Dovecot) -> Microsoft 365 (the Graph test server) ->
// IMAP through `mailferry copy`: the first pass copies everything, a
// delta pass copies only what is new, counts balance in every pass, the
// messages that went through importMime come back byte for byte, and on
// a tenant without importMime every copy is reported as rebuilt
// (content-equivalent), not as byte-exact.
func TestCopyIMAPToGraphAndBack(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	back := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "alice", secret)
	back.AddUser(t, "alice", secret)
	seedRaw(t, src, "alice", "INBOX", e2eMsg(1), e2eMsg(2), e2eMsg(3))
	seedRaw(t, src, "alice", "Projekte", e2eMsg(4), e2eMsg(5))

	gs := graphserver.Start(t, nil)
	gs.AddTenant(e2eTenant, e2eDomain)
	gs.AddApp(e2eTenant, e2eApp, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	gs.AddClientSecret(e2eApp, e2eSecret, time.Time{})
	gs.SetImportMime(e2eTenant, true)
	const mbox = "alice@" + e2eDomain
	gs.AddMailbox(e2eTenant, mbox)

	env := withState(t, map[string]string{"MAILFERRY_FROM_PASSWORD": secret, "MAILFERRY_TO_PASSWORD": secret,
		"MAILFERRY_TO_OAUTH_SECRET": e2eSecret, "MAILFERRY_FROM_OAUTH_SECRET": e2eSecret})
	ms := []string{"--graph-url", gs.URL, "--oauth-token-url", gs.TokenURL("{tenant}"), "--ca-file", gs.CertFile, "--allow-plaintext", "--json"}
	toGraph := append([]string{"copy", "--from", imapURL(src), "--from-user", "alice",
		"--to", "graph://" + e2eDomain + "/" + mbox, "--to-oauth-client-id", e2eApp, "--to-oauth-tenant", e2eTenant}, ms...)
	noSecret := func(r result) {
		if strings.Contains(r.stdout+r.stderr, e2eSecret) {
			t.Fatal("the OAuth secret appeared in the output")
		}
	}

	r := runCLI(t, env, toGraph...)
	noSecret(r)
	if r.code != ExitOK {
		t.Fatalf("IMAP -> Graph: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	stats, _ := summaryOf(t, r)
	if stats["copied"] != 5 || stats["failed"] != 0 {
		t.Fatalf("IMAP -> Graph: %v", stats)
	}
	if n := len(gs.Messages(mbox, "Inbox")); n != 3 {
		t.Errorf("Graph Inbox has %d messages, want 3", n)
	}
	if n := len(gs.Messages(mbox, "Projekte")); n != 2 {
		t.Errorf("Graph Projekte has %d messages, want 2", n)
	}
	for _, m := range gs.AllMessages(mbox) {
		if m.IsDraft || !m.IsRead || m.WritePath != graphserver.WriteImportMIME {
			t.Errorf("copy %q: draft %v read %v path %v; want a read, non-draft importMime copy", m.Subject, m.IsDraft, m.IsRead, m.WritePath)
		}
	}

	// Delta pass: one new message, nothing else copied again.
	seedRaw(t, src, "alice", "INBOX", e2eMsg(6))
	r = runCLI(t, env, toGraph...)
	noSecret(r)
	stats, _ = summaryOf(t, r)
	if r.code != ExitOK || stats["copied"] != 1 {
		t.Fatalf("delta IMAP -> Graph: exit %d, %v\n%s", r.code, stats, r.stderr)
	}
	if n := len(gs.AllMessages(mbox)); n != 6 {
		t.Fatalf("Graph holds %d messages after the delta pass, want 6 (no duplicates)", n)
	}

	// Graph -> IMAP: byte for byte, and a delta pass copies nothing.
	fromGraph := append([]string{"copy", "--from", "graph://" + e2eDomain + "/" + mbox, "--from-oauth-client-id", e2eApp, "--from-oauth-tenant", e2eTenant,
		"--to", imapURL(back), "--to-user", "alice"}, ms...)
	r = runCLI(t, env, fromGraph...)
	noSecret(r)
	stats, _ = summaryOf(t, r)
	if r.code != ExitOK || stats["copied"] != 6 || stats["failed"] != 0 {
		t.Fatalf("Graph -> IMAP: exit %d, %v\n%s", r.code, stats, r.stderr)
	}
	c := back.Dial(t, "alice", secret)
	got := map[string]bool{}
	for _, f := range []string{"INBOX", "Projekte"} {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatalf("select %s: %v", f, err)
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			for _, b := range m.BodySection {
				got[string(b.Bytes)] = true
			}
		}
	}
	for i := 1; i <= 6; i++ {
		if !got[string(e2eMsg(i))] {
			t.Errorf("message %d did not come back byte for byte", i)
		}
	}
	r = runCLI(t, env, fromGraph...)
	stats, _ = summaryOf(t, r)
	if r.code != ExitOK || stats["copied"] != 0 {
		t.Fatalf("delta Graph -> IMAP: exit %d, %v", r.code, stats)
	}

	// A tenant without importMime: the JSON path, every copy rebuilt
	// and reported so.
	gs.SetImportMime(e2eTenant, false)
	const carol = "carol@" + e2eDomain
	gs.AddMailbox(e2eTenant, carol)
	toCarol := append([]string{"copy", "--from", imapURL(src), "--from-user", "alice", "--include", "^Projekte$",
		"--to", "graph://" + e2eDomain + "/" + carol, "--to-oauth-client-id", e2eApp, "--to-oauth-tenant", e2eTenant}, ms...)
	r = runCLI(t, env, toCarol...)
	stats, folders := summaryOf(t, r)
	if r.code != ExitOK || stats["copied"] != 2 || len(folders) != 1 || folders[0]["rebuilt"] != float64(2) {
		t.Fatalf("JSON path: exit %d, %v, folders %v\n%s", r.code, stats, folders, r.stderr)
	}
	// The human summary says so too.
	const dave = "dave@" + e2eDomain
	gs.AddMailbox(e2eTenant, dave)
	toDave := append([]string{}, toCarol[:len(toCarol)-1]...) // without --json
	toDave[8] = "graph://" + e2eDomain + "/" + dave
	r = runCLI(t, env, toDave...)
	if r.code != ExitOK || !strings.Contains(r.stdout, "2 of the copies were rebuilt by the destination") {
		t.Fatalf("human summary of rebuilt copies: exit %d\n%s", r.code, r.stdout)
	}
}
