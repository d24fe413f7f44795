package service

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestCatalogueEveryClassIsComplete(t *testing.T) {
	classes := Classes()
	want := []ErrorClass{ClassAuth, ClassHost, ClassConnect, ClassTLS, ClassMailboxMissing, ClassQuota,
		ClassTooLarge, ClassThrottled, ClassPasswordChanged, ClassConfig, ClassSecretKey, ClassPermission, ClassOther}
	if !slices.Equal(classes, want) {
		t.Fatalf("Classes() = %v, want %v", classes, want)
	}
	titles := map[string]ErrorClass{}
	for _, c := range classes {
		for _, side := range []Side{"", SideSource, SideDestination} {
			s := SolveFor(c, side)
			if s.Class != c {
				t.Errorf("%s/%s: Class = %q", c, side, s.Class)
			}
			if s.Title == "" || s.Explanation == "" || len(s.Steps) < 2 {
				t.Errorf("%s/%s: incomplete solution %+v", c, side, s)
			}
			texts := append([]string{s.Title, s.Explanation}, s.Steps...)
			for _, text := range texts {
				if strings.TrimSpace(text) == "" || strings.ContainsAny(text, "{}") {
					t.Errorf("%s/%s: empty text or unfilled placeholder in %q", c, side, text)
				}
			}
		}
		if prev, dup := titles[Solve(c).Title]; dup {
			t.Errorf("%s and %s share the title %q", prev, c, Solve(c).Title)
		}
		titles[Solve(c).Title] = c
	}
}

func TestSolveForNamesTheSide(t *testing.T) {
	for _, c := range Classes() {
		for _, side := range []Side{SideSource, SideDestination} {
			s := SolveFor(c, side)
			other := SideDestination
			if side == SideDestination {
				other = SideSource
			}
			if !slices.ContainsFunc(s.Steps, func(step string) bool { return strings.Contains(step, "the "+string(side)+" ") }) {
				t.Errorf("%s for %s: no step names %q: %q", c, side, side, s.Steps)
			}
			all := strings.Join(append([]string{s.Explanation}, s.Steps...), " ")
			if strings.Contains(all, "the "+string(other)+" server") || strings.Contains(all, "the "+string(other)+" mailbox") {
				t.Errorf("%s for %s names the other side: %s", c, side, all)
			}
		}
	}
}

func TestSolveDefaultsWording(t *testing.T) {
	tests := []struct {
		class ErrorClass
		want  string // must appear in the steps of Solve
		not   string // must not appear anywhere
	}{
		{ClassAuth, "the mailbox", "the source"},
		{ClassHost, "the mail server", "the destination"},
		{ClassMailboxMissing, "the destination server", "the source"},
		{ClassQuota, "the destination mailbox", "the source"},
		{ClassTooLarge, "the destination server", "the source"},
	}
	for _, tt := range tests {
		t.Run(string(tt.class), func(t *testing.T) {
			s := Solve(tt.class)
			steps := strings.Join(s.Steps, " ")
			if !strings.Contains(steps, tt.want) {
				t.Errorf("steps lack %q: %s", tt.want, steps)
			}
			if strings.Contains(steps+s.Explanation, tt.not) {
				t.Errorf("neutral wording mentions %q: %s", tt.not, steps)
			}
		})
	}
}

func TestSolveSpecificAdvice(t *testing.T) {
	tests := []struct {
		class ErrorClass
		side  Side
		want  []string
	}{
		{ClassAuth, SideSource, []string{"IMAP", "app password", "Gmail", "Microsoft 365", "trial migration again"}},
		{ClassMailboxMissing, SideDestination, []string{"Create the mailbox on the new service first", "never creates"}},
		{ClassAuth, SideDestination, []string{"does not create mailboxes", "Create the mailbox on the new service first"}},
		{ClassSecretKey, "", []string{"secret key changed", "Re-enter the passwords", "secret.key"}},
		{ClassMailboxMissing, SideSource, []string{"still exists"}},
		{ClassQuota, SideDestination, []string{"70%", "more space"}},
		{ClassPasswordChanged, SideSource, []string{"new password", "not to change passwords"}},
		{ClassThrottled, SideSource, []string{"Nothing needs fixing", "fewer mailboxes", "at night"}},
		{ClassConnect, SideSource, []string{"993", "143", "firewall"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.class)+"/"+string(tt.side), func(t *testing.T) {
			s := SolveFor(tt.class, tt.side)
			all := s.Explanation + " " + strings.Join(s.Steps, " ")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("solution lacks %q: %s", w, all)
				}
			}
		})
	}
}

func TestSolveUnknownClassFallsBackToOther(t *testing.T) {
	for _, c := range []ErrorClass{"", "no-such-class", "AUTHENTICATION"} {
		got := Solve(c)
		want := Solve(ClassOther)
		if got.Class != ClassOther || got.Title != want.Title || !slices.Equal(got.Steps, want.Steps) {
			t.Errorf("Solve(%q) = %+v, want the %q solution", c, got, ClassOther)
		}
		if s := SolveFor(c, SideSource); s.Class != ClassOther || !strings.Contains(strings.Join(s.Steps, " "), "the source server") {
			t.Errorf("SolveFor(%q, source) = %+v", c, s)
		}
	}
}

func TestSolveReturnsFreshSlices(t *testing.T) {
	s := Solve(ClassAuth)
	s.Steps[0] = "changed"
	if Solve(ClassAuth).Steps[0] == "changed" {
		t.Error("a caller's change leaked into later results")
	}
}

func TestSolveJSON(t *testing.T) {
	b, err := json.Marshal(Solve(ClassQuota))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["class"] != "quota" || got["title"] == "" || got["explanation"] == "" {
		t.Errorf("JSON = %s", b)
	}
	if steps, ok := got["steps"].([]any); !ok || len(steps) < 2 {
		t.Errorf("JSON steps = %v", got["steps"])
	}
}

// A missing Microsoft 365 permission is its own Solve Issue naming the
// exact grant: Mail.ReadWrite for a destination, Mail.Read for a source,
// with admin consent.
func TestSolvePermissionNamesTheGrant(t *testing.T) {
	dst := strings.Join(SolveFor(ClassPermission, SideDestination).Steps, " ")
	src := strings.Join(SolveFor(ClassPermission, SideSource).Steps, " ")
	if !strings.Contains(dst, "add Mail.ReadWrite.") || !strings.Contains(dst, "Grant admin consent") {
		t.Errorf("destination steps: %s", dst)
	}
	if !strings.Contains(src, "add Mail.Read (or Mail.ReadWrite)") {
		t.Errorf("source steps: %s", src)
	}
}
