package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/internal/store"
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
func (s *Service) saveAdmin(ctx context.Context, projectID string, side Side, a *AdminLogin) error {
	if a == nil {
		return nil
	}
	b, err := s.sealer.Seal([]byte(a.Password), adminAD(projectID, side))
	if err != nil {
		return fmt.Errorf("encrypt admin password: %w", err)
	}
	return s.st.SaveProjectAdmin(ctx, projectID, store.ProjectAdmin{Side: string(side), Login: a.Login,
		Secret: base64.StdEncoding.EncodeToString(b)})
}

// adminLogins reads a project's admin logins (without passwords) into p.
func (s *Service) adminLogins(ctx context.Context, p *Project) error {
	logins, err := s.st.ProjectAdminLogins(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("read project: %w", err)
	}
	p.SourceAdmin, p.DestinationAdmin = logins[string(SideSource)], logins[string(SideDestination)]
	return nil
}

// admin reads a side's admin login and password; ok is false when the
// project has none for that side.
func (s *Service) admin(ctx context.Context, projectID string, side Side) (login, password string, ok bool, err error) {
	a, err := s.st.ProjectAdmin(ctx, projectID, string(side))
	if errors.Is(err, store.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if a.Secret == "" {
		return "", "", false, fmt.Errorf("%w (the %s admin password was erased when the project finished)", ErrSecretKey, side)
	}
	b, err := base64.StdEncoding.DecodeString(a.Secret)
	if err == nil {
		var p []byte
		if p, err = s.sealer.Open(b, adminAD(projectID, side)); err == nil {
			return a.Login, string(p), true, nil
		}
	}
	return "", "", false, fmt.Errorf("%w (%s admin password: %v)", ErrSecretKey, side, err)
}
