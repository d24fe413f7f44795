package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/verify"
)

// The proof of migration in the service (issue 15): a "proof" pass runs
// internal/verify for each mailbox pair and stores its sealed report;
// these read the reports back per mailbox and sum them up per project.

// SaveProof stores the sealed report of a mailbox's proof pass. It is
// called by the worker before the part is finished; running the part
// again replaces the report.
func (s *Service) SaveProof(ctx context.Context, w Work, rep *verify.Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("save proof of migration: %w", err)
	}
	t := rep.Totals
	return s.st.SaveProof(ctx, store.Proof{PassID: w.Pass.ID, MailboxID: w.MailboxID, ProjectID: w.Project.ID, CreatedAt: now(),
		Exact: rep.Exact, SourceMessages: t.SourceMessages, Matched: t.Matched, Missing: t.Missing, Altered: t.Altered,
		Differs: t.Differs, Extra: t.Extra, Skipped: t.Skipped, FailedEarlier: t.FailedEarlier, FolderErrors: int64(t.Errors),
		Verdict: rep.Verdict, SHA256: rep.SHA256, Report: string(b)})
}

// ErrNoProof is returned for a mailbox that no proof pass has verified.
var ErrNoProof = fmt.Errorf("%w: this mailbox has not been verified yet; run a Verify migration (proof) pass", ErrNotFound)

// MailboxProof returns the newest proof of migration of a mailbox, its
// seal checked. ErrNotFound for another owner's mailbox, ErrNoProof when
// it has none yet.
func (s *Service) MailboxProof(ctx context.Context, ownerID, projectID, mailboxID string) (*verify.Report, error) {
	if _, err := s.Mailbox(ctx, ownerID, projectID, mailboxID); err != nil {
		return nil, err
	}
	p, err := s.st.LatestProof(ctx, projectID, mailboxID)
	if errors.Is(err, store.ErrNoRows) {
		return nil, ErrNoProof
	}
	if err != nil {
		return nil, err
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(p.Report), &rep); err != nil {
		return nil, fmt.Errorf("read proof of migration: %w", err)
	}
	if !rep.Check() {
		// Changed in the database since it was made: say so rather
		// than show counts no one can trust.
		return nil, fmt.Errorf("the stored proof of migration of this mailbox no longer matches its SHA-256 %s; run Verify migration again", p.SHA256)
	}
	return &rep, nil
}

// ProofRow is one mailbox in a project's proof summary.
type ProofRow struct {
	MailboxID   string `json:"mailbox_id"`
	SourceEmail string `json:"source_email"`
	DestEmail   string `json:"destination_email"`
	// Verified is false when no proof pass has verified the mailbox;
	// the counts below are then zero.
	Verified bool      `json:"verified"`
	PassID   string    `json:"pass_id,omitempty"`
	At       time.Time `json:"verified_at,omitzero"`
	Exact    bool      `json:"exact"`
	// Stale: the proof is older than this mailbox's last copying pass.
	Stale          bool   `json:"stale"`
	SourceMessages int64  `json:"source_messages"`
	Matched        int64  `json:"matched"`
	Missing        int64  `json:"missing"`
	Altered        int64  `json:"altered"`
	Differs        int64  `json:"matched_other_flags_or_date"`
	Extra          int64  `json:"extra"`
	Skipped        int64  `json:"skipped_by_filter"`
	FailedEarlier  int64  `json:"failed_earlier"`
	FolderErrors   int64  `json:"folder_errors"`
	Verdict        string `json:"verdict,omitempty"`
	SHA256         string `json:"sha256,omitempty"`
	// Failed is the error of the newest proof pass when it could not
	// verify this mailbox (e.g. a login failed): the counts, if any,
	// are an older proof's.
	Failed string `json:"failed,omitempty"`
}

// ProofSummary is a project's proof of migration: the newest proof of
// every mailbox and one verdict.
type ProofSummary struct {
	// Exact is true only when every mailbox has an exact proof made
	// after its own last copying pass, and none is running.
	Exact     bool   `json:"exact"`
	Verdict   string `json:"verdict"`
	Mailboxes int    `json:"mailboxes"`
	Verified  int    `json:"verified"`
	// Messages is the source messages matched on the destination, of
	// all mailboxes verified.
	Messages int64 `json:"messages"`
	Missing  int64 `json:"missing"`
	// Warning says, for the Finish page, why the old service should not
	// be cancelled yet; empty when Exact.
	Warning     string     `json:"warning,omitempty"`
	LastProofAt time.Time  `json:"last_proof_at,omitzero"`
	LastCopyAt  time.Time  `json:"last_copy_at,omitzero"`
	Running     bool       `json:"running"`
	Rows        []ProofRow `json:"rows"`
}

// ProjectProof sums up the newest proof of every mailbox of a project.
func (s *Service) ProjectProof(ctx context.Context, ownerID, projectID string) (ProofSummary, error) {
	mbs, err := s.Mailboxes(ctx, ownerID, projectID)
	if err != nil {
		return ProofSummary{}, err
	}
	proofs, err := s.st.ProjectProofs(ctx, projectID)
	if err != nil {
		return ProofSummary{}, err
	}
	passes, err := s.Passes(ctx, ownerID, projectID)
	if err != nil {
		return ProofSummary{}, err
	}
	parts, err := s.st.ProjectParts(ctx, projectID)
	if err != nil {
		return ProofSummary{}, err
	}
	sum := ProofSummary{Mailboxes: len(mbs), Rows: []ProofRow{}}
	// Passes are in the order they were started, newest first (to the
	// nanosecond): a proof is stale when its pass started before the
	// mailbox's last copying pass, even within one second.
	rank := map[string]int{}
	var lastProof *Pass
	for i := range passes {
		p := &passes[i]
		rank[p.ID] = i
		if p.Kind.Copies() && sum.LastCopyAt.IsZero() {
			sum.LastCopyAt = p.CreatedAt
		}
		if p.Kind == PassProof && lastProof == nil {
			lastProof = p
		}
	}
	if lastProof != nil {
		sum.LastProofAt = lastProof.CreatedAt
		sum.Running = lastProof.State == "running" || lastProof.State == "stopping"
	}
	// Per mailbox, from its own parts (newest first): its last copying
	// pass, and what its newest proof pass made of it.
	lastCopy := map[string]int{}
	failedIn := map[string]string{}
	proofSeen := map[string]bool{}
	for _, x := range parts {
		k := PassKind(x.Kind)
		if _, ok := lastCopy[x.MailboxID]; !ok && k.Copies() {
			lastCopy[x.MailboxID] = rank[x.PassID]
		}
		if k == PassProof && !proofSeen[x.MailboxID] {
			proofSeen[x.MailboxID] = true
			if st := Status(x.Status); st == StatusFailed || st == StatusStopped {
				failedIn[x.MailboxID] = firstNonEmpty(x.LastError, st.Label())
			}
		}
	}
	var notVerified, differ, stale, failed []string
	for _, m := range mbs {
		r := ProofRow{MailboxID: m.ID, SourceEmail: m.SourceEmail, DestEmail: m.DestEmail, Failed: failedIn[m.ID]}
		if p, ok := proofs[m.ID]; ok {
			r.Verified, r.PassID, r.At, r.Exact = true, p.PassID, time.Unix(p.CreatedAt, 0), p.Exact
			r.SourceMessages, r.Matched, r.Missing, r.Altered, r.Differs = p.SourceMessages, p.Matched, p.Missing, p.Altered, p.Differs
			r.Extra, r.Skipped, r.FailedEarlier, r.FolderErrors, r.Verdict, r.SHA256 = p.Extra, p.Skipped, p.FailedEarlier, p.FolderErrors, p.Verdict, p.SHA256
			// A proof started before a copying pass of this mailbox
			// does not cover what that pass copied.
			if k, ok := rank[p.PassID]; ok {
				if c, copied := lastCopy[m.ID]; copied && k > c {
					r.Stale = true
				}
			}
			sum.Verified++
			sum.Messages += p.Matched
			sum.Missing += p.Missing
		}
		switch {
		case r.Failed != "":
			failed = append(failed, m.SourceEmail)
		case !r.Verified:
			notVerified = append(notVerified, m.SourceEmail)
		case !r.Exact:
			differ = append(differ, m.SourceEmail)
		case r.Stale:
			stale = append(stale, m.SourceEmail)
		}
		sum.Rows = append(sum.Rows, r)
	}
	sum.Exact = len(mbs) > 0 && len(notVerified) == 0 && len(differ) == 0 && len(stale) == 0 && len(failed) == 0 && !sum.Running
	if sum.Exact {
		sum.Verdict = fmt.Sprintf("All %s messages of %s are on the new service.", thousands(sum.Messages), plural(len(mbs), "mailbox", "mailboxes"))
		return sum, nil
	}
	var why []string
	add := func(names []string, what string) {
		if len(names) > 0 {
			why = append(why, fmt.Sprintf("%s %s (%s)", plural(len(names), "mailbox", "mailboxes"), what, nameList(names)))
		}
	}
	if sum.Running {
		why = append(why, "a Verify migration pass is still running")
	}
	if lastProof == nil {
		why = append(why, "no Verify migration pass has been run")
	} else {
		add(notVerified, "not verified")
	}
	add(failed, "could not be verified by their last Verify migration")
	add(differ, "not exact")
	add(stale, "verified before their last copying pass")
	sum.Verdict = "Not proven: " + strings.Join(why, "; ") + "."
	if sum.Missing > 0 {
		sum.Verdict += fmt.Sprintf(" %s missing on the new service.", plural(int(sum.Missing), "message is", "messages are"))
	}
	sum.Warning = sum.Verdict + " Run Verify migration after the last Migrate new items, and check its report, before you cancel the old service."
	return sum, nil
}

// maxNames bounds the mailboxes a verdict names.
const maxNames = 5

// nameList names up to maxNames mailboxes: "a@x, b@x and 3 more".
func nameList(names []string) string {
	if len(names) <= maxNames {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxNames], ", ") + fmt.Sprintf(" and %s more", thousands(int64(len(names)-maxNames)))
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(int64(n)) + " " + many
}

// thousands writes n with commas between thousands: 48,211.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
