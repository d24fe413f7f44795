package service

import (
	"context"
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
	shown, err := s.subjectsShown(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	rows, err := s.st.MailboxPassHistory(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	out := make([]PassRecord, 0, len(rows))
	for _, r := range rows {
		out = append(out, PassRecord{MailboxPass: fromMailboxPass(r.MailboxPass), PassState: r.PassState})
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
				Size: f.Size, Messages: f.Messages, Kind: f.Kind, Reason: f.Reason, Subject: shownSubject(shown, f.Subject)})
		}
	}
	return out, nil
}
