package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Operators (issue 17): a role on the owners table, and the views that
// only an operator gets: every project, and the load on each source host.

// Roles an owner can have.
const (
	RoleUser     = "user"
	RoleOperator = "operator"
)

// SetOwnerRole gives the owner with email the role (RoleUser or
// RoleOperator). sql.ErrNoRows when there is no such owner.
func (s *Store) SetOwnerRole(ctx context.Context, email, role string) error {
	if role != RoleUser && role != RoleOperator {
		return fmt.Errorf("set role: unknown role %q", role)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE owners SET role = $1 WHERE email = $2`, role, email)
	if err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

// IsOperator reports whether the owner with this ID is an operator. An
// unknown ID is not one.
func (s *Store) IsOperator(ctx context.Context, ownerID string) (bool, error) {
	var role string
	err := s.db.QueryRowContext(ctx, `SELECT role FROM owners WHERE id = $1`, ownerID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read role: %w", err)
	}
	return role == RoleOperator, nil
}

// ProjectOwnerFor returns the owner of a project when viewer may look at
// it as an operator: viewer is an operator and the project exists.
// sql.ErrNoRows otherwise.
func (s *Store) ProjectOwnerFor(ctx context.Context, viewerID, projectID string) (string, error) {
	var owner string
	err := s.db.QueryRowContext(ctx, `SELECT p.owner_id FROM projects p JOIN owners v ON v.id = $1 AND v.role = 'operator'
		WHERE p.id = $2`, viewerID, projectID).Scan(&owner)
	return owner, err
}

// ProjectSummary is one line of the operator's list of every project.
type ProjectSummary struct {
	ID, Name, OwnerEmail, SourceHost, State string
	SourcePort                              int
	CreatedAt                               int64
	// Mailboxes counts the project's mailboxes by status.
	Mailboxes map[string]int
}

// AllProjects lists every project with its owner's address and mailbox
// counts, newest first: two queries whatever the number of projects.
func (s *Store) AllProjects(ctx context.Context) ([]ProjectSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.id, p.name, o.email, p.source_host, p.source_port, p.state, p.created_at
		FROM projects p JOIN owners o ON o.id = p.owner_id ORDER BY p.created_at DESC, p.id`)
	if err != nil {
		return nil, fmt.Errorf("list all projects: %w", err)
	}
	var out []ProjectSummary
	at := map[string]int{}
	for rows.Next() {
		var p ProjectSummary
		if err := rows.Scan(&p.ID, &p.Name, &p.OwnerEmail, &p.SourceHost, &p.SourcePort, &p.State, &p.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list all projects: %w", err)
		}
		p.Mailboxes = map[string]int{}
		at[p.ID] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list all projects: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT project_id, status, COUNT(*) FROM mailboxes GROUP BY project_id, status`)
	if err != nil {
		return nil, fmt.Errorf("count mailboxes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return nil, fmt.Errorf("count mailboxes: %w", err)
		}
		if i, ok := at[id]; ok {
			out[i].Mailboxes[st] = n
		}
	}
	return out, rows.Err()
}

// HostLoad is the work on one source server across every project.
type HostLoad struct {
	Host string
	// Queued and Running count mailboxes waiting for a worker and being
	// worked on; Projects the projects with any of them.
	Queued, Running, Projects int
	// Connections counts the per-host connection leases held now
	// (resources "host:<host>:<n>", taken by the workers).
	Connections int
}

// HostLoads sums the queued and running mailboxes per source host and
// the connection leases held on it at time now, busiest host first.
func (s *Store) HostLoads(ctx context.Context, now time.Time) ([]HostLoad, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT LOWER(p.source_host),
			SUM(CASE WHEN m.status = 'queued' THEN 1 ELSE 0 END), SUM(CASE WHEN m.status = 'queued' THEN 0 ELSE 1 END),
			COUNT(DISTINCT p.id)
		FROM mailboxes m JOIN projects p ON p.id = m.project_id
		WHERE m.status IN ('queued', 'verifying', 'migrating') GROUP BY LOWER(p.source_host)`)
	if err != nil {
		return nil, fmt.Errorf("host load: %w", err)
	}
	byHost := map[string]*HostLoad{}
	get := func(h string) *HostLoad {
		if byHost[h] == nil {
			byHost[h] = &HostLoad{Host: h}
		}
		return byHost[h]
	}
	for rows.Next() {
		var host string
		var queued, running, projects int
		if err := rows.Scan(&host, &queued, &running, &projects); err != nil {
			rows.Close()
			return nil, fmt.Errorf("host load: %w", err)
		}
		l := get(host)
		l.Queued, l.Running, l.Projects = queued, running, projects
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("host load: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT resource FROM leases WHERE resource LIKE 'host:%' AND expires_at > $1`, now.Unix())
	if err != nil {
		return nil, fmt.Errorf("host leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var res string
		if err := rows.Scan(&res); err != nil {
			return nil, fmt.Errorf("host leases: %w", err)
		}
		// host:<host>:<slot>; the host may hold colons (IPv6).
		h := strings.TrimPrefix(res, "host:")
		if i := strings.LastIndexByte(h, ':'); i > 0 {
			h = h[:i]
		}
		get(h).Connections++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("host leases: %w", err)
	}
	out := make([]HostLoad, 0, len(byHost))
	for _, l := range byHost {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Running+a.Connections != b.Running+b.Connections {
			return a.Running+a.Connections > b.Running+b.Connections
		}
		if a.Queued != b.Queued {
			return a.Queued > b.Queued
		}
		return a.Host < b.Host
	})
	return out, nil
}
