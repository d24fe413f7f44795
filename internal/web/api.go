package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailferry/mailferry/internal/service"
)

// Server is the HTTP side of Mailferry.
type Server struct {
	svc *service.Service
	log *slog.Logger
	reg *prometheus.Registry
	mux *http.ServeMux
	// portal is the self-service web portal (portal.go).
	portal *portal
}

// New builds the handler tree.
func New(svc *service.Service, log *slog.Logger, reg *prometheus.Registry) *Server {
	s := &Server{svc: svc, log: log, reg: reg, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: 200}
	s.mux.ServeHTTP(rw, r)
	// The path is logged, never the query or body: they may hold secrets.
	s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", rw.status, "duration_ms", time.Since(start).Milliseconds())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (to extend
// deadlines for uploads and downloads).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Deadlines of the routes that move files, beyond the server's read and
// write timeouts.
const (
	uploadTimeout   = 5 * time.Minute
	downloadTimeout = 10 * time.Minute
)

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type ctxKey struct{}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	m.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI())
	})
	m.HandleFunc("GET /api/mailboxes/template.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="mailboxes.csv"`)
		_, _ = w.Write(service.MailboxCSVTemplate())
	})
	a := s.authed
	m.HandleFunc("GET /api/me", a(func(w http.ResponseWriter, r *http.Request, o service.Owner) { writeJSON(w, 200, o) }))
	m.HandleFunc("GET /api/presets", a(func(w http.ResponseWriter, r *http.Request, o service.Owner) { writeJSON(w, 200, s.svc.Presets()) }))
	m.HandleFunc("GET /api/projects", a(s.listProjects))
	m.HandleFunc("POST /api/projects", a(s.createProject))
	m.HandleFunc("GET /api/projects/{project}", a(s.getProject))
	m.HandleFunc("PATCH /api/projects/{project}", a(s.updateProject))
	m.HandleFunc("DELETE /api/projects/{project}", a(s.deleteProject))
	m.HandleFunc("POST /api/projects/{project}/finish", a(s.finishProject))
	m.HandleFunc("GET /api/projects/{project}/mailboxes", a(s.listMailboxes))
	m.HandleFunc("POST /api/projects/{project}/mailboxes", a(s.addMailboxes))
	m.HandleFunc("POST /api/projects/{project}/mailboxes/import", a(s.importCSV))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/export", a(s.exportCSV))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}", a(s.getMailbox))
	m.HandleFunc("PATCH /api/projects/{project}/mailboxes/{mailbox}", a(s.updateMailbox))
	m.HandleFunc("DELETE /api/projects/{project}/mailboxes/{mailbox}", a(s.deleteMailbox))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}/failures", a(s.failures))
	m.HandleFunc("GET /api/projects/{project}/proof", a(s.projectProof))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}/proof", a(s.mailboxProofJSON))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}/proof.csv", a(s.mailboxProofCSV))
	m.HandleFunc("GET /api/projects/{project}/mailboxes/{mailbox}/proof.pdf", a(s.mailboxProofPDF))
	m.HandleFunc("GET /api/projects/{project}/passes", a(s.listPasses))
	m.HandleFunc("POST /api/projects/{project}/passes", a(s.startPass))
	m.HandleFunc("GET /api/projects/{project}/passes/{pass}", a(s.getPass))
	m.HandleFunc("POST /api/projects/{project}/passes/{pass}/stop", a(s.stopPass))
	s.optionRoutes()
	s.operatorRoutes()
	s.portalRoutes()
}

type authedHandler func(http.ResponseWriter, *http.Request, service.Owner)

// authed checks the API token. Every route below it then asks the
// service with the caller's owner ID, which answers ErrNotFound (404)
// for anyone else's project.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailferry"`)
			writeError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <API token> (create one with `mailferry user add`)")
			return
		}
		o, err := s.svc.OwnerByToken(r.Context(), token)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "the API token is not valid")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, o)), o)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type errorBody struct {
	Error string             `json:"error"`
	Field string             `json:"field,omitempty"`
	Rows  []service.RowError `json:"rows,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fail maps service errors to statuses. Unexpected errors are logged
// and answered with a generic message: internals are not for clients.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *service.InputError
	var tl *TooLargeError
	switch {
	case errors.As(err, &tl):
		writeError(w, http.StatusRequestEntityTooLarge, "the request body is "+tl.Error())
	case errors.As(err, &ie):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: ie.Message, Field: ie.Field, Rows: ie.Rows})
	case errors.Is(err, service.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, service.ErrConflict):
		writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), service.ErrConflict.Error()+": "))
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; the server log has details")
	}
}

// Body limits of the API. A larger body is answered 413 with the limit,
// never cut off and parsed (which read as "not valid JSON").
const (
	maxJSONBytes = 1 << 20
	maxCSVBytes  = 1 << 20 // what service.ParseMailboxCSV accepts
)

// TooLargeError is a request body over its route's limit.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return "too large: the limit is " + humanLimit(e.Limit)
}

func humanLimit(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

// readBody reads a whole request body of at most limit bytes; a longer
// one is a *TooLargeError.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &TooLargeError{Limit: limit}
	}
	return b, err
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, maxJSONBytes)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &service.InputError{Message: "the request body is not valid JSON for this route: " + err.Error()}
	}
	return nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, o service.Owner) {
	ps, err := s.svc.Projects(r.Context(), o.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ps == nil {
		ps = []service.Project{}
	}
	writeJSON(w, 200, ps)
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var in service.ProjectInput
	if err := decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.svc.CreateProject(r.Context(), o.ID, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request, o service.Owner) {
	p, err := s.svc.Project(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var u service.ProjectUpdate
	if err := decode(w, r, &u); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.svc.UpdateProject(r.Context(), o.ID, r.PathValue("project"), u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request, o service.Owner) {
	if err := s.svc.DeleteProject(r.Context(), o.ID, r.PathValue("project")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) finishProject(w http.ResponseWriter, r *http.Request, o service.Owner) {
	p, err := s.svc.FinishProject(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}

func (s *Server) listMailboxes(w http.ResponseWriter, r *http.Request, o service.Owner) {
	ms, err := s.svc.Mailboxes(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ms == nil {
		ms = []service.Mailbox{}
	}
	writeJSON(w, 200, ms)
}

// mailboxBody is one pair in a request; a list is accepted too.
type mailboxBody struct {
	SourceEmail    string `json:"source_email"`
	SourceLogin    string `json:"source_login"`
	SourcePassword string `json:"source_password"`
	DestEmail      string `json:"destination_email"`
	DestLogin      string `json:"destination_login"`
	DestPassword   string `json:"destination_password"`
	Flags          string `json:"flags"`
}

func (b mailboxBody) input() service.MailboxInput {
	return service.MailboxInput{SourceEmail: b.SourceEmail, SourceLogin: b.SourceLogin, SourcePassword: b.SourcePassword,
		DestEmail: b.DestEmail, DestLogin: b.DestLogin, DestPassword: b.DestPassword, Flags: b.Flags}
}

func (s *Server) addMailboxes(w http.ResponseWriter, r *http.Request, o service.Owner) {
	body, err := readBody(w, r, maxJSONBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var list []mailboxBody
	if t := strings.TrimSpace(string(body)); strings.HasPrefix(t, "[") {
		err = json.Unmarshal(body, &list)
	} else {
		var one mailboxBody
		err = json.Unmarshal(body, &one)
		list = []mailboxBody{one}
	}
	if err != nil {
		s.fail(w, r, &service.InputError{Message: "the request body is not valid JSON: " + err.Error()})
		return
	}
	ins := make([]service.MailboxInput, len(list))
	for i, b := range list {
		ins[i] = b.input()
	}
	ms, err := s.svc.AddMailboxes(r.Context(), o.ID, r.PathValue("project"), ins)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ms)
}

func (s *Server) importCSV(w http.ResponseWriter, r *http.Request, o service.Owner) {
	// A big file on a slow line may take longer than the server's
	// read timeout allows a request.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadTimeout))
	body, err := readBody(w, r, maxCSVBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms, err := s.svc.ImportCSV(r.Context(), o.ID, r.PathValue("project"), body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ms)
}

func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request, o service.Owner) {
	rows, err := s.svc.ExportRows(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadTimeout))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="mailboxes-status.csv"`)
	if err := service.WriteMailboxCSV(w, rows); err != nil {
		s.log.Error("export", "error", err)
	}
}

func (s *Server) getMailbox(w http.ResponseWriter, r *http.Request, o service.Owner) {
	m, err := s.svc.Mailbox(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, m)
}

func (s *Server) updateMailbox(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var b mailboxBody
	if err := decode(w, r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	m, err := s.svc.UpdateMailbox(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"), b.input())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, m)
}

func (s *Server) deleteMailbox(w http.ResponseWriter, r *http.Request, o service.Owner) {
	if err := s.svc.DeleteMailbox(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) failures(w http.ResponseWriter, r *http.Request, o service.Owner) {
	fs, err := s.svc.Failures(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, fs)
}

func (s *Server) listPasses(w http.ResponseWriter, r *http.Request, o service.Owner) {
	ps, err := s.svc.Passes(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, ps)
}

func (s *Server) startPass(w http.ResponseWriter, r *http.Request, o service.Owner) {
	var in service.PassInput
	if err := decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.svc.StartPass(r.Context(), o.ID, r.PathValue("project"), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) getPass(w http.ResponseWriter, r *http.Request, o service.Owner) {
	p, err := s.svc.Pass(r.Context(), o.ID, r.PathValue("project"), r.PathValue("pass"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}

func (s *Server) stopPass(w http.ResponseWriter, r *http.Request, o service.Owner) {
	p, err := s.svc.StopPass(r.Context(), o.ID, r.PathValue("project"), r.PathValue("pass"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, p)
}
