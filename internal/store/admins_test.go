package store

import (
	"context"
	"errors"
	"testing"
)

// A project side's admin login (Exchange impersonation) is saved and
// replaced, read without and with its sealed secret; Work carries the
// rows' email addresses (the mailboxes the admin acts on); FinishProject
// blanks the secret but keeps the login; DeleteProject removes the row.
func TestProjectAdmins(t *testing.T) { eachEngine(t, testProjectAdmins) }

func testProjectAdmins(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	project, mbs := seedProject(t, s, 1)
	if a, err := s.ProjectAdmin(ctx, project, "source"); !errors.Is(err, ErrNoRows) {
		t.Fatalf("admin of a project without one: %+v %v", a, err)
	}
	for _, a := range []ProjectAdmin{{Side: "source", Login: "old", Secret: "s0"}, {Side: "source", Login: `OLD\migrator`, Secret: "s1"},
		{Side: "destination", Login: "dst-admin", Secret: "d1"}} {
		if err := s.SaveProjectAdmin(ctx, project, a); err != nil {
			t.Fatal(err)
		}
	}
	logins, err := s.ProjectAdminLogins(ctx, project)
	if err != nil || len(logins) != 2 || logins["source"] != `OLD\migrator` || logins["destination"] != "dst-admin" {
		t.Fatalf("logins %v %v", logins, err)
	}
	if a, err := s.ProjectAdmin(ctx, project, "source"); err != nil || a.Login != `OLD\migrator` || a.Secret != "s1" {
		t.Fatalf("source admin %+v %v (a second save must replace the first)", a, err)
	}
	jobs := &fakeJobs{}
	if err := s.CreatePass(ctx, Pass{ID: "x1", ProjectID: project, Kind: "trial", State: "running", CreatedAt: 2}, 2, mbs, "queued", jobs.enqueue); err != nil {
		t.Fatal(err)
	}
	w, err := s.Work(ctx, "x1", mbs[0])
	if err != nil || w.SourceEmail != mbs[0]+"@old" || w.DestEmail != mbs[0]+"@new" {
		t.Fatalf("work: source %q destination %q %v", w.SourceEmail, w.DestEmail, err)
	}
	if _, err := s.q().exec(ctx, `UPDATE mailbox_passes SET status = 'completed'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.q().exec(ctx, `UPDATE mailboxes SET status = 'ready'`); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishProject(ctx, project, 3); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ProjectAdmin(ctx, project, "source"); err != nil || a.Login != `OLD\migrator` || a.Secret != "" {
		t.Fatalf("after finishing: %+v %v (the secret must be blanked, the login kept)", a, err)
	}
	if err := s.DeleteProject(ctx, project); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.q().queryRow(ctx, `SELECT COUNT(*) FROM project_admins WHERE project_id = $1`, project).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d admin rows left after DeleteProject (%v)", n, err)
	}
}
