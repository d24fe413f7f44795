package service

import (
	"context"
	"fmt"
)

// Pass history and statistics (issue 17, item 3): every pass a mailbox
// was in, newest first, with its counts and, for copying passes, its
// per-folder statistics (MailboxPass.Plan) and failed items.

// PassRecord is one pass of one mailbox.
type PassRecord struct {
	MailboxPass
	PassState string       `json:"pass_state"`
	Failures  []FailedItem `json:"failures,omitempty"`
}

// MailboxHistory lists every pass of a mailbox, newest first.
func (s *Service) MailboxHistory(ctx context.Context, ownerID, projectID, mailboxID string) ([]PassRecord, error) {
	if _, err := s.Mailbox(ctx, ownerID, projectID, mailboxID); err != nil {
		return nil, err
	}
	// The service's mailbox-pass scanner, as in lastPass (moved to the
	// store together with it).
	rows, err := s.db.QueryContext(ctx, `SELECT `+mailboxPassCols+`, p.state FROM mailbox_passes mp JOIN passes p ON p.id = mp.pass_id
		WHERE mp.mailbox_id = $1 ORDER BY p.created_at DESC, p.created_ns DESC, p.id DESC`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("pass history: %w", err)
	}
	var out []PassRecord
	for rows.Next() {
		var r PassRecord
		var state string
		m, err := scanMailboxPass(scanExtra{rows, &state})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("pass history: %w", err)
		}
		r.MailboxPass, r.PassState = m, state
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if !out[i].Kind.Copies() || out[i].Failed == 0 && out[i].Status != StatusCompletedWithErrors {
			continue
		}
		fs, err := s.st.PassFailures(ctx, out[i].PassID, mailboxID)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			out[i].Failures = append(out[i].Failures, FailedItem{PassID: f.PassID, Folder: f.Folder, ID: f.ItemID, UID: uint32(f.UID),
				Size: f.Size, Messages: f.Messages, Kind: f.Kind, Reason: f.Reason, Subject: f.Subject})
		}
	}
	return out, nil
}

// scanExtra scans a row of mailboxPassCols followed by one more column.
type scanExtra struct {
	row   interface{ Scan(...any) error }
	extra any
}

func (s scanExtra) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra)...) }
