package web

import (
	"errors"
	"net/http"

	"github.com/mailferry/mailferry/internal/service"
)

// The pass options in the API (issue 17 item 2), as in the portal.

func (s *Server) optionRoutes() {
	m, a := s.mux, s.authed
	m.HandleFunc("PUT /api/projects/{project}/options", a(s.putProjectOptions))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}/options", a(s.getMailboxOptions))
	m.HandleFunc("PUT /api/projects/{project}/mailboxes/{mailbox}/options", a(s.putMailboxOptions))
	m.HandleFunc("POST /api/projects/{project}/mailboxes/{mailbox}/preview", a(s.previewMailboxPlan))
}

func (s *Server) putProjectOptions(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var in service.Options
	if err := decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.svc.SetProjectOptions(r.Context(), o.ID, r.PathValue("project"), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}

func (s *Server) getMailboxOptions(w http.ResponseWriter, r *http.Request, o service.Owner) {
	mo, err := s.svc.MailboxOptions(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, mo)
}

func (s *Server) putMailboxOptions(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var in service.Options
	if err := decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	mo, err := s.svc.SetMailboxOptions(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, mo)
}

func (s *Server) previewMailboxPlan(w http.ResponseWriter, r *http.Request, o service.Owner) {
	pv, err := s.svc.PreviewPlan(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"))
	var ie *service.InputError
	switch {
	case err != nil && !errors.As(err, &ie) && !errors.Is(err, service.ErrNotFound) && !errors.Is(err, service.ErrConflict):
		// A server that refused the login or could not be reached: its
		// error (which never holds a password) is what the caller needs.
		writeError(w, http.StatusBadGateway, "the folder plan could not be read: "+err.Error())
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, pv)
}
