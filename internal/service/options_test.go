package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/store"
)

// Pass options are stored per project, overridden per mailbox (a field
// the mailbox sets replaces the project's; clearing it brings the
// project's back), validated with clear errors, and kept per owner.
func TestPassOptionsStored(t *testing.T) { eachEngine(t, testPassOptionsStored) }

func testPassOptionsStored(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	bob, _ := s.EnsureOwner(ctx, "bob@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "p", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{
		{SourceEmail: "a@old.example", SourcePassword: "x", DestEmail: "a@new.example", DestPassword: "y"},
		{SourceEmail: "b@old.example", SourcePassword: "x", DestEmail: "b@new.example", DestPassword: "y"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ms[0].ID, ms[1].ID
	proj := Options{Include: []string{"^INBOX", " "}, Exclude: []string{"^Trash$"}, Mappings: []string{`FolderMapping="^Sent Items->Sent"`},
		Since: "2020-01-01", Before: "2024-01-01"}
	got, err := s.SetProjectOptions(ctx, alice.ID, p.ID, proj)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Options.Include, ",") != "^INBOX" || got.Options.Since != "2020-01-01" || got.Options.Mappings[0] != "^Sent Items->Sent" {
		t.Fatalf("stored project options %+v (the blank rule must be dropped)", got.Options)
	}
	if again, _ := s.Project(ctx, alice.ID, p.ID); again.Options.Before != "2024-01-01" {
		t.Fatalf("project options not read back: %+v", again.Options)
	}
	mo, err := s.SetMailboxOptions(ctx, alice.ID, p.ID, b, Options{Exclude: []string{"^Archive"}, Since: "2023-06-01"})
	if err != nil {
		t.Fatal(err)
	}
	if e := mo.Effective; e.Exclude[0] != "^Archive" || e.Since != "2023-06-01" || e.Before != "2024-01-01" || e.Include[0] != "^INBOX" {
		t.Fatalf("b's effective options %+v: its exclude and since over the project's include and before", e)
	}
	if ma, _ := s.MailboxOptions(ctx, alice.ID, p.ID, a); ma.Effective.Exclude[0] != "^Trash$" || !ma.Own.empty() {
		t.Fatalf("a has no override: %+v", ma)
	}
	if all, _ := s.MailboxOptionsOf(ctx, alice.ID, p.ID); len(all) != 1 || all[b].Since != "2023-06-01" {
		t.Fatalf("overrides of the project: %+v", all)
	}
	// Clearing the override brings the project's options back.
	if mo, err = s.SetMailboxOptions(ctx, alice.ID, p.ID, b, Options{}); err != nil || mo.Effective.Exclude[0] != "^Trash$" {
		t.Fatalf("cleared override: %+v %v", mo, err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Exclude: []string{"(unclosed"}}, "not a valid regular expression"},
		{Options{Mappings: []string{"no arrow"}}, "->"},
		{Options{Since: "01/02/2023"}, "2024-01-31"},
		{Options{Since: "2024-02-01", Before: "2024-01-01"}, "must come after"},
	} {
		_, err := s.SetProjectOptions(ctx, alice.ID, p.ID, c.o)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %+v: %v; want an input error about %q", c.o, err, c.want)
		}
		if _, err := s.SetMailboxOptions(ctx, alice.ID, p.ID, a, c.o); !errors.As(err, &ie) {
			t.Errorf("mailbox options %+v: %v; want an input error", c.o, err)
		}
	}
	// A mailbox's since after the project's before is refused too.
	if _, err := s.SetMailboxOptions(ctx, alice.ID, p.ID, a, Options{Since: "2025-01-01"}); err == nil || !strings.Contains(err.Error(), "must come after") {
		t.Errorf("since after the project's before: %v", err)
	}
	if _, err := s.SetProjectOptions(ctx, bob.ID, p.ID, proj); !errors.Is(err, ErrNotFound) {
		t.Errorf("another owner set the options: %v", err)
	}
	if _, err := s.SetMailboxOptions(ctx, bob.ID, p.ID, a, proj); !errors.Is(err, ErrNotFound) {
		t.Errorf("another owner set a mailbox's options: %v", err)
	}
	if _, err := s.PreviewPlan(ctx, alice.ID, p.ID, a); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("preview without a planner: %v", err)
	}
	// A mailbox and a project with overrides can be deleted (the
	// overrides go with them).
	if _, err := s.SetMailboxOptions(ctx, alice.ID, p.ID, b, Options{Exclude: []string{"^Spam"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, alice.ID, p.ID, b); err != nil {
		t.Fatalf("delete a mailbox with its own options: %v", err)
	}
	if _, err := s.SetMailboxOptions(ctx, alice.ID, p.ID, a, Options{Exclude: []string{"^Spam"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProject(ctx, alice.ID, p.ID); err != nil {
		t.Fatalf("delete a project with mailbox options: %v", err)
	}
}
