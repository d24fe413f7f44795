package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
)

func validateRules(o Options) error {
	if _, err := migrate.ParseRules(o.Include, o.Exclude, o.Mappings); err != nil {
		return inputErr("options", "%v", err)
	}
	return nil
}

func cleanEmail(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || !strings.Contains(v, "@") {
		// The value is not quoted: a password typed into the wrong
		// field would be shown back, and logged by whoever logs errors.
		what := map[string]string{"source_email": "the source email", "destination_email": "the destination email"}[field]
		if what == "" {
			what = "this"
		}
		return "", inputErr(field, "%s is not a valid email address; it looks like name@company.com", what)
	}
	return strings.ToLower(v), nil
}

// sideAuth says how each side of a project logs in: with the project's
// admin credentials (true: rows carry addresses only) or with each
// mailbox's password.
// The kinds say which credentials ("m365-app", "ews-impersonation").
type sideAuth struct {
	srcAdmin, dstAdmin bool
	srcKind, dstKind   string
	// askUsers: a CSV row may have no passwords; its user enters them
	// (end-user links).
	askUsers bool
}

// authOf needs p's admin credentials attached (attachAdmins): an
// Exchange side uses an admin login only when the project has one.
func (s *Service) authOf(p Project) sideAuth {
	kind := func(typ string, a *AdminInfo) string {
		if a != nil {
			return a.Kind
		}
		if usesAdmin(typ) {
			return adminKind(typ)
		}
		return ""
	}
	a := sideAuth{srcKind: kind(p.Source.Type, p.SourceAdmin), dstKind: kind(s.presets[p.DestinationPreset].Type, p.DestinationAdmin)}
	a.srcAdmin, a.dstAdmin = a.srcKind != "", a.dstKind != ""
	return a
}

// adminHow says, for messages, how a side with admin credentials is
// reached.
func adminHow(kind string) string {
	switch kind {
	case kindEWS:
		return "Exchange, reached with the project's admin login (impersonation)"
	case kindM365Delegated:
		return "Microsoft 365, where each user signs in with Microsoft through their link"
	}
	return "Microsoft 365, reached with the project's app registration"
}

// validate checks one mailbox pair as entered; passwords may be empty
// only when updating (then the stored one is kept), or for a side that
// uses the project's admin credentials, where none may be given.
func (in *MailboxInput) validate(requirePasswords bool, auth sideAuth) error {
	var err error
	if in.SourceEmail, err = cleanEmail("source_email", in.SourceEmail); err != nil {
		return err
	}
	if in.DestEmail, err = cleanEmail("destination_email", in.DestEmail); err != nil {
		return err
	}
	in.SourceLogin, in.DestLogin = strings.TrimSpace(in.SourceLogin), strings.TrimSpace(in.DestLogin)
	if in.SourceLogin == "" {
		in.SourceLogin = in.SourceEmail
	}
	if in.DestLogin == "" {
		in.DestLogin = in.DestEmail
	}
	for _, sd := range []struct {
		admin             bool
		kind              string
		field, which      string
		email, login, pwd *string
	}{{auth.srcAdmin, auth.srcKind, "source", "source", &in.SourceEmail, &in.SourceLogin, &in.SourcePassword},
		{auth.dstAdmin, auth.dstKind, "destination", "destination", &in.DestEmail, &in.DestLogin, &in.DestPassword}} {
		switch {
		case sd.admin && *sd.pwd != "":
			return inputErr(sd.field+"_password", "the %s is %s: leave the password empty (the address is enough)", sd.which, adminHow(sd.kind))
		case sd.admin && *sd.login != *sd.email:
			return inputErr(sd.field+"_login", "the %s is %s: the mailbox is named by its email address, so leave the login empty", sd.which, adminHow(sd.kind))
		case !sd.admin && requirePasswords && *sd.pwd == "":
			return inputErr(sd.field+"_password", "enter the password of the %s mailbox", sd.which)
		}
	}
	return nil
}

// sealFor seals a side's password, or marks a side that uses the
// project's admin credentials (kind). A side whose users sign in
// themselves (m365-delegated) has nothing yet: "" until the user signs
// in through their link.
func (s *Service) sealFor(kind, mailboxID, side, password string) (string, error) {
	switch kind {
	case "":
		return s.seal(mailboxID, side, password)
	case kindM365Delegated:
		return "", nil
	}
	return adminMarker, nil
}

func (s *Service) seal(mailboxID, side, password string) (string, error) {
	if password == "" {
		return "", nil
	}
	b, err := s.sealer.Seal([]byte(password), []byte("mailbox:"+mailboxID+":"+side))
	if err != nil {
		return "", fmt.Errorf("encrypt password: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (s *Service) open(mailboxID, side, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("%w (%s password: not a sealed value)", ErrSecretKey, side)
	}
	p, err := s.sealer.Open(b, []byte("mailbox:"+mailboxID+":"+side))
	if err != nil {
		return "", fmt.Errorf("%w (%s password: %v)", ErrSecretKey, side, err)
	}
	return string(p), nil
}

// ErrSecretKey means a stored password cannot be decrypted: the server's
// secret key is not the one it was sealed with. No retry can fix that;
// only new passwords or the old key can.
var ErrSecretKey = errors.New("the server's secret key changed: the stored passwords cannot be read; re-enter the passwords")

// UnreadableSecrets counts the mailboxes whose stored passwords the
// current secret key does not open, for a warning at start-up.
func (s *Service) UnreadableSecrets(ctx context.Context) (int, error) {
	all, err := s.st.Secrets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range all {
		if x.Source == adminMarker {
			x.Source = ""
		}
		if x.Dest == adminMarker {
			x.Dest = ""
		}
		_, e1 := s.open(x.MailboxID, "source", x.Source)
		_, e2 := s.open(x.MailboxID, "destination", x.Dest)
		if errors.Is(e1, ErrSecretKey) || errors.Is(e2, ErrSecretKey) {
			n++
		}
	}
	return n, nil
}

// AddMailboxes adds pairs to a project, all or none: a duplicate of an
// existing pair (or within the input) refuses the whole request.
func (s *Service) AddMailboxes(ctx context.Context, ownerID, projectID string, ins []MailboxInput) ([]Mailbox, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	auth := s.authOf(p)
	seen := map[string]int{}
	for i := range ins {
		if err := ins[i].validate(!ins[i].AskUser, auth); err != nil {
			if len(ins) > 1 {
				var ie *InputError
				if errors.As(err, &ie) {
					ie.Message = fmt.Sprintf("mailbox %d: %s", i+1, ie.Message)
				}
			}
			return nil, err
		}
		key := ins[i].SourceEmail + "\x00" + ins[i].DestEmail
		if j, dup := seen[key]; dup {
			return nil, &InputError{Field: "mailboxes", Message: fmt.Sprintf("mailbox %d repeats mailbox %d (%s → %s)", i+1, j+1, ins[i].SourceEmail, ins[i].DestEmail)}
		}
		seen[key] = i
	}
	var out []Mailbox
	rows := make([]store.NewMailbox, len(ins))
	t := now()
	for i, in := range ins {
		id := newID()
		srcSecret, err := s.sealFor(auth.srcKind, id, "source", in.SourcePassword)
		if err != nil {
			return nil, err
		}
		dstSecret, err := s.sealFor(auth.dstKind, id, "destination", in.DestPassword)
		if err != nil {
			return nil, err
		}
		rows[i] = store.NewMailbox{ID: id, SourceEmail: in.SourceEmail, SourceLogin: in.SourceLogin, SourceSecret: srcSecret,
			DestEmail: in.DestEmail, DestLogin: in.DestLogin, DestSecret: dstSecret, Flags: in.Flags}
		out = append(out, Mailbox{ID: id, ProjectID: projectID, SourceEmail: in.SourceEmail, SourceLogin: in.SourceLogin,
			DestEmail: in.DestEmail, DestLogin: in.DestLogin, Flags: in.Flags, Status: StatusNotStarted,
			StatusLabel: StatusNotStarted.Label(), StatusAt: time.Unix(t, 0), HasPasswords: srcSecret != "" && dstSecret != ""})
	}
	err = s.st.AddMailboxes(ctx, projectID, rows, string(StatusNotStarted), t)
	var dup *store.DuplicateError
	if errors.As(err, &dup) {
		in := ins[dup.Index]
		return nil, fmt.Errorf("%w: the pair %s → %s is already in this project; edit it instead of adding it again", ErrConflict, in.SourceEmail, in.DestEmail)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ImportCSV parses a MigrationWiz-style CSV and adds its pairs, all or
// none; row problems come back as one InputError with every row listed.
func (s *Service) ImportCSV(ctx context.Context, ownerID, projectID string, body []byte) ([]Mailbox, error) {
	return s.ImportCSVFor(ctx, ownerID, projectID, body, false)
}

// ImportCSVFor is ImportCSV; with askUsers, rows with addresses only are
// mailboxes whose users will enter their own passwords (end-user links).
func (s *Service) ImportCSVFor(ctx context.Context, ownerID, projectID string, body []byte, askUsers bool) ([]Mailbox, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	auth := s.authOf(p)
	auth.askUsers = askUsers
	ins, rowErrs, err := parseMailboxCSV(strings.NewReader(string(body)), auth)
	if err != nil {
		return nil, &InputError{Field: "csv", Message: err.Error()}
	}
	if len(rowErrs) > 0 {
		return nil, &InputError{Field: "csv", Message: fmt.Sprintf("%d problem(s) in the file; nothing was imported", len(rowErrs)), Rows: rowErrs}
	}
	return s.AddMailboxes(ctx, ownerID, projectID, ins)
}

func fromMailbox(r store.Mailbox) Mailbox {
	m := Mailbox{ID: r.ID, ProjectID: r.ProjectID, SourceEmail: r.SourceEmail, SourceLogin: r.SourceLogin, DestEmail: r.DestEmail,
		DestLogin: r.DestLogin, Flags: r.Flags, Status: Status(r.Status), StatusAt: time.Unix(r.StatusAt, 0), MoreInfo: r.LastError,
		HasPasswords: r.HasPasswords}
	m.StatusLabel = m.Status.Label()
	if r.ErrorClass != "" {
		sol := SolveFor(ErrorClass(r.ErrorClass), Side(r.ErrorSide))
		m.SolveIssue = &sol
	}
	if r.LastPass != nil {
		lp := fromMailboxPass(*r.LastPass)
		m.LastPass = &lp
		m.livePause()
	}
	return m
}

// Mailboxes lists a project's pairs with their last pass.
func (s *Service) Mailboxes(ctx context.Context, ownerID, projectID string) ([]Mailbox, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	rs, err := s.st.Mailboxes(ctx, projectID)
	if err != nil {
		return nil, err
	}
	var out []Mailbox
	for _, r := range rs {
		out = append(out, fromMailbox(r))
	}
	return out, nil
}

// Mailbox returns one pair with its status history.
func (s *Service) Mailbox(ctx context.Context, ownerID, projectID, mailboxID string) (Mailbox, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return Mailbox{}, err
	}
	r, err := s.st.Mailbox(ctx, projectID, mailboxID)
	if err != nil {
		return Mailbox{}, notFound(err)
	}
	m := fromMailbox(r)
	events, err := s.st.MailboxEvents(ctx, mailboxID)
	if err != nil {
		return m, err
	}
	for _, e := range events {
		m.History = append(m.History, StatusEvent{At: time.Unix(e.At, 0), Status: Status(e.Status), Detail: e.Detail})
	}
	return m, nil
}

// UpdateMailbox changes logins or passwords (e.g. after a failed trial).
// Empty passwords keep the stored ones.
func (s *Service) UpdateMailbox(ctx context.Context, ownerID, projectID, mailboxID string, in MailboxInput) (Mailbox, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return Mailbox{}, err
	}
	auth := s.authOf(p)
	cur, err := s.Mailbox(ctx, ownerID, projectID, mailboxID)
	if err != nil {
		return cur, err
	}
	if in.SourceEmail == "" {
		in.SourceEmail = cur.SourceEmail
	}
	if in.DestEmail == "" {
		in.DestEmail = cur.DestEmail
	}
	// Fields left out keep their values: fixing a password must not
	// reset a login name to the email address.
	if in.SourceLogin == "" && (!auth.srcAdmin || in.SourceEmail == cur.SourceEmail) {
		in.SourceLogin = cur.SourceLogin
	}
	if in.DestLogin == "" && (!auth.dstAdmin || in.DestEmail == cur.DestEmail) {
		in.DestLogin = cur.DestLogin
	}
	if in.Flags == "" {
		in.Flags = cur.Flags
	}
	if err := in.validate(false, auth); err != nil {
		return cur, err
	}
	if cur.Status == StatusQueued || cur.Status == StatusVerifying || cur.Status == StatusMigrating {
		return cur, fmt.Errorf("%w: the mailbox is being worked on; stop the pass first", ErrConflict)
	}
	srcSecret, err := s.seal(mailboxID, "source", in.SourcePassword)
	if err != nil {
		return cur, err
	}
	dstSecret, err := s.seal(mailboxID, "destination", in.DestPassword)
	if err != nil {
		return cur, err
	}
	// A user's sign-in with Microsoft is for their own address only: a
	// new address needs its own user's sign-in (ask them).
	err = s.st.UpdateMailbox(ctx, mailboxID, store.MailboxUpdate{SourceEmail: in.SourceEmail, SourceLogin: in.SourceLogin,
		DestEmail: in.DestEmail, DestLogin: in.DestLogin, Flags: in.Flags, SourceSecret: srcSecret, DestSecret: dstSecret,
		ClearSourceSecret: auth.srcKind == kindM365Delegated && in.SourceEmail != cur.SourceEmail,
		ClearDestSecret:   auth.dstKind == kindM365Delegated && in.DestEmail != cur.DestEmail})
	var dup *store.DuplicateError
	switch {
	case errors.As(err, &dup):
		return cur, fmt.Errorf("%w: the pair %s → %s is already in this project", ErrConflict, in.SourceEmail, in.DestEmail)
	case errors.Is(err, store.ErrBusy):
		return cur, fmt.Errorf("%w: the mailbox is being worked on; stop the pass first", ErrConflict)
	case err != nil:
		return cur, err
	}
	return s.Mailbox(ctx, ownerID, projectID, mailboxID)
}

// DeleteMailbox removes a pair that is not being worked on.
func (s *Service) DeleteMailbox(ctx context.Context, ownerID, projectID, mailboxID string) error {
	cur, err := s.Mailbox(ctx, ownerID, projectID, mailboxID)
	if err != nil {
		return err
	}
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return err
	}
	if cur.Status == StatusQueued || cur.Status == StatusVerifying || cur.Status == StatusMigrating {
		return fmt.Errorf("%w: the mailbox is being worked on; stop the pass first", ErrConflict)
	}
	err = s.st.DeleteMailbox(ctx, mailboxID)
	if errors.Is(err, store.ErrBusy) {
		return fmt.Errorf("%w: the mailbox is being worked on; stop the pass first", ErrConflict)
	}
	return err
}

// Failures lists the failed items of a mailbox's last copying pass.
func (s *Service) Failures(ctx context.Context, ownerID, projectID, mailboxID string) ([]FailedItem, error) {
	if _, err := s.Mailbox(ctx, ownerID, projectID, mailboxID); err != nil {
		return nil, err
	}
	shown, err := s.subjectsShown(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	rs, err := s.st.Failures(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	out := []FailedItem{}
	for _, f := range rs {
		out = append(out, FailedItem{PassID: f.PassID, Folder: f.Folder, ID: f.ID, UID: f.UID, Size: f.Size, Messages: f.Messages, Kind: f.Kind,
			Reason: f.Reason, Subject: shownSubject(shown, f.Subject)})
	}
	return out, nil
}

// subjectsShown reports whether a project shows the subjects of failed
// items (Options.LogSubjects). Subjects can be private, so they are
// recorded only while the option is on, and shown only while it stays
// on: turning it off hides those recorded earlier too, everywhere (the
// portal, its CSV and the API).
func (s *Service) subjectsShown(ctx context.Context, ownerID, projectID string) (bool, error) {
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return false, err
	}
	return p.Options.LogSubjects, nil
}

func shownSubject(shown bool, subject string) string {
	if !shown {
		return ""
	}
	return subject
}
