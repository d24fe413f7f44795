package service

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// AdminLogin is an account that acts on every mailbox of one side of a
// project: for Exchange (EWS), an account with the ApplicationImpersonation
// role (MigrationWiz's recommended way, which also spreads Exchange's
// throttling budgets). Mailbox rows of that side then need only the email
// address: the admin logs in and acts on that mailbox.
type AdminLogin struct {
	Login    string `json:"login"`
	Password string `json:"password,omitempty"` // input only; never returned
}

// adminMarker is stored as a row's secret when its side uses the
// project's admin login: it keeps "has passwords" true until the project
// is finished (which blanks it as any password) and is never opened.
const adminMarker = "@project-admin"

// supportsAdmin reports whether an endpoint type can act on other
// mailboxes with one admin login (Credentials.Mailbox): EWS only.
func supportsAdmin(typ string) bool { return typ == "exchange" }

func (a *AdminLogin) clean(field, typ string) error {
	if a == nil {
		return nil
	}
	a.Login = strings.TrimSpace(a.Login)
	if !supportsAdmin(typ) {
		return inputErr(field, "an admin login that acts on every mailbox works with Exchange (OWA address) only; enter each mailbox's own login and password instead")
	}
	if a.Login == "" {
		return inputErr(field+".login", "enter the admin account's login (DOMAIN\\user, its user principal name or email address)")
	}
	if a.Password == "" {
		return inputErr(field+".password", "enter the admin account's password")
	}
	return nil
}

func adminAD(projectID string, side Side) []byte {
	return []byte("project:" + projectID + ":" + string(side) + "-admin")
}

// saveAdmin stores (or replaces) a side's admin login, its password sealed.
func (s *Service) saveAdmin(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, projectID string, side Side, a *AdminLogin) error {
	if a == nil {
		return nil
	}
	b, err := s.sealer.Seal([]byte(a.Password), adminAD(projectID, side))
	if err != nil {
		return fmt.Errorf("encrypt admin password: %w", err)
	}
	if _, err := ex.ExecContext(ctx, `DELETE FROM project_admins WHERE project_id = $1 AND side = $2`, projectID, string(side)); err != nil {
		return err
	}
	_, err = ex.ExecContext(ctx, `INSERT INTO project_admins (project_id, side, login, secret) VALUES ($1, $2, $3, $4)`,
		projectID, string(side), a.Login, base64.StdEncoding.EncodeToString(b))
	return err
}

// adminLogins reads a project's admin logins (without passwords) into p.
func (s *Service) adminLogins(ctx context.Context, p *Project) error {
	rows, err := s.db.QueryContext(ctx, `SELECT side, login FROM project_admins WHERE project_id = $1`, p.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var side, login string
		if err := rows.Scan(&side, &login); err != nil {
			return err
		}
		switch Side(side) {
		case SideSource:
			p.SourceAdmin = login
		case SideDestination:
			p.DestinationAdmin = login
		}
	}
	return rows.Err()
}

// admin reads a side's admin login and password; ok is false when the
// project has none for that side.
func (s *Service) admin(ctx context.Context, projectID string, side Side) (login, password string, ok bool, err error) {
	var sealed string
	err = s.db.QueryRowContext(ctx, `SELECT login, secret FROM project_admins WHERE project_id = $1 AND side = $2`,
		projectID, string(side)).Scan(&login, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if sealed == "" {
		return "", "", false, fmt.Errorf("%w (the %s admin password was erased when the project finished)", ErrSecretKey, side)
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err == nil {
		var p []byte
		if p, err = s.sealer.Open(b, adminAD(projectID, side)); err == nil {
			return login, string(p), true, nil
		}
	}
	return "", "", false, fmt.Errorf("%w (%s admin password: %v)", ErrSecretKey, side, err)
}
