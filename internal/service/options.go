package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// Pass options in the portal (issue 17 item 2): set per project,
// overridden per mailbox, previewed as a folder plan, and a cap on the
// number of migration passes the operator allows.

// copyingKinds are the passes that copy mail, which --max-passes counts.
var copyingKinds = []string{string(PassPreStage), string(PassFull), string(PassDelta), string(PassRetryErrors)}

// SetMaxPasses caps the migration passes (pre-stage, full, migrate new
// items, retry errors) one mailbox may take part in; 0 means no cap.
// Verification and trial passes do not count.
func (s *Service) SetMaxPasses(n int) { s.maxPasses = n }

// MaxPasses is the operator's cap (0: none).
func (s *Service) MaxPasses() int { return s.maxPasses }

// passCap is the store's limit for a pass of kind: the operator's cap
// for the copying passes, none for the others.
func (s *Service) passCap(kind PassKind) store.PassCap {
	if s.maxPasses <= 0 || !kind.Copies() {
		return store.PassCap{}
	}
	return store.PassCap{Max: s.maxPasses, Kinds: copyingKinds}
}

// overCapErr says which mailbox is over the operator's cap and what to do.
func (s *Service) overCapErr(over *store.CapError, chosen []Mailbox) error {
	email := over.MailboxID
	for _, m := range chosen {
		if m.ID == over.MailboxID {
			email = m.SourceEmail
		}
	}
	return inputErr("mailbox_ids", "mailbox %s has had %d migration passes, the most this service allows (%d); "+
		"leave it out, or ask the operator to raise the limit (mailferry serve --max-passes)", email, over.Passes, s.maxPasses)
}

// validateOptions checks options as the engine will read them.
func validateOptions(o Options) error {
	var dates [2]time.Time
	for i, d := range []struct{ field, v string }{{"options.since", o.Since}, {"options.before", o.Before}} {
		if d.v == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", d.v)
		if err != nil {
			return inputErr(d.field, "use a date like 2024-01-31")
		}
		dates[i] = t
	}
	if !dates[0].IsZero() && !dates[1].IsZero() && !dates[0].Before(dates[1]) {
		return inputErr("options.before", "the end of the date range (%s) must come after its start (%s)", o.Before, o.Since)
	}
	return validateRules(o)
}

// cleanOptions drops blank rules (an empty line in a text box).
func cleanOptions(o Options) Options {
	clean := func(in []string) []string {
		var out []string
		for _, v := range in {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	o.Include, o.Exclude, o.Mappings = clean(o.Include), clean(o.Exclude), clean(o.Mappings)
	for i, m := range o.Mappings {
		// MigrationWiz's Support Option form, FolderMapping="^a->b",
		// is the engine's rule in a wrapper.
		if v, ok := strings.CutPrefix(m, "FolderMapping="); ok {
			o.Mappings[i] = strings.TrimSpace(strings.Trim(v, `"`))
		}
	}
	o.Since, o.Before = strings.TrimSpace(o.Since), strings.TrimSpace(o.Before)
	return o
}

// Effective is a mailbox's options over the project's: each of the
// mailbox's fields that is set replaces the project's (a list as a
// whole); the subject opt-in is the project's.
func Effective(project, own Options) Options {
	e := project
	if len(own.Include) > 0 {
		e.Include = own.Include
	}
	if len(own.Exclude) > 0 {
		e.Exclude = own.Exclude
	}
	if len(own.Mappings) > 0 {
		e.Mappings = own.Mappings
	}
	if own.Since != "" {
		e.Since = own.Since
	}
	if own.Before != "" {
		e.Before = own.Before
	}
	return e
}

func (o Options) empty() bool {
	return len(o.Include) == 0 && len(o.Exclude) == 0 && len(o.Mappings) == 0 && o.Since == "" && o.Before == ""
}

// SetProjectOptions replaces a project's pass options. It is refused
// while a pass runs, since its workers already use the old ones.
func (s *Service) SetProjectOptions(ctx context.Context, ownerID, projectID string, o Options) (Project, error) {
	o = cleanOptions(o)
	if err := validateOptions(o); err != nil {
		return Project{}, err
	}
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return Project{}, err
	}
	b, _ := json.Marshal(o)
	if err := s.st.SetProjectOptions(ctx, projectID, string(b)); errors.Is(err, store.ErrBusy) {
		return Project{}, fmt.Errorf("%w: a pass is running; stop it or wait for it to end before changing the options", ErrConflict)
	} else if err != nil {
		return Project{}, notFound(err)
	}
	return s.Project(ctx, ownerID, projectID)
}

// MailboxOptions are one mailbox's options: its own (what it overrides)
// and the effective ones its passes use.
type MailboxOptions struct {
	MailboxID string  `json:"mailbox_id"`
	Own       Options `json:"own"`
	Effective Options `json:"effective"`
}

// MailboxOptions reads a mailbox's options.
func (s *Service) MailboxOptions(ctx context.Context, ownerID, projectID, mailboxID string) (MailboxOptions, error) {
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return MailboxOptions{}, err
	}
	if _, err := s.Mailbox(ctx, ownerID, projectID, mailboxID); err != nil {
		return MailboxOptions{}, err
	}
	raw, err := s.st.MailboxOptions(ctx, mailboxID)
	if err != nil {
		return MailboxOptions{}, err
	}
	out := MailboxOptions{MailboxID: mailboxID}
	if raw != "" {
		_ = json.Unmarshal([]byte(raw), &out.Own)
	}
	out.Effective = Effective(p.Options, out.Own)
	return out, nil
}

// MailboxOptionsOf gives the own options of a project's mailboxes that
// override any, by mailbox id (for the mailbox list).
func (s *Service) MailboxOptionsOf(ctx context.Context, ownerID, projectID string) (map[string]Options, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	raw, err := s.st.MailboxOptionsOf(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := map[string]Options{}
	for id, r := range raw {
		var o Options
		if json.Unmarshal([]byte(r), &o) == nil {
			out[id] = o
		}
	}
	return out, nil
}

// SetMailboxOptions stores what a mailbox overrides; empty options
// remove the override, so that the project's apply again.
func (s *Service) SetMailboxOptions(ctx context.Context, ownerID, projectID, mailboxID string, own Options) (MailboxOptions, error) {
	own = cleanOptions(own)
	own.LogSubjects = false // the project's choice
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return MailboxOptions{}, err
	}
	cur, err := s.MailboxOptions(ctx, ownerID, projectID, mailboxID)
	if err != nil {
		return cur, err
	}
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return cur, err
	}
	if err := validateOptions(Effective(p.Options, own)); err != nil {
		return cur, err
	}
	raw := ""
	if !own.empty() {
		b, _ := json.Marshal(own)
		raw = string(b)
	}
	if err := s.st.SetMailboxOptions(ctx, mailboxID, raw, now()); errors.Is(err, store.ErrBusy) {
		return cur, fmt.Errorf("%w: a pass is working on this mailbox; stop it or wait for it to end before changing its options", ErrConflict)
	} else if err != nil {
		return cur, err
	}
	return s.MailboxOptions(ctx, ownerID, projectID, mailboxID)
}

// applyMailboxOptions puts a mailbox's override over the project's
// options in w, for the engine.
func (s *Service) applyMailboxOptions(ctx context.Context, w *Work) error {
	raw, err := s.st.MailboxOptions(ctx, w.MailboxID)
	if err != nil || raw == "" {
		return err
	}
	var own Options
	if err := json.Unmarshal([]byte(raw), &own); err != nil {
		return fmt.Errorf("the stored options of mailbox %s cannot be read (%v); set them again on its page", w.MailboxID, err)
	}
	w.Project.Options = Effective(w.Project.Options, own)
	return nil
}

// PlanPreviewRow is one source folder of a preview: where a pass would
// put it, or that a filter leaves it out.
type PlanPreviewRow struct {
	Source      string `json:"source"`
	Destination string `json:"destination,omitempty"`
	// Action is "copy" (into an existing folder), "create" (the folder
	// is created) or "excluded" (an include or exclude rule leaves it
	// out; its messages count as skipped by a filter).
	Action string `json:"action"`
	// Why is the engine's reason: "mapping rule", "special use \Sent",
	// "same path", "recorded by an earlier pass", "exclude rule".
	Why string `json:"why,omitempty"`
}

// PlanPreview is a mailbox's folder plan before a pass runs.
type PlanPreview struct {
	MailboxID string           `json:"mailbox_id"`
	Options   Options          `json:"options"`
	Folders   []PlanPreviewRow `json:"folders"`
}

// Planner reads a mailbox's folder plan without copying anything (the
// workers' runner, which opens both servers through the connector
// registry). w.Pass is a trial that is not stored.
type Planner func(ctx context.Context, w Work) ([]PlanPreviewRow, error)

// SetPlanner connects the preview of folder plans.
func (s *Service) SetPlanner(p Planner) { s.planner = p }

// PreviewPlan connects to the mailbox's source and destination and shows
// where each source folder would go with the mailbox's effective
// options. Nothing is copied or recorded.
func (s *Service) PreviewPlan(ctx context.Context, ownerID, projectID, mailboxID string) (PlanPreview, error) {
	if s.planner == nil {
		return PlanPreview{}, errors.New("the folder plan preview is not available in this process")
	}
	opts, err := s.MailboxOptions(ctx, ownerID, projectID, mailboxID)
	if err != nil {
		return PlanPreview{}, err
	}
	r, err := s.st.MailboxWork(ctx, projectID, mailboxID)
	if err != nil {
		return PlanPreview{}, notFound(err)
	}
	if r.SourceSecret == "" || r.DestSecret == "" {
		return PlanPreview{}, inputErr("mailbox_id", "this mailbox has no stored passwords yet; enter them (or ask its user) before previewing its folders")
	}
	w := Work{Pass: Pass{Kind: PassTrial, ProjectID: projectID}, Project: s.fromProjectRow(r.Project), MailboxID: mailboxID,
		SourceLogin: r.SourceLogin, DestLogin: r.DestLogin}
	w.Project.Options = opts.Effective
	preset, ok := s.presets[w.Project.DestinationPreset]
	if !ok {
		return PlanPreview{}, fmt.Errorf("destination preset %q is no longer configured", w.Project.DestinationPreset)
	}
	w.Destination = preset
	// The secrets as LoadWork opens them: a password, or the project's
	// admin credentials for a side that uses them (Microsoft 365).
	kinds, err := s.sideKinds(ctx, projectID)
	if err != nil {
		return PlanPreview{}, err
	}
	for _, sd := range []struct {
		side   Side
		sealed string
		pass   *string
		admin  **AdminCredentials
	}{{SideSource, r.SourceSecret, &w.SourcePassword, &w.SourceAdmin}, {SideDestination, r.DestSecret, &w.DestPassword, &w.DestAdmin}} {
		if kinds[sd.side] == kindM365Delegated {
			if *sd.admin, err = s.signedIn(ctx, projectID, mailboxID, sd.side, sd.sealed); err != nil {
				return PlanPreview{}, err
			}
			continue
		}
		if sd.sealed == adminMarker {
			if *sd.admin, err = s.admin(ctx, projectID, sd.side); err != nil {
				return PlanPreview{}, err
			}
			continue
		}
		if *sd.pass, err = s.open(mailboxID, string(sd.side), sd.sealed); err != nil {
			return PlanPreview{}, err
		}
	}
	rows, err := s.planner(ctx, w)
	if err != nil {
		return PlanPreview{}, err
	}
	return PlanPreview{MailboxID: mailboxID, Options: opts.Effective, Folders: rows}, nil
}
