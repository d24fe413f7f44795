package web

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/mailferry/mailferry/internal/service"
	"github.com/mailferry/mailferry/internal/verify"
)

// The proof of migration in the portal (issue 15): "Verify migration"
// starts a proof pass over every mailbox; the project's proof page shows
// one verdict and a row per mailbox, each mailbox's page its per-folder
// table, with the sealed report as CSV and PDF.

type proofView struct {
	Summary service.ProofSummary
	Busy    bool
}

type mailboxProofView struct {
	Mailbox service.Mailbox
	Report  *verify.Report
	Columns []proofColumn
}

// proofColumn is a count of the per-folder table.
type proofColumn struct {
	Head, Title string
	Bad         bool
	Get         func(*verify.Folder) int64
}

func proofColumns() []proofColumn {
	return []proofColumn{
		{"Source", "source messages", false, func(f *verify.Folder) int64 { return f.SourceMessages }},
		{"Destination", "destination messages", false, func(f *verify.Folder) int64 { return f.DestMessages }},
		{"Exact", "matched byte for byte, same flags and date", false, func(f *verify.Folder) int64 { return f.Exact }},
		{"Equivalent", "content-equivalent: the destination rebuilt the message", false, func(f *verify.Folder) int64 { return f.Equivalent }},
		{"Flags/date differ", "matched, with other flags or date", true, func(f *verify.Folder) int64 { return f.Differs }},
		{"Altered", "matched by identity, bytes differ", true, func(f *verify.Folder) int64 { return f.Altered }},
		{"Missing", "not on the destination", true, func(f *verify.Folder) int64 { return f.Missing }},
		{"Failed earlier", "of the missing: a pass reported it could not copy them", true, func(f *verify.Folder) int64 { return f.FailedEarlier }},
		{"Skipped", "skipped by a filter of the project", false, func(f *verify.Folder) int64 { return f.Skipped }},
		{"Extra", "on the destination only", true, func(f *verify.Folder) int64 { return f.Extra }},
	}
}

func (s *Server) proofPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderProof(w, r, sess, http.StatusOK, "")
}

func (s *Server) renderProof(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, errMsg string) {
	ctx, owner, project := r.Context(), sess.Owner.ID, r.PathValue("project")
	p, err := s.svc.Project(ctx, owner, project)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	sum, err := s.svc.ProjectProof(ctx, owner, project)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	v := proofView{Summary: sum}
	for st, n := range p.Mailboxes {
		if n > 0 && busy(st) {
			v.Busy = true
		}
	}
	s.render(w, r, status, "proof", view{Title: "Proof of migration · " + p.Name, Session: sess, CSRF: sess.CSRF, Project: &p,
		Steps: wizardSteps(&p, 4), Notice: notice(r), Error: errMsg, Data: v})
}

// startProof starts Verify migration for every mailbox of the project.
// back=finish returns to the Finish page.
func (s *Server) startProof(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	project := r.PathValue("project")
	_, err := s.svc.StartPass(r.Context(), sess.Owner.ID, project, service.PassInput{Kind: service.PassProof})
	if isExpected(err) {
		s.renderProof(w, r, sess, statusFor(err), userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+project+"/proof?notice=proof-started", http.StatusSeeOther)
}

func (s *Server) mailboxProofPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ctx, owner, project, mailbox := r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox")
	p, err := s.svc.Project(ctx, owner, project)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	m, err := s.svc.Mailbox(ctx, owner, project, mailbox)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	rep, err := s.svc.MailboxProof(ctx, owner, project, mailbox)
	if err != nil && !errors.Is(err, service.ErrNoProof) {
		s.portalFail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "proof-mailbox", view{Title: "Proof of migration of " + m.SourceEmail, Session: sess, CSRF: sess.CSRF,
		Project: &p, Steps: wizardSteps(&p, 4), Data: mailboxProofView{Mailbox: m, Report: rep, Columns: proofColumns()}})
}

func (s *Server) mailboxProofCSVDownload(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.proofDownload(w, r, sess, "text/csv; charset=utf-8", "csv", (*verify.Report).WriteCSV)
}

func (s *Server) mailboxProofPDFDownload(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.proofDownload(w, r, sess, "application/pdf", "pdf", (*verify.Report).WritePDF)
}

func (s *Server) proofDownload(w http.ResponseWriter, r *http.Request, sess *service.Session, ctype, ext string, write func(*verify.Report, io.Writer) error) {
	rep, err := s.svc.MailboxProof(r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadTimeout))
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="proof-of-migration-`+r.PathValue("mailbox")+`.`+ext+`"`)
	if err := write(rep, w); err != nil {
		s.log.Error("proof of migration download", "format", ext, "error", err)
	}
}
