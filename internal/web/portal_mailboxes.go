package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/service"
)

// entryRow is one row of the "add mailboxes" table as typed. Passwords
// are never kept: a page shown again asks for them again.
type entryRow struct {
	// Key makes the inputs' ids unique; Num is the row's number for
	// screen readers.
	Key, Num                                       string
	SourceEmail, SourceLogin, DestEmail, DestLogin string
	Errors                                         map[string]string
}

func newEntryRow(i int) entryRow {
	return entryRow{Key: strconv.Itoa(i), Num: strconv.Itoa(i + 1), Errors: map[string]string{}}
}

// mailboxesView is the mailboxes step.
type mailboxesView struct {
	Mailboxes []service.Mailbox // the page's
	List      *listState
	Rows      []entryRow
	// RowsShownAgain: the rows come back with errors; passwords must be typed again.
	RowsShownAgain bool
	CSVErrors      []service.RowError
	CSVError       string
	ReadOnly       bool
	// Blank is the row the script copies for "Add another mailbox".
	Blank entryRow
	// NoPasswords counts the mailboxes missing a password (whose users
	// can be asked); AskUsers: the rows were added to ask their users.
	NoPasswords int
	AskUsers    bool
}

func busy(st service.Status) bool {
	return st == service.StatusQueued || st == service.StatusVerifying || st == service.StatusMigrating
}

func (s *Server) renderMailboxes(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, v mailboxesView, errMsg string) {
	projectID := r.PathValue("project")
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, projectID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	if v.List, err = s.loadList(r, sess, p); err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	v.Mailboxes = v.List.Page.Mailboxes
	if !v.ReadOnly && p.State != "finished" {
		ids, err := s.svc.MatchingMailboxIDs(r.Context(), sess.Owner.ID, projectID, service.MailboxQuery{NoPasswords: true})
		if err != nil {
			s.portalFail(w, r, sess, err)
			return
		}
		v.NoPasswords = len(ids)
	}
	v.ReadOnly = p.State == "finished"
	if len(v.Rows) == 0 {
		v.Rows = []entryRow{newEntryRow(0)}
	}
	v.Blank = entryRow{Key: "__N__", Num: "__NUM__"}
	s.render(w, r, status, "mailboxes", view{Title: "Mailboxes · " + p.Name, Session: sess, CSRF: sess.CSRF, Project: &p,
		Steps: wizardSteps(&p, 2), Notice: notice(r), Error: errMsg, Data: v})
}

func (s *Server) mailboxesPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderMailboxes(w, r, sess, http.StatusOK, mailboxesView{}, "")
}

// mailboxFields maps the service's field names to the table's.
var mailboxFields = map[string]string{
	"source_email": "source_email", "source_password": "source_password",
	"destination_email": "destination_email", "destination_password": "destination_password",
}

// addMailboxRows adds the pairs typed into the table, all or none.
func (s *Server) addMailboxRows(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	f := r.PostForm
	n := 0
	for _, k := range []string{"source_email", "source_login", "source_password", "destination_email", "destination_login", "destination_password"} {
		n = max(n, len(f[k]))
	}
	at := func(k string, i int) string {
		if i < len(f[k]) {
			return f[k][i]
		}
		return ""
	}
	var rows []entryRow
	var ins []service.MailboxInput
	bad := 0
	askUsers := f.Get("ask_users") == "yes"
	for i := range n {
		in := service.MailboxInput{
			SourceEmail: strings.TrimSpace(at("source_email", i)), SourceLogin: strings.TrimSpace(at("source_login", i)),
			SourcePassword: at("source_password", i),
			DestEmail:      strings.TrimSpace(at("destination_email", i)), DestLogin: strings.TrimSpace(at("destination_login", i)),
			DestPassword: at("destination_password", i),
		}
		if in == (service.MailboxInput{}) {
			continue // an empty row left over
		}
		row := newEntryRow(len(rows))
		row.SourceEmail, row.SourceLogin, row.DestEmail, row.DestLogin = in.SourceEmail, in.SourceLogin, in.DestEmail, in.DestLogin
		in.AskUser = askUsers
		for _, ie := range s.svc.ValidateMailboxOf(p, in) {
			if askUsers && strings.HasSuffix(ie.Field, "_password") {
				continue // the user enters it
			}
			row.Errors[mailboxFields[ie.Field]] = capitalize(ie.Message) + "."
		}
		if len(row.Errors) > 0 {
			bad++
		}
		rows = append(rows, row)
		ins = append(ins, in)
	}
	again := mailboxesView{Rows: rows, RowsShownAgain: true, AskUsers: askUsers}
	switch {
	case len(ins) == 0:
		s.renderMailboxes(w, r, sess, http.StatusBadRequest, mailboxesView{},
			"Fill in at least one mailbox: the source and destination email addresses and their passwords.")
		return
	case bad > 0:
		s.renderMailboxes(w, r, sess, http.StatusBadRequest, again, fmt.Sprintf(
			"%s to be corrected (marked below); nothing was added yet. For your security passwords are never shown again: type them again before saving.",
			plural(bad, "One mailbox needs", "%d mailboxes need")))
		return
	}
	added, err := s.svc.AddMailboxes(r.Context(), sess.Owner.ID, r.PathValue("project"), ins)
	if isExpected(err) {
		s.renderMailboxes(w, r, sess, statusFor(err), again,
			userMessage(err)+". Nothing was added. For your security passwords are never shown again: type them again before saving.")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/projects/%s/mailboxes?notice=added&n=%d", r.PathValue("project"), len(added)), http.StatusSeeOther)
}

// statusFor is the HTTP status of an expected error.
func statusFor(err error) int {
	if errors.Is(err, service.ErrConflict) {
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	if strings.Contains(many, "%d") {
		return fmt.Sprintf(many, n)
	}
	return many
}

func (s *Server) importMailboxes(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	file, _, err := r.FormFile("csv")
	if err != nil {
		s.renderMailboxes(w, r, sess, http.StatusBadRequest, mailboxesView{CSVError: "Choose a CSV file first, then click Upload."}, "")
		return
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxCSVBytes+1))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	if len(body) > maxCSVBytes {
		s.renderMailboxes(w, r, sess, http.StatusRequestEntityTooLarge, mailboxesView{CSVError: "The file is too large: the limit is " +
			humanLimit(maxCSVBytes) + ". Nothing was imported; split it into several files of at most 10,000 mailboxes."}, "")
		return
	}
	askUsers := r.FormValue("ask_users") == "on"
	added, err := s.svc.ImportCSVFor(r.Context(), sess.Owner.ID, r.PathValue("project"), body, askUsers)
	var ie *service.InputError
	switch {
	case errors.As(err, &ie) && ie.Field == "csv":
		v := mailboxesView{CSVError: capitalize(ie.Message) + ".", CSVErrors: ie.Rows}
		if len(ie.Rows) > 0 {
			v.CSVError = fmt.Sprintf("Nothing was imported: %s. Correct the file and upload it again.",
				plural(len(ie.Rows), "one problem was found", "%d problems were found"))
		}
		s.renderMailboxes(w, r, sess, http.StatusBadRequest, v, "")
		return
	case isExpected(err):
		s.renderMailboxes(w, r, sess, statusFor(err), mailboxesView{CSVError: userMessage(err) + ". Nothing was imported."}, "")
		return
	case err != nil:
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/projects/%s/mailboxes?notice=imported&n=%d", r.PathValue("project"), len(added)), http.StatusSeeOther)
}

func (s *Server) csvTemplate(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	if _, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project")); err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="mailboxes.csv"`)
	_, _ = w.Write(service.MailboxCSVTemplate())
}

// editForm is the page to correct one pair.
type editForm struct {
	Mailbox                                        service.Mailbox
	SourceEmail, SourceLogin, DestEmail, DestLogin string
	Errors                                         map[string]string
	Next                                           string
	Busy, ReadOnly                                 bool
}

// nextPages are where the edit page may return to.
var nextPages = map[string]bool{"mailboxes": true, "trial": true, "migrate": true}

func nextPage(r *http.Request) string {
	n := r.FormValue("next")
	if !nextPages[n] {
		return "mailboxes"
	}
	return n
}

func (s *Server) renderEdit(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, f editForm, errMsg string) {
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	m, err := s.svc.Mailbox(r.Context(), sess.Owner.ID, p.ID, r.PathValue("mailbox"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	f.Mailbox, f.Next, f.Busy, f.ReadOnly = m, nextPage(r), busy(m.Status), p.State == "finished"
	if f.Errors == nil {
		f.Errors = map[string]string{}
		f.SourceEmail, f.SourceLogin, f.DestEmail, f.DestLogin = m.SourceEmail, m.SourceLogin, m.DestEmail, m.DestLogin
	}
	current := map[string]int{"mailboxes": 2, "trial": 3, "migrate": 4}[f.Next]
	s.render(w, r, status, "edit", view{Title: "Edit " + m.SourceEmail, Session: sess, CSRF: sess.CSRF, Project: &p,
		Steps: wizardSteps(&p, current), Error: errMsg, Data: f})
}

func (s *Server) editMailboxPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderEdit(w, r, sess, http.StatusOK, editForm{}, "")
}

func (s *Server) saveMailbox(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	in := service.MailboxInput{
		SourceEmail: strings.TrimSpace(r.PostFormValue("source_email")), SourceLogin: strings.TrimSpace(r.PostFormValue("source_login")),
		SourcePassword: r.PostFormValue("source_password"),
		DestEmail:      strings.TrimSpace(r.PostFormValue("destination_email")), DestLogin: strings.TrimSpace(r.PostFormValue("destination_login")),
		DestPassword: r.PostFormValue("destination_password"),
	}
	_, err := s.svc.UpdateMailbox(r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox"), in)
	if isExpected(err) {
		f := editForm{SourceEmail: in.SourceEmail, SourceLogin: in.SourceLogin, DestEmail: in.DestEmail, DestLogin: in.DestLogin,
			Errors: map[string]string{}}
		msg := userMessage(err) + "."
		var ie *service.InputError
		if errors.As(err, &ie) && mailboxFields[ie.Field] != "" {
			f.Errors[mailboxFields[ie.Field]] = msg
			msg = "Please correct the field marked below."
		}
		s.renderEdit(w, r, sess, statusFor(err), f, msg+" Passwords you typed were not kept: type them again.")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	next := nextPage(r)
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/"+next+"?notice=updated#row-"+r.PathValue("mailbox"), http.StatusSeeOther)
}

func (s *Server) removeMailbox(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	err := s.svc.DeleteMailbox(r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("mailbox"))
	if isExpected(err) {
		s.renderMailboxes(w, r, sess, statusFor(err), mailboxesView{}, userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/mailboxes?notice=removed", http.StatusSeeOther)
}
