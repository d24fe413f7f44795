package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/verify"
)

// The proof routes (API and portal) answer the project's owner and no
// one else: another owner gets 404 for the summary, the report in each
// format and the portal pages; before any proof the report is a 404 that
// says what to run. The test plays the worker: it stores a sealed
// report for a queued proof pass and finishes the part.
func TestProofRoutesOwnership(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	project := e.manyMailboxes(t, "owner@example.com", 1)
	owner := ownerID(t, e, "owner@example.com")
	mbs, err := e.svc.Mailboxes(ctx, owner, project)
	if err != nil {
		t.Fatal(err)
	}
	mb := mbs[0].ID
	tok, otherTok := e.token(t, "owner@example.com"), e.token(t, "other@example.com")
	api := "/api/projects/" + project
	report := api + "/mailboxes/" + mb + "/proof"

	if code, body := e.apiCall(t, tok, "GET", report, "", nil); code != 404 || !strings.Contains(body, "not been verified yet") {
		t.Errorf("report before any proof: %d %s", code, body)
	}
	code, body := e.apiCall(t, tok, "POST", api+"/passes", "application/json", strings.NewReader(`{"kind":"proof"}`))
	if code != 201 && code != 200 {
		t.Fatalf("start a proof pass: %d %s", code, body)
	}
	var pass service.Pass
	if err := json.Unmarshal([]byte(body), &pass); err != nil || pass.Kind != service.PassProof {
		t.Fatalf("pass: %v %s", err, body)
	}
	w, err := e.svc.LoadWork(ctx, pass.ID, mb)
	if err != nil {
		t.Fatal(err)
	}
	rep := &verify.Report{Tool: "mailferry verify", Version: "test", Bytes: "sha256",
		Folders: []*verify.Folder{{Source: "INBOX", Dest: "INBOX", Why: "same path", SourceMessages: 3, DestMessages: 3, Matched: 3, Exact: 3}},
		Totals:  verify.Totals{Folders: 1, SourceMessages: 3, DestMessages: 3, Matched: 3, Exact: 3}, Exact: true,
		Verdict: "EXACT: all 3 messages of 1 folders are on the destination byte for byte, with their flags and dates."}
	rep.Seal()
	if err := e.svc.SaveProof(ctx, w, rep); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.FinishMailboxPass(ctx, pass.ID, mb, service.Outcome{Status: service.StatusCompleted}); err != nil {
		t.Fatal(err)
	}

	code, body = e.apiCall(t, tok, "GET", api+"/proof", "", nil)
	var sum service.ProofSummary
	if err := json.Unmarshal([]byte(body), &sum); code != 200 || err != nil || !sum.Exact ||
		sum.Verdict != "All 3 messages of 1 mailbox are on the new service." {
		t.Errorf("summary: %d %s", code, body)
	}
	code, body = e.apiCall(t, tok, "GET", report, "", nil)
	var got verify.Report
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || got.SHA256 != rep.SHA256 || !got.Check() {
		t.Errorf("report: %d %s", code, body)
	}
	if code, body := e.apiCall(t, tok, "GET", report+".csv", "", nil); code != 200 || !strings.Contains(body, "INBOX") {
		t.Errorf("CSV: %d %s", code, body)
	}
	if code, body := e.apiCall(t, tok, "GET", report+".pdf", "", nil); code != 200 || !strings.HasPrefix(body, "%PDF-") {
		t.Errorf("PDF: %d %.40q", code, body)
	}

	// Another owner: 404 everywhere, and nothing of the report.
	for _, path := range []string{api + "/proof", report, report + ".csv", report + ".pdf"} {
		if code, body := e.apiCall(t, otherTok, "GET", path, "", nil); code != http.StatusNotFound || strings.Contains(body, rep.SHA256) {
			t.Errorf("another owner, GET %s: %d %s", path, code, body)
		}
	}
	if code, _ := e.apiCall(t, otherTok, "POST", api+"/passes", "application/json", strings.NewReader(`{"kind":"proof"}`)); code != 404 {
		t.Errorf("another owner starts a proof: %d", code)
	}
	other := e.newBrowser()
	other.login("other@example.com")
	for _, path := range []string{"/projects/" + project + "/proof", "/projects/" + project + "/mailboxes/" + mb + "/proof",
		"/projects/" + project + "/mailboxes/" + mb + "/proof.csv", "/projects/" + project + "/mailboxes/" + mb + "/proof.pdf"} {
		if code, body := other.get(path); code != http.StatusNotFound || strings.Contains(body, rep.SHA256) {
			t.Errorf("another owner, portal %s: %d", path, code)
		}
	}
	// The owner's portal pages show the verdict and the folder row.
	mine := e.newBrowser()
	mine.login("owner@example.com")
	if code, body := mine.get("/projects/" + project + "/proof"); code != 200 || !strings.Contains(body, "All 3 messages of 1 mailbox are on the new service.") {
		t.Errorf("owner's proof page: %d", code)
	}
	if code, body := mine.get("/projects/" + project + "/mailboxes/" + mb + "/proof"); code != 200 || !strings.Contains(body, rep.SHA256) {
		t.Errorf("owner's mailbox proof page: %d", code)
	}
}

// A proof pass copies nothing, so it leaves the copying pass before it
// in charge of what the project shows: that pass's failed items stay
// listed, the CSV export keeps its failed count and copy totals, and
// Retry failed items still has something to retry.
func TestProofLeavesTheCopyStatistics(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	project := e.manyMailboxes(t, "owner@example.com", 1)
	owner := ownerID(t, e, "owner@example.com")
	mbs, err := e.svc.Mailboxes(ctx, owner, project)
	if err != nil {
		t.Fatal(err)
	}
	mb := mbs[0].ID
	play := func(kind service.PassKind, out service.Outcome) {
		t.Helper()
		p, err := e.svc.StartPass(ctx, owner, project, service.PassInput{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.BeginMailboxPass(ctx, p.ID, mb, service.StatusMigrating, "w"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.FinishMailboxPass(ctx, p.ID, mb, out); err != nil {
			t.Fatal(err)
		}
	}
	play(service.PassFull, service.Outcome{Status: service.StatusCompletedWithErrors,
		Progress: &service.Progress{TotalMsgs: 10, Copied: 9, Failed: 1},
		Failures: []service.FailedItem{{Folder: "INBOX", ID: "7", Kind: "item", Reason: "too large for the destination"}}})
	play(service.PassProof, service.Outcome{Status: service.StatusCompletedWithErrors, Progress: &service.Progress{TotalMsgs: 10}})

	fs, err := e.svc.Failures(ctx, owner, project, mb)
	if err != nil || len(fs) != 1 || fs[0].Reason != "too large for the destination" {
		t.Errorf("failed items after a proof: %+v %v", fs, err)
	}
	rows, err := e.svc.ExportRows(ctx, owner, project)
	if err != nil || len(rows) != 1 || rows[0].Failed != 1 || rows[0].Copied != 9 {
		t.Errorf("export after a proof: %+v %v", rows, err)
	}
	ct, err := e.svc.ProjectCopyTotals(ctx, owner, project)
	if err != nil || ct.Copied != 9 || ct.Failed != 1 || ct.Messages != 10 {
		t.Errorf("copy totals after a proof: %+v %v", ct, err)
	}
	if _, err := e.svc.StartPass(ctx, owner, project, service.PassInput{Kind: service.PassRetryErrors}); err != nil {
		t.Errorf("retry failed items after a proof: %v", err)
	}
}

// A proof pass copies nothing: it must not mark a mailbox migrated
// (MigratedBefore, which makes a later refused login read as a changed
// password), must not change its migration status, and must not count
// as a migration pass (the CSV's Passes).
func TestProofLeavesTheMigrationStatus(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	project := e.manyMailboxes(t, "owner@example.com", 1)
	owner := ownerID(t, e, "owner@example.com")
	mbs, err := e.svc.Mailboxes(ctx, owner, project)
	if err != nil {
		t.Fatal(err)
	}
	mb := mbs[0].ID
	play := func(kind service.PassKind, out service.Outcome) string {
		t.Helper()
		p, err := e.svc.StartPass(ctx, owner, project, service.PassInput{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.BeginMailboxPass(ctx, p.ID, mb, service.StatusVerifying, "w"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.FinishMailboxPass(ctx, p.ID, mb, out); err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	status := func() service.Status {
		t.Helper()
		m, err := e.svc.Mailbox(ctx, owner, project, mb)
		if err != nil {
			t.Fatal(err)
		}
		return m.Status
	}
	e.svc.SetMaxPasses(1) // a proof must leave room for the one migration pass
	before := status()
	id := play(service.PassProof, service.Outcome{Status: service.StatusCompleted, Progress: &service.Progress{TotalMsgs: 3}})
	if got := status(); got != before {
		t.Errorf("status after a proof of a mailbox never migrated: %q, want %q", got, before)
	}
	w, err := e.svc.LoadWork(ctx, id, mb)
	if err != nil {
		t.Fatal(err)
	}
	if w.MigratedBefore {
		t.Error("a proof pass marked the mailbox as migrated once")
	}

	play(service.PassFull, service.Outcome{Status: service.StatusCompletedWithErrors, Progress: &service.Progress{TotalMsgs: 3, Copied: 2, Failed: 1}})
	id = play(service.PassProof, service.Outcome{Status: service.StatusCompleted, Progress: &service.Progress{TotalMsgs: 3}})
	if got := status(); got != service.StatusCompletedWithErrors {
		t.Errorf("status after full pass and proof: %q, want the full pass's %q", got, service.StatusCompletedWithErrors)
	}
	if w, err = e.svc.LoadWork(ctx, id, mb); err != nil || !w.MigratedBefore {
		t.Errorf("after a full pass the mailbox is not migrated once (%v)", err)
	}
	rows, err := e.svc.ExportRows(ctx, owner, project)
	if err != nil || len(rows) != 1 || rows[0].Passes != 1 {
		t.Errorf("export: %+v %v; want 1 migration pass", rows, err)
	}
}

// The Finish page's warning is judged per mailbox: it names the
// mailboxes whose last proof is missing, failed, or older than that
// mailbox's own last copying pass, and no others. A copying pass of one
// mailbox does not make another mailbox's proof stale.
func TestFinishWarnsNamingStaleMailboxes(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	project := e.manyMailboxes(t, "owner@example.com", 4)
	owner := ownerID(t, e, "owner@example.com")
	mbs, err := e.svc.Mailboxes(ctx, owner, project)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // source email -> ID
	for _, m := range mbs {
		ids[m.SourceEmail] = m.ID
	}
	fresh, stale, failed, never := ids["u0000@old.example"], ids["u0001@old.example"], ids["u0002@old.example"], ids["u0003@old.example"]
	start := func(kind service.PassKind, mailboxes ...string) string {
		t.Helper()
		p, err := e.svc.StartPass(ctx, owner, project, service.PassInput{Kind: kind, MailboxIDs: mailboxes})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	finish := func(pass, mb string, out service.Outcome) {
		t.Helper()
		must(t, e.svc.BeginMailboxPass(ctx, pass, mb, service.StatusMigrating, "w"))
		must(t, e.svc.FinishMailboxPass(ctx, pass, mb, out))
	}
	prove := func(pass, mb string) {
		t.Helper()
		w, err := e.svc.LoadWork(ctx, pass, mb)
		if err != nil {
			t.Fatal(err)
		}
		rep := &verify.Report{Tool: "mailferry verify", Bytes: "sha256",
			Folders: []*verify.Folder{{Source: "INBOX", Dest: "INBOX", SourceMessages: 2, DestMessages: 2, Matched: 2, Exact: 2}},
			Totals:  verify.Totals{Folders: 1, SourceMessages: 2, DestMessages: 2, Matched: 2, Exact: 2}, Exact: true, Verdict: "EXACT"}
		rep.Seal()
		must(t, e.svc.SaveProof(ctx, w, rep))
		finish(pass, mb, service.Outcome{Status: service.StatusCompleted})
	}

	full := start(service.PassFull)
	for _, mb := range []string{fresh, stale, failed, never} {
		finish(full, mb, service.Outcome{Status: service.StatusCompleted, Progress: &service.Progress{TotalMsgs: 2, Copied: 2}})
	}
	// fresh, stale and failed are proven; never is left out.
	proof := start(service.PassProof, fresh, stale, failed)
	for _, mb := range []string{fresh, stale, failed} {
		prove(proof, mb)
	}
	// A delta pass of stale alone, then a proof that fails for failed.
	delta := start(service.PassDelta, stale)
	finish(delta, stale, service.Outcome{Status: service.StatusCompleted, Progress: &service.Progress{TotalMsgs: 2}})
	again := start(service.PassProof, failed)
	finish(again, failed, service.Outcome{Status: service.StatusFailed, Class: service.ClassOther, Error: "login refused"})

	sum, err := e.svc.ProjectProof(ctx, owner, project)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]service.ProofRow{}
	for _, r := range sum.Rows {
		rows[r.MailboxID] = r
	}
	if rows[fresh].Stale || !rows[stale].Stale || rows[failed].Failed != "login refused" || rows[never].Verified {
		t.Errorf("rows: fresh %+v, stale %+v, failed %+v, never %+v", rows[fresh], rows[stale], rows[failed], rows[never])
	}
	for _, want := range []string{"1 mailbox not verified (u0003@old.example)", "1 mailbox could not be verified by their last Verify migration (u0002@old.example)",
		"1 mailbox verified before their last copying pass (u0001@old.example)"} {
		if !strings.Contains(sum.Warning, want) {
			t.Errorf("warning lacks %q: %s", want, sum.Warning)
		}
	}
	if sum.Exact || strings.Contains(sum.Warning, "u0000@old.example") {
		t.Errorf("exact %v; the warning names the freshly proven mailbox: %s", sum.Exact, sum.Warning)
	}
	b := e.newBrowser()
	b.login("owner@example.com")
	if code, body := b.get("/projects/" + project + "/finish"); code != 200 || !strings.Contains(body, "u0001@old.example") || strings.Contains(body, "u0000@old.example") {
		t.Errorf("finish page: %d; want a warning naming u0001 and not u0000", code)
	}
}
