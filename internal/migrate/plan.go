package migrate

import (
	"fmt"
	"sort"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/store"
)

// Where a folder plan came from, as --dry-run and the JSON events show it.
const (
	// PlanNew: this pass met the source folder for the first time and
	// decided its destination.
	PlanNew = "new"
	// PlanRecorded: an earlier pass decided the destination; this pass
	// follows the record.
	PlanRecorded = "recorded"
	// PlanRuleChanged: a --map rule that concerns this folder changed
	// since the plan was recorded, so the new rule decided it again.
	PlanRuleChanged = "rule changed"
)

// FolderPlan says where one source folder goes.
type FolderPlan struct {
	Source connector.Folder
	// Dest is the destination folder; Dest.Name is empty while it does
	// not exist yet (Create is then true). For a folder created for a
	// special use, Dest.Role is that role, so that the connector can
	// create it with the role where the server allows (RFC 6154
	// CREATE-SPECIAL-USE).
	Dest   connector.Folder
	Create bool
	// Why explains the choice: "mapping rule", "special use \Sent",
	// "same path".
	Why string
	// Origin is PlanNew, PlanRecorded or PlanRuleChanged.
	Origin string
	// Was is the destination the record gave before a changed rule
	// replaced it (Origin PlanRuleChanged only).
	Was mail.Path
	// Mapped is what the --map rules make of the source path (nil when
	// none matches); it is recorded with the plan.
	Mapped mail.Path
	// record is set when the plan must be (re)written to the state.
	record bool
}

// PlanFolders decides the destination of every selected source folder.
//
// A folder with a recorded plan (recorded, by source path; nil when there
// is no state) keeps its recorded destination, unless the --map rules now
// give it a destination other than the one they gave when the plan was
// recorded: a changed rule applies to exactly the folders whose mapping it
// changes. Every other folder is planned afresh, in this order: the
// user's mapping rules, then special-use roles matched to the
// destination's folder of the same role, then the same path. Parents that
// only exist as containers (\Noselect) are not planned; creating a child
// creates them.
//
// A role guessed from a folder's name ("Sent Items") counts only when the
// server does not say which folder has that role: when another folder of
// the same server carries the role as a SPECIAL-USE attribute, the guessed
// folder is an ordinary folder (on either side).
func PlanFolders(src, dst []connector.Folder, rules Rules, recorded map[string]store.FolderPlan) []FolderPlan {
	src, dst = trustServerRoles(src), trustServerRoles(dst)
	byPath := make(map[string]connector.Folder, len(dst))
	byRole := make(map[mail.Role]connector.Folder)
	for _, f := range dst {
		byPath[f.Path.Canonical().Key()] = f
		if f.Role == mail.RoleNone || f.NoSelect {
			continue
		}
		// A server-given role beats a name guess; among equals the
		// first listed wins.
		if cur, ok := byRole[f.Role]; !ok || (f.RoleFromServer && !cur.RoleFromServer) {
			byRole[f.Role] = f
		}
	}
	var plans []FolderPlan
	for _, f := range src {
		if f.NoSelect || !rules.Selected(f.Path) {
			continue
		}
		p := fresh(f, rules, byRole)
		if rec, ok := recorded[f.Path.String()]; ok {
			recDst := mail.Path(rec.Dst).Canonical()
			recMapped := mail.Path(rec.Mapped)
			sameRule := (p.Mapped == nil && rec.Mapped == nil) || (p.Mapped != nil && rec.Mapped != nil && p.Mapped.Equal(recMapped.Canonical()))
			switch {
			case sameRule:
				p.Dest = connector.Folder{Path: recDst, Role: mail.Role(rec.DstRole)}
				p.Why, p.Origin = rec.Why, PlanRecorded
			case p.Dest.Path.Equal(recDst):
				// The rules changed, but still give the recorded
				// destination: nothing moves; the record learns the
				// new rule.
				p.Origin, p.record = PlanRecorded, true
			default:
				p.Origin, p.Was, p.record = PlanRuleChanged, recDst, true
			}
		} else {
			p.Origin, p.record = PlanNew, true
		}
		if d, ok := byPath[p.Dest.Path.Key()]; ok {
			p.Dest = d
		} else {
			p.Dest.Name = ""
			p.Create = true
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

// fresh plans a folder without looking at any record.
func fresh(f connector.Folder, rules Rules, byRole map[mail.Role]connector.Folder) FolderPlan {
	p := FolderPlan{Source: f}
	if mapped, ok := rules.Map(f.Path); ok {
		p.Mapped = mapped
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
	return p
}

// trustServerRoles drops the roles guessed from names for which the
// server itself names a folder: with \Sent on "Sent", a "Sent Items"
// folder is just a folder called that. It returns a copy.
func trustServerRoles(fs []connector.Folder) []connector.Folder {
	served := map[mail.Role]bool{}
	for _, f := range fs {
		if f.RoleFromServer && f.Role != mail.RoleNone {
			served[f.Role] = true
		}
	}
	out := make([]connector.Folder, len(fs))
	for i, f := range fs {
		if !f.RoleFromServer && f.Role != mail.RoleInbox && served[f.Role] {
			f.Role = mail.RoleNone
		}
		out[i] = f
	}
	return out
}

// storePlan is the record of p.
func storePlan(p FolderPlan) store.FolderPlan {
	sp := store.FolderPlan{SrcPath: p.Source.Path.String(), Dst: p.Dest.Path, Why: p.Why}
	if p.Create {
		sp.DstRole = string(p.Dest.Role)
	}
	if p.Mapped != nil {
		sp.Mapped = p.Mapped
	}
	return sp
}

// discover lists both sides' folders and plans them, following the plans
// earlier passes recorded. Parts of the source its connector could not
// list (FolderNoter) are reported, folders that hold no mail are set
// aside with a note, and into a destination without a folder tree
// (a single mbox file) every folder goes to INBOX.
func (r *run) discover() ([]FolderPlan, error) {
	var sf, df []connector.Folder
	var notes []connector.FolderNote
	var err error
	if r.srcF.Notes {
		sf, notes, err = r.src.(connector.FolderNoter).FoldersNoted(r.ctx)
	} else {
		sf, err = r.src.Folders(r.ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if df, err = r.dst.Folders(r.ctx); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	for _, n := range notes {
		r.note(n)
	}
	mailFolders := sf[:0:0]
	for _, f := range sf {
		if f.IsMail() {
			mailFolders = append(mailFolders, f)
			continue
		}
		if f.NoSelect || !r.opts.Rules.Selected(f.Path) {
			continue
		}
		res := &FolderResult{Source: f.Path.String(), Class: f.Class, Plan: PlanNew,
			Why: "not a mail folder (" + f.Class + "): not copied; Mailferry copies mail only"}
		r.mu.Lock()
		r.skipped = append(r.skipped, res)
		r.mu.Unlock()
		r.emit(Event{Type: "folder_done", Folder: res})
	}
	var recorded map[string]store.FolderPlan
	if r.opts.State != nil {
		if recorded, err = r.opts.State.FolderPlans(r.ctx, r.opts.Pair); err != nil {
			return nil, err
		}
	}
	plans := PlanFolders(mailFolders, df, r.opts.Rules, recorded)
	if !r.dstF.Folders {
		plans = intoInbox(plans, df)
	}
	if r.opts.State != nil && !r.opts.DryRun {
		// Recorded before anything is copied: a pass killed from here on
		// resumes with the same plan.
		var save []store.FolderPlan
		for _, p := range plans {
			if p.record {
				save = append(save, storePlan(p))
			}
		}
		if err := r.opts.State.SaveFolderPlans(r.ctx, r.opts.Pair, save); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// intoInbox sends every folder to the inbox of a destination that has no
// folder tree (Features.Folders false: a single mbox file).
func intoInbox(plans []FolderPlan, dst []connector.Folder) []FolderPlan {
	inbox := connector.Folder{Path: mail.Path{mail.InboxName}, Name: mail.InboxName, Role: mail.RoleInbox}
	for _, f := range dst {
		if f.Path.IsInbox() {
			inbox = f
		}
	}
	for i := range plans {
		p := &plans[i]
		if !p.Dest.Path.IsInbox() {
			p.Why = "the destination has one folder only"
		}
		if !p.Dest.Path.Equal(inbox.Path) || p.Create {
			p.record = true
		}
		p.Dest, p.Create = inbox, false
	}
	return plans
}
