package service

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/internal/store"
)

// PageFailures gives each mailbox of a page the failed items of its
// latest copying pass (a trial after it does not hide them, a newer
// copying pass replaces them), in order, and nothing for a mailbox of
// another project or another owner's request.
func TestPageFailures(t *testing.T) { eachEngine(t, testPageFailures) }

func testPageFailures(t *testing.T, st *store.Store) {
	s := newService(t, st)
	s.SetQueue(nopQueue{})
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	bob, _ := s.EnsureOwner(ctx, "bob@example.com")
	newProject := func(owner, name string, emails ...string) (string, []string) {
		p, err := s.CreateProject(ctx, owner, ProjectInput{Name: name, Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
		if err != nil {
			t.Fatal(err)
		}
		var in []MailboxInput
		for _, e := range emails {
			in = append(in, MailboxInput{SourceEmail: e + "@old.example", SourcePassword: "x", DestEmail: e + "@new.example", DestPassword: "y"})
		}
		ms, err := s.AddMailboxes(ctx, owner, p.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.ID
		}
		return p.ID, ids
	}
	run := func(owner, project string, kind PassKind, failures map[string][]FailedItem) {
		t.Helper()
		p, err := s.StartPass(ctx, owner, project, PassInput{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Mailboxes {
			if err := s.FinishMailboxPass(ctx, p.ID, m.MailboxID, Outcome{Status: StatusCompletedWithErrors, Failures: failures[m.MailboxID]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	proj, ms := newProject(alice.ID, "a", "a", "b", "c")
	other, oms := newProject(alice.ID, "other", "z")
	a, b, c := ms[0], ms[1], ms[2]
	item := func(folder, id string) FailedItem {
		return FailedItem{Folder: folder, ID: id, Size: 10, Messages: 1, Kind: "message", Reason: "refused"}
	}
	run(alice.ID, proj, PassFull, map[string][]FailedItem{a: {item("Sent", "1.2"), item("INBOX", "1.1")}, b: {item("INBOX", "1.9")}})
	run(alice.ID, other, PassFull, map[string][]FailedItem{oms[0]: {item("INBOX", "1.5")}})
	// A newer copying pass replaces b's failures; a trial changes nothing.
	run(alice.ID, proj, PassDelta, map[string][]FailedItem{a: {item("Sent", "1.2"), item("INBOX", "1.1")}})
	run(alice.ID, proj, PassTrial, map[string][]FailedItem{a: {item("Trial", "9.9")}})

	got, err := s.PageFailures(ctx, alice.ID, proj, []string{a, b, c, oms[0]})
	if err != nil {
		t.Fatal(err)
	}
	if fa := got[a]; len(fa) != 2 || fa[0].Folder != "INBOX" || fa[1].Folder != "Sent" || fa[0].ID != "1.1" {
		t.Errorf("a's failures %+v; want INBOX 1.1 then Sent 1.2 of the delta pass", fa)
	}
	if len(got[b]) != 0 || len(got[c]) != 0 {
		t.Errorf("b and c: %+v %+v; want none (b's newest copying pass failed nothing)", got[b], got[c])
	}
	if len(got[oms[0]]) != 0 {
		t.Errorf("a mailbox of another project got its failures through this one: %+v", got[oms[0]])
	}
	if fo, err := s.PageFailures(ctx, alice.ID, other, oms); err != nil || len(fo[oms[0]]) != 1 {
		t.Errorf("the other project's own page: %+v %v", fo, err)
	}
	if _, err := s.PageFailures(ctx, bob.ID, proj, ms); err == nil {
		t.Error("another owner read the failures")
	}
}
