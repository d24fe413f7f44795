package store

import (
	"context"
	"fmt"
)

// Credential is one side's project-wide admin credentials: a Microsoft 365
// app registration (Kind "m365-app": Tenant, Login the client id, Secret
// the sealed client secret). Secret is sealed by the service; the store
// never sees it in clear.
type Credential struct {
	Side, Kind, Tenant, Login, Secret string
}

func (s *Store) putCredential(ctx context.Context, q querier, projectID string, c Credential) error {
	if _, err := q.exec(ctx, `DELETE FROM project_credentials WHERE project_id = $1 AND side = $2`, projectID, c.Side); err != nil {
		return fmt.Errorf("store %s credentials: %w", c.Side, err)
	}
	if _, err := q.exec(ctx, `INSERT INTO project_credentials (project_id, side, kind, tenant, login, secret) VALUES ($1, $2, $3, $4, $5, $6)`,
		projectID, c.Side, c.Kind, c.Tenant, c.Login, c.Secret); err != nil {
		return fmt.Errorf("store %s credentials: %w", c.Side, err)
	}
	return nil
}

// CreateProjectWith stores a new project with its sides' credentials, all
// or nothing.
func (s *Store) CreateProjectWith(ctx context.Context, p Project, creds []Credential) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := createProject(ctx, tx.q, p); err != nil {
			return err
		}
		for _, c := range creds {
			if err := s.putCredential(ctx, tx.q, p.ID, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetCredential replaces a side's credentials (a corrected client
// secret); ErrBusy while a pass works on one of the project's mailboxes,
// whose workers read them.
func (s *Store) SetCredential(ctx context.Context, projectID string, c Credential) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `project_id = $1`, projectID); err != nil {
			return err
		}
		return s.putCredential(ctx, tx.q, projectID, c)
	})
}

// Credentials reads a project's credentials, sealed secrets included
// (blank once the project is finished).
func (s *Store) Credentials(ctx context.Context, projectID string) ([]Credential, error) {
	rs, err := s.q().query(ctx, `SELECT side, kind, tenant, login, secret FROM project_credentials WHERE project_id = $1 ORDER BY side`, projectID)
	if err != nil {
		return nil, fmt.Errorf("read project credentials: %w", err)
	}
	defer rs.Close()
	var out []Credential
	for rs.Next() {
		var c Credential
		if err := rs.Scan(&c.Side, &c.Kind, &c.Tenant, &c.Login, &c.Secret); err != nil {
			return nil, fmt.Errorf("read project credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rs.Err()
}
