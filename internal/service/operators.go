package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// Operators (issue 17, item 6). An operator is a user with the role
// "operator" (mailferry user add --operator). Every read of a project
// (Project, Mailboxes, Mailbox, Pass, Passes, Failures) lets an operator
// through to any project, and StopPass with it; everything that changes
// a project stays with its owner (projectForWrite, DeleteProject).
// Ordinary users see only their own projects: another owner's is
// ErrNotFound, exactly as a project that does not exist.

// ErrNotOwner means an operator tried to change a project that is not
// theirs: operators may look at every project and stop its passes, not
// change it.
var ErrNotOwner = fmt.Errorf("%w: only the owner of this migration can change it; as an operator you can view it and stop its passes", ErrConflict)

// SetOperator makes the user with email an operator (or, with false, an
// ordinary user again), creating the user if needed.
func (s *Service) SetOperator(ctx context.Context, email string, operator bool) (Owner, error) {
	o, err := s.EnsureOwner(ctx, email)
	if err != nil {
		return o, err
	}
	role := store.RoleUser
	if operator {
		role = store.RoleOperator
	}
	if err := s.st.SetOwnerRole(ctx, o.Email, role); err != nil {
		return o, fmt.Errorf("set role of %s: %w", o.Email, err)
	}
	o.Operator = operator
	return o, nil
}

// IsOperator reports whether the owner is an operator.
func (s *Service) IsOperator(ctx context.Context, ownerID string) (bool, error) {
	return s.st.IsOperator(ctx, ownerID)
}

// operatorView returns the owner of projectID when viewer is an operator
// who may look at it; ErrNotFound otherwise (also for a missing project).
func (s *Service) operatorView(ctx context.Context, viewerID, projectID string) (string, error) {
	owner, err := s.st.ProjectOwnerFor(ctx, viewerID, projectID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read project: %w", err)
	}
	return owner, nil
}

// ProjectSummary is a project as the operator's list shows it.
type ProjectSummary struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	OwnerEmail string         `json:"owner_email"`
	SourceHost string         `json:"source_host"`
	State      string         `json:"state"`
	CreatedAt  time.Time      `json:"created_at"`
	Mailboxes  map[Status]int `json:"mailboxes"`
}

// AllProjects lists every project of every user, for an operator;
// ErrNotFound for anyone else (as if the list did not exist).
func (s *Service) AllProjects(ctx context.Context, viewerID string) ([]ProjectSummary, error) {
	if ok, err := s.st.IsOperator(ctx, viewerID); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return nil, err
	}
	rows, err := s.st.AllProjects(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ProjectSummary, 0, len(rows))
	for _, r := range rows {
		p := ProjectSummary{ID: r.ID, Name: r.Name, OwnerEmail: r.OwnerEmail, SourceHost: r.SourceHost, State: r.State,
			CreatedAt: time.Unix(r.CreatedAt, 0), Mailboxes: map[Status]int{}}
		for st, n := range r.Mailboxes {
			p.Mailboxes[Status(st)] = n
		}
		out = append(out, p)
	}
	return out, nil
}

// HostLoad is the work on one source server across every project.
type HostLoad struct {
	Host string `json:"host"`
	// Queued mailboxes wait for a worker; Running ones are being
	// verified or copied; Connections counts the per-host connection
	// slots the workers hold now, out of the configured cap.
	Queued      int `json:"queued"`
	Running     int `json:"running"`
	Connections int `json:"connections"`
	Projects    int `json:"projects"`
}

// HostLoads is the load on each source host, for an operator;
// ErrNotFound for anyone else.
func (s *Service) HostLoads(ctx context.Context, viewerID string) ([]HostLoad, error) {
	if ok, err := s.st.IsOperator(ctx, viewerID); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return nil, err
	}
	rows, err := s.st.HostLoads(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]HostLoad, len(rows))
	for i, r := range rows {
		out[i] = HostLoad{Host: r.Host, Queued: r.Queued, Running: r.Running, Connections: r.Connections, Projects: r.Projects}
	}
	return out, nil
}

// ownerFrom is a stored owner as the service shows it (Operator is read
// where it matters: sessions and API tokens).
func ownerFrom(o store.Owner) Owner { return Owner{ID: o.ID, Email: o.Email} }
