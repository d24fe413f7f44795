package web

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// A mailbox's pass history (issue 17, item 3): every pass with its kind,
// times, duration, counts and result; per folder the balanced counts of
// each copying pass; the failed items; all of it as CSV.

type historyView struct {
	Mailbox service.Mailbox
	Passes  []service.PassRecord
}

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
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
	hist, err := s.svc.MailboxHistory(ctx, owner, project, mailbox)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "history", view{Title: "History of " + m.SourceEmail, Session: sess, CSRF: sess.CSRF, Project: &p,
		Steps: wizardSteps(&p, 4), Data: historyView{Mailbox: m, Passes: hist}})
}

// historyCSV is the history as one CSV: a line per folder of each pass
// (or one for a pass without folders), then a line per failed item.
func (s *Server) historyCSV(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ctx, owner, project, mailbox := r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox")
	m, err := s.svc.Mailbox(ctx, owner, project, mailbox)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	hist, err := s.svc.MailboxHistory(ctx, owner, project, mailbox)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="history.csv"`)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	_ = cw.Write([]string{"Record", "Source Email", "Destination Email", "Pass", "Kind", "Result", "Started", "Finished", "Duration Seconds",
		"Folder", "Destination Folder", "Source Messages", "Copied", "Already Present", "Skipped", "Failed", "Left", "Settled Earlier",
		"Item ID", "Size", "Subject", "Reason"})
	for _, p := range hist {
		base := []string{m.SourceEmail, m.DestEmail, p.PassID, kindName(p.Kind), p.Status.Label(), ts(p.StartedAt), ts(p.FinishedAt),
			strconv.FormatFloat(p.DurationSec, 'f', 0, 64)}
		if len(p.Plan) == 0 || !p.Kind.Copies() {
			_ = cw.Write(append(append([]string{"pass"}, base...), "", "", n(p.TotalMsgs), n(p.Copied), n(p.Present), n(p.Skipped), n(p.Failed),
				"", "", "", "", "", p.LastError))
		}
		if p.Kind.Copies() {
			for _, f := range p.Plan {
				_ = cw.Write(append(append([]string{"folder"}, base...), f.Source, f.Destination, n(f.Messages), n(f.Copied), n(f.Present),
					n(f.Skipped), n(f.Failed), n(f.Left), n(f.Earlier), "", "", "", ""))
			}
		}
		for _, f := range p.Failures {
			id := f.ID
			if id == "" && f.UID != 0 {
				id = strconv.FormatUint(uint64(f.UID), 10)
			}
			_ = cw.Write(append(append([]string{"failed item"}, base...), f.Folder, "", "", "", "", "", n(f.Messages), "", "",
				id, n(f.Size), f.Subject, f.Reason))
		}
	}
	cw.Flush()
}
