package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailferry/mailferry/internal/secrets"
	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
)

// pg is the PostgreSQL cluster this test binary shares: the queue tests
// run once on SQLite (River's SQLite driver in mailferry.db) and once on
// PostgreSQL (riverpgxv5).
var pg *testenv.PostgresMain

func TestMain(m *testing.M) {
	var stop func()
	pg, stop = testenv.StartPostgresForMain()
	code := m.Run()
	stop()
	os.Exit(code)
}

const pw = "Jobs-Secret-1"

// syncLog is a log the test reads while workers write it.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a service on one database with its source and destination
// Dovecot, and the worker processes the test starts on it.
type env struct {
	t        *testing.T
	engine   string
	url, dir string
	st       *store.Store
	svc      *service.Service
	src, dst *testenv.Dovecot
	dstAddr  string // where the preset points (a proxy, or dst)
	owner    string
	project  string
	log      *syncLog
}

func newEnv(t *testing.T, engine string, proxied func(addr string) string) *env {
	t.Helper()
	e := &env{t: t, engine: engine, dir: t.TempDir(), log: &syncLog{}}
	if engine == "postgres" {
		e.url = pg.Database(t)
	}
	e.src = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dst = testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	e.dstAddr = e.dst.Addr()
	if proxied != nil {
		e.dstAddr = proxied(e.dst.Addr())
	}
	e.st, e.svc = e.open()
	ctx := context.Background()
	o, err := e.svc.EnsureOwner(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.owner = o.ID
	p, err := e.svc.CreateProject(ctx, o.ID, service.ProjectInput{Name: "P", DestinationPreset: "dest",
		Source: service.Endpoint{Host: "127.0.0.1", Port: e.src.Port, Security: "none", AllowPlaintext: true}})
	if err != nil {
		t.Fatal(err)
	}
	e.project = p.ID
	return e
}

// open opens the service's database again: another process's view.
func (e *env) open() (*store.Store, *service.Service) {
	e.t.Helper()
	st, err := store.Open(context.Background(), store.Options{URL: e.url, Dir: e.dir})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(make([]byte, 32))
	if err != nil {
		e.t.Fatal(err)
	}
	host, port, _ := strings.Cut(e.dstAddr, ":")
	var p int
	fmt.Sscan(port, &p)
	svc := service.New(st, box, []service.Preset{{ID: "dest", Name: "Dest",
		Endpoint: service.Endpoint{Type: "imap", Host: host, Port: p, Security: "none", AllowPlaintext: true}}})
	return st, svc
}

// mailboxes adds users to both servers and the project.
func (e *env) mailboxes(users ...string) map[string]string {
	e.t.Helper()
	var ins []service.MailboxInput
	for _, u := range users {
		e.src.AddUser(e.t, u, pw)
		e.dst.AddUser(e.t, u, pw)
		ins = append(ins, service.MailboxInput{SourceEmail: u + "@old.example", SourceLogin: u, SourcePassword: pw,
			DestEmail: u + "@new.example", DestLogin: u, DestPassword: pw})
	}
	ms, err := e.svc.AddMailboxes(context.Background(), e.owner, e.project, ins)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := map[string]string{}
	for i, m := range ms {
		ids[users[i]] = m.ID
	}
	return ids
}

// worker starts a worker process's queue on its own store, as
// mailferry worker does; it is stopped when the test ends.
type worker struct {
	q       *Queue
	r       *Runner
	reg     *prometheus.Registry
	svc     *service.Service
	stopped bool
}

func (e *env) worker(name string, ttl time.Duration, adjust ...func(*Runner)) *worker {
	e.t.Helper()
	st, svc := e.open()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(e.log, nil)).With("test_worker", name)
	r := &Runner{Service: svc, State: st, Metrics: NewMetrics(reg, name), Log: log, Name: name,
		Holder: name + fmt.Sprintf(":%d", time.Now().UnixNano()), HostLimit: 5, Connections: 2, LeaseTTL: ttl}
	for _, f := range adjust {
		f(r)
	}
	q, err := Open(context.Background(), st, r, Config{MaxWorkers: 4, Work: true, Log: log, RescueAfter: time.Hour, DataDir: e.dir})
	if err != nil {
		e.t.Fatal(err)
	}
	svc.SetQueue(q)
	if err := q.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	w := &worker{q: q, r: r, reg: reg, svc: svc}
	e.t.Cleanup(w.stop)
	return w
}

func (w *worker) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = w.q.Stop(ctx)
}

// wait waits for the pass to end and returns it.
func (e *env) wait(svc *service.Service, passID string, timeout time.Duration) service.Pass {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := svc.Pass(context.Background(), e.owner, e.project, passID)
		if err != nil {
			e.t.Fatal(err)
		}
		if p.State == "completed" || p.State == "stopped" {
			return p
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pass not over after %v: %+v\nlog:\n%s", timeout, p, e.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// same checks that every user's destination holds exactly its source.
func (e *env) same(users ...string) {
	e.t.Helper()
	for _, u := range users {
		if d := testenv.SameMailbox(testenv.Fingerprint(e.t, e.src, u, pw), testenv.Fingerprint(e.t, e.dst, u, pw)); d != "" {
			e.t.Errorf("%s: %s", u, d)
		}
	}
}

func eachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { fn(t, engine) })
	}
}

func riverJobs(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow(`SELECT COUNT(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// River's jobs are inserted in the transaction that records the pass, on
// both engines: if the transaction fails after the jobs were inserted,
// no job remains; when it commits, every mailbox has its job and the
// pass runs to the end.
func TestJobsCommitWithTheirPass(t *testing.T) { eachEngine(t, testJobsCommitWithTheirPass) }

func testJobsCommitWithTheirPass(t *testing.T, engine string) {
	e := newEnv(t, engine, nil)
	ids := e.mailboxes("ann", "ben")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 20, 0)
	testenv.SeedMailbox(t, e.src, "ben", pw, 0, 30, 0)
	// An API process: it inserts jobs, works none.
	q, err := Open(context.Background(), e.st, nil, Config{Work: false, DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetQueue(q)
	ctx := context.Background()
	boom := errors.New("the process died after queueing")
	err = e.st.CreatePass(ctx, store.Pass{ID: "doomed", ProjectID: e.project, Kind: "full", State: "running", CreatedAt: 1}, 1,
		[]string{ids["ann"], ids["ben"]}, "queued", func(ctx context.Context, tx *store.Tx, refs []store.JobRef) ([]int64, error) {
			got, err := q.Enqueue(ctx, tx, refs)
			if err != nil || len(got) != 2 {
				t.Errorf("enqueue: %v %v", got, err)
			}
			return nil, boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("CreatePass: %v", err)
	}
	if n := riverJobs(t, e.st); n != 0 {
		t.Fatalf("%d River jobs survived the rolled-back pass", n)
	}
	p, err := e.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	if n := riverJobs(t, e.st); n != 2 {
		t.Fatalf("%d River jobs for a pass over 2 mailboxes", n)
	}
	w := e.worker("w1", 2*time.Second)
	p = e.wait(w.svc, p.ID, time.Minute)
	for _, m := range p.Mailboxes {
		if m.Status != service.StatusCompleted || m.Worker != "w1" {
			t.Errorf("mailbox %s: %s by %q", m.MailboxID, m.Status, m.Worker)
		}
	}
	e.same("ann", "ben")
}

// An older version kept River's queue in jobs.db and a pass's jobs there.
// Starting this version on such a data directory loses no running pass:
// each unfinished mailbox gets a job in mailferry.db and completes, and
// jobs.db is kept aside as jobs.db.old.
func TestUpgradeFromSeparateJobDatabase(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ids := e.mailboxes("ann", "ben", "cat")
	for _, u := range []string{"ann", "ben", "cat"} {
		testenv.SeedMailbox(t, e.src, u, pw, 0, 25, 0)
	}
	ctx := context.Background()
	// What the older version left: a running pass whose parts are
	// queued (ann), running (ben, killed mid-pass) and done (cat), with
	// job IDs of the old jobs.db, and that file.
	old := &oldJobs{next: 41}
	if err := e.st.CreatePass(ctx, store.Pass{ID: "oldpass", ProjectID: e.project, Kind: "full", State: "running", CreatedAt: 1}, 1,
		[]string{ids["ann"], ids["ben"], ids["cat"]}, "full pass queued", old.enqueue); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.BeginMailboxPass(ctx, "oldpass", ids["ben"], service.StatusMigrating, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.FinishMailboxPass(ctx, "oldpass", ids["cat"], service.Outcome{Status: service.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"jobs.db", "jobs.db-wal"} {
		if err := os.WriteFile(e.dir+"/"+f, []byte("an old River queue"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := e.worker("w1", 2*time.Second)
	if _, err := os.Stat(e.dir + "/jobs.db"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("jobs.db is still in place: %v", err)
	}
	for _, f := range []string{"jobs.db.old", "jobs.db.old-wal"} {
		if _, err := os.Stat(e.dir + "/" + f); err != nil {
			t.Errorf("%s was not kept: %v", f, err)
		}
	}
	if !strings.Contains(e.log.String(), "moved the job queue from jobs.db into mailferry.db") {
		t.Errorf("the upgrade was not logged:\n%s", e.log.String())
	}
	p := e.wait(w.svc, "oldpass", time.Minute)
	for _, m := range p.Mailboxes {
		if m.Status != service.StatusCompleted {
			t.Errorf("mailbox %s: %s (%s)", m.MailboxID, m.Status, m.LastError)
		}
	}
	e.same("ann", "ben")
	// Opening again moves nothing and queues nothing twice.
	before := riverJobs(t, e.st)
	w.stop()
	e.worker("w2", 2*time.Second)
	if n := riverJobs(t, e.st); n != before {
		t.Errorf("a second start queued %d more jobs", n-before)
	}
}

// oldJobs stands in for the older version's queue: IDs only, in no table
// of mailferry.db.
type oldJobs struct{ next int64 }

func (o *oldJobs) enqueue(_ context.Context, _ *store.Tx, refs []store.JobRef) ([]int64, error) {
	ids := make([]int64, len(refs))
	for i := range refs {
		o.next++
		ids[i] = o.next
	}
	return ids, nil
}

// A worker that loses its mailbox's lease stops working on it at once:
// the engine is cancelled and writes nothing more. Once the lease is free
// again another worker takes the mailbox over and finishes it from the
// sync state, with nothing duplicated or lost.
func TestLostLeaseStopsTheWork(t *testing.T) { eachEngine(t, testLostLeaseStopsTheWork) }

func testLostLeaseStopsTheWork(t *testing.T, engine string) {
	var proxy *testenv.Proxy
	e := newEnv(t, engine, func(addr string) string {
		proxy = testenv.StartProxy(t, addr)
		return proxy.Addr
	})
	ids := e.mailboxes("ann")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 600, 2000)
	proxy.AddLatency(t, 20)
	proxy.LimitBandwidth(t, 600)
	ctx := context.Background()
	w1 := e.worker("w1", 1500*time.Millisecond)
	p, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	e.waitCopied(p.ID, 30)
	// Someone else holds the lease now (the lease table says so): w1
	// must stop at its next renewal.
	thief := e.steal(ids["ann"])
	deadline := time.Now().Add(15 * time.Second)
	for value(w1.r.Metrics.leaseLosses) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("w1 did not stop after losing the lease:\n%s", e.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stopped means stopped: nothing more is copied by w1.
	before := e.copied(p.ID)
	time.Sleep(1500 * time.Millisecond)
	if after := e.copied(p.ID); after != before {
		t.Errorf("w1 went on after losing the lease: %d → %d copied", before, after)
	}
	if st, _ := w1.svc.PassState(ctx, p.ID); st != "running" {
		t.Errorf("the pass is %s", st)
	}
	// The thief goes away; w1's reaper (or another worker's) takes over.
	proxy.Clear()
	if err := e.st.ReleaseLease(ctx, store.MailboxLease(ids["ann"]), thief); err != nil {
		t.Fatal(err)
	}
	p = e.wait(w1.svc, p.ID, 2*time.Minute)
	if p.Mailboxes[0].Status != service.StatusCompleted {
		t.Fatalf("after the takeover: %s (%s)", p.Mailboxes[0].Status, p.Mailboxes[0].LastError)
	}
	if !strings.Contains(e.log.String(), "stopped working on a mailbox: its lease could not be kept") ||
		!strings.Contains(e.log.String(), "taking over a mailbox pass whose worker stopped renewing its lease") {
		t.Errorf("log lacks the stop or the takeover:\n%s", e.log.String())
	}
	e.same("ann")
}

// steal makes the mailbox's lease someone else's, live for 10 minutes.
func (e *env) steal(mailboxID string) string {
	e.t.Helper()
	const thief = "thief"
	_, err := e.st.DB().Exec(e.bind(`UPDATE leases SET holder = ?, expires_at = expires_at + 600000 WHERE resource = ?`), thief,
		store.MailboxLease(mailboxID))
	if err != nil {
		e.t.Fatal(err)
	}
	return thief
}

func (e *env) bind(q string) string {
	if e.engine != "postgres" {
		return q
	}
	n := 0
	var b strings.Builder
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (e *env) copied(passID string) int64 {
	e.t.Helper()
	p, err := e.svc.Pass(context.Background(), e.owner, e.project, passID)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	for _, m := range p.Mailboxes {
		n += m.Copied
	}
	return n
}

func (e *env) waitCopied(passID string, n int64) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for e.copied(passID) <= n {
		if time.Now().After(deadline) {
			e.t.Fatalf("the pass did not get past %d copied:\n%s", n, e.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A worker that cannot reach the database to renew its lease stops the
// mailbox's work before the lease expires (after two thirds of it), so
// that the appends in flight settle before anyone else may start on it;
// once the database answers again, the mailbox is taken over and
// completes without duplicates. PostgreSQL only: the embedded SQLite
// database cannot become unreachable to its one process.
func TestRenewalFailureStopsTheWork(t *testing.T) {
	var proxy *testenv.Proxy
	e := newEnv(t, "postgres", func(addr string) string {
		proxy = testenv.StartProxy(t, addr)
		return proxy.Addr
	})
	e.mailboxes("ann")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 600, 2000)
	proxy.AddLatency(t, 20)
	// Slow enough that the rest of the pass (about 800 KB) takes several
	// lease lifetimes even on a quiet machine: under load the pass could
	// finish before the leases table was locked. Clear lifts the limit.
	proxy.LimitBandwidth(t, 150)
	ctx := context.Background()
	const ttl = 1500 * time.Millisecond
	w1 := e.worker("w1", ttl)
	p, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	e.waitCopied(p.ID, 30)
	// The leases table stops answering (a lock nobody gets past).
	tx, err := e.st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`LOCK TABLE leases IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for value(w1.r.Metrics.leaseLosses) == 0 {
		if time.Now().After(deadline) {
			_ = tx.Rollback()
			t.Fatalf("w1 did not stop while it could not renew:\n%s", e.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := e.copied(p.ID)
	time.Sleep(time.Second)
	if after := e.copied(p.ID); after != before {
		t.Errorf("w1 went on copying without a lease: %d → %d", before, after)
	}
	proxy.Clear()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	p = e.wait(w1.svc, p.ID, 2*time.Minute)
	if p.Mailboxes[0].Status != service.StatusCompleted {
		t.Fatalf("after the database came back: %s (%s)", p.Mailboxes[0].Status, p.Mailboxes[0].LastError)
	}
	if !strings.Contains(e.log.String(), "renewing failed") {
		t.Errorf("the log does not say why:\n%s", e.log.String())
	}
	e.same("ann")
}

// A Stop reaches a worker through the database, whichever process takes
// it: here no River cancellation is sent at all (the pass is marked
// stopping in the store), and the worker stops at its next renewal.
func TestStopThroughTheDatabase(t *testing.T) { eachEngine(t, testStopThroughTheDatabase) }

func testStopThroughTheDatabase(t *testing.T, engine string) {
	var proxy *testenv.Proxy
	e := newEnv(t, engine, func(addr string) string {
		proxy = testenv.StartProxy(t, addr)
		return proxy.Addr
	})
	e.mailboxes("ann")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 400, 2000)
	// About 10 s for the whole pass: the Stop, about a second in, lands
	// well before its end. (At 400 KB/s the pass ended about when the
	// Stop landed, and the stale counts of a stopped pass hid that.)
	proxy.LimitBandwidth(t, 40)
	ctx := context.Background()
	w1 := e.worker("w1", 900*time.Millisecond)
	p, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	e.waitCopied(p.ID, 10)
	if _, err := e.st.StopPass(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	p = e.wait(w1.svc, p.ID, time.Minute)
	if p.State != "stopped" || p.Mailboxes[0].Status != service.StatusStopped || p.Mailboxes[0].Copied >= 400 {
		t.Fatalf("after a Stop in the database: pass %s, mailbox %s, %d copied", p.State, p.Mailboxes[0].Status, p.Mailboxes[0].Copied)
	}
	proxy.Clear()
	p2, err := w1.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassDelta})
	if err != nil {
		t.Fatal(err)
	}
	if p2 = e.wait(w1.svc, p2.ID, time.Minute); p2.Mailboxes[0].Status != service.StatusCompleted {
		t.Fatalf("the next pass: %s", p2.Mailboxes[0].Status)
	}
	e.same("ann")
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
