package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mailferry/mailferry/internal/service"
)

// End users enter their own passwords (issue 17, item 4): the admin's
// "Ask users for their passwords" mails each user a single-use link to
// /password, a page without a session that names the project and the
// admin and asks for that user's two passwords only. Its form carries
// the pre-session CSRF token of the login forms.

// askPasswords sends the links: for the ticked mailboxes (mailbox_id),
// else for every mailbox missing a password.
func (s *Server) askPasswords(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	project := r.PathValue("project")
	n, err := s.sendPasswordLinks(r, sess, r.PostForm["mailbox_id"])
	var rl *service.RateLimitError
	switch {
	case errors.As(err, &rl):
		s.renderMailboxes(w, r, sess, http.StatusTooManyRequests, mailboxesView{},
			"Nothing was sent: a user was already sent 3 links within the last hour. The newest link still works; try again in an hour.")
		return
	case isExpected(err):
		s.renderMailboxes(w, r, sess, statusFor(err), mailboxesView{}, userMessage(err)+".")
		return
	case err != nil:
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+project+"/mailboxes?notice=asked&n="+strconv.Itoa(n), http.StatusSeeOther)
}

// sendPasswordLinks creates and mails the links; it returns how many.
func (s *Server) sendPasswordLinks(r *http.Request, sess *service.Session, ids []string) (int, error) {
	if s.portal.cfg.SendMail == nil {
		return 0, &service.InputError{Message: "this service cannot send email, so users cannot be asked for their passwords; enter them yourself"}
	}
	links, err := s.svc.AskForPasswords(r.Context(), sess.Owner.ID, r.PathValue("project"), ids)
	if err != nil {
		return 0, err
	}
	for _, l := range links {
		link := s.portal.cfg.BaseURL + "/password?token=" + url.QueryEscape(l.Token)
		text := fmt.Sprintf(`Hello,

%s is moving your email from %s to %s (migration "%s").

To let the move copy your mail, enter the passwords of both mailboxes on this page:

%s

The link works once and until %s. If you did not expect this email, ask %s about it before you enter anything; never send your passwords by email.
`, l.OwnerEmail, l.SourceEmail, l.DestEmail, l.ProjectName, link, l.Expires.UTC().Format("2 Jan 2006, 15:04 UTC"), l.OwnerEmail)
		if err := s.portal.cfg.SendMail(r.Context(), l.To, "Enter your passwords for the move of "+l.SourceEmail, text); err != nil {
			return 0, fmt.Errorf("mail the password link to %s: %w", l.To, err)
		}
	}
	return len(links), nil
}

type endUserForm struct {
	Token  string
	Req    service.EndUserRequest
	Errors map[string]string
}

func (s *Server) passwordLinkInvalid(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusGone, "password-invalid", view{Title: "This link no longer works"})
}

func (s *Server) endUserPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	req, err := s.svc.PasswordRequest(r.Context(), token)
	if errors.Is(err, service.ErrNotFound) {
		s.passwordLinkInvalid(w, r)
		return
	}
	if err != nil {
		s.portalFail(w, r, nil, err)
		return
	}
	s.render(w, r, http.StatusOK, "enduser", view{Title: "Your passwords for " + req.ProjectName, CSRF: preSessionToken(w, r),
		Data: endUserForm{Token: token, Req: req, Errors: map[string]string{}}})
}

func (s *Server) endUserSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.checkPreSession(w, r) {
		return
	}
	token := r.PostFormValue("token")
	bad, err := s.svc.SubmitEndUserPasswords(r.Context(), token, clientIP(r), r.PostFormValue("source_password"), r.PostFormValue("destination_password"))
	var rl *service.RateLimitError
	switch {
	case errors.As(err, &rl):
		s.errorPage(w, r, nil, errorData{Status: http.StatusTooManyRequests, Heading: "Too many attempts",
			Message: "Nothing was saved: too many passwords were sent from your network in the last hour. Try again in an hour; your link keeps working until it expires.",
			LinkURL: "/password?token=" + url.QueryEscape(token), LinkText: "Back to the form"})
		return
	case errors.Is(err, service.ErrNotFound):
		s.passwordLinkInvalid(w, r)
		return
	case err != nil:
		s.portalFail(w, r, nil, err)
		return
	}
	if len(bad) > 0 {
		req, err := s.svc.PasswordRequest(r.Context(), token)
		if err != nil {
			s.passwordLinkInvalid(w, r)
			return
		}
		f := endUserForm{Token: token, Req: req, Errors: map[string]string{}}
		for _, ie := range bad {
			f.Errors[ie.Field] = capitalize(ie.Message) + "."
		}
		s.render(w, r, http.StatusBadRequest, "enduser", view{Title: "Your passwords for " + req.ProjectName, CSRF: preSessionToken(w, r),
			Error: "Please enter both passwords. For your security nothing you typed is shown again.", Data: f})
		return
	}
	s.render(w, r, http.StatusOK, "enduser-done", view{Title: "Thank you"})
}

// waitingHint is the row text of a mailbox waiting for its user.
func waitingHint(m service.Mailbox) string {
	if m.Status != service.StatusWaitingForUser {
		return ""
	}
	return "Asked on " + m.StatusAt.UTC().Format("2 Jan, 15:04 UTC") + " by email to " + m.SourceEmail
}
