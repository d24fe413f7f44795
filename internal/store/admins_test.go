package store

import (
	"context"
	"testing"
)

// A project side's admin login (Exchange impersonation, kind
// "ews-impersonation" in project_credentials) is saved and replaced and
// read with its sealed secret; Work carries the
// rows' email addresses (the mailboxes the admin acts on); FinishProject
// blanks the secret but keeps the login; DeleteProject removes the row.
func TestProjectAdmins(t *testing.T) { eachEngine(t, testProjectAdmins) }

func testProjectAdmins(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	project, mbs := seedProject(t, s, 1)
	sideOf := func(side string) (Credential, bool) {
		t.Helper()
		cs, err := s.Credentials(ctx, project)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Side == side {
				return c, true
			}
		}
		return Credential{}, false
	}
	if c, ok := sideOf("source"); ok {
		t.Fatalf("admin of a project without one: %+v", c)
	}
	for _, c := range []Credential{{Side: "source", Kind: "ews-impersonation", Login: "old", Secret: "s0"},
		{Side: "source", Kind: "ews-impersonation", Login: `OLD\migrator`, Secret: "s1"},
		{Side: "destination", Kind: "ews-impersonation", Login: "dst-admin", Secret: "d1"}} {
		if err := s.SetCredential(ctx, project, c); err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := s.Credentials(ctx, project); err != nil || len(cs) != 2 {
		t.Fatalf("credentials %+v %v", cs, err)
	}
	if c, ok := sideOf("destination"); !ok || c.Login != "dst-admin" || c.Kind != "ews-impersonation" || c.Secret != "d1" {
		t.Fatalf("destination admin %+v", c)
	}
	if c, ok := sideOf("source"); !ok || c.Login != `OLD\migrator` || c.Secret != "s1" {
		t.Fatalf("source admin %+v (a second save must replace the first)", c)
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
	if c, ok := sideOf("source"); !ok || c.Login != `OLD\migrator` || c.Secret != "" {
		t.Fatalf("after finishing: %+v (the secret must be blanked, the login kept)", c)
	}
	if err := s.DeleteProject(ctx, project); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.q().queryRow(ctx, `SELECT COUNT(*) FROM project_credentials WHERE project_id = $1`, project).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d admin rows left after DeleteProject (%v)", n, err)
	}
}
