package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
)

// A Verify migration (proof) pass after a full migration proves every
// mailbox exact; with one message deleted on the destination, the next
// proof shows that mailbox not exact with 1 missing in INBOX, the project
// verdict says so, and the stored report still checks against its seal.
// Another owner sees neither the summary nor the report. On both
// database engines.
func TestProofPass(t *testing.T) { eachEngine(t, testProofPass) }

func testProofPass(t *testing.T, engine string) {
	e := newEnv(t, engine, nil)
	ids := e.mailboxes("ann", "ben")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 12, 0)
	testenv.SeedMailbox(t, e.src, "ben", pw, 0, 8, 0)
	w := e.worker("w1", 5*time.Second)
	ctx := context.Background()
	run := func(kind service.PassKind) service.Pass {
		t.Helper()
		p, err := w.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		return e.wait(w.svc, p.ID, 2*time.Minute)
	}

	// Before any proof, the summary says so.
	sum, err := w.svc.ProjectProof(ctx, e.owner, e.project)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Exact || sum.Warning == "" {
		t.Errorf("no proof yet, but the summary is exact=%v warning=%q", sum.Exact, sum.Warning)
	}
	if _, err := w.svc.MailboxProof(ctx, e.owner, e.project, ids["ann"]); !errors.Is(err, service.ErrNoProof) {
		t.Errorf("report before any proof: %v, want ErrNoProof", err)
	}

	run(service.PassFull)
	e.same("ann", "ben")
	p := run(service.PassProof)
	for _, m := range p.Mailboxes {
		if m.Status != service.StatusCompleted {
			t.Errorf("proof of %s: %s (%s)", m.MailboxID, m.Status, m.LastError)
		}
	}
	// The proof leaves the mailboxes as the full pass left them.
	for name, id := range ids {
		if m, err := w.svc.Mailbox(ctx, e.owner, e.project, id); err != nil || m.Status != service.StatusCompleted {
			t.Errorf("%s after full pass and proof: %v %v", name, m.Status, err)
		}
	}
	sum, err = w.svc.ProjectProof(ctx, e.owner, e.project)
	if err != nil {
		t.Fatal(err)
	}
	if want := "All 20 messages of 2 mailboxes are on the new service."; !sum.Exact || sum.Verdict != want || sum.Warning != "" {
		t.Errorf("after a clean migration: exact=%v verdict=%q warning=%q, want %q", sum.Exact, sum.Verdict, sum.Warning, want)
	}
	rep, err := w.svc.MailboxProof(ctx, e.owner, e.project, ids["ann"])
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Exact || rep.Totals.Matched != 12 || rep.Totals.Exact != 12 || !rep.Check() {
		t.Errorf("ann's report: exact=%v matched=%d exact=%d sealed=%v", rep.Exact, rep.Totals.Matched, rep.Totals.Exact, rep.Check())
	}

	// One message of ann's INBOX is lost on the new service.
	e.dst.Doveadm(t, "expunge", "-u", "ann", "mailbox", "INBOX", "uid", "1")
	p = run(service.PassProof)
	for _, m := range p.Mailboxes {
		want := service.StatusCompleted
		if m.MailboxID == ids["ann"] {
			want = service.StatusCompletedWithErrors
		}
		if m.Status != want {
			t.Errorf("second proof of %s: %s, want %s", m.MailboxID, m.Status, want)
		}
	}
	rep, err = w.svc.MailboxProof(ctx, e.owner, e.project, ids["ann"])
	if err != nil {
		t.Fatal(err)
	}
	if rep.Exact || rep.Totals.Missing != 1 || rep.Totals.Matched != 11 {
		t.Errorf("ann after a deletion: exact=%v missing=%d matched=%d, want not exact, 1 missing, 11 matched",
			rep.Exact, rep.Totals.Missing, rep.Totals.Matched)
	}
	for _, f := range rep.Folders {
		if f.Source == "INBOX" && f.Missing != 1 {
			t.Errorf("INBOX row: %d missing, want 1", f.Missing)
		}
		if err := f.Balance(); err != nil {
			t.Errorf("folder %s does not balance: %v", f.Source, err)
		}
	}
	sum, err = w.svc.ProjectProof(ctx, e.owner, e.project)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Not proven: 1 mailbox not exact (ann@old.example). 1 message is missing on the new service."; sum.Exact || sum.Verdict != want || sum.Missing != 1 {
		t.Errorf("after a deletion: exact=%v verdict=%q missing=%d, want %q", sum.Exact, sum.Verdict, sum.Missing, want)
	}

	// A copying pass after the proof makes the proof stale.
	run(service.PassDelta)
	sum, err = w.svc.ProjectProof(ctx, e.owner, e.project)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Exact || sum.Warning == "" || !sum.Rows[1].Stale {
		t.Errorf("after a Migrate new items: exact=%v warning=%q rows=%+v", sum.Exact, sum.Warning, sum.Rows)
	}

	// Another owner gets not found for both.
	other, err := w.svc.EnsureOwner(ctx, "other@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.ProjectProof(ctx, other.ID, e.project); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("another owner's summary: %v, want ErrNotFound", err)
	}
	if _, err := w.svc.MailboxProof(ctx, other.ID, e.project, ids["ann"]); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("another owner's report: %v, want ErrNotFound", err)
	}
}
