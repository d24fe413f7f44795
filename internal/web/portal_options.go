package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mailferry/mailferry/internal/service"
)

// The pass options pages (issue 17 item 2): the project's options, one
// mailbox's override and the preview of its folder plan.

// optionsForm is the options as typed: rules one a line.
type optionsForm struct {
	Since, Before              string
	Include, Exclude, Mappings string
	LogSubjects                bool
}

func formOf(o service.Options) optionsForm {
	return optionsForm{Since: o.Since, Before: o.Before, Include: strings.Join(o.Include, "\n"), Exclude: strings.Join(o.Exclude, "\n"),
		Mappings: strings.Join(o.Mappings, "\n"), LogSubjects: o.LogSubjects}
}

func lines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func readOptionsForm(r *http.Request) (optionsForm, service.Options) {
	f := optionsForm{Since: strings.TrimSpace(r.PostFormValue("since")), Before: strings.TrimSpace(r.PostFormValue("before")),
		Include: r.PostFormValue("include"), Exclude: r.PostFormValue("exclude"), Mappings: r.PostFormValue("mappings"),
		LogSubjects: r.PostFormValue("log_subjects") == "on"}
	return f, service.Options{Since: f.Since, Before: f.Before, Include: lines(f.Include), Exclude: lines(f.Exclude),
		Mappings: lines(f.Mappings), LogSubjects: f.LogSubjects}
}

type optionsPage struct {
	Form      optionsForm
	MaxPasses int
	Overrides []service.Mailbox // mailboxes with their own options
	Own       map[string]service.Options
	// The mailbox page only:
	Mailbox   *service.Mailbox
	Project   optionsForm // the project's, shown beside each field
	Effective service.Options
	Preview   *service.PlanPreview
	Busy      bool
}

func (s *Server) projectOptionsPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderProjectOptions(w, r, sess, http.StatusOK, nil, "")
}

func (s *Server) renderProjectOptions(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, f *optionsForm, errMsg string) {
	ctx := r.Context()
	p, err := s.svc.Project(ctx, sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	d := optionsPage{Form: formOf(p.Options), MaxPasses: s.svc.MaxPasses(), Busy: projectBusy(p)}
	if f != nil {
		d.Form = *f
	}
	if d.Own, err = s.svc.MailboxOptionsOf(ctx, sess.Owner.ID, p.ID); err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	for id := range d.Own {
		if m, err := s.svc.Mailbox(ctx, sess.Owner.ID, p.ID, id); err == nil {
			d.Overrides = append(d.Overrides, m)
		}
	}
	notice := ""
	if r.URL.Query().Get("notice") == "options-saved" {
		notice = "The options are saved. The next pass uses them."
	}
	s.render(w, r, status, "options", view{Title: "Pass options · " + p.Name, Session: sess, CSRF: sess.CSRF, Project: &p,
		Notice: notice, Error: errMsg, Data: d})
}

func projectBusy(p service.Project) bool {
	return p.Mailboxes[service.StatusQueued]+p.Mailboxes[service.StatusVerifying]+p.Mailboxes[service.StatusMigrating] > 0
}

func (s *Server) saveProjectOptions(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	f, o := readOptionsForm(r)
	projectID := r.PathValue("project")
	if _, err := s.svc.SetProjectOptions(r.Context(), sess.Owner.ID, projectID, o); isExpected(err) {
		s.renderProjectOptions(w, r, sess, statusFor(err), &f, userMessage(err)+". Nothing was changed.")
		return
	} else if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+projectID+"/options?notice=options-saved", http.StatusSeeOther)
}

func (s *Server) mailboxOptionsPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderMailboxOptions(w, r, sess, http.StatusOK, nil, nil, "")
}

func (s *Server) renderMailboxOptions(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, f *optionsForm,
	preview *service.PlanPreview, errMsg string) {
	ctx := r.Context()
	p, err := s.svc.Project(ctx, sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	m, err := s.svc.Mailbox(ctx, sess.Owner.ID, p.ID, r.PathValue("mailbox"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	mo, err := s.svc.MailboxOptions(ctx, sess.Owner.ID, p.ID, m.ID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	d := optionsPage{Form: formOf(mo.Own), Mailbox: &m, Project: formOf(p.Options), Effective: mo.Effective, Preview: preview,
		MaxPasses: s.svc.MaxPasses(), Busy: projectBusy(p)}
	if f != nil {
		d.Form = *f
	}
	notice := ""
	if r.URL.Query().Get("notice") == "options-saved" {
		notice = "The options of this mailbox are saved. Its next pass uses them."
	}
	s.render(w, r, status, "mailbox-options", view{Title: "Options of " + m.SourceEmail, Session: sess, CSRF: sess.CSRF, Project: &p,
		Notice: notice, Error: errMsg, Data: d})
}

func (s *Server) saveMailboxOptions(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	f, o := readOptionsForm(r)
	projectID, mailboxID := r.PathValue("project"), r.PathValue("mailbox")
	if r.PostFormValue("action") == "clear" {
		o, f = service.Options{}, optionsForm{}
	}
	if _, err := s.svc.SetMailboxOptions(r.Context(), sess.Owner.ID, projectID, mailboxID, o); isExpected(err) {
		s.renderMailboxOptions(w, r, sess, statusFor(err), &f, nil, userMessage(err)+". Nothing was changed.")
		return
	} else if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+projectID+"/mailboxes/"+mailboxID+"/options?notice=options-saved", http.StatusSeeOther)
}

// previewPlan connects to the mailbox's two servers and shows where each
// folder would go with its saved options; nothing is copied.
func (s *Server) previewPlan(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	pv, err := s.svc.PreviewPlan(r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if errors.Is(err, service.ErrNotFound) {
		s.portalFail(w, r, sess, err)
		return
	}
	if err != nil {
		msg := userMessage(err)
		if !isExpected(err) {
			// A server that refused the login or could not be reached:
			// its error is what the user needs (it holds no password).
			msg = "The folder plan could not be read: " + err.Error()
		}
		s.renderMailboxOptions(w, r, sess, http.StatusOK, nil, nil, msg+".")
		return
	}
	s.renderMailboxOptions(w, r, sess, http.StatusOK, nil, &pv, "")
}
