package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/testenv"
)

// A mailbox's own exclude rule reaches the engine on a real Dovecot: the
// excluded folder is not copied and its messages count as skipped by a
// filter, while the other mailbox (project options) copies it; the
// preview shows the same plan before the pass; and --max-passes refuses
// a migration pass beyond the limit, not a trial.
func TestPassOptionsPerMailbox(t *testing.T) { eachEngine(t, testPassOptionsPerMailbox) }

func testPassOptionsPerMailbox(t *testing.T, engine string) {
	e := newEnv(t, engine, nil)
	ctx := context.Background()
	ids := e.mailboxes("ann", "ben")
	testenv.SeedMailbox(t, e.src, "ann", pw, 0, 10, 0)
	testenv.SeedMailbox(t, e.src, "ben", pw, 0, 10, 0)
	w := e.worker("w1", 2*time.Second)
	if _, err := w.svc.SetProjectOptions(ctx, e.owner, e.project, service.Options{Mappings: []string{"^Projects->Archive/Projects"}}); err != nil {
		t.Fatal(err)
	}
	own, err := w.svc.SetMailboxOptions(ctx, e.owner, e.project, ids["ben"], service.Options{Exclude: []string{"^Projects$"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Effective.Exclude) != 1 || len(own.Effective.Mappings) != 1 {
		t.Fatalf("effective options %+v: want ben's exclude over the project's mapping", own.Effective)
	}
	w.svc.SetPlanner(w.r.Preview)
	prev, err := w.svc.PreviewPlan(ctx, e.owner, e.project, ids["ben"])
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, f := range prev.Folders {
		actions[f.Source] = f.Action + " " + f.Destination
	}
	if actions["Projects"] != "excluded " || !strings.HasPrefix(actions["INBOX"], "copy INBOX") {
		t.Fatalf("ben's preview %+v", prev.Folders)
	}
	prevAnn, err := w.svc.PreviewPlan(ctx, e.owner, e.project, ids["ann"])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range prevAnn.Folders {
		if f.Source == "Projects" && (f.Action != "create" || f.Destination != "Archive/Projects" || f.Why != "mapping rule") {
			t.Fatalf("ann's preview of Projects: %+v", f)
		}
	}

	w.svc.SetMaxPasses(1)
	p, err := w.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassFull})
	if err != nil {
		t.Fatal(err)
	}
	p = e.wait(w.svc, p.ID, time.Minute)
	for _, m := range p.Mailboxes {
		if m.Status != service.StatusCompleted {
			t.Fatalf("%s: %s %s\n%s", m.MailboxID, m.Status, m.LastError, e.log.String())
		}
		byFolder := map[string]service.PlanRow{}
		for _, r := range m.Plan {
			byFolder[r.Source] = r
			if r.Copied+r.Present+r.Skipped+r.Failed+r.Left != r.Messages {
				t.Errorf("folder %s does not balance: %+v", r.Source, r)
			}
		}
		pr := byFolder["Projects"]
		switch m.MailboxID {
		case ids["ben"]:
			if !pr.Excluded || pr.Messages != 5 || pr.Skipped != 5 || pr.Copied != 0 || m.Copied != 5 || m.Skipped != 5 || m.TotalMsgs != 10 {
				t.Errorf("ben: Projects %+v, mailbox copied %d skipped %d of %d; want Projects excluded with 5 skipped by the filter",
					pr, m.Copied, m.Skipped, m.TotalMsgs)
			}
		case ids["ann"]:
			if pr.Excluded || pr.Copied != 5 || pr.Destination != "Archive/Projects" || m.Copied != 10 {
				t.Errorf("ann: Projects %+v, copied %d; want 5 copied into Archive/Projects", pr, m.Copied)
			}
		}
	}
	// Ben's destination has only his INBOX.
	if got := testenv.Fingerprint(t, e.dst, "ben", pw); len(got["INBOX"]) != 5 || len(got["Projects"]) != 0 {
		t.Errorf("ben's destination: INBOX %d, Projects %d messages; want 5 and none", len(got["INBOX"]), len(got["Projects"]))
	}

	_, err = w.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassDelta})
	var ie *service.InputError
	if err == nil || !strings.Contains(err.Error(), "--max-passes") || !errors.As(err, &ie) {
		t.Fatalf("a second migration pass over --max-passes 1: %v", err)
	}
	tr, err := w.svc.StartPass(ctx, e.owner, e.project, service.PassInput{Kind: service.PassTrial})
	if err != nil {
		t.Fatalf("a trial must not count against --max-passes: %v", err)
	}
	e.wait(w.svc, tr.ID, time.Minute)
}
