package store

import (
	"context"
	"fmt"
)

// ProjectAdmin is a project side's admin login (Exchange EWS
// ApplicationImpersonation, issue 12): one account that acts on every
// mailbox of that side. Secret is the sealed password, "" once the
// project is finished; never log it.
type ProjectAdmin struct {
	Side, Login, Secret string
}

// SaveProjectAdmin stores or replaces a side's admin login of a project.
func (s *Store) SaveProjectAdmin(ctx context.Context, projectID string, a ProjectAdmin) error {
	_, err := s.q().exec(ctx, `INSERT INTO project_admins (project_id, side, login, secret) VALUES ($1, $2, $3, $4)
		ON CONFLICT (project_id, side) DO UPDATE SET login = excluded.login, secret = excluded.secret`,
		projectID, a.Side, a.Login, a.Secret)
	if err != nil {
		return fmt.Errorf("save admin login: %w", err)
	}
	return nil
}

// ProjectAdminLogins reads a project's admin logins by side, without
// their secrets (for showing the project).
func (s *Store) ProjectAdminLogins(ctx context.Context, projectID string) (map[string]string, error) {
	rs, err := s.q().query(ctx, `SELECT side, login FROM project_admins WHERE project_id = $1`, projectID)
	if err != nil {
		return nil, fmt.Errorf("read admin logins: %w", err)
	}
	defer rs.Close()
	out := map[string]string{}
	for rs.Next() {
		var side, login string
		if err := rs.Scan(&side, &login); err != nil {
			return nil, fmt.Errorf("read admin logins: %w", err)
		}
		out[side] = login
	}
	return out, rs.Err()
}

// ProjectAdmin reads a side's admin login with its sealed secret;
// ErrNoRows when the project has none for that side.
func (s *Store) ProjectAdmin(ctx context.Context, projectID, side string) (ProjectAdmin, error) {
	a := ProjectAdmin{Side: side}
	err := s.q().queryRow(ctx, `SELECT login, secret FROM project_admins WHERE project_id = $1 AND side = $2`,
		projectID, side).Scan(&a.Login, &a.Secret)
	return a, err
}
