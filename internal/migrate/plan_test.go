package migrate_test

import (
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
)

func folder(path string, role mail.Role, fromServer bool) connector.Folder {
	p := mail.ParsePath(path)
	if role == mail.RoleNone && !fromServer {
		role = mail.RoleFromName(p) // as a connector guesses it
	}
	return connector.Folder{Path: p, Name: path, Role: role, RoleFromServer: fromServer}
}

func plansByPath(ps []migrate.FolderPlan) map[string]migrate.FolderPlan {
	out := map[string]migrate.FolderPlan{}
	for _, p := range ps {
		out[p.Source.Path.String()] = p
	}
	return out
}

func mustRules(t *testing.T, mappings ...string) migrate.Rules {
	t.Helper()
	r, err := migrate.ParseRules(nil, nil, mappings)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A name guess yields to a role the server gives another folder, on the
// source and on the destination.
func TestPlanNameGuessYieldsToServerRole(t *testing.T) {
	cases := []struct {
		name     string
		src, dst []connector.Folder
		want     map[string]string // source -> destination
	}{
		{"source says Sent is \\Sent; destination has \\Sent too (mox)",
			[]connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent", mail.RoleSent, true), folder("Sent Items", "", false)},
			[]connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent", mail.RoleSent, true)},
			map[string]string{"Sent": "Sent", "Sent Items": "Sent Items"}},
		{"source without SPECIAL-USE: the name is all there is",
			[]connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent Items", "", false)},
			[]connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent", mail.RoleSent, true)},
			map[string]string{"Sent Items": "Sent"}},
		{"destination says \\Sent is Gesendet: its Sent Items is ordinary",
			[]connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent", mail.RoleSent, true), folder("Deleted Items", "", false)},
			[]connector.Folder{folder("Sent Items", "", false), folder("Gesendet", mail.RoleSent, true)},
			map[string]string{"Sent": "Gesendet", "Deleted Items": "Deleted Items"}},
		{"empty destination: a server-given role creates its folder",
			[]connector.Folder{folder("Sent", mail.RoleSent, true), folder("Sent Items", "", false)},
			nil,
			map[string]string{"Sent": "Sent", "Sent Items": "Sent Items"}},
	}
	for _, c := range cases {
		got := plansByPath(migrate.PlanFolders(c.src, c.dst, migrate.Rules{}, nil))
		for from, to := range c.want {
			if p := got[from]; p.Dest.Path.String() != to {
				t.Errorf("%s: %s -> %s (%s), want %s", c.name, from, p.Dest.Path, p.Why, to)
			}
		}
	}
	// A folder created for a role keeps the role in its plan, for the
	// connector to create it with (CREATE-SPECIAL-USE); an ordinary one
	// has none.
	got := plansByPath(migrate.PlanFolders(cases[3].src, nil, migrate.Rules{}, nil))
	if p := got["Sent"]; !p.Create || p.Dest.Role != mail.RoleSent {
		t.Errorf("Sent into an empty destination: create %v role %q", p.Create, p.Dest.Role)
	}
	if p := got["Sent Items"]; !p.Create || p.Dest.Role != mail.RoleNone {
		t.Errorf("Sent Items into an empty destination: create %v role %q", p.Create, p.Dest.Role)
	}
}

// Later passes follow the recorded plan whatever the destination looks
// like by then; a new folder gets a plan of its own, and a changed --map
// rule moves exactly the folders whose mapping it changes.
func TestPlanFollowsTheRecord(t *testing.T) {
	src := []connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent", mail.RoleSent, true),
		folder("Sent Items", "", false), folder("Old/2001", "", false), folder("Old/2002", "", false), folder("Kunden", "", false)}
	// The first pass's destination was empty.
	rules1 := mustRules(t, "^Old/2001->Archive/2001", "^Old/2002->Archive/2002")
	first := migrate.PlanFolders(src, nil, rules1, nil)
	recorded := map[string]store.FolderPlan{}
	for _, p := range first {
		if p.Origin != migrate.PlanNew {
			t.Errorf("first pass: %s has origin %q", p.Source.Path, p.Origin)
		}
		sp := store.FolderPlan{SrcPath: p.Source.Path.String(), Dst: p.Dest.Path, Why: p.Why, Mapped: p.Mapped}
		if p.Source.Path.String() != "Kunden" { // Kunden appears on the source later
			recorded[sp.SrcPath] = sp
		}
	}
	// Now the destination has what the first pass created, with roles
	// guessed from names (no SPECIAL-USE), and a new \Sent-looking folder
	// the user made. The 2002 rule changed; the 2001 rule did not.
	dst := []connector.Folder{folder("INBOX", mail.RoleInbox, false), folder("Sent Items", "", false), folder("Sent", "", false),
		folder("Archive/2001", "", false), folder("Archive/2002", "", false)}
	rules2 := mustRules(t, "^Old/2001->Archive/2001", "^Old/2002->Archiv/2002")
	got := plansByPath(migrate.PlanFolders(src, dst, rules2, recorded))
	want := map[string]struct{ dest, origin, was string }{
		"INBOX":      {"INBOX", migrate.PlanRecorded, ""},
		"Sent":       {"Sent", migrate.PlanRecorded, ""},
		"Sent Items": {"Sent Items", migrate.PlanRecorded, ""},
		"Old/2001":   {"Archive/2001", migrate.PlanRecorded, ""},
		"Old/2002":   {"Archiv/2002", migrate.PlanRuleChanged, "Archive/2002"},
		"Kunden":     {"Kunden", migrate.PlanNew, ""},
	}
	for from, w := range want {
		p := got[from]
		if p.Dest.Path.String() != w.dest || p.Origin != w.origin || p.Was.String() != w.was {
			t.Errorf("%s -> %s (origin %q, was %q), want %s (%q, was %q)", from, p.Dest.Path, p.Origin, p.Was, w.dest, w.origin, w.was)
		}
	}
	if p := got["Sent Items"]; p.Create || p.Dest.Name != "Sent Items" {
		t.Errorf("Sent Items must use the existing destination folder: %+v", p.Dest)
	}
	// Removing a rule is a change too: the folder is planned afresh.
	got = plansByPath(migrate.PlanFolders(src, dst, mustRules(t, "^Old/2002->Archive/2002"), recorded))
	if p := got["Old/2001"]; p.Dest.Path.String() != "Old/2001" || p.Origin != migrate.PlanRuleChanged {
		t.Errorf("rule removed: Old/2001 -> %s (%q)", p.Dest.Path, p.Origin)
	}
	// A rule that now yields the recorded destination changes nothing.
	got = plansByPath(migrate.PlanFolders(src, dst, mustRules(t, "^Kunden->Kunden", "^Old/2001->Archive/2001", "^Old/2002->Archive/2002", "^Sent Items->Sent Items"), recorded))
	if p := got["Sent Items"]; p.Dest.Path.String() != "Sent Items" || p.Origin != migrate.PlanRecorded {
		t.Errorf("rule giving the recorded destination: Sent Items -> %s (%q)", p.Dest.Path, p.Origin)
	}
}
