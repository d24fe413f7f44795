package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// portalHome sends visitors to My Migrations or to the login page.
func (s *Server) portalHome(w http.ResponseWriter, r *http.Request) {
	if _, err := s.currentSession(r); err == nil {
		http.Redirect(w, r, "/migrations", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// preSessionToken returns the CSRF token of the login forms, setting its
// cookie on first use.
func preSessionToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preSessionCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: preSessionCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: isTLS(r)})
	return tok
}

// checkPreSession checks the double-submitted token of a login form;
// a refused form has been answered.
func (s *Server) checkPreSession(w http.ResponseWriter, r *http.Request) bool {
	c, err := r.Cookie(preSessionCookie)
	want := ""
	if err == nil && len(c.Value) >= 32 {
		want = c.Value
	}
	switch err := s.checkCSRF(w, r, want); {
	case errors.Is(err, errFormTooLarge):
		s.tooLargePage(w, r, nil)
		return false
	case err != nil:
		s.preSessionRejected(w, r)
		return false
	}
	return true
}

func (s *Server) preSessionRejected(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, nil, errorData{Status: http.StatusForbidden, Heading: "This form has expired",
		Message:  "For your security nothing was sent. Open the login page again and retry; your browser must accept cookies from this site.",
		LinkURL:  "/login",
		LinkText: "Open the login page"})
}

// loginForm is the login page's data.
type loginForm struct {
	Email      string
	Agreed     bool
	Errors     map[string]string
	Agreement  []string // paragraphs
	CanSend    bool
	LinkMinute int
}

func (s *Server) agreementParagraphs() []string {
	var out []string
	for _, p := range strings.Split(strings.ReplaceAll(s.portal.cfg.Agreement, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, f loginForm, errMsg string) {
	f.Agreement = s.agreementParagraphs()
	f.CanSend = s.portal.cfg.SendMail != nil
	f.LinkMinute = int(service.LoginLinkTTL / time.Minute)
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	s.render(w, r, status, "login", view{Title: "Log in", CSRF: preSessionToken(w, r), Notice: notice(r), Error: errMsg, Data: f})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := s.currentSession(r); err == nil {
		http.Redirect(w, r, "/migrations", http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, loginForm{}, "")
}

func (s *Server) agreementPage(w http.ResponseWriter, r *http.Request) {
	sess, _ := s.currentSession(r)
	v := view{Title: "User agreement", Session: sess, Data: s.agreementParagraphs()}
	if sess != nil {
		v.CSRF = sess.CSRF
	}
	s.render(w, r, http.StatusOK, "agreement", v)
}

// loginSubmit mails a login link. The answer is the same whether or not
// the address has an account (an unknown one gets an account when the
// link is used), so the page cannot tell anyone who uses the service.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.checkPreSession(w, r) {
		return
	}
	f := loginForm{Email: strings.TrimSpace(r.PostFormValue("email")), Agreed: r.PostFormValue("agree") == "yes", Errors: map[string]string{}}
	if f.Email == "" {
		f.Errors["email"] = "Enter your email address."
	}
	if !f.Agreed {
		f.Errors["agree"] = "Tick the box to accept the user agreement: the migration cannot start without it."
	}
	if len(f.Errors) > 0 {
		s.renderLogin(w, r, http.StatusBadRequest, f, "")
		return
	}
	if s.portal.cfg.SendMail == nil {
		s.renderLogin(w, r, http.StatusServiceUnavailable, f, "This site cannot send email yet, so no login link can be sent. Please tell its operator.")
		return
	}
	token, err := s.svc.RequestLogin(r.Context(), f.Email, clientIP(r))
	var ie *service.InputError
	switch {
	case errors.As(err, &ie):
		// Not quoted: whatever was typed (a password, by mistake?) is
		// not shown back.
		f.Errors["email"] = "This is not a valid email address. Check it for typos; it looks like name@company.com."
		s.renderLogin(w, r, http.StatusBadRequest, f, "")
		return
	case errors.Is(err, service.ErrRateLimited):
		var rl *service.RateLimitError
		errors.As(err, &rl)
		wait := "in a few minutes"
		if rl != nil {
			wait = fmt.Sprintf("in %s", plural(int(rl.Retry/time.Minute), "1 minute", "%d minutes"))
		}
		msg := fmt.Sprintf("Too many login links were asked for from this network. Use the newest link you received, or try again %s.", wait)
		if rl != nil && rl.PerAddress {
			// Every link counted here went to that mailbox less than a
			// link's lifetime ago, so the newest one still works.
			msg = fmt.Sprintf("Several login links were sent to this address in the last %d minutes. Use the newest one in that mailbox "+
				"(look in the spam folder too): it still works. You can ask for another one %s.", int(service.LoginLinkTTL/time.Minute), wait)
		}
		s.renderLogin(w, r, http.StatusTooManyRequests, f, msg)
		return
	case err != nil:
		s.portalFail(w, r, nil, err)
		return
	}
	link := s.portal.cfg.BaseURL + "/login/verify?token=" + url.QueryEscape(token)
	mins := int(service.LoginLinkTTL / time.Minute)
	text := fmt.Sprintf("Hello,\n\nSomeone, hopefully you, asked to log in to the Mailferry migration portal at %s with this email address.\n\n"+
		"Open this link and click \"Log in\":\n\n%s\n\n"+
		"The link works once and expires in %d minutes. If you did not ask for it, ignore this email: nobody can log in without the link.\n",
		s.portal.cfg.BaseURL, link, mins)
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.portal.cfg.SendMail(ctx, f.Email, "Your Mailferry login link", text); err != nil {
		// The sender logs the reason; the page says what to do.
		s.renderLogin(w, r, http.StatusServiceUnavailable, f,
			"We could not send the email right now. Wait a few minutes and try again; if it keeps failing, tell the operator of this site.")
		return
	}
	s.render(w, r, http.StatusOK, "link-sent", view{Title: "Check your email", Data: struct {
		Email   string
		Minutes int
	}{f.Email, mins}})
}

// verifyPage is where the emailed link leads. It only shows a button:
// mail scanners open links to check them, and a GET must not use up the
// single-use token.
func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	email, err := s.svc.LoginTokenEmail(r.Context(), token)
	if errors.Is(err, service.ErrNotFound) {
		s.render(w, r, http.StatusGone, "link-invalid", view{Title: "This login link no longer works"})
		return
	}
	if err != nil {
		s.portalFail(w, r, nil, err)
		return
	}
	s.render(w, r, http.StatusOK, "verify", view{Title: "Log in as " + email, CSRF: preSessionToken(w, r), Data: struct {
		Token, Email string
	}{token, email}})
}

func (s *Server) verifySubmit(w http.ResponseWriter, r *http.Request) {
	if !s.checkPreSession(w, r) {
		return
	}
	sess, err := s.svc.ConsumeLogin(r.Context(), r.PostFormValue("token"))
	if errors.Is(err, service.ErrNotFound) {
		s.render(w, r, http.StatusGone, "link-invalid", view{Title: "This login link no longer works"})
		return
	}
	if err != nil {
		s.portalFail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.ID, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: isTLS(r), MaxAge: int(service.SessionTTL / time.Second)})
	http.Redirect(w, r, "/migrations", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	if err := s.svc.Logout(r.Context(), sess.ID); err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: isTLS(r), MaxAge: -1})
	http.Redirect(w, r, "/login?notice=logged-out", http.StatusSeeOther)
}
