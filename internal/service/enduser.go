package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/store"
)

// End users enter their own passwords (issue 17, item 4). The admin adds
// mailboxes by address only and asks their users: each gets an email
// with a single-use link that expires; its page names the project and
// the admin and asks for that user's two passwords, nothing else. The
// links follow the login link's rules: only token hashes are stored, a
// link works once, sending is limited per mailbox, the page per client
// address, and every unusable link (unknown, used, expired, retired by a
// newer one) looks the same.

const (
	// PasswordLinkTTL is how long an end user's link works.
	PasswordLinkTTL = 72 * time.Hour
	// At most this many links per mailbox per passwordMailWindow.
	passwordMailsPerMailbox = 3
	passwordMailWindow      = time.Hour
	// At most this many password submissions per client IP an hour.
	passwordPostsPerIP = 30
)

// StatusWaitingForUser: the users were asked for their passwords and have
// not entered them yet.
const StatusWaitingForUser Status = "waiting_for_user"

// PasswordLinkMail is one link to mail to an end user.
type PasswordLinkMail struct {
	MailboxID   string
	To          string // the source address: the user's current mailbox
	SourceEmail string
	DestEmail   string
	ProjectName string
	OwnerEmail  string
	Token       string
	Expires     time.Time
}

// AskForPasswords creates a link for each given mailbox (when ids is
// empty, each mailbox missing a password whose user was not asked yet) and marks them "Waiting for end
// user"; the caller mails the links. Mailboxes being worked on are
// refused. A mailbox that had passwordMailsPerMailbox links within the
// last hour makes the whole request a *RateLimitError, and nothing is
// sent.
func (s *Service) AskForPasswords(ctx context.Context, ownerID, projectID string, ids []string) ([]PasswordLinkMail, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		if ids, err = s.st.MailboxIDs(ctx, store.MailboxFilter{ProjectID: projectID, NoPasswords: true,
			NotStatuses: []string{string(StatusWaitingForUser)}}); err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, inputErr("mailbox_ids", "every mailbox has its passwords or was asked for them already; to ask a user again, click Resend on the mailbox")
		}
	}
	owner, err := s.OwnerByID(ctx, p.ownerID)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	var out []PasswordLinkMail
	for _, id := range ids {
		m, err := s.Mailbox(ctx, ownerID, projectID, id)
		if err != nil {
			return nil, err
		}
		if busy := m.Status == StatusQueued || m.Status == StatusVerifying || m.Status == StatusMigrating; busy {
			return nil, fmt.Errorf("%w: mailbox %s is being worked on; stop it first, then ask its user", ErrConflict, m.SourceEmail)
		}
		n, err := s.st.PasswordRequestsSince(ctx, id, t.Add(-passwordMailWindow).Unix())
		if err != nil {
			return nil, err
		}
		if n >= passwordMailsPerMailbox {
			return nil, &RateLimitError{PerAddress: true, Retry: time.Hour}
		}
		out = append(out, PasswordLinkMail{MailboxID: id, To: m.SourceEmail, SourceEmail: m.SourceEmail, DestEmail: m.DestEmail,
			ProjectName: p.Name, OwnerEmail: owner.Email, Token: randomToken(32), Expires: t.Add(PasswordLinkTTL)})
	}
	for _, l := range out {
		if err := s.st.AskForPasswords(ctx, store.PasswordRequest{TokenHash: hashToken(l.Token), MailboxID: l.MailboxID, ProjectID: projectID,
			SentTo: l.To, CreatedAt: t.Unix(), ExpiresAt: l.Expires.Unix()}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EndUserRequest is what an end user's page shows.
type EndUserRequest struct {
	ProjectName string
	OwnerEmail  string
	SourceEmail string
	DestEmail   string
	Destination string // the destination's name
	Expires     time.Time
	// SourceApp and DestApp: that side is Microsoft 365, reached with
	// the project's app registration; the user has no password to give
	// for it.
	SourceApp, DestApp bool
	// SourceSignIn and DestSignIn: that side is Microsoft 365 where the
	// user signs in with Microsoft (kind m365-delegated) instead of
	// giving a password; SourceSignedIn and DestSignedIn say they did.
	SourceSignIn, DestSignIn     bool
	SourceSignedIn, DestSignedIn bool
}

// NeedsPasswords says whether the page asks for a password at all.
func (r EndUserRequest) NeedsPasswords() bool { return !r.SourceApp || !r.DestApp }

// linkAuth says which sides of a link's project use admin credentials.
func (s *Service) linkAuth(ctx context.Context, projectID string) (sideAuth, error) {
	r, err := s.st.Project(ctx, "", projectID)
	if err != nil {
		return sideAuth{}, err
	}
	p := s.fromProjectRow(r)
	if err := s.attachAdmins(ctx, &p); err != nil {
		return sideAuth{}, err
	}
	return s.authOf(p), nil
}

// PasswordRequest reads a link for its page; ErrNotFound for every link
// that cannot be used, whatever the reason.
func (s *Service) PasswordRequest(ctx context.Context, token string) (EndUserRequest, error) {
	if token == "" {
		return EndUserRequest{}, ErrNotFound
	}
	l, err := s.st.PasswordLinkByHash(ctx, hashToken(token), time.Now().Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return EndUserRequest{}, ErrNotFound
	}
	if err != nil {
		return EndUserRequest{}, err
	}
	r := EndUserRequest{ProjectName: l.ProjectName, OwnerEmail: l.OwnerEmail, SourceEmail: l.SourceEmail, DestEmail: l.DestEmail,
		Destination: l.DestinationPreset, Expires: time.Unix(l.ExpiresAt, 0)}
	if pr, ok := s.presets[l.DestinationPreset]; ok {
		r.Destination = pr.Name
	}
	auth, err := s.linkAuth(ctx, l.ProjectID)
	if err != nil {
		return r, err
	}
	r.SourceApp, r.DestApp = auth.srcAdmin, auth.dstAdmin
	r.SourceSignIn, r.DestSignIn = auth.srcKind == kindM365Delegated, auth.dstKind == kindM365Delegated
	r.SourceSignedIn, r.DestSignedIn = r.SourceSignIn && l.HasSourceSecret, r.DestSignIn && l.HasDestSecret
	return r, nil
}

// SubmitEndUserPasswords stores the passwords an end user entered through
// a link and uses the link up. Unusable links are ErrNotFound; missing
// passwords an *InputError per field (the link stays valid); too many
// submissions from clientIP a *RateLimitError.
func (s *Service) SubmitEndUserPasswords(ctx context.Context, token, clientIP, sourcePassword, destPassword string) ([]*InputError, error) {
	t := time.Now()
	bucket := "pw-ip:" + clientIP
	n, err := s.st.RateCount(ctx, bucket, t.Add(-time.Hour).Unix())
	if err != nil {
		return nil, err
	}
	if n >= passwordPostsPerIP {
		return nil, &RateLimitError{Retry: time.Hour}
	}
	if err := s.st.RateAdd(ctx, bucket, t.Unix()); err != nil {
		return nil, err
	}
	l, err := s.st.PasswordLinkByHash(ctx, hashToken(token), t.Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	auth, err := s.linkAuth(ctx, l.ProjectID)
	if err != nil {
		return nil, err
	}
	if auth.srcAdmin {
		sourcePassword = "" // nothing to ask: the project's app logs in
	}
	if auth.dstAdmin {
		destPassword = ""
	}
	var bad []*InputError
	if sourcePassword == "" && !auth.srcAdmin {
		bad = append(bad, &InputError{Field: "source_password", Message: "enter the password of your current mailbox " + l.SourceEmail})
	}
	if destPassword == "" && !auth.dstAdmin {
		bad = append(bad, &InputError{Field: "destination_password", Message: "enter the password of your new mailbox " + l.DestEmail})
	}
	if strings.ContainsAny(sourcePassword+destPassword, "\r\n") {
		bad = append(bad, &InputError{Field: "source_password", Message: "a password cannot contain a line break"})
	}
	// A side where the user signs in must have been signed in to first;
	// its stored refresh token is kept (sealFor gives "").
	if auth.srcKind == kindM365Delegated && !l.HasSourceSecret {
		bad = append(bad, &InputError{Field: "source_signin", Message: "sign in with Microsoft for your current mailbox " + l.SourceEmail + " first"})
	}
	if auth.dstKind == kindM365Delegated && !l.HasDestSecret {
		bad = append(bad, &InputError{Field: "destination_signin", Message: "sign in with Microsoft for your new mailbox " + l.DestEmail + " first"})
	}
	if len(bad) > 0 {
		return bad, nil
	}
	src, err := s.sealFor(auth.srcKind, l.MailboxID, "source", sourcePassword)
	if err != nil {
		return nil, err
	}
	dst, err := s.sealFor(auth.dstKind, l.MailboxID, "destination", destPassword)
	if err != nil {
		return nil, err
	}
	if err := s.st.UsePasswordLink(ctx, hashToken(token), l.MailboxID, src, dst, t.Unix()); errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return nil, nil
}
