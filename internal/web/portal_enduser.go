package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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

To let the move copy your mail, open this page and enter your passwords there (or sign in with Microsoft where the page asks you to):

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
	// SignIns are the sides where the user signs in with Microsoft.
	SignIns []signInSide
}

// signInSide is one "Sign in with Microsoft" form of the page.
type signInSide struct {
	Side, Email, What, Error string
	Done                     bool
}

// newEndUserForm fills the sign-in sides from the request.
func newEndUserForm(token string, req service.EndUserRequest) endUserForm {
	f := endUserForm{Token: token, Req: req, Errors: map[string]string{}}
	if req.SourceSignIn {
		f.SignIns = append(f.SignIns, signInSide{Side: "source", Email: req.SourceEmail, What: "your current mailbox", Done: req.SourceSignedIn})
	}
	if req.DestSignIn {
		f.SignIns = append(f.SignIns, signInSide{Side: "destination", Email: req.DestEmail, What: "your new mailbox", Done: req.DestSignedIn})
	}
	return f
}

// render shows the page; a page with a sign-in lets its forms go to
// the identity platform (the start answers with a redirect there, which
// form-action governs too).
func (s *Server) renderEndUser(w http.ResponseWriter, r *http.Request, status int, f endUserForm, errMsg string) {
	if len(f.SignIns) > 0 {
		s.allowSignInForm(w)
	}
	for i := range f.SignIns {
		f.SignIns[i].Error = f.Errors[f.SignIns[i].Side+"_signin"]
	}
	title := "Your passwords for " + f.Req.ProjectName
	if !f.Req.NeedsPasswords() {
		title = "Sign in for " + f.Req.ProjectName
	}
	s.render(w, r, status, "enduser", view{Title: title, CSRF: preSessionToken(w, r), Error: errMsg, Data: f})
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
	s.renderEndUser(w, r, http.StatusOK, newEndUserForm(token, req), "")
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
		f := newEndUserForm(token, req)
		for _, ie := range bad {
			f.Errors[ie.Field] = capitalize(ie.Message) + "."
		}
		msg := "Please enter both passwords. For your security nothing you typed is shown again."
		if len(f.SignIns) > 0 {
			msg = "Please sign in with Microsoft and enter the password asked for. For your security nothing you typed is shown again."
		}
		s.renderEndUser(w, r, http.StatusBadRequest, f, msg)
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

// The sign-in with Microsoft (kind m365-delegated): the page's button
// posts to /password/microsoft, which starts the authorization-code flow
// and sends the browser to Microsoft with a nonce cookie; Microsoft sends
// it back to /password/microsoft/callback, which finishes it and
// redirects at once, so that no code stays in the address bar or the
// history.

const (
	signInPath     = "/password/microsoft"
	signInCallback = signInPath + "/callback"
	// signInCookie holds the nonce the callback must bring back: only
	// the browser that started a sign-in can finish it.
	signInCookie = "mailferry_signin"
)

// signInRedirect is the callback URI to register with the app.
func (s *Server) signInRedirect() string { return s.portal.cfg.BaseURL + signInCallback }

// allowSignInForm lets the page's forms go to the identity platform.
func (s *Server) allowSignInForm(w http.ResponseWriter) {
	csp := w.Header().Get("Content-Security-Policy")
	w.Header().Set("Content-Security-Policy", strings.Replace(csp, "form-action 'self'", "form-action 'self' "+s.svc.SignInOrigin(), 1))
}

func (s *Server) signInCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: signInCookie, Value: value, Path: signInPath, MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: isTLS(r) || strings.HasPrefix(s.portal.cfg.BaseURL, "https://")}
}

func (s *Server) signInStart(w http.ResponseWriter, r *http.Request) {
	if !s.checkPreSession(w, r) {
		return
	}
	token := r.PostFormValue("token")
	side := service.Side(r.PostFormValue("side"))
	if side != service.SideSource && side != service.SideDestination {
		s.passwordLinkInvalid(w, r)
		return
	}
	start, err := s.svc.BeginSignIn(r.Context(), token, side, s.signInRedirect())
	var rl *service.RateLimitError
	switch {
	case errors.As(err, &rl):
		s.signInProblem(w, r, http.StatusTooManyRequests, "Too many sign-ins", "Sign-ins were started too often from your link in the last hour. Try again in an hour; your link keeps working until it expires.", "")
		return
	case errors.Is(err, service.ErrNotFound):
		s.passwordLinkInvalid(w, r)
		return
	case err != nil:
		s.portalFail(w, r, nil, err)
		return
	}
	http.SetCookie(w, s.signInCookie(r, start.Nonce, int((10*time.Minute).Seconds())))
	http.Redirect(w, r, start.URL, http.StatusSeeOther)
}

func (s *Server) signInFinish(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cb := service.SignInCallback{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), RedirectURL: s.signInRedirect()}
	if c, err := r.Cookie(signInCookie); err == nil {
		cb.Nonce = c.Value
	}
	http.SetCookie(w, s.signInCookie(r, "", -1))
	res, err := s.svc.FinishSignIn(r.Context(), cb)
	back := ""
	if res.Token != "" {
		back = "/password?token=" + url.QueryEscape(res.Token)
	}
	switch {
	case errors.Is(err, service.ErrSignInState):
		s.signInProblem(w, r, http.StatusBadRequest, "This sign-in cannot be finished", capitalize(err.Error())+".", "")
	case errors.Is(err, service.ErrNotFound):
		s.passwordLinkInvalid(w, r)
	case errors.Is(err, service.ErrSignInCancelled):
		s.signInProblem(w, r, http.StatusOK, "You cancelled the sign-in", capitalize(err.Error())+". To let the move copy your mail, go back and sign in again, then allow the access Microsoft asks for.", back)
	case errors.Is(err, service.ErrSignInRefused):
		s.log.Warn("portal: sign-in with Microsoft refused", "error", err)
		s.signInProblem(w, r, http.StatusBadGateway, "Microsoft did not accept the sign-in", capitalize(service.ErrSignInRefused.Error())+".", back)
	case err != nil:
		s.portalFail(w, r, nil, err)
	case res.Complete:
		http.Redirect(w, r, "/password/done", http.StatusSeeOther)
	default:
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

func (s *Server) signInProblem(w http.ResponseWriter, r *http.Request, status int, heading, msg, back string) {
	s.render(w, r, status, "signin-problem", view{Title: heading, Data: struct{ Heading, Message, Back string }{heading, msg, back}})
}

func (s *Server) endUserDone(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "enduser-done", view{Title: "Thank you", Data: true})
}
