package service

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/migrate"
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

// validate checks one mailbox pair as entered; passwords may be empty
// only when updating (then the stored one is kept).
//
// A side whose project has an admin login (Exchange impersonation) takes
// no login or password: the admin acts on the mailbox named by the email.
func (in *MailboxInput) validate(requirePasswords bool, srcAdmin, dstAdmin bool) error {
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
	if srcAdmin {
		in.SourceLogin, in.SourcePassword = in.SourceEmail, ""
	}
	if dstAdmin {
		in.DestLogin, in.DestPassword = in.DestEmail, ""
	}
	if requirePasswords && in.SourcePassword == "" && !srcAdmin {
		return inputErr("source_password", "enter the password of the source mailbox")
	}
	if requirePasswords && in.DestPassword == "" && !dstAdmin {
		return inputErr("destination_password", "enter the password of the destination mailbox")
	}
	return nil
}

// sealOrAdmin seals a row's password, or marks the side as using the
// project's admin login.
func (s *Service) sealOrAdmin(mailboxID, side, password string, admin bool) (string, error) {
	if admin {
		return adminMarker, nil
	}
	return s.seal(mailboxID, side, password)
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
	rows, err := s.db.QueryContext(ctx, `SELECT id, source_secret, dest_secret FROM mailboxes WHERE source_secret <> '' OR dest_secret <> ''`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, src, dst string
		if err := rows.Scan(&id, &src, &dst); err != nil {
			return n, err
		}
		var e1, e2 error
		if src != adminMarker {
			_, e1 = s.open(id, "source", src)
		}
		if dst != adminMarker {
			_, e2 = s.open(id, "destination", dst)
		}
		if errors.Is(e1, ErrSecretKey) || errors.Is(e2, ErrSecretKey) {
			n++
		}
	}
	return n, rows.Err()
}

// AddMailboxes adds pairs to a project, all or none: a duplicate of an
// existing pair (or within the input) refuses the whole request.
func (s *Service) AddMailboxes(ctx context.Context, ownerID, projectID string, ins []MailboxInput) ([]Mailbox, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	srcAdmin, dstAdmin := p.SourceAdmin != "", p.DestinationAdmin != ""
	seen := map[string]int{}
	for i := range ins {
		if err := ins[i].validate(true, srcAdmin, dstAdmin); err != nil {
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var out []Mailbox
	t := now()
	for _, in := range ins {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes WHERE project_id = $1 AND source_email = $2 AND dest_email = $3`,
			projectID, in.SourceEmail, in.DestEmail).Scan(&exists)
		if err != nil {
			return nil, err
		}
		if exists > 0 {
			return nil, fmt.Errorf("%w: the pair %s → %s is already in this project; edit it instead of adding it again", ErrConflict, in.SourceEmail, in.DestEmail)
		}
		id := newID()
		srcSecret, err := s.sealOrAdmin(id, "source", in.SourcePassword, srcAdmin)
		if err != nil {
			return nil, err
		}
		dstSecret, err := s.sealOrAdmin(id, "destination", in.DestPassword, dstAdmin)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (id, project_id, source_email, source_login, source_secret, dest_email,
				dest_login, dest_secret, flags, status, status_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			id, projectID, in.SourceEmail, in.SourceLogin, srcSecret, in.DestEmail, in.DestLogin, dstSecret, in.Flags, StatusNotStarted, t); err != nil {
			return nil, fmt.Errorf("add mailbox: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mailbox_events (mailbox_id, at, status, detail) VALUES ($1, $2, $3, 'added')`,
			id, t, StatusNotStarted); err != nil {
			return nil, err
		}
		out = append(out, Mailbox{ID: id, ProjectID: projectID, SourceEmail: in.SourceEmail, SourceLogin: in.SourceLogin,
			DestEmail: in.DestEmail, DestLogin: in.DestLogin, Flags: in.Flags, Status: StatusNotStarted,
			StatusLabel: StatusNotStarted.Label(), StatusAt: time.Unix(t, 0), HasPasswords: true})
	}
	return out, tx.Commit()
}

// ImportCSV parses a MigrationWiz-style CSV and adds its pairs, all or
// none; row problems come back as one InputError with every row listed.
func (s *Service) ImportCSV(ctx context.Context, ownerID, projectID string, body []byte) ([]Mailbox, error) {
	if _, err := s.projectForWrite(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	ins, rowErrs, err := parseMailboxCSV(strings.NewReader(string(body)), p.SourceAdmin != "", p.DestinationAdmin != "")
	if err != nil {
		return nil, &InputError{Field: "csv", Message: err.Error()}
	}
	if len(rowErrs) > 0 {
		return nil, &InputError{Field: "csv", Message: fmt.Sprintf("%d problem(s) in the file; nothing was imported", len(rowErrs)), Rows: rowErrs}
	}
	return s.AddMailboxes(ctx, ownerID, projectID, ins)
}

const mailboxCols = `id, project_id, source_email, source_login, dest_email, dest_login, flags, status, status_at, error_class, error_side,
	last_error, source_secret <> '' AND dest_secret <> ''`

func scanMailbox(row interface{ Scan(...any) error }) (Mailbox, error) {
	var m Mailbox
	var at int64
	var class, side string
	var has bool
	err := row.Scan(&m.ID, &m.ProjectID, &m.SourceEmail, &m.SourceLogin, &m.DestEmail, &m.DestLogin, &m.Flags, &m.Status, &at,
		&class, &side, &m.MoreInfo, &has)
	if err != nil {
		return m, err
	}
	m.StatusAt = time.Unix(at, 0)
	m.StatusLabel = m.Status.Label()
	m.HasPasswords = has
	if class != "" {
		sol := SolveFor(ErrorClass(class), Side(side))
		m.SolveIssue = &sol
	}
	return m, nil
}

// Mailboxes lists a project's pairs with their last pass.
func (s *Service) Mailboxes(ctx context.Context, ownerID, projectID string) ([]Mailbox, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE project_id = $1 ORDER BY created_at, source_email`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, m)
	}
	rows.Close()
	for i := range out {
		if out[i].LastPass, err = s.lastPass(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// Mailbox returns one pair with its status history.
func (s *Service) Mailbox(ctx context.Context, ownerID, projectID, mailboxID string) (Mailbox, error) {
	if _, err := s.Project(ctx, ownerID, projectID); err != nil {
		return Mailbox{}, err
	}
	m, err := scanMailbox(s.db.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE id = $1 AND project_id = $2`, mailboxID, projectID))
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, err
	}
	if m.LastPass, err = s.lastPass(ctx, m.ID); err != nil {
		return m, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT at, status, detail FROM mailbox_events WHERE mailbox_id = $1 ORDER BY at, status`, m.ID)
	if err != nil {
		return m, err
	}
	defer rows.Close()
	for rows.Next() {
		var e StatusEvent
		var at int64
		if err := rows.Scan(&at, &e.Status, &e.Detail); err != nil {
			return m, err
		}
		e.At = time.Unix(at, 0)
		m.History = append(m.History, e)
	}
	return m, rows.Err()
}

// UpdateMailbox changes logins or passwords (e.g. after a failed trial).
// Empty passwords keep the stored ones.
func (s *Service) UpdateMailbox(ctx context.Context, ownerID, projectID, mailboxID string, in MailboxInput) (Mailbox, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return Mailbox{}, err
	}
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
	if in.SourceLogin == "" {
		in.SourceLogin = cur.SourceLogin
	}
	if in.DestLogin == "" {
		in.DestLogin = cur.DestLogin
	}
	if in.Flags == "" {
		in.Flags = cur.Flags
	}
	if err := in.validate(false, p.SourceAdmin != "", p.DestinationAdmin != ""); err != nil {
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
	_, err = s.db.ExecContext(ctx, `UPDATE mailboxes SET source_email = $1, source_login = $2, dest_email = $3, dest_login = $4,
			source_secret = CASE WHEN $5 = '' THEN source_secret ELSE $5 END,
			dest_secret = CASE WHEN $6 = '' THEN dest_secret ELSE $6 END, flags = $7
		WHERE id = $8`, in.SourceEmail, in.SourceLogin, in.DestEmail, in.DestLogin, srcSecret, dstSecret, in.Flags, mailboxID)
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unique") {
			return cur, fmt.Errorf("%w: the pair %s → %s is already in this project", ErrConflict, in.SourceEmail, in.DestEmail)
		}
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	for _, q := range []string{`DELETE FROM failed_items WHERE mailbox_id = $1`, `DELETE FROM mailbox_passes WHERE mailbox_id = $1`,
		`DELETE FROM mailbox_events WHERE mailbox_id = $1`, `DELETE FROM mailboxes WHERE id = $1`} {
		if _, err := tx.ExecContext(ctx, q, mailboxID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Failures lists the failed items of a mailbox's last copying pass.
func (s *Service) Failures(ctx context.Context, ownerID, projectID, mailboxID string) ([]FailedItem, error) {
	if _, err := s.Mailbox(ctx, ownerID, projectID, mailboxID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT pass_id, folder, uid, size, kind, reason, subject, messages, item_id FROM failed_items
		WHERE mailbox_id = $1 AND pass_id = (SELECT mp.pass_id FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
			WHERE mp.mailbox_id = $1 AND p.kind NOT IN ('verify', 'trial') ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC LIMIT 1)
		ORDER BY folder, uid, item_id`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []FailedItem{}
	for rows.Next() {
		var f FailedItem
		if err := rows.Scan(&f.PassID, &f.Folder, &f.UID, &f.Size, &f.Kind, &f.Reason, &f.Subject, &f.Messages, &f.ID); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
