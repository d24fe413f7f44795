package service

import (
	"context"
	"strings"
	"time"
)

// ValidateMailbox checks one mailbox pair as a user typed it into the
// portal's table and returns every problem, one per field (source_email,
// destination_email, source_password, destination_password), so that a
// row can show them all at once. It does not change in; AddMailboxes
// checks again. No message quotes a password.
func ValidateMailbox(in MailboxInput) []*InputError { return validateMailbox(in, sideAuth{}) }

// ValidateMailboxOf is ValidateMailbox for a row of project p: a side
// that logs in with the project's admin credentials (Microsoft 365, Exchange with an admin login) needs
// no password and must have none.
func (s *Service) ValidateMailboxOf(p Project, in MailboxInput) []*InputError {
	return validateMailbox(in, s.authOf(p))
}

func validateMailbox(in MailboxInput, auth sideAuth) []*InputError {
	var out []*InputError
	add := func(err error) {
		if ie, ok := err.(*InputError); ok {
			out = append(out, ie)
		}
	}
	if strings.TrimSpace(in.SourceEmail) == "" {
		add(inputErr("source_email", "enter the email address of the source mailbox"))
	} else if _, err := cleanEmail("source_email", in.SourceEmail); err != nil {
		add(err)
	}
	switch {
	case auth.srcAdmin && in.SourcePassword != "":
		add(inputErr("source_password", "the source is %s: leave the password empty", adminHow(auth.srcKind)))
	case !auth.srcAdmin && in.SourcePassword == "":
		add(inputErr("source_password", "enter the password of the source mailbox"))
	}
	if strings.TrimSpace(in.DestEmail) == "" {
		add(inputErr("destination_email", "enter the email address of the destination mailbox"))
	} else if _, err := cleanEmail("destination_email", in.DestEmail); err != nil {
		add(err)
	}
	switch {
	case auth.dstAdmin && in.DestPassword != "":
		add(inputErr("destination_password", "the destination is %s: leave the password empty", adminHow(auth.dstKind)))
	case !auth.dstAdmin && in.DestPassword == "":
		add(inputErr("destination_password", "enter the password of the destination mailbox"))
	}
	return out
}

// LoginTokenEmail returns the address a login token logs in to, without
// using the token: the portal names the account before anyone presses
// "Log in" (a forwarded link would otherwise log its reader in to
// someone else's account), and shows a friendly page for an expired or
// used link. Such a link is ErrNotFound. Only ConsumeLogin turns a token
// into a session.
func (s *Service) LoginTokenEmail(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", ErrNotFound
	}
	email, err := s.st.LoginTokenEmail(ctx, hashToken(token), time.Now().Unix())
	return email, notFound(err)
}
