package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests here are about many processes sharing one database: each
// "process" is its own Store (its own pool) on the same database, on both
// engines.

// fakeJobs is an Enqueuer that records its jobs in a table of the test,
// in the caller's transaction, so that a test sees whether the jobs were
// committed with the rows they belong to.
type fakeJobs struct{ next atomic.Int64 }

func (f *fakeJobs) enqueue(ctx context.Context, tx *Tx, refs []JobRef) ([]int64, error) {
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = f.next.Add(1)
		if _, err := tx.q.exec(ctx, `INSERT INTO test_jobs (id, pass_id, mailbox_id) VALUES ($1, $2, $3)`, ids[i], r.PassID, r.MailboxID); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (f *fakeJobs) count(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.q().queryRow(context.Background(), `SELECT COUNT(*) FROM test_jobs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// seedProject makes an owner, a project and n idle mailboxes.
func seedProject(t *testing.T, s *Store, n int) (project string, mailboxes []string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.q().exec(ctx, `CREATE TABLE test_jobs (id BIGINT PRIMARY KEY, pass_id TEXT NOT NULL, mailbox_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	o, err := s.EnsureOwner(ctx, "o1", "o@example.com", 1)
	if err != nil {
		t.Fatal(err)
	}
	project = "p1"
	if err := s.CreateProject(ctx, Project{ID: project, OwnerID: o.ID, Name: "P", SourceType: "imap", SourceHost: "h", SourcePort: 993,
		SourceSecurity: "tls", DestinationPreset: "d", Options: "{}", State: "active", CreatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	var ms []NewMailbox
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		ms = append(ms, NewMailbox{ID: id, SourceEmail: id + "@old", SourceLogin: id, SourceSecret: "x", DestEmail: id + "@new", DestLogin: id, DestSecret: "y"})
		mailboxes = append(mailboxes, id)
	}
	if err := s.AddMailboxes(ctx, project, ms, "not_started", 1); err != nil {
		t.Fatal(err)
	}
	return project, mailboxes
}

// A pass and its jobs are one transaction: when anything fails after the
// jobs were inserted, neither the pass nor a job remains.
func TestPassAndJobsCommitTogether(t *testing.T) { eachEngine(t, testPassAndJobsCommitTogether) }

func testPassAndJobsCommitTogether(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	project, mbs := seedProject(t, s, 3)
	jobs := &fakeJobs{}
	boom := errors.New("crash after the jobs were queued")
	err := s.CreatePass(ctx, Pass{ID: "x1", ProjectID: project, Kind: "full", State: "running", CreatedAt: 2}, 2, mbs, "queued",
		func(ctx context.Context, tx *Tx, refs []JobRef) ([]int64, error) {
			if _, err := jobs.enqueue(ctx, tx, refs); err != nil {
				return nil, err
			}
			return nil, boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("CreatePass: %v", err)
	}
	if n := jobs.count(t, s); n != 0 {
		t.Errorf("%d jobs left behind by a pass that was not recorded", n)
	}
	if _, _, err := s.Pass(ctx, project, "x1"); !errors.Is(err, ErrNoRows) {
		t.Errorf("the pass exists without its jobs: %v", err)
	}
	if m, _ := s.Mailbox(ctx, project, mbs[0]); m.Status != "not_started" {
		t.Errorf("mailbox left %s", m.Status)
	}
	if err := s.CreatePass(ctx, Pass{ID: "x2", ProjectID: project, Kind: "full", State: "running", CreatedAt: 3}, 3, mbs, "queued", jobs.enqueue); err != nil {
		t.Fatal(err)
	}
	_, parts, err := s.Pass(ctx, project, "x2")
	if err != nil || len(parts) != 3 || jobs.count(t, s) != 3 {
		t.Fatalf("pass %v, %d parts, %d jobs", err, len(parts), jobs.count(t, s))
	}
	for _, p := range parts {
		if p.JobID == 0 || p.Status != "queued" || p.SourceEmail == "" {
			t.Errorf("part %+v", p)
		}
	}
}

// Two API processes starting a pass over the same mailbox at once: one
// wins, the other is refused with a BusyError, and only the winner's jobs
// exist.
func TestConcurrentPassesOnOneMailbox(t *testing.T) { eachEngine(t, testConcurrentPassesOnOneMailbox) }

func testConcurrentPassesOnOneMailbox(t *testing.T, open func() *Store) {
	ctx := context.Background()
	a, b := open(), open()
	project, mbs := seedProject(t, a, 4)
	jobs := &fakeJobs{}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreatePass(ctx, Pass{ID: fmt.Sprintf("c%d", i), ProjectID: project, Kind: "full", State: "running", CreatedAt: 5},
				int64(i), mbs, "queued", jobs.enqueue)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrBusy):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d passes were started over the same mailboxes, want exactly 1", ok)
	}
	if n := jobs.count(t, a); n != len(mbs) {
		t.Errorf("%d jobs, want %d (the winner's)", n, len(mbs))
	}
}

// Workers in several processes finishing a pass's last parts at the same
// moment: the pass is completed exactly once, and exactly one of them is
// told so (and sends the report). On PostgreSQL without the pass row lock
// each saw the other's part still running and none completed it.
func TestLastPartsFinishedAtOnce(t *testing.T) { eachEngine(t, testLastPartsFinishedAtOnce) }

func testLastPartsFinishedAtOnce(t *testing.T, open func() *Store) {
	ctx := context.Background()
	stores := []*Store{open(), open(), open()}
	project, mbs := seedProject(t, stores[0], 6)
	jobs := &fakeJobs{}
	for round := range 5 {
		pass := fmt.Sprintf("f%d", round)
		if err := stores[0].CreatePass(ctx, Pass{ID: pass, ProjectID: project, Kind: "full", State: "running", CreatedAt: int64(10 + round)},
			int64(round), mbs, "queued", jobs.enqueue); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var done atomic.Int32
		for i, m := range mbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := stores[i%len(stores)].FinishMailboxPass(ctx, pass, m, Finish{Status: "completed", Migrated: true}, int64(20+round))
				if err != nil {
					t.Error(err)
				}
				if d {
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := done.Load(); n != 1 {
			t.Fatalf("round %d: %d finishers completed the pass, want 1", round, n)
		}
		if st, _ := stores[1].PassState(ctx, pass); st != "completed" {
			t.Fatalf("round %d: pass is %s", round, st)
		}
	}
}

// Leases: one holder at a time, renewal only by a live holder, and expiry
// on the database's clock.
func TestLeasesAcrossProcesses(t *testing.T) { eachEngine(t, testLeasesAcrossProcesses) }

func testLeasesAcrossProcesses(t *testing.T, open func() *Store) {
	ctx := context.Background()
	a, b := open(), open()
	const ttl = 400 * time.Millisecond
	if ok, err := a.AcquireLease(ctx, "mailbox:1", "A", ttl); err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	if ok, _ := b.AcquireLease(ctx, "mailbox:1", "B", ttl); ok {
		t.Fatal("a second holder got a live lease")
	}
	if ok, _ := a.RenewLease(ctx, "mailbox:1", "A", ttl); !ok {
		t.Fatal("the holder could not renew")
	}
	if ok, _ := b.RenewLease(ctx, "mailbox:1", "B", ttl); ok {
		t.Fatal("another holder renewed a lease it does not hold")
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if ok, _ := a.RenewLease(ctx, "mailbox:1", "A", ttl); ok {
		t.Fatal("an expired lease was renewed: its holder must assume it was taken over")
	}
	if ok, _ := b.AcquireLease(ctx, "mailbox:1", "B", ttl); !ok {
		t.Fatal("an expired lease was not handed over")
	}
	if err := a.ReleaseLease(ctx, "mailbox:1", "A"); err != nil {
		t.Fatal(err)
	}
	if h, _ := a.LeaseHolders(ctx, "mailbox:"); h["mailbox:1"] != "B" {
		t.Fatalf("a former holder's release freed the lease: %v", h)
	}
}

// Slots bound how many holders work at once, across processes, however
// many try at the same time.
func TestSlotsHoldTheCap(t *testing.T) { eachEngine(t, testSlotsHoldTheCap) }

func testSlotsHoldTheCap(t *testing.T, open func() *Store) {
	ctx := context.Background()
	stores := []*Store{open(), open(), open()}
	const limit, tries = 3, 24
	var got sync.Map
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("h%d", i)
			res, err := stores[i%len(stores)].AcquireSlot(ctx, "host:mail.example", limit, holder, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if res != "" {
				won.Add(1)
				if prev, dup := got.LoadOrStore(res, holder); dup {
					t.Errorf("slot %s given to %s and %s", res, prev, holder)
				}
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != limit {
		t.Fatalf("%d holders got a slot of %d", n, limit)
	}
	// A slot freed is taken again.
	var freed string
	got.Range(func(k, v any) bool {
		freed = k.(string)
		_ = stores[0].ReleaseLease(ctx, freed, v.(string))
		return false
	})
	if res, _ := stores[1].AcquireSlot(ctx, "host:mail.example", limit, "late", time.Minute); res != freed {
		t.Errorf("after %s was released, got %q", freed, res)
	}
}

// A holder that asks for a slot again keeps the one it has, renewed: it
// never holds two slots of a group (which would lower the cap for the
// others), and its slot does not expire under it.
func TestSlotAskedAgainIsKeptAndRenewed(t *testing.T) {
	eachEngine(t, testSlotAskedAgainIsKeptAndRenewed)
}

func testSlotAskedAgainIsKeptAndRenewed(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	const limit = 4
	first, err := s.AcquireSlot(ctx, "host:mail.example", limit, "A", 300*time.Millisecond)
	if err != nil || first == "" {
		t.Fatalf("first slot: %q, %v", first, err)
	}
	for range 20 {
		res, err := s.AcquireSlot(ctx, "host:mail.example", limit, "A", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res != first {
			t.Fatalf("asked again, A got %q instead of its %q", res, first)
		}
	}
	time.Sleep(400 * time.Millisecond) // past the first time to live
	held, err := s.LeaseHolders(ctx, "host:mail.example:")
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[first] != "A" {
		t.Fatalf("after asking again, the live slots are %v; want only %s held by A", held, first)
	}
}

// A part claimed by a worker whose lease expired is abandoned; replacing
// its job happens once, never while a live worker holds the lease, and a
// handed-over part is not taken over.
func TestTakeOverOnlyAbandonedParts(t *testing.T) { eachEngine(t, testTakeOverOnlyAbandonedParts) }

func testTakeOverOnlyAbandonedParts(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s, other := open(), open()
	project, mbs := seedProject(t, s, 3)
	jobs := &fakeJobs{}
	if err := s.CreatePass(ctx, Pass{ID: "t1", ProjectID: project, Kind: "full", State: "running", CreatedAt: 2}, 2, mbs, "queued", jobs.enqueue); err != nil {
		t.Fatal(err)
	}
	_, parts, _ := s.Pass(ctx, project, "t1")
	job := map[string]int64{}
	for _, p := range parts {
		job[p.MailboxID] = p.JobID
	}
	// The live lease must outlast the steps below (two reapers, a
	// replacement, a hand-over) even on a loaded machine: at 300 ms it
	// expired under a load average of 30 and the live part read as
	// abandoned.
	const ttl = 2 * time.Second
	claim := func(m, holder string) {
		t.Helper()
		if ok, err := s.AcquireLease(ctx, MailboxLease(m), holder, ttl); err != nil || !ok {
			t.Fatalf("lease %s: %v %v", m, ok, err)
		}
		if ok, err := s.ClaimPart(ctx, JobRef{"t1", m}, job[m], "worker-"+holder); err != nil || !ok {
			t.Fatalf("claim %s: %v %v", m, ok, err)
		}
	}
	// m00: a worker that dies; m01: a live worker that keeps renewing;
	// m02: never claimed (waits in the queue).
	claim(mbs[0], "dead")
	claim(mbs[1], "live")
	if ok, _ := s.ClaimPart(ctx, JobRef{"t1", mbs[2]}, job[mbs[2]]+100, "w"); ok {
		t.Error("a part was claimed for a job that is not its own")
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if ok, _ := s.AcquireLease(ctx, MailboxLease(mbs[1]), "live", ttl); !ok {
		t.Fatal("the live worker could not renew")
	}
	ab, err := other.AbandonedParts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ab) != 1 || ab[0].MailboxID != mbs[0] || ab[0].Worker != "worker-dead" {
		t.Fatalf("abandoned: %+v", ab)
	}
	// Two reapers at once: one replaces the job.
	var wg sync.WaitGroup
	var replaced atomic.Int32
	for _, st := range []*Store{s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.ReplaceJob(ctx, ab[0].JobRef, ab[0].JobID, 9, "taken over", jobs.enqueue)
			if err != nil {
				t.Error(err)
			}
			if ok {
				replaced.Add(1)
			}
		}()
	}
	wg.Wait()
	if replaced.Load() != 1 {
		t.Fatalf("%d reapers replaced the job", replaced.Load())
	}
	if n := jobs.count(t, s); n != 4 {
		t.Errorf("%d jobs, want 3 + the one replacement", n)
	}
	if ab, _ := other.AbandonedParts(ctx); len(ab) != 0 {
		t.Errorf("still abandoned after the takeover: %+v", ab)
	}
	if p, _ := s.PartState(ctx, "t1", mbs[0]); p.Status != "queued" || p.Worker != "" {
		t.Errorf("a part taken over should wait queued, unclaimed: %+v", p)
	}
	if m, _ := s.Mailbox(ctx, project, mbs[0]); m.Status != "queued" {
		t.Errorf("its mailbox shows %s", m.Status)
	}
	// The live one is never replaced, even by a reaper that saw it
	// abandoned a moment ago.
	if ok, _ := other.ReplaceJob(ctx, JobRef{"t1", mbs[1]}, job[mbs[1]], 9, "taken over", jobs.enqueue); ok {
		t.Error("a live worker's part was given another job")
	}
	// Handing over (shutdown) releases the lease and unclaims: nothing
	// to take over.
	ok, err := s.HandOver(ctx, JobRef{"t1", mbs[1]}, job[mbs[1]], "live", 9, "shut down", jobs.enqueue)
	if err != nil || !ok {
		t.Fatalf("hand over: %v %v", ok, err)
	}
	if h, _ := s.LeaseHolders(ctx, "mailbox:"); h[MailboxLease(mbs[1])] != "" {
		t.Errorf("the lease survived the hand-over: %v", h)
	}
	time.Sleep(ttl)
	if ab, _ := other.AbandonedParts(ctx); len(ab) != 0 {
		t.Errorf("a handed-over part was taken over: %+v", ab)
	}
	if p, _ := s.PartState(ctx, "t1", mbs[1]); p.JobID == job[mbs[1]] || p.Worker != "" {
		t.Errorf("after the hand-over: %+v", p)
	}
}

// A progress report that arrives after a part's outcome was stored (a
// worker's last tick, late) leaves the outcome's counts; and a pass
// whose Stop came after every part had finished is completed, one with a
// stopped part stopped.
func TestLateProgressKeepsTheOutcome(t *testing.T) { eachEngine(t, testLateProgressKeepsTheOutcome) }

func testLateProgressKeepsTheOutcome(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	project, mbs := seedProject(t, s, 1)
	jobs := &fakeJobs{}
	for i, last := range []string{"completed", "stopped"} {
		pass := fmt.Sprintf("p%d", i)
		if err := s.CreatePass(ctx, Pass{ID: pass, ProjectID: project, Kind: "full", State: "running", CreatedAt: int64(10 + i)},
			int64(i), mbs, "queued", jobs.enqueue); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateProgress(ctx, pass, mbs[0], Progress{TotalMsgs: 40, Copied: 5}, 11); err != nil {
			t.Fatal(err)
		}
		if _, err := s.StopPass(ctx, pass); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishMailboxPass(ctx, pass, mbs[0], Finish{Status: last, Progress: &Progress{TotalMsgs: 40, Copied: 40}}, 12); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateProgress(ctx, pass, mbs[0], Progress{TotalMsgs: 40, Copied: 7}, 13); err != nil {
			t.Fatal(err)
		}
		_, parts, err := s.Pass(ctx, "", pass)
		if err != nil {
			t.Fatal(err)
		}
		if parts[0].Copied != 40 {
			t.Errorf("%s: %d copied after a late progress report, want the outcome's 40", last, parts[0].Copied)
		}
		if st, _ := s.PassState(ctx, pass); st != last {
			t.Errorf("pass whose part ended %s after a Stop: %s", last, st)
		}
	}
}
