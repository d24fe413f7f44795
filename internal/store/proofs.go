package store

import (
	"context"
	"fmt"
)

// Proofs of migration (issue 15): the sealed report of each mailbox's
// "proof" pass. The report itself is kept as the JSON the verifier made
// (its SHA-256 covers that content); the verdict and counts are copied
// into columns so that a project's summary reads a row per mailbox and
// never parses a report.

// Proof is one mailbox's proof of migration from one pass.
type Proof struct {
	PassID, MailboxID, ProjectID string
	CreatedAt                    int64
	Exact                        bool
	SourceMessages, Matched      int64
	Missing, Altered, Differs    int64
	Extra, Skipped               int64
	FailedEarlier, FolderErrors  int64
	Verdict, SHA256              string
	// Report is the sealed report's JSON (empty in ProjectProofs).
	Report string
}

const proofCols = `p.pass_id, p.mailbox_id, p.project_id, p.created_at, p.exact, p.source_messages, p.matched, p.missing,
	p.altered, p.differs, p.extra, p.skipped, p.failed_earlier, p.folder_errors, p.verdict, p.sha256`

func scanProof(r row, p *Proof, extra ...any) error {
	var exact int64
	err := r.Scan(append([]any{&p.PassID, &p.MailboxID, &p.ProjectID, &p.CreatedAt, &exact, &p.SourceMessages, &p.Matched,
		&p.Missing, &p.Altered, &p.Differs, &p.Extra, &p.Skipped, &p.FailedEarlier, &p.FolderErrors, &p.Verdict, &p.SHA256}, extra...)...)
	p.Exact = exact == 1
	return err
}

// SaveProof stores a mailbox's proof for a pass. Idempotent: a part run
// again (after a worker died) replaces its row.
func (s *Store) SaveProof(ctx context.Context, p Proof) error {
	_, err := s.q().exec(ctx, `INSERT INTO proof_reports (pass_id, mailbox_id, project_id, created_at, exact, source_messages, matched,
			missing, altered, differs, extra, skipped, failed_earlier, folder_errors, verdict, sha256, report)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (pass_id, mailbox_id) DO UPDATE SET created_at = excluded.created_at, exact = excluded.exact,
			source_messages = excluded.source_messages, matched = excluded.matched, missing = excluded.missing,
			altered = excluded.altered, differs = excluded.differs, extra = excluded.extra, skipped = excluded.skipped,
			failed_earlier = excluded.failed_earlier, folder_errors = excluded.folder_errors, verdict = excluded.verdict,
			sha256 = excluded.sha256, report = excluded.report`,
		p.PassID, p.MailboxID, p.ProjectID, p.CreatedAt, b2i(p.Exact), p.SourceMessages, p.Matched, p.Missing, p.Altered, p.Differs,
		p.Extra, p.Skipped, p.FailedEarlier, p.FolderErrors, p.Verdict, p.SHA256, p.Report)
	if err != nil {
		return fmt.Errorf("save proof of migration: %w", err)
	}
	return nil
}

// LatestProof returns a mailbox's newest proof with its report;
// ErrNoRows when the mailbox (of this project) has none.
func (s *Store) LatestProof(ctx context.Context, projectID, mailboxID string) (Proof, error) {
	var p Proof
	// Newest by the passes' order (to the nanosecond): two proofs
	// saved within one second must not be told apart by chance.
	err := scanProof(s.q().queryRow(ctx, `SELECT `+proofCols+`, p.report FROM proof_reports p JOIN passes x ON x.id = p.pass_id
		WHERE p.project_id = $1 AND p.mailbox_id = $2 ORDER BY x.created_at DESC, x.created_ns DESC, x.id DESC LIMIT 1`, projectID, mailboxID),
		&p, &p.Report)
	return p, err
}

// ProjectProofs returns the newest proof of each of a project's
// mailboxes that has one, keyed by mailbox ID, without the reports.
func (s *Store) ProjectProofs(ctx context.Context, projectID string) (map[string]Proof, error) {
	rs, err := s.q().query(ctx, `SELECT `+proofCols+` FROM proof_reports p JOIN passes x ON x.id = p.pass_id
		WHERE p.project_id = $1 ORDER BY x.created_at, x.created_ns, x.id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("read proofs of migration: %w", err)
	}
	defer rs.Close()
	out := map[string]Proof{}
	for rs.Next() {
		var p Proof
		if err := scanProof(rs, &p); err != nil {
			return nil, fmt.Errorf("read proofs of migration: %w", err)
		}
		out[p.MailboxID] = p // ordered oldest first: the newest wins
	}
	return out, rs.Err()
}

// MailboxPassRef is one mailbox's part in one pass, for deciding per
// mailbox which of its passes came last.
type MailboxPassRef struct {
	MailboxID, PassID, Kind, Status, LastError string
}

// ProjectParts lists every mailbox's part in every pass of a project,
// newest pass first (as Passes orders them).
func (s *Store) ProjectParts(ctx context.Context, projectID string) ([]MailboxPassRef, error) {
	rows, err := s.q().query(ctx, `SELECT mp.mailbox_id, mp.pass_id, x.kind, mp.status, mp.last_error
		FROM mailbox_passes mp JOIN passes x ON x.id = mp.pass_id
		WHERE x.project_id = $1 ORDER BY x.created_at DESC, x.created_ns DESC, x.id DESC`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list the parts of passes: %w", err)
	}
	defer rows.Close()
	var out []MailboxPassRef
	for rows.Next() {
		var r MailboxPassRef
		if err := rows.Scan(&r.MailboxID, &r.PassID, &r.Kind, &r.Status, &r.LastError); err != nil {
			return nil, fmt.Errorf("list the parts of passes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
