package migrate

import (
	"context"
	"fmt"
	"sort"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// FolderPlan says where one source folder goes.
type FolderPlan struct {
	Source connector.Folder
	// Dest is the destination folder; Dest.Name is empty while it does
	// not exist yet (Create is then true).
	Dest   connector.Folder
	Create bool
	// Why explains the choice: "mapping rule", "special use \Sent",
	// "same path".
	Why string
}

// PlanFolders decides the destination of every selected source folder.
// Order: the user's mapping rules, then special-use roles (SPECIAL-USE
// attribute, else well-known names) matched to the destination's folder
// of the same role, then the same path. Parents that only exist as
// containers (\Noselect) are not planned; creating a child creates them.
func PlanFolders(src, dst []connector.Folder, rules Rules) []FolderPlan {
	byPath := make(map[string]connector.Folder, len(dst))
	byRole := make(map[mail.Role]connector.Folder)
	for _, f := range dst {
		byPath[f.Path.Canonical().Key()] = f
		if f.Role == mail.RoleNone || f.NoSelect {
			continue
		}
		// A server-given role beats a name guess; among equals the
		// first listed wins, which keeps the choice stable.
		if cur, ok := byRole[f.Role]; !ok || (f.RoleFromServer && !cur.RoleFromServer) {
			byRole[f.Role] = f
		}
	}
	var plans []FolderPlan
	for _, f := range src {
		if f.NoSelect || !rules.Selected(f.Path) {
			continue
		}
		p := FolderPlan{Source: f}
		if mapped, ok := rules.Map(f.Path); ok {
			p.Dest.Path, p.Why = mapped, "mapping rule"
		} else if f.Role != mail.RoleNone && f.Role != mail.RoleInbox {
			if d, ok := byRole[f.Role]; ok {
				p.Dest, p.Why = d, "special use "+string(f.Role)
			} else {
				p.Dest.Path, p.Dest.Role, p.Why = f.Path.Canonical(), f.Role, "special use "+string(f.Role)+" (created)"
			}
		} else {
			p.Dest.Path, p.Why = f.Path.Canonical(), "same path"
		}
		if p.Dest.Name == "" {
			if d, ok := byPath[p.Dest.Path.Key()]; ok {
				p.Dest = d
			} else {
				p.Create = true
			}
		}
		plans = append(plans, p)
	}
	// Inbox first, then by path: users see progress where they look first.
	sort.SliceStable(plans, func(i, j int) bool {
		a, b := plans[i].Source.Path, plans[j].Source.Path
		if a.IsInbox() != b.IsInbox() {
			return a.IsInbox()
		}
		return a.String() < b.String()
	})
	return plans
}

// discover lists both sides' folders and plans them.
func discover(ctx context.Context, src connector.Source, dst connector.Destination, rules Rules) ([]FolderPlan, error) {
	sf, err := src.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	df, err := dst.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return PlanFolders(sf, df, rules), nil
}
