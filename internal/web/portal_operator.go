package web

import (
	"net/http"

	"github.com/mailferry/mailferry/internal/service"
)

// The operator's page (issue 17, item 6): every project of every user,
// and the load on each source server. Ordinary users get the same 404
// page as for a project that is not theirs, so the page does not even
// reveal that it exists.

type operatorView struct {
	Hosts    []service.HostLoad
	Projects []operatorProject
	// HostLimit is the connection cap per source host (serve
	// --connections), 0 when unknown.
	HostLimit int
}

type operatorProject struct {
	service.ProjectSummary
	Total  int
	Counts []statusCount
	Busy   int
}

func (s *Server) operatorPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	if !sess.Owner.Operator {
		s.notFoundPage(w, r, sess)
		return
	}
	hosts, err := s.svc.HostLoads(r.Context(), sess.Owner.ID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	ps, err := s.svc.AllProjects(r.Context(), sess.Owner.ID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	v := operatorView{Hosts: hosts, HostLimit: s.portal.cfg.HostLimit}
	for _, p := range ps {
		counts, total := sortedCounts(p.Mailboxes)
		v.Projects = append(v.Projects, operatorProject{ProjectSummary: p, Total: total, Counts: counts,
			Busy: p.Mailboxes[service.StatusQueued] + p.Mailboxes[service.StatusVerifying] + p.Mailboxes[service.StatusMigrating]})
	}
	s.render(w, r, http.StatusOK, "operator", view{Title: "Operator: all migrations", Session: sess, CSRF: sess.CSRF, Data: v})
}
