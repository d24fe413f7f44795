package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// projectState is everything the trial, migrate and status pages show:
// the project's counts and totals over every mailbox, and one page of
// mailboxes (List) with their last pass.
type projectState struct {
	Project   service.Project
	Mailboxes []service.Mailbox // the page's
	List      *listState
	Passes    []service.Pass // newest first
	Running   []service.Pass // running or stopping
	Failures  map[string][]service.FailedItem
	// Busy: some mailbox is queued or being worked on.
	Busy bool
	// HasTrial, HasCopy: a trial / a copying pass has ever run.
	HasTrial, HasCopy bool
	// LastCopy is the newest copying pass.
	LastCopy *service.Pass
	// ProofCurrent: a Verify migration (proof) pass started after the
	// newest copying pass.
	ProofCurrent bool
	Counts       map[service.Status]int
	Totals       totals
}

// totals adds up the mailboxes' latest copying pass.
type totals struct {
	Mailboxes, Done                   int
	Messages, Processed, Copied       int64
	Present, Failed                   int64
	Bytes, CopiedBytes                int64
	Rate                              float64
	ETASeconds                        int64
	HasProgress                       bool
	Percent                           int
	ReadyMailboxes, FailedMailboxes   int
	NotStarted, CompletedWithProblems int
}

func (s *Server) loadState(r *http.Request, sess *service.Session, withFailures bool) (*projectState, error) {
	ctx, owner, id := r.Context(), sess.Owner.ID, r.PathValue("project")
	p, err := s.svc.Project(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	st := &projectState{Project: p, Counts: map[service.Status]int{}, Failures: map[string][]service.FailedItem{}}
	if st.List, err = s.loadList(r, sess, p); err != nil {
		return nil, err
	}
	st.Mailboxes = st.List.Page.Mailboxes
	if st.Passes, err = s.svc.Passes(ctx, owner, id); err != nil {
		return nil, err
	}
	for i, ps := range st.Passes {
		if ps.State == "running" || ps.State == "stopping" {
			st.Running = append(st.Running, ps)
		}
		if ps.Kind.Copies() {
			st.HasCopy = true
			if st.LastCopy == nil {
				st.LastCopy = &st.Passes[i]
			}
		} else if ps.Kind == service.PassTrial {
			st.HasTrial = true
		} else if ps.Kind == service.PassProof && st.LastCopy == nil {
			st.ProofCurrent = true // newest first: before any copying pass
		}
	}
	t := &st.Totals
	for status, n := range p.Mailboxes {
		st.Counts[status] = n
		t.Mailboxes += n
		if busy(status) && n > 0 {
			st.Busy = true
		}
	}
	c := st.Counts
	t.ReadyMailboxes, t.FailedMailboxes, t.NotStarted = c[service.StatusReady], c[service.StatusFailed], c[service.StatusNotStarted]
	t.Done = c[service.StatusCompleted] + c[service.StatusCompletedWithErrors]
	t.CompletedWithProblems = c[service.StatusCompletedWithErrors]
	ct, err := s.svc.ProjectCopyTotals(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	t.HasProgress = ct.Mailboxes > 0
	t.Messages, t.Processed, t.Copied, t.Present, t.Failed = ct.Messages, ct.Processed, ct.Copied, ct.Present, ct.Failed
	t.Bytes, t.CopiedBytes, t.Rate, t.ETASeconds = ct.Bytes, ct.CopiedBytes, ct.Rate, ct.ETASeconds
	if withFailures {
		var ids []string
		for _, m := range st.Mailboxes {
			if lp := m.LastPass; lp != nil && lp.Kind.Copies() && lp.Failed > 0 {
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			if st.Failures, err = s.svc.PageFailures(ctx, owner, id, ids); err != nil {
				return nil, err
			}
		}
	}
	t.Percent = percent(t.Processed, t.Messages)
	// A delta pass skips unchanged folders without counting them, so a
	// finished pass is 100% whatever the counts say.
	if t.HasProgress && !st.Busy && t.Done+t.FailedMailboxes == t.Mailboxes {
		t.Percent = 100
	}
	return st, nil
}

// region is a part of a page that status.json can replace: the HTML as
// the page template renders it, and its hash so the script replaces only
// what changed (an open "More info" stays open).
type region struct {
	Key  string        `json:"-"`
	HTML template.HTML `json:"html"`
	Hash string        `json:"hash"`
}

func (s *Server) fragment(key, name string, data any) (region, error) {
	var b bytes.Buffer
	if err := s.portal.parts.ExecuteTemplate(&b, name, data); err != nil {
		return region{}, fmt.Errorf("render %s: %w", name, err)
	}
	sum := sha256.Sum256(b.Bytes())
	return region{Key: key, HTML: template.HTML(b.String()), Hash: hex.EncodeToString(sum[:8])}, nil
}

// rowData is one mailbox's row on the trial or migrate page.
type rowData struct {
	ProjectID string
	CSRF      string
	ReadOnly  bool
	Busy      bool // the project is busy (no single re-run then)
	M         service.Mailbox
	// Copy is the mailbox's latest pass when it copies mail.
	Copy     *service.MailboxPass
	Failures []service.FailedItem
}

// liveData is what the live regions of a page render from.
type liveData struct {
	*projectState
	CSRF     string
	ReadOnly bool
}

// liveView is a trial or migrate page.
type liveView struct {
	*projectState
	StatusURL string
	Summary   region
	Actions   region
	// ListCounts is the list's head: counts by status and the pager.
	ListCounts region
	Rows       []region
}

// regions renders the live parts of page ("trial" or "migrate").
func (s *Server) regions(st *projectState, page, csrf string) (liveView, error) {
	v := liveView{projectState: st, StatusURL: "/projects/" + st.Project.ID + "/status.json?view=" + page}
	if qs := st.List.QueryString(); qs != "" {
		v.StatusURL += "&" + qs
	}
	ld := liveData{projectState: st, CSRF: csrf, ReadOnly: st.Project.State == "finished"}
	var err error
	if v.Summary, err = s.fragment("summary", page+"-summary", ld); err != nil {
		return v, err
	}
	if v.Actions, err = s.fragment("actions", page+"-actions", ld); err != nil {
		return v, err
	}
	if v.ListCounts, err = s.fragment("list-counts", "list-counts", st.List); err != nil {
		return v, err
	}
	for _, m := range st.Mailboxes {
		rd := rowData{ProjectID: st.Project.ID, CSRF: csrf, ReadOnly: ld.ReadOnly, Busy: st.Busy, M: m, Failures: st.Failures[m.ID]}
		if m.LastPass != nil && m.LastPass.Kind.Copies() {
			rd.Copy = m.LastPass
		}
		row, err := s.fragment("row-"+m.ID, page+"-row", rd)
		if err != nil {
			return v, err
		}
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

func (s *Server) renderLive(w http.ResponseWriter, r *http.Request, sess *service.Session, page string, status int, errMsg string) {
	st, err := s.loadState(r, sess, page == "migrate")
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	v, err := s.regions(st, page, sess.CSRF)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	title, step := "Trial", 3
	if page == "migrate" {
		title, step = "Migrate", 4
	}
	s.render(w, r, status, page, view{Title: title + " · " + st.Project.Name, Session: sess, CSRF: sess.CSRF, Project: &st.Project,
		Steps: wizardSteps(&st.Project, step), Notice: notice(r), NoticeLive: strings.HasSuffix(r.URL.Query().Get("notice"), "-started"),
		Error: errMsg, Data: v})
}

func (s *Server) trialPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderLive(w, r, sess, "trial", http.StatusOK, "")
}

func (s *Server) migratePage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderLive(w, r, sess, "migrate", http.StatusOK, "")
}

// startTrial runs the trial for every mailbox, or for one (mailbox_id).
func (s *Server) startTrial(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	in := service.PassInput{Kind: service.PassTrial}
	if id := r.PostFormValue("mailbox_id"); id != "" {
		in.MailboxIDs = []string{id}
	}
	_, err := s.svc.StartPass(r.Context(), sess.Owner.ID, r.PathValue("project"), in)
	if isExpected(err) {
		s.renderLive(w, r, sess, "trial", statusFor(err), userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/trial?notice=trial-started", http.StatusSeeOther)
}

// startCopyPass starts a full migration, Migrate new items (delta) or a
// retry of the failed items, for the chosen mailboxes (all if none).
func (s *Server) startCopyPass(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	kind := service.PassKind(r.PostFormValue("kind"))
	notices := map[service.PassKind]string{service.PassFull: "migration-started", service.PassDelta: "delta-started", service.PassRetryErrors: "retry-started",
		service.PassPreStage: "prestage-started"}
	code, ok := notices[kind]
	if !ok {
		s.renderLive(w, r, sess, "migrate", http.StatusBadRequest, "Choose what to run: the migration, a pre-stage, Migrate new items or Retry failed items.")
		return
	}
	ids := r.PostForm["mailbox_id"]
	if r.PostFormValue("only") == "ready" {
		// "Migrate the ready mailboxes": all of them, not only the page's.
		var err error
		if ids, err = s.svc.MatchingMailboxIDs(r.Context(), sess.Owner.ID, r.PathValue("project"), service.MailboxQuery{Status: service.StatusReady}); err != nil {
			s.portalFail(w, r, sess, err)
			return
		}
		if len(ids) == 0 {
			s.renderLive(w, r, sess, "migrate", http.StatusConflict, "No mailbox is ready for migration any more. Reload the page to see where they are.")
			return
		}
	}
	in := service.PassInput{Kind: kind, MailboxIDs: ids}
	if kind == service.PassPreStage {
		// Older than 30, 60 or 90 days, or than a date.
		in.Cutoff = r.PostFormValue("cutoff")
		if in.Cutoff == "date" {
			in.Cutoff = r.PostFormValue("cutoff_date")
		}
	}
	_, err := s.svc.StartPass(r.Context(), sess.Owner.ID, r.PathValue("project"), in)
	if isExpected(err) {
		s.renderLive(w, r, sess, "migrate", statusFor(err), userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/migrate?notice="+code, http.StatusSeeOther)
}

func (s *Server) stopPortalPass(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ps, err := s.svc.StopPass(r.Context(), sess.Owner.ID, r.PathValue("project"), r.PathValue("pass"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	page := "migrate"
	if ps.Kind == service.PassProof {
		page = "proof"
	} else if !ps.Kind.Copies() {
		page = "trial"
	}
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/"+page+"?notice=stopped", http.StatusSeeOther)
}

// mailboxStatus is one mailbox in status.json.
type mailboxStatus struct {
	ID          string               `json:"id"`
	SourceEmail string               `json:"source_email"`
	DestEmail   string               `json:"destination_email"`
	Status      service.Status       `json:"status"`
	StatusLabel string               `json:"status_label"`
	MoreInfo    string               `json:"more_info,omitempty"`
	SolveIssue  *service.Solution    `json:"solve_issue,omitempty"`
	Warning     string               `json:"warning,omitempty"`
	Plan        []service.PlanRow    `json:"plan,omitempty"`
	LastPass    *service.MailboxPass `json:"last_pass,omitempty"`
	Failures    []service.FailedItem `json:"failures,omitempty"`
}

type passRef struct {
	ID    string           `json:"id"`
	Kind  service.PassKind `json:"kind"`
	State string           `json:"state"`
}

// statusBody is the answer of status.json: the data, and the page's live
// regions rendered by the same templates as the page itself.
type statusBody struct {
	ProjectID string                 `json:"project_id"`
	State     string                 `json:"state"`
	Running   bool                   `json:"running"`
	Passes    []passRef              `json:"running_passes"`
	Totals    totals                 `json:"totals"`
	Mailboxes []mailboxStatus        `json:"mailboxes"`
	Regions   map[string]region      `json:"regions"`
	Counts    map[service.Status]int `json:"counts"`
	// Rows are the keys of the page's rows in order (the regions of
	// rows left out are unchanged); Total, Page and Pages describe the
	// list.
	Rows  []string `json:"rows"`
	Total int      `json:"total"`
	Page  int      `json:"page"`
	Pages int      `json:"pages"`
}

// statusJSON feeds the live updates of the trial and migrate pages.
func (s *Server) statusJSON(w http.ResponseWriter, r *http.Request) {
	sess, err := s.currentSession(r)
	if err != nil {
		if errors.Is(err, service.ErrNotFound) {
			writeError(w, http.StatusUnauthorized, "log in again: your session has ended")
			return
		}
		s.fail(w, r, err)
		return
	}
	page := r.URL.Query().Get("view")
	if page != "migrate" {
		page = "trial"
	}
	st, err := s.loadState(r, sess, page == "migrate")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.regions(st, page, sess.CSRF)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The page says which regions it has (their hashes); only the others
	// are sent, so that polling a page whose rows did not change costs
	// a few hundred bytes.
	known := map[string]bool{}
	for _, h := range strings.Split(r.URL.Query().Get("known"), ",") {
		if h != "" {
			known[h] = true
		}
	}
	body := statusBody{ProjectID: st.Project.ID, State: st.Project.State, Running: st.Busy, Passes: []passRef{}, Totals: st.Totals,
		Mailboxes: []mailboxStatus{}, Regions: map[string]region{}, Counts: st.Counts, Rows: []string{},
		Total: st.List.Page.Total, Page: st.List.Page.Page, Pages: st.List.Page.Pages}
	for _, rg := range []region{v.Summary, v.Actions, v.ListCounts} {
		if !known[rg.Hash] {
			body.Regions[rg.Key] = rg
		}
	}
	for _, p := range st.Running {
		body.Passes = append(body.Passes, passRef{p.ID, p.Kind, p.State})
	}
	for i, m := range st.Mailboxes {
		body.Rows = append(body.Rows, v.Rows[i].Key)
		if known[v.Rows[i].Hash] {
			continue
		}
		ms := mailboxStatus{ID: m.ID, SourceEmail: m.SourceEmail, DestEmail: m.DestEmail, Status: m.Status, StatusLabel: m.StatusLabel,
			MoreInfo: m.MoreInfo, SolveIssue: m.SolveIssue, LastPass: m.LastPass, Failures: st.Failures[m.ID]}
		if m.LastPass != nil {
			ms.Warning, ms.Plan = m.LastPass.Warning, m.LastPass.Plan
		}
		body.Mailboxes = append(body.Mailboxes, ms)
		body.Regions[v.Rows[i].Key] = v.Rows[i]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// finishView is the confirmation page of Finish.
type finishView struct {
	*projectState
	Ordered []statusCount
	Proof   service.ProofSummary
}

func (s *Server) renderFinish(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, errMsg string) {
	st, err := s.loadState(r, sess, false)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	if st.Project.State == "finished" {
		http.Redirect(w, r, "/projects/"+st.Project.ID+"/done", http.StatusSeeOther)
		return
	}
	counts, _ := sortedCounts(st.Counts)
	proof, err := s.svc.ProjectProof(r.Context(), sess.Owner.ID, st.Project.ID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	s.render(w, r, status, "finish", view{Title: "Finish · " + st.Project.Name, Session: sess, CSRF: sess.CSRF, Project: &st.Project,
		Steps: wizardSteps(&st.Project, 5), Error: errMsg, Data: finishView{st, counts, proof}})
}

func (s *Server) finishPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderFinish(w, r, sess, http.StatusOK, "")
}

func (s *Server) finishSubmit(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	_, err := s.svc.FinishProject(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if isExpected(err) {
		s.renderFinish(w, r, sess, statusFor(err), userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+r.PathValue("project")+"/done", http.StatusSeeOther)
}

// doneRow is one mailbox on the completion page.
type doneRow struct {
	service.MailboxExportRow
	ID       string
	St       service.Status
	Failures []service.FailedItem
}

type doneView struct {
	Rows                            []doneRow
	Copied, Present, Failed, Bytes  int64
	Completed, WithErrors, NotMoved int
}

func (s *Server) donePage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ctx, owner, id := r.Context(), sess.Owner.ID, r.PathValue("project")
	p, err := s.svc.Project(ctx, owner, id)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	if p.State != "finished" {
		http.Redirect(w, r, "/projects/"+id+"/finish", http.StatusSeeOther)
		return
	}
	mbs, err := s.svc.Mailboxes(ctx, owner, id)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	rows, err := s.svc.ExportRows(ctx, owner, id)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	var v doneView
	for i, row := range rows {
		d := doneRow{MailboxExportRow: row}
		// ExportRows lists the mailboxes in the order of Mailboxes.
		if i < len(mbs) && mbs[i].SourceEmail == row.SourceEmail && mbs[i].DestEmail == row.DestEmail {
			d.ID, d.St = mbs[i].ID, mbs[i].Status
			if row.Failed > 0 {
				if d.Failures, err = s.svc.Failures(ctx, owner, id, d.ID); err != nil {
					s.portalFail(w, r, sess, err)
					return
				}
			}
		}
		v.Copied += row.Copied
		v.Present += row.Present
		v.Failed += row.Failed
		v.Bytes += row.BytesCopied
		switch {
		case i < len(mbs) && mbs[i].Status == service.StatusCompleted:
			v.Completed++
		case i < len(mbs) && mbs[i].Status == service.StatusCompletedWithErrors:
			v.WithErrors++
		default:
			v.NotMoved++
		}
		v.Rows = append(v.Rows, d)
	}
	s.render(w, r, http.StatusOK, "done", view{Title: "Finished · " + p.Name, Session: sess, CSRF: sess.CSRF, Project: &p,
		Steps: wizardSteps(&p, 5), Data: v})
}

// reportCSV is the CSV export of statuses and statistics (no passwords).
func (s *Server) reportCSV(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	rows, err := s.svc.ExportRows(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadTimeout))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="mailferry-report.csv"`)
	if err := service.WriteMailboxCSV(w, rows); err != nil {
		s.log.Error("portal: report", "error", err)
	}
}
