package web

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/verify"
)

// The proof of migration (issue 15) in the API: a project's summary and
// each mailbox's newest sealed report as JSON, CSV or PDF. A proof pass
// is started like any other pass (POST …/passes with kind "proof").

func (s *Server) projectProof(w http.ResponseWriter, r *http.Request, o service.Owner) {
	sum, err := s.svc.ProjectProof(r.Context(), o.ID, r.PathValue("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, sum)
}

func (s *Server) mailboxProofJSON(w http.ResponseWriter, r *http.Request, o service.Owner) {
	s.writeProof(w, r, o, "application/json", "json", (*verify.Report).WriteJSON)
}

func (s *Server) mailboxProofCSV(w http.ResponseWriter, r *http.Request, o service.Owner) {
	s.writeProof(w, r, o, "text/csv; charset=utf-8", "csv", (*verify.Report).WriteCSV)
}

func (s *Server) mailboxProofPDF(w http.ResponseWriter, r *http.Request, o service.Owner) {
	s.writeProof(w, r, o, "application/pdf", "pdf", (*verify.Report).WritePDF)
}

// writeProof sends a mailbox's newest proof in one format. Downloads
// (CSV, PDF) are named after the mailbox so that an auditor's folder of
// them stays legible.
func (s *Server) writeProof(w http.ResponseWriter, r *http.Request, o service.Owner, ctype, ext string, write func(*verify.Report, io.Writer) error) {
	rep, err := s.svc.MailboxProof(r.Context(), o.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if errors.Is(err, service.ErrNoProof) {
		writeError(w, http.StatusNotFound, "this mailbox has not been verified yet: run a pass of kind proof (Verify migration)")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadTimeout))
	w.Header().Set("Content-Type", ctype)
	if ext != "json" {
		w.Header().Set("Content-Disposition", `attachment; filename="proof-of-migration-`+r.PathValue("mailbox")+`.`+ext+`"`)
	}
	if err := write(rep, w); err != nil {
		s.log.Error("proof of migration", "format", ext, "error", err)
	}
}
