package web

import (
	"net/http"

	"github.com/mailferry/mailferry/internal/service"
)

// The operator's API (issue 17, item 6): the same as the operator page,
// for scripts. Every project with its owner, and the load on each source
// host. An ordinary user's token gets 404, the answer for a path that
// does not exist, so the routes do not reveal that there is anything to
// see. Stopping any project's pass is the ordinary stop route
// (POST /api/projects/{project}/passes/{pass}/stop), which the service
// opens to operators.

func (s *Server) operatorRoutes() {
	a := s.authed
	s.mux.HandleFunc("GET /api/operator/projects", a(s.operatorProjects))
	s.mux.HandleFunc("GET /api/operator/hosts", a(s.operatorHosts))
}

func (s *Server) operatorProjects(w http.ResponseWriter, r *http.Request, o service.Owner) {
	ps, err := s.svc.AllProjects(r.Context(), o.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ps)
}

// hostLoads is the answer of GET /api/operator/hosts.
type hostLoads struct {
	// ConnectionLimit is the cap on connections per source host (serve
	// --connections); 0 when this server does not know it.
	ConnectionLimit int                `json:"connection_limit"`
	Hosts           []service.HostLoad `json:"hosts"`
}

func (s *Server) operatorHosts(w http.ResponseWriter, r *http.Request, o service.Owner) {
	hosts, err := s.svc.HostLoads(r.Context(), o.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hosts == nil {
		hosts = []service.HostLoad{}
	}
	limit := 0
	if s.portal != nil {
		limit = s.portal.cfg.HostLimit
	}
	writeJSON(w, http.StatusOK, hostLoads{ConnectionLimit: limit, Hosts: hosts})
}
