package web

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

// A mailbox's history lists every pass, newest first, with its counts,
// the per-folder statistics of copying passes and the failed items, and
// downloads as CSV with the same balanced numbers; another user gets 404.
func TestPortalPassHistory(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	id := e.manyMailboxes(t, "owner@example.com", 1)
	owner := ownerID(t, e, "owner@example.com")
	page, err := e.svc.MailboxPage(ctx, owner, id, service.MailboxQuery{})
	must(t, err)
	mb := page.Mailboxes[0].ID
	run := func(kind service.PassKind, o service.Outcome) string {
		p, err := e.svc.StartPass(ctx, owner, id, service.PassInput{Kind: kind})
		must(t, err)
		must(t, e.svc.BeginMailboxPass(ctx, p.ID, mb, service.StatusMigrating, "test-worker"))
		must(t, e.svc.FinishMailboxPass(ctx, p.ID, mb, o))
		return p.ID
	}
	full := run(service.PassFull, service.Outcome{Status: service.StatusCompletedWithErrors, Detail: "1 message could not be copied",
		Progress: &service.Progress{TotalMsgs: 12, Copied: 9, Present: 1, Skipped: 1, Failed: 1, CopiedBytes: 9000},
		Plan: []service.PlanRow{{Source: "INBOX", Destination: "INBOX", Messages: 10, Copied: 8, Present: 1, Failed: 1},
			{Source: "Archive/2023", Destination: "Archive.2023", Messages: 2, Copied: 1, Skipped: 1}},
		Failures: []service.FailedItem{{Folder: "INBOX", ID: "7.42", Size: 31457280, Messages: 1, Kind: "message", Reason: "the destination refused it: too large"}}})
	delta := run(service.PassDelta, service.Outcome{Status: service.StatusCompleted,
		Progress: &service.Progress{TotalMsgs: 3, Copied: 3},
		Plan:     []service.PlanRow{{Source: "INBOX", Destination: "INBOX", Messages: 3, Copied: 3}, {Source: "Archive/2023", Destination: "Archive.2023", Unchanged: true}}})

	b := e.newBrowser()
	b.login("owner@example.com")
	hp := "/projects/" + id + "/mailboxes/" + mb + "/history"
	code, body := b.get(hp)
	if code != 200 {
		t.Fatalf("history: %d", code)
	}
	if i, j := strings.Index(body, `data-pass="`+delta+`"`), strings.Index(body, `data-pass="`+full+`"`); i < 0 || j < 0 || i > j {
		t.Errorf("passes not listed newest first (delta at %d, full at %d)", i, j)
	}
	for _, want := range []string{"Migrate new items", "Full migration", "Archive/2023", "unchanged since the last pass", "7.42",
		"the destination refused it: too large", "<strong>9</strong> copied"} {
		if !strings.Contains(body, want) {
			t.Errorf("history lacks %q", want)
		}
	}
	checkLabels(t, "history", body)
	code, raw := b.get(hp + ".csv")
	if code != 200 {
		t.Fatalf("history.csv: %d", code)
	}
	recs, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	folders, items := 0, 0
	for _, r := range recs[1:] {
		switch r[0] {
		case "folder":
			folders++
			if r[4] == "Full migration" && r[9] == "INBOX" && (r[11] != "10" || r[12] != "8" || r[13] != "1" || r[15] != "1") {
				t.Errorf("INBOX of the full pass: %v", r)
			}
		case "failed item":
			items++
			if r[18] != "7.42" || r[19] != "31457280" || !strings.Contains(r[21], "too large") {
				t.Errorf("failed item: %v", r)
			}
		}
	}
	if folders != 4 || items != 1 {
		t.Errorf("CSV: %d folder lines, %d failed items; want 4 and 1:\n%s", folders, items, raw)
	}
	// The migrate page links each migrated mailbox's history.
	if _, body := b.get("/projects/" + id + "/migrate"); !strings.Contains(body, `href="`+hp+`"`) {
		t.Error("the migrate page does not link the history")
	}
	other := e.newBrowser()
	other.login("other@example.com")
	for _, p := range []string{hp, hp + ".csv"} {
		if code, _ := other.get(p); code != 404 {
			t.Errorf("GET %s as another user: %d", p, code)
		}
	}
}
