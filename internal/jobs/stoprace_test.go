package jobs

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
)

// A Stop that lands after the pass finished every folder, but before its
// outcome is stored, stopped nothing: the mailbox is completed with every
// message counted, and so is the pass. The interleaving is injected: the
// hook runs when the engine has returned, stops the pass in the database
// and waits until the worker has seen the Stop and cancelled the job.
// (Before, the job was recorded as stopped, with the counts of the last
// progress report.)
func TestStopAfterTheWorkFinished(t *testing.T) { eachEngine(t, testStopAfterTheWorkFinished) }

func testStopAfterTheWorkFinished(t *testing.T, engine string) {
	e := newEnv(t, engine, nil)
	e.mailboxes("ann")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 40, 0)
	ctx := context.Background()
	var passID string
	var once sync.Once
	ready := make(chan struct{})
	w1 := e.worker("w1", 900*time.Millisecond, func(r *Runner) {
		// No live progress: what is shown is what the outcome recorded.
		r.progressEvery = time.Hour
		r.afterRun = func(jobCtx context.Context) {
			once.Do(func() {
				<-ready
				if _, err := e.st.StopPass(ctx, passID); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-jobCtx.Done():
				case <-time.After(time.Minute):
					t.Error("the worker did not see the Stop within a minute")
				}
			})
		}
	})
	p, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	passID = p.ID
	close(ready)
	p = e.wait(w1.svc, p.ID, time.Minute)
	m := p.Mailboxes[0]
	if p.State != "completed" || m.Status != service.StatusCompleted || m.Copied != 40 {
		t.Fatalf("a Stop after every folder was done: pass %s, mailbox %s, %d of 40 copied\nlog:\n%s", p.State, m.Status, m.Copied, e.log.String())
	}
	e.same("ann")
}

// A pass cut short by a Stop shows what it really copied: the count the
// engine ended with, which is the number of messages in the destination,
// not that of the last progress report (here there is none: the live
// report is written every hour). Before the Stop the source is slowed to
// a crawl (reads of a stopped pass end at once, unlike the appends on
// the wire, which settle), so that the pass cannot end first.
func TestStoppedPassShowsWhatItCopied(t *testing.T) { eachEngine(t, testStoppedPassShowsWhatItCopied) }

func testStoppedPassShowsWhatItCopied(t *testing.T, engine string) {
	e, proxy := newEnvSlowSource(t, engine)
	e.mailboxes("ann")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 300, 2000)
	proxy.LimitReadBandwidth(t, 20)
	ctx := context.Background()
	w1 := e.worker("w1", 900*time.Millisecond, func(r *Runner) { r.progressEvery = time.Hour })
	p, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for destCount(t, e.dst, "ann") < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 5 messages copied after a minute:\n%s", e.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	proxy.LimitReadBandwidth(t, 1)
	if _, err := e.st.StopPass(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	p = e.wait(w1.svc, p.ID, time.Minute)
	m := p.Mailboxes[0]
	in := destCount(t, e.dst, "ann")
	if p.State != "stopped" || m.Status != service.StatusStopped || m.Copied != in || in >= 300 {
		t.Fatalf("a pass stopped part way: pass %s, mailbox %s, %d copied, %d of 300 in the destination", p.State, m.Status, m.Copied, in)
	}
}

// newEnvSlowSource is newEnv with the source behind a proxy.
func newEnvSlowSource(t *testing.T, engine string) (*env, *testenv.Proxy) {
	t.Helper()
	e := &env{t: t, engine: engine, dir: t.TempDir(), log: &syncLog{}}
	if engine == "postgres" {
		e.url = pg.Database(t)
	}
	e.src = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dstAddr = e.dst.Addr()
	proxy := testenv.StartProxy(t, e.src.Addr())
	_, port, _ := strings.Cut(proxy.Addr, ":")
	srcPort, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.svc = e.open()
	ctx := context.Background()
	o, err := e.svc.EnsureOwner(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.owner = o.ID
	p, err := e.svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "P", DestinationPreset: "dest",
		Source: service.Endpoint{Host: "127.0.0.1", Port: srcPort, Security: "none", AllowPlaintext: true}})
	if err != nil {
		t.Fatal(err)
	}
	e.project = p.ID
	return e, proxy
}

// destCount is how many messages user's mailbox holds, in all folders.
func destCount(t *testing.T, d *testenv.Dovecot, user string) int64 {
	t.Helper()
	out := d.Doveadm(t, "mailbox", "status", "-u", user, "messages", "*")
	var n int64
	for _, f := range strings.Fields(out) {
		v, ok := strings.CutPrefix(f, "messages=")
		if !ok {
			continue
		}
		k, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("doveadm mailbox status: %q: %v", out, err)
		}
		n += k
	}
	return n
}
