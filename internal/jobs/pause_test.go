package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// A pass from Gmail that reaches Gmail's daily download limit waits
// until it resets, and the mailbox's stored status says so, with the
// time it resumes, through the API (any process's view); stopping the
// pass clears it. The wait itself is never sat out: the test sees the
// pause and stops the pass.
func TestGmailDailyLimitShowsAsPaused(t *testing.T) {
	e := &env{t: t, engine: "sqlite", dir: t.TempDir(), log: &syncLog{}}
	gm := gmailimap.Start(t, &gmailimap.Options{Plaintext: true, DailyDownloadBytes: 300})
	const user, app = "alice@gmail.com", "abcd efgh ijkl mnop"
	if err := gm.AddAccount(user, &gmailimap.AccountOptions{AppPassword: app}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		raw := fmt.Sprintf("Message-ID: <m%d@example.com>\r\nFrom: b@example.com\r\nSubject: m%d\r\n\r\nbody body body body\r\n", i, i)
		if _, err := gm.Seed(user, gmailimap.Message{Raw: []byte(raw), Labels: []string{`\Inbox`}}); err != nil {
			t.Fatal(err)
		}
	}
	e.dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dstAddr = e.dst.Addr()
	e.dst.AddUser(t, "alice", pw)
	e.st, e.svc = e.open()
	ctx := context.Background()
	o, err := e.svc.EnsureOwner(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.owner = o.ID
	host, port, _ := strings.Cut(gm.Addr, ":")
	var p int
	fmt.Sscan(port, &p)
	pr, err := e.svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "G", DestinationPreset: "dest",
		Source: service.Endpoint{Host: host, Port: p, Security: "none", AllowPlaintext: true}})
	if err != nil {
		t.Fatal(err)
	}
	e.project = pr.ID
	if _, err := e.svc.AddMailboxes(ctx, e.owner, e.project, []service.MailboxInput{{SourceEmail: user, SourceLogin: user,
		SourcePassword: app, DestEmail: "alice@new.example", DestLogin: "alice", DestPassword: pw}}); err != nil {
		t.Fatal(err)
	}

	w := e.worker("w1", 900*time.Millisecond) // a short lease: the Stop is seen at its next renewal
	before := time.Now().UTC()
	pass, err := w.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	_, api := e.open() // another process's view of the database
	var paused *service.Pause
	deadline := time.Now().Add(time.Minute)
	for paused == nil {
		ms, err := api.Mailboxes(ctx, e.owner, e.project)
		if err != nil {
			t.Fatal(err)
		}
		if lp := ms[0].LastPass; lp != nil && lp.Paused != nil {
			paused = lp.Paused
			break
		}
		if lp := ms[0].LastPass; lp != nil && lp.FinishedAt.After(before) {
			t.Fatalf("the pass ended (%s, %d copied) instead of pausing at Gmail's daily limit\nlog:\n%s", lp.Status, lp.Copied, e.log.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pause stored within a minute\nlog:\n%s", e.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The connector waits until 00:05 UTC after the limit was hit.
	next := time.Date(before.Year(), before.Month(), before.Day()+1, 0, 5, 0, 0, time.UTC)
	if paused.Cause != service.PauseDailyLimit || paused.Until.Sub(next).Abs() > 2*time.Minute {
		t.Fatalf("paused %+v, want Gmail's daily limit until about %v", paused, next)
	}
	if !strings.HasPrefix(paused.Message, "Paused: Gmail's daily limit, resumes at ") || !strings.Contains(paused.Message, " UTC (in ") {
		t.Fatalf("pause message %q", paused.Message)
	}

	if _, err := e.st.StopPass(ctx, pass.ID); err != nil {
		t.Fatal(err)
	}
	got := e.wait(api, pass.ID, time.Minute)
	if mp := got.Mailboxes[0]; mp.Status != service.StatusStopped || mp.Paused != nil || mp.Failed != 0 {
		t.Fatalf("after the stop: %s, paused %+v, %d failed", mp.Status, mp.Paused, mp.Failed)
	}
}
