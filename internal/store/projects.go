package store

import (
	"context"
	"errors"
	"fmt"
)

// ErrBusy means a pass is working on what was to be changed or deleted.
var ErrBusy = errors.New("a pass is running")

// busyStatuses are the mailbox statuses of a pass still at work, as SQL.
const busyStatuses = `('queued', 'verifying', 'migrating')`

// Project is a migration project's row. Booleans are stored as 0/1.
type Project struct {
	ID, OwnerID, Name                      string
	SourceType, SourceHost, SourceSecurity string
	SourcePort                             int
	SourceInsecure, SourcePlaintext        bool
	DestinationPreset, Options, State      string
	CreatedAt, FinishedAt                  int64
	// Mailboxes counts the project's mailboxes by status (when read).
	Mailboxes map[string]int
}

const projectCols = `p.id, p.owner_id, p.name, p.source_type, p.source_host, p.source_port, p.source_security, p.source_insecure,
	p.source_plaintext, p.destination_preset, p.options, p.state, p.created_at, p.finished_at`

func scanProject(r row, p *Project) error {
	var ins, plain int
	if err := r.Scan(&p.ID, &p.OwnerID, &p.Name, &p.SourceType, &p.SourceHost, &p.SourcePort, &p.SourceSecurity, &ins, &plain,
		&p.DestinationPreset, &p.Options, &p.State, &p.CreatedAt, &p.FinishedAt); err != nil {
		return err
	}
	p.SourceInsecure, p.SourcePlaintext = ins != 0, plain != 0
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateProject stores a new project.
func (s *Store) CreateProject(ctx context.Context, p Project) error {
	return createProject(ctx, s.q(), p)
}

func createProject(ctx context.Context, q querier, p Project) error {
	_, err := q.exec(ctx, `INSERT INTO projects (id, owner_id, name, source_type, source_host, source_port, source_security,
			source_insecure, source_plaintext, destination_preset, options, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		p.ID, p.OwnerID, p.Name, p.SourceType, p.SourceHost, p.SourcePort, p.SourceSecurity, b2i(p.SourceInsecure),
		b2i(p.SourcePlaintext), p.DestinationPreset, p.Options, p.State, p.CreatedAt)
	if err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	return nil
}

// Project reads an owner's project with its mailbox counts; ErrNoRows
// when there is none (or it is another owner's). An empty ownerID reads
// any owner's (workers).
func (s *Store) Project(ctx context.Context, ownerID, id string) (Project, error) {
	var p Project
	q := s.q()
	err := scanProject(q.queryRow(ctx, `SELECT `+projectCols+` FROM projects p WHERE p.id = $1 AND ($2 = '' OR p.owner_id = $2)`,
		id, ownerID), &p)
	if err != nil {
		return p, err
	}
	counts, err := s.statusCounts(ctx, q, `m.project_id = $1`, id)
	p.Mailboxes = counts[id]
	if p.Mailboxes == nil {
		p.Mailboxes = map[string]int{}
	}
	return p, err
}

// Projects lists an owner's projects, newest first, with their mailbox
// counts: two queries, whatever the number of projects.
func (s *Store) Projects(ctx context.Context, ownerID string) ([]Project, error) {
	q := s.q()
	rs, err := q.query(ctx, `SELECT `+projectCols+` FROM projects p WHERE p.owner_id = $1 ORDER BY p.created_at DESC, p.id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	var out []Project
	for rs.Next() {
		var p Project
		if err := scanProject(rs, &p); err != nil {
			rs.Close()
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, p)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	counts, err := s.statusCounts(ctx, q, `m.project_id IN (SELECT id FROM projects WHERE owner_id = $1)`, ownerID)
	for i := range out {
		out[i].Mailboxes = counts[out[i].ID]
		if out[i].Mailboxes == nil {
			out[i].Mailboxes = map[string]int{}
		}
	}
	return out, err
}

// statusCounts counts mailboxes by project and status where cond holds.
func (s *Store) statusCounts(ctx context.Context, q querier, cond string, args ...any) (map[string]map[string]int, error) {
	rs, err := q.query(ctx, `SELECT m.project_id, m.status, COUNT(*) FROM mailboxes m WHERE `+cond+` GROUP BY m.project_id, m.status`, args...)
	if err != nil {
		return nil, fmt.Errorf("count mailboxes: %w", err)
	}
	defer rs.Close()
	out := map[string]map[string]int{}
	for rs.Next() {
		var project, st string
		var n int
		if err := rs.Scan(&project, &st, &n); err != nil {
			return nil, fmt.Errorf("count mailboxes: %w", err)
		}
		if out[project] == nil {
			out[project] = map[string]int{}
		}
		out[project][st] = n
	}
	return out, rs.Err()
}

// MailboxesByStatus counts every mailbox of the service by status (the
// metrics gauge, the same in every process).
func (s *Store) MailboxesByStatus(ctx context.Context) (map[string]int, error) {
	rs, err := s.q().query(ctx, `SELECT status, COUNT(*) FROM mailboxes GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string]int{}
	for rs.Next() {
		var st string
		var n int
		if err := rs.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rs.Err()
}

// UpdateProject changes an active project's name and source server. It
// is refused with ErrBusy while a pass works on one of its mailboxes.
func (s *Store) UpdateProject(ctx context.Context, p Project) error {
	n, err := s.q().exec(ctx, `UPDATE projects SET name = $1, source_type = $2, source_host = $3, source_port = $4, source_security = $5,
			source_insecure = $6, source_plaintext = $7 WHERE id = $8 AND owner_id = $9 AND state = 'active'
			AND NOT EXISTS (SELECT 1 FROM mailboxes WHERE project_id = $8 AND status IN `+busyStatuses+`)`,
		p.Name, p.SourceType, p.SourceHost, p.SourcePort, p.SourceSecurity, b2i(p.SourceInsecure), b2i(p.SourcePlaintext), p.ID, p.OwnerID)
	if err != nil {
		return fmt.Errorf("update project: %w", err)
	}
	if n == 0 {
		return ErrBusy
	}
	return nil
}

// DeleteProject removes a project with its mailboxes and admin logins
// (their stored passwords blanked first), passes, statistics and failure reports; it
// is refused with ErrBusy while a pass works on one of its mailboxes.
func (s *Store) DeleteProject(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `project_id = $1`, id); err != nil {
			return err
		}
		// The secrets are blanked before the rows go, as Finish does,
		// so they are not left in a page the engine has yet to reuse.
		for _, q := range []string{
			`UPDATE mailboxes SET source_secret = '', dest_secret = '' WHERE project_id = $1`,
			`UPDATE project_credentials SET secret = '' WHERE project_id = $1`,
			`DELETE FROM project_credentials WHERE project_id = $1`,
			`DELETE FROM failed_items WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE project_id = $1)`,
			`DELETE FROM proof_reports WHERE project_id = $1`,
			`DELETE FROM mailbox_passes WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE project_id = $1)`,
			`DELETE FROM mailbox_events WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE project_id = $1)`,
			`DELETE FROM mailboxes WHERE project_id = $1`,
			`DELETE FROM passes WHERE project_id = $1`,
			`DELETE FROM projects WHERE id = $1`,
		} {
			if _, err := tx.q.exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete project: %w", err)
			}
		}
		return nil
	})
}

// FinishProject makes a project read-only and erases its mailboxes' and
// admin logins' stored passwords; ErrBusy while a pass works on one of them.
func (s *Store) FinishProject(ctx context.Context, id string, at int64) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := s.lockIdle(ctx, tx, `project_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.q.exec(ctx, `UPDATE mailboxes SET source_secret = '', dest_secret = '' WHERE project_id = $1`, id); err != nil {
			return err
		}
		// The admin credentials' secrets (app secret, impersonation
		// password) go too; kind and login stay, to show who acted.
		if _, err := tx.q.exec(ctx, `UPDATE project_credentials SET secret = '' WHERE project_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.q.exec(ctx, `UPDATE projects SET state = 'finished', finished_at = $1 WHERE id = $2`, at, id)
		return err
	})
}

// lockIdle locks the mailboxes where cond holds for the rest of tx and
// returns ErrBusy if a pass works on one of them. A pass could have been
// queued since the caller looked; what counts is the status read with the
// rows locked (PostgreSQL; SQLite has one writer at a time anyway), so
// that a pass started by another process at the same moment either
// finishes its transaction first and is seen here, or waits and then
// finds the rows changed.
func (s *Store) lockIdle(ctx context.Context, tx *Tx, cond string, args ...any) error {
	rs, err := tx.q.query(ctx, `SELECT status FROM mailboxes WHERE `+cond+s.dialect.forUpdate, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	busy := false
	for rs.Next() {
		var st string
		if err := rs.Scan(&st); err != nil {
			return err
		}
		busy = busy || st == "queued" || st == "verifying" || st == "migrating"
	}
	if err := rs.Err(); err != nil {
		return err
	}
	if busy {
		return ErrBusy
	}
	return nil
}
