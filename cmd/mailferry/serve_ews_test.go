package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// TestServiceExchange drives the service through its API with Exchange
// (EWS) on both sides, one admin login per side acting on every mailbox
// (ApplicationImpersonation), so that the CSV rows of that side carry
// email addresses only:
//
//   - IMAP -> the "Rackspace Exchange 2016" preset: the trial is Ready for
//     a mailbox that fits, Failed with the quota class for one that does
//     not, and Failed with the admin-permission class (Solve Issue names
//     ApplicationImpersonation) when the admin lacks the right; the full
//     pass copies the mailbox into Exchange.
//   - Exchange (OWA address) -> IMAP: the trial plans and counts the
//     mailbox's folders.
//
// The admin passwords never come back in an API answer.
func TestServiceExchange(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const adminPW, weakPW = "admin secret 1", "weak admin secret 2"
	s := ewsserver.New(&ewsserver.Options{TB: t})
	for _, u := range []struct {
		smtp string
		o    ewsserver.UserOptions
	}{
		{"admin@new.example", ewsserver.UserOptions{Password: adminPW, CanImpersonate: true, NoMailbox: true}},
		{"helpdesk@new.example", ewsserver.UserOptions{Password: weakPW, NoMailbox: true}},
		{"ann@new.example", ewsserver.UserOptions{Password: "x"}},
		{"ben@new.example", ewsserver.UserOptions{Password: "x", QuotaBytes: 8 << 10}},
		{"old@old.example", ewsserver.UserOptions{Password: "x"}},
	} {
		if err := s.AddUser(u.smtp, u.o); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	old := s.Mailbox("old@old.example")
	for i := 0; i < 6; i++ {
		if _, err := old.AddItem(old.DistinguishedFolderID("inbox"), ewsserver.SeedItem{
			MIME: []byte(fmt.Sprintf("Message-ID: <old-%d@old.example>\r\nSubject: old %d\r\n\r\nbody\r\n", i, i))}); err != nil {
			t.Fatal(err)
		}
	}
	certFile := filepath.Join(t.TempDir(), "ews.pem")
	if err := os.WriteFile(certFile, s.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	for i, u := range []string{"ann", "ben"} {
		src.AddUser(t, u, pw)
		seedSized(t, src, u, 0, 20, i*600) // ben's 20 messages need about 13 kB
	}
	dst.AddUser(t, "old", pw)

	dataDir := t.TempDir()
	env := append(os.Environ(), "MAILFERRY_DATA_DIR="+dataDir, "SSL_CERT_FILE="+certFile)
	cmd := exec.Command(bin, "user", "add", "--email", "owner@example.com")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	token := strings.TrimSpace(string(out))
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv := &server{t: t, bin: bin, env: env, url: base, log: &syncBuffer{}, args: []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--preset", "Rackspace Exchange 2016=ews://" + s.Host(),
		"--preset", "Test IMAP=imap://" + dst.Addr() + "?allow_plaintext=1",
		"--lease-ttl", "2s", "--connections", "2", "--allow-net", "127.0.0.0/8"}}
	srv.start()
	defer func() {
		srv.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", srv.log.String())
		}
	}()
	var presets []struct {
		ID   string
		Name string
		Type string
	}
	api(t, base, token, "GET", "/api/presets", "", nil, &presets)
	if len(presets) != 2 || presets[0].ID != "rackspace-exchange-2016" || presets[0].Type != "exchange" {
		t.Fatalf("presets: %+v", presets)
	}

	project := func(body map[string]any) string {
		t.Helper()
		var p struct{ ID string }
		var raw map[string]any
		if code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(body), &raw); code != 201 {
			t.Fatalf("create project: %d %v", code, raw)
		}
		b := jsonBody(raw)
		if strings.Contains(string(b), adminPW) || strings.Contains(string(b), weakPW) {
			t.Fatalf("the project's answer shows an admin password: %s", b)
		}
		p.ID, _ = raw["id"].(string)
		var got map[string]any
		api(t, base, token, "GET", "/api/projects/"+p.ID, "", nil, &got)
		if g := string(jsonBody(got)); strings.Contains(g, adminPW) || strings.Contains(g, weakPW) || !strings.Contains(g, "@new.example") && !strings.Contains(g, "admin@") {
			t.Fatalf("GET project: %s", g)
		}
		return p.ID
	}
	trial := func(projectID string) pass {
		t.Helper()
		var p pass
		if code := api(t, base, token, "POST", "/api/projects/"+projectID+"/passes", "application/json", jsonBody(map[string]any{"kind": "trial"}), &p); code != 201 {
			t.Fatalf("start trial: %d", code)
		}
		return waitPass(t, base, token, projectID, p.ID, time.Minute)
	}
	imap := map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true}

	// IMAP -> Exchange with an admin that may impersonate.
	a := project(map[string]any{"name": "to Exchange", "destination_preset": "rackspace-exchange-2016", "source": imap,
		"destination_admin": map[string]string{"login": "admin@new.example", "password": adminPW}})
	csv := "Source Email,Source Login Name,Source Password,Destination Email\r\n" +
		"ann@old.example,ann," + pw + ",ann@new.example\r\nben@old.example,ben," + pw + ",ben@new.example\r\n"
	var imported []mailbox
	if code := api(t, base, token, "POST", "/api/projects/"+a+"/mailboxes/import", "text/csv", []byte(csv), &imported); code != 201 || len(imported) != 2 {
		t.Fatalf("import of rows without destination passwords: %d %+v", code, imported)
	}
	ids := map[string]string{}
	for _, m := range imported {
		ids[strings.Split(m.SourceEmail, "@")[0]] = m.ID
	}
	p := trial(a)
	for _, m := range p.Mailboxes {
		switch m.MailboxID {
		case ids["ann"]:
			if m.Status != "ready" || m.TotalMsgs != 20 {
				t.Errorf("ann's trial: %s, %d messages (%s)", m.Status, m.TotalMsgs, m.LastError)
			}
		case ids["ben"]:
			if m.Status != "failed" || m.ErrorClass != "quota" || !strings.Contains(m.LastError, "free") {
				t.Errorf("ben's trial (8 KiB quota): %s, class %q (%s); want failed for quota", m.Status, m.ErrorClass, m.LastError)
			}
		}
	}
	var ben mailbox
	api(t, base, token, "GET", "/api/projects/"+a+"/mailboxes/"+ids["ben"], "", nil, &ben)
	if ben.SolveIssue == nil || ben.SolveIssue.Class != "quota" {
		t.Errorf("ben has no quota Solve Issue: %+v", ben)
	}
	api(t, base, token, "POST", "/api/projects/"+a+"/passes", "application/json", jsonBody(map[string]any{"kind": "full", "mailbox_ids": []string{ids["ann"]}}), &p)
	p = waitPass(t, base, token, a, p.ID, time.Minute)
	if len(p.Mailboxes) != 1 || p.Mailboxes[0].Status != "completed" || p.Mailboxes[0].Copied != 20 {
		t.Fatalf("ann's full pass: %+v", p.Mailboxes)
	}
	if n := len(s.Mailbox("ann@new.example").AllItems()); n != 20 {
		t.Errorf("ann's Exchange mailbox holds %d messages after the pass, want 20", n)
	}
	for _, it := range s.Mailbox("ann@new.example").AllItems() {
		if it.IsDraft {
			t.Errorf("%s stored as a draft", it.Subject)
			break
		}
	}

	// The same with an admin that lacks ApplicationImpersonation.
	b := project(map[string]any{"name": "no right", "destination_preset": "rackspace-exchange-2016", "source": imap,
		"destination_admin": map[string]string{"login": "helpdesk@new.example", "password": weakPW}})
	if code := api(t, base, token, "POST", "/api/projects/"+b+"/mailboxes/import", "text/csv", []byte(csv), &imported); code != 201 {
		t.Fatalf("import: %d", code)
	}
	p = trial(b)
	for _, m := range p.Mailboxes {
		if m.Status != "failed" || m.ErrorClass != "permission" {
			t.Errorf("trial without the impersonation right: %s, class %q (%s)", m.Status, m.ErrorClass, m.LastError)
			continue
		}
		var mb mailbox
		api(t, base, token, "GET", "/api/projects/"+b+"/mailboxes/"+m.MailboxID, "", nil, &mb)
		if mb.SolveIssue == nil || !strings.Contains(strings.Join(mb.SolveIssue.Steps, " "), "ApplicationImpersonation") {
			t.Errorf("Solve Issue for a missing impersonation right: %+v", mb.SolveIssue)
		}
	}

	// Exchange, given by its Outlook on the web address, -> IMAP.
	c := project(map[string]any{"name": "from Exchange", "destination_preset": "test-imap",
		"source":       map[string]any{"type": "exchange", "host": s.OWAURL()},
		"source_admin": map[string]string{"login": "admin@new.example", "password": adminPW}})
	var proj struct {
		Source struct {
			Type, Host string
			Port       int
		}
	}
	api(t, base, token, "GET", "/api/projects/"+c, "", nil, &proj)
	if proj.Source.Type != "exchange" || proj.Source.Host != "127.0.0.1" || fmt.Sprint(proj.Source.Port) != s.Host()[strings.LastIndex(s.Host(), ":")+1:] {
		t.Errorf("the OWA address became %+v", proj.Source)
	}
	csv = "Source Email,Destination Email,Destination Login Name,Destination Password\r\nold@old.example,old@x.example,old," + pw + "\r\n"
	if code := api(t, base, token, "POST", "/api/projects/"+c+"/mailboxes/import", "text/csv", []byte(csv), &imported); code != 201 {
		t.Fatalf("import of rows without source passwords: %d", code)
	}
	p = trial(c)
	if len(p.Mailboxes) != 1 || p.Mailboxes[0].Status != "ready" || p.Mailboxes[0].TotalMsgs != 6 || len(p.Mailboxes[0].Plan) == 0 {
		t.Errorf("trial from Exchange: %+v", p.Mailboxes)
	}
	// Mailbox rows may not carry passwords a non-Exchange side needs.
	var e struct{ Error string }
	if code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{"name": "bad", "destination_preset": "test-imap",
		"source": imap, "source_admin": map[string]string{"login": "a", "password": "b"}}), &e); code != 400 || !strings.Contains(e.Error, "Exchange") {
		t.Errorf("an admin login for an IMAP source: %d %+v", code, e)
	}
}
