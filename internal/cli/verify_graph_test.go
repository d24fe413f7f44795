package cli

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
	"github.com/mailferry/mailferry/internal/verify"
)

// graphVerifyEnv is a Dovecot source with alice's mailbox and the Graph
// test server with one tenant, app and mailbox; copy and verify take the
// same arguments.
type graphVerifyEnv struct {
	src      *testenv.Dovecot
	gs       *graphserver.Server
	env      map[string]string
	mbox     string
	from, to []string
}

func startGraphVerify(t *testing.T, importMime bool) *graphVerifyEnv {
	t.Helper()
	e := &graphVerifyEnv{src: testenv.StartDovecot(t, testenv.DovecotOptions{})}
	e.src.AddUser(t, "alice", secret)
	e.gs = graphserver.Start(t, nil)
	e.gs.AddTenant(e2eTenant, e2eDomain)
	e.gs.AddApp(e2eTenant, e2eApp, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.gs.AddClientSecret(e2eApp, e2eSecret, time.Time{})
	e.gs.SetImportMime(e2eTenant, importMime)
	e.mbox = "alice@" + e2eDomain
	e.gs.AddMailbox(e2eTenant, e.mbox)
	e.env = withState(t, map[string]string{"MAILFERRY_FROM_PASSWORD": secret, "MAILFERRY_TO_OAUTH_SECRET": e2eSecret})
	e.from = []string{"--from", imapURL(e.src), "--from-user", "alice", "--allow-plaintext"}
	e.to = []string{"--to", "graph://" + e2eDomain + "/" + e.mbox, "--to-oauth-client-id", e2eApp, "--to-oauth-tenant", e2eTenant,
		"--graph-url", e.gs.URL, "--oauth-token-url", e.gs.TokenURL("{tenant}"), "--ca-file", e.gs.CertFile}
	return e
}

func (e *graphVerifyEnv) copy(t *testing.T) {
	t.Helper()
	r := runCLI(t, e.env, append(append([]string{"copy", "--json"}, e.from...), e.to...)...)
	if r.code != ExitOK {
		t.Fatalf("copy to Graph: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func (e *graphVerifyEnv) verify(t *testing.T) verified {
	t.Helper()
	return runVerifyAll(t, e.env, append(append([]string{}, e.from...), e.to...)...)
}

// bigMIME is a message with an attachment too large for one importMime
// request (about 4 MB): the Graph connector writes it through the JSON
// path, rebuilt.
func bigMIME(t *testing.T) []byte {
	t.Helper()
	data := make([]byte, 3<<20+100)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("Message-ID: <big@example.com>\r\nDate: Fri, 1 May 2020 11:00:00 +0000\r\nFrom: Bob <bob@example.com>\r\nTo: alice@example.com\r\n" +
		"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--outer--\r\n")
	return []byte(b.String())
}

// TestVerifyGraphWithoutImportMime: on a tenant without importMime every
// copy is rebuilt from JSON, so verify cannot compare bytes; every
// message must be counted content-equivalent (not altered, not
// missing), every folder must balance, and the verdict must say so.
func TestVerifyGraphWithoutImportMime(t *testing.T) {
	e := startGraphVerify(t, false)
	seedRaw(t, e.src, "alice", "INBOX", e2eMsg(1), e2eMsg(2), e2eMsg(3))
	seedRaw(t, e.src, "alice", "Projekte", e2eMsg(4), e2eMsg(5))
	e.copy(t)
	for _, m := range e.gs.AllMessages(e.mbox) {
		if m.WritePath != graphserver.WriteJSON {
			t.Fatalf("copy %q went through %q, want the JSON path", m.Subject, m.WritePath)
		}
	}

	v := e.verify(t)
	if v.code != ExitOK {
		t.Fatalf("verify: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	rep := v.rep
	if rep.Bytes != "content-equivalent" {
		t.Errorf("byte comparison %q, want content-equivalent", rep.Bytes)
	}
	for src, n := range map[string]int64{"INBOX": 3, "Projekte": 2} {
		f := folderOf(t, rep, src)
		if f.SourceMessages != n || f.Matched != n || f.Equivalent != n || f.Exact != 0 || f.Altered != 0 || f.Missing != 0 || f.Extra != 0 {
			t.Errorf("%s: %+v; want %d matched, all content-equivalent", src, f, n)
		}
	}
	tt := rep.Totals
	if tt.Equivalent != 5 || tt.Matched != 5 || tt.Altered != 0 || tt.Missing != 0 || tt.SourceMessages != tt.Matched+tt.Missing+tt.Skipped {
		t.Errorf("totals %+v; want 5 content-equivalent, source = matched + missing + skipped", tt)
	}
	if !rep.Exact || !strings.Contains(rep.Verdict, "5 of them content-equivalent") {
		t.Errorf("exact %v, verdict %q", rep.Exact, rep.Verdict)
	}
	if !strings.Contains(v.stdout, "content-equivalent") {
		t.Errorf("the table does not say content-equivalent:\n%s", v.stdout)
	}
}

// TestVerifyGraphRebuiltMessageIsEquivalent: with importMime, a message
// too large for it is rebuilt through the JSON path while the others
// keep their bytes. The sync state says which copy was which: verify
// compares the bytes of the two importMime copies (byte-exact) and
// counts the rebuilt one as content-equivalent, not altered.
func TestVerifyGraphRebuiltMessageIsEquivalent(t *testing.T) {
	e := startGraphVerify(t, true)
	seedRaw(t, e.src, "alice", "INBOX", e2eMsg(1), e2eMsg(2), bigMIME(t))
	e.copy(t)
	paths := map[graphserver.WritePath]int{}
	for _, m := range e.gs.AllMessages(e.mbox) {
		paths[m.WritePath]++
	}
	if paths[graphserver.WriteImportMIME] != 2 || paths[graphserver.WriteJSON] != 1 {
		t.Fatalf("write paths %v; want 2 importMime, 1 JSON", paths)
	}

	v := e.verify(t)
	rep := v.rep
	if rep.Bytes != "sha256" {
		t.Errorf("byte comparison %q, want sha256 (importMime keeps bytes)", rep.Bytes)
	}
	f := folderOf(t, rep, "INBOX")
	if f.Matched != 3 || f.Exact != 2 || f.Equivalent != 1 || f.Altered != 0 || f.Missing != 0 {
		t.Errorf("INBOX: %+v; want 2 byte-exact and 1 content-equivalent", f)
	}
	for _, d := range rep.Differences {
		if d.Kind == verify.KindAltered {
			t.Errorf("reported altered: %+v", d)
		}
	}
	if v.code != ExitOK || !rep.Exact || !strings.Contains(rep.Verdict, "1 of them content-equivalent") {
		t.Errorf("exit %d, exact %v, verdict %q", v.code, rep.Exact, rep.Verdict)
	}

	// Without the sync state nothing says which copies kept their
	// bytes: all are content-equivalent.
	v = runVerifyAll(t, e.env, append(append([]string{"--data-dir", "none"}, e.from...), e.to...)...)
	if f := folderOf(t, v.rep, "INBOX"); f.Equivalent != 3 || f.Exact != 0 || v.rep.Bytes != "content-equivalent" {
		t.Errorf("without the state: %+v, %q; want 3 content-equivalent", f, v.rep.Bytes)
	}
}
