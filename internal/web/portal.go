package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// The portal is the self-service web site of the seed's flow: log in by
// emailed link, My Migrations, a wizard for a new project (servers,
// mailboxes, trial, migration, finish). Pages are rendered on the server
// with html/template; one small script (static/portal.js) polls
// status.json for live progress. Everything is embedded in the binary.

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Cookie names. The session cookie is the login; the pre-session cookie
// carries the CSRF token of the login forms (double submit), so that no
// other site can log a visitor in to an account of its choosing.
const (
	sessionCookie    = "mailferry_session"
	preSessionCookie = "mailferry_csrf"
	csrfField        = "csrf"
	maxFormBytes     = maxCSVBytes + 64<<10 // the CSV import is at most 1 MiB, plus multipart overhead
)

// DefaultAgreement is the user agreement shown at login when the operator
// sets none (mailferry serve --agreement-file).
const DefaultAgreement = `By using this migration service you confirm that you are authorised to access the mailboxes you enter, both on the old (source) and on the new (destination) mail service, and that the people who use those mailboxes know their mail is being moved.

The passwords you enter are used only to copy mail. They are stored encrypted, never shown again, never sent by email, and erased when you click Finish.

The service copies mail; it never deletes anything on the source. Keep your old mail service until everyone has checked that their mail arrived. The service is provided as is, without any warranty; the operator of this site is responsible for it.`

// PortalConfig is what the operator sets for the portal.
type PortalConfig struct {
	// BaseURL is the public address of the service (no trailing slash);
	// login links start with it. It is never taken from the request's
	// Host header, which the client chooses: a forged Host would send a
	// victim a working login link that points to someone else's site.
	BaseURL string
	// Agreement is the user agreement text; blank lines separate
	// paragraphs. Empty means DefaultAgreement.
	Agreement string
	// SendMail delivers login links (the service's notifier). Without it
	// the login page says that links cannot be sent.
	SendMail func(ctx context.Context, to, subject, text string) error
	// Settings looks up the source settings of an address on "Start new
	// migration" (an *autoconfig.Finder with the operator's outbound
	// policy); nil turns the lookup off.
	Settings SettingsFinder
	// HostLimit is the connection cap per source host (serve
	// --connections), shown to operators beside the connections in use.
	HostLimit int
}

// portal holds the parsed templates and the operator's settings.
type portal struct {
	cfg   PortalConfig
	pages map[string]*template.Template
	// parts executes the shared fragments (rows and live regions).
	parts *template.Template
	// asset is appended to static URLs so browsers fetch new versions.
	asset string
	// lookups holds a token per running settings lookup (maxLookups).
	lookups chan struct{}
}

// SetPortal configures the portal; call it before serving.
func (s *Server) SetPortal(cfg PortalConfig) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if strings.TrimSpace(cfg.Agreement) == "" {
		cfg.Agreement = DefaultAgreement
	}
	s.portal.cfg = cfg
}

func newPortal() *portal {
	p := &portal{pages: map[string]*template.Template{}, lookups: make(chan struct{}, maxLookups), cfg: PortalConfig{BaseURL: "http://localhost:8080", Agreement: DefaultAgreement}}
	base := template.Must(template.New("").Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html"))
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		p.pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFiles, n))
	}
	// Executed only after every page was cloned from base.
	p.parts = base
	h := sha256.New()
	_ = fs.WalkDir(staticFiles, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFiles.ReadFile(path)
			h.Write(b)
		}
		return nil
	})
	p.asset = hex.EncodeToString(h.Sum(nil))[:10]
	return p
}

// portalRoutes registers the portal's pages. They are HTML for people,
// not API routes: they are registered from a table (not as literal
// HandleFunc calls) because the OpenAPI document describes the API only.
func (s *Server) portalRoutes() {
	s.portal = newPortal()
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	u := s.withSession
	for _, rt := range []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"GET /{$}", s.portalHome},
		{"GET /static/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=86400")
			files.ServeHTTP(w, r)
		}},
		{"GET /login", s.loginPage},
		{"POST /login", s.loginSubmit},
		{"GET /login/verify", s.verifyPage},
		{"POST /login/verify", s.verifySubmit},
		{"GET /agreement", s.agreementPage},
		{"GET /password", s.endUserPage},
		{"POST /password", s.endUserSubmit},
		{"GET /password/done", s.endUserDone},
		{"POST " + signInPath, s.signInStart},
		{"GET " + signInCallback, s.signInFinish},
		{"POST /logout", u(s.logout)},
		{"GET /migrations", u(s.myMigrations)},
		{"GET /operator", u(s.operatorPage)},
		{"GET /migrations/new", u(s.newMigration)},
		{"POST /migrations/new", u(s.createMigration)},
		{"GET /migrations/new/settings.json", u(s.settingsJSON)},
		{"GET /projects/{project}", u(s.projectHome)},
		{"GET /projects/{project}/servers", u(s.serversPage)},
		{"POST /projects/{project}/servers", u(s.saveServers)},
		{"GET /projects/{project}/delete", u(s.deletePage)},
		{"POST /projects/{project}/delete", u(s.deleteSubmit)},
		{"GET /projects/{project}/mailboxes", u(s.mailboxesPage)},
		{"POST /projects/{project}/mailboxes", u(s.addMailboxRows)},
		{"POST /projects/{project}/mailboxes/import", u(s.importMailboxes)},
		{"POST /projects/{project}/bulk", u(s.bulkAction)},
		{"POST /projects/{project}/ask-passwords", u(s.askPasswords)},
		{"GET /projects/{project}/mailboxes/template.csv", u(s.csvTemplate)},
		{"GET /projects/{project}/mailboxes/{mailbox}/edit", u(s.editMailboxPage)},
		{"GET /projects/{project}/mailboxes/{mailbox}/history", u(s.historyPage)},
		{"GET /projects/{project}/mailboxes/{mailbox}/history.csv", u(s.historyCSV)},
		{"POST /projects/{project}/mailboxes/{mailbox}", u(s.saveMailbox)},
		{"POST /projects/{project}/mailboxes/{mailbox}/delete", u(s.removeMailbox)},
		{"GET /projects/{project}/options", u(s.projectOptionsPage)},
		{"POST /projects/{project}/options", u(s.saveProjectOptions)},
		{"GET /projects/{project}/mailboxes/{mailbox}/options", u(s.mailboxOptionsPage)},
		{"POST /projects/{project}/mailboxes/{mailbox}/options", u(s.saveMailboxOptions)},
		{"POST /projects/{project}/mailboxes/{mailbox}/preview", u(s.previewPlan)},
		{"GET /projects/{project}/trial", u(s.trialPage)},
		{"POST /projects/{project}/trial", u(s.startTrial)},
		{"GET /projects/{project}/migrate", u(s.migratePage)},
		{"POST /projects/{project}/passes", u(s.startCopyPass)},
		{"POST /projects/{project}/passes/{pass}/stop", u(s.stopPortalPass)},
		{"GET /projects/{project}/status.json", s.statusJSON},
		{"GET /projects/{project}/finish", u(s.finishPage)},
		{"POST /projects/{project}/finish", u(s.finishSubmit)},
		{"GET /projects/{project}/done", u(s.donePage)},
		{"GET /projects/{project}/report.csv", u(s.reportCSV)},
		{"GET /projects/{project}/proof", u(s.proofPage)},
		{"POST /projects/{project}/proof", u(s.startProof)},
		{"GET /projects/{project}/mailboxes/{mailbox}/proof", u(s.mailboxProofPage)},
		{"GET /projects/{project}/mailboxes/{mailbox}/proof.csv", u(s.mailboxProofCSVDownload)},
		{"GET /projects/{project}/mailboxes/{mailbox}/proof.pdf", u(s.mailboxProofPDFDownload)},
	} {
		s.mux.HandleFunc(rt.pattern, s.secured(rt.handler))
	}
}

// secured sets the security headers of every portal response. The CSP
// allows only this origin (no inline script or style), pages cannot be
// framed, and no Referer leaves a page (the login URL carries a token).
func (s *Server) secured(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h(w, r)
	}
}

// view is what every page template gets.
type view struct {
	Title   string
	Session *service.Session // nil when logged out
	CSRF    string           // the token every form carries
	Project *service.Project // on the wizard's pages
	Steps   []step
	Notice  string // a green confirmation banner
	// NoticeLive: the notice is about a pass that started; the script
	// removes it when the pass ends.
	NoticeLive bool
	Error      string // a red banner: what went wrong and how to fix it
	Asset      string
	Data       any
}

// step is one entry of the wizard's step indicator.
type step struct {
	Num   int
	Name  string
	URL   string // empty: not reachable yet
	State string // done | current | todo
}

var stepNames = []string{"Servers", "Mailboxes", "Trial", "Migrate", "Finish"}

// wizardSteps builds the indicator for project p with step current
// (1-based) highlighted.
func wizardSteps(p *service.Project, current int) []step {
	out := make([]step, len(stepNames))
	for i, name := range stepNames {
		n := i + 1
		st := step{Num: n, Name: name, State: "todo"}
		switch {
		case n < current:
			st.State = "done"
		case n == current:
			st.State = "current"
		}
		if p != nil && (n > 1 || p.State != "finished") {
			base := "/projects/" + p.ID
			st.URL = base + []string{"", "/servers", "/mailboxes", "/trial", "/migrate", "/finish"}[n]
			if n == 5 && p.State == "finished" {
				st.URL = base + "/done"
			}
		}
		if p != nil && p.State == "finished" {
			st.State = "done"
			if n == current {
				st.State = "current"
			}
		}
		out[i] = st
	}
	return out
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t, ok := s.portal.pages[page]
	if !ok {
		s.log.Error("portal: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.Asset = s.portal.asset
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("portal: render", "page", page, "path", r.URL.Path, "error", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("Something went wrong on our side. Please try again in a moment.\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// errorData is the friendly error page.
type errorData struct {
	Status   int
	Heading  string
	Message  string
	LinkURL  string
	LinkText string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, sess *service.Session, e errorData) {
	if e.LinkURL == "" {
		e.LinkURL, e.LinkText = "/migrations", "Go to My Migrations"
		if sess == nil {
			e.LinkURL, e.LinkText = "/login", "Go to the login page"
		}
	}
	v := view{Title: e.Heading, Session: sess, Data: e}
	if sess != nil {
		v.CSRF = sess.CSRF
	}
	s.render(w, r, e.Status, "error", v)
}

func (s *Server) notFoundPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.errorPage(w, r, sess, errorData{Status: http.StatusNotFound, Heading: "We could not find that page",
		Message: "The migration or mailbox you asked for does not exist, or it belongs to another account. Check the address, or open it from My Migrations."})
}

// portalFail shows the right page for an error of the service that is not
// about the user's input: 404 for another owner's or missing objects, the
// message of a conflict, else a generic page (details only in the log).
func (s *Server) portalFail(w http.ResponseWriter, r *http.Request, sess *service.Session, err error) {
	switch {
	case errors.Is(err, service.ErrNotFound):
		s.notFoundPage(w, r, sess)
	case errors.Is(err, service.ErrConflict):
		s.errorPage(w, r, sess, errorData{Status: http.StatusConflict, Heading: "That cannot be done right now",
			Message: userMessage(err) + "."})
	default:
		var ie *service.InputError
		if errors.As(err, &ie) {
			s.errorPage(w, r, sess, errorData{Status: http.StatusBadRequest, Heading: "That cannot be done", Message: capitalize(ie.Message) + "."})
			return
		}
		s.log.Error("portal request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		s.errorPage(w, r, sess, errorData{Status: http.StatusInternalServerError, Heading: "Something went wrong on our side",
			Message: "Nothing you did caused this. Try again in a minute; if it keeps happening, tell the operator of this site the time it happened."})
	}
}

// userMessage is an error's text as shown to the user: the service writes
// InputError and conflict messages for people.
func userMessage(err error) string {
	var ie *service.InputError
	if errors.As(err, &ie) {
		return capitalize(ie.Message)
	}
	return capitalize(strings.TrimPrefix(err.Error(), service.ErrConflict.Error()+": "))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// isExpected reports whether err is a problem the user can act on (shown
// on the page) rather than a fault of the server.
func isExpected(err error) bool {
	var ie *service.InputError
	return errors.As(err, &ie) || errors.Is(err, service.ErrConflict)
}

type userHandler func(http.ResponseWriter, *http.Request, *service.Session)

// currentSession reads the session cookie; ErrNotFound when there is none
// or it expired.
func (s *Server) currentSession(r *http.Request) (*service.Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, service.ErrNotFound
	}
	sess, err := s.svc.SessionByID(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &sess, nil
}

// withSession lets only logged-in users through and checks the CSRF
// token of every POST. Each handler then asks the service with the
// session's owner ID, which answers ErrNotFound (a 404 page) for anyone
// else's project.
func (s *Server) withSession(h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.currentSession(r)
		if err != nil {
			if !errors.Is(err, service.ErrNotFound) {
				s.portalFail(w, r, nil, err)
				return
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				target := "/login"
				if _, cerr := r.Cookie(sessionCookie); cerr == nil {
					target += "?notice=expired"
				}
				http.Redirect(w, r, target, http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, nil, errorData{Status: http.StatusForbidden, Heading: "Please log in again",
				Message: "Your session has ended, so nothing was changed. Log in again, then repeat what you were doing."})
			return
		}
		if r.Method == http.MethodPost {
			switch err := s.checkCSRF(w, r, sess.CSRF); {
			case errors.Is(err, errFormTooLarge):
				s.tooLargePage(w, r, sess)
				return
			case err != nil:
				s.errorPage(w, r, sess, errorData{Status: http.StatusForbidden, Heading: "This form has expired",
					Message: "For your security nothing was changed: the form did not carry the token of your session. Go back, reload the page and try again."})
				return
			}
		}
		h(w, r, sess)
	}
}

// tooLargePage answers a form or upload over its limit: the form cannot
// even be read, so nothing was changed.
func (s *Server) tooLargePage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.errorPage(w, r, sess, errorData{Status: http.StatusRequestEntityTooLarge, Heading: "That is too large",
		Message: "Nothing was changed: what you sent is too large: the limit is " + humanLimit(maxCSVBytes) +
			". A CSV file of up to 10,000 mailboxes fits; split a larger one into several files."})
}

var (
	errFormTooLarge = errors.New("form too large")
	errBadCSRF      = errors.New("missing or wrong CSRF token")
)

// checkCSRF parses the form (multipart too) within the size limit and
// compares its csrf field with want in constant time: nil when they
// match, errFormTooLarge when the body is over the limit (and so was not
// read), errBadCSRF otherwise.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, want string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		// An upload (the CSV import) may take longer on a slow line
		// than the server's read timeout allows a request.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadTimeout))
		err = r.ParseMultipartForm(2 << 20)
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errFormTooLarge
	}
	if err != nil || want == "" {
		return errBadCSRF
	}
	got := r.PostFormValue(csrfField)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errBadCSRF
	}
	return nil
}

// isTLS reports whether the browser talks HTTPS to us, directly or
// through a reverse proxy that says so.
func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// clientIP is the peer's address, for the login rate limit. Forwarded
// headers are not trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// notices are the confirmations shown after a redirect; the URL carries
// only a code, so no text from a link ends up on the page.
func notice(r *http.Request) string {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	mailboxes := func(n int) string {
		if n == 1 {
			return "1 mailbox"
		}
		return strconv.Itoa(n) + " mailboxes"
	}
	switch r.URL.Query().Get("notice") {
	case "created":
		return "Your migration project is created. Now add the mailboxes to move."
	case "added":
		return capitalize(mailboxes(n)) + " added. Add more, or continue to the trial."
	case "imported":
		return capitalize(mailboxes(n)) + " imported from your file. Add more, or continue to the trial."
	case "updated":
		return "The mailbox details are saved. Run the trial again to check them."
	case "servers-updated":
		return "The server settings are saved. Run the trial again to check them."
	case "deleted":
		return "The migration project was deleted, with its stored passwords. Mail already copied stays on the destination."
	case "removed":
		return "The mailbox was removed from this project. Mail already copied stays in the destination."
	case "proof-started":
		return "Verify migration has started: both mailboxes of each pair are read, nothing is written. The verdict appears here when it is done."
	case "trial-started":
		return "The trial has started. The statuses below update by themselves."
	case "migration-started":
		return "The migration has started. You can close this page: it keeps running, and we email you a report when it is done."
	case "prestage-started":
		return "The pre-stage migration has started: only mail older than the date you chose is copied. Run the full migration at the cut-over; nothing is copied twice."
	case "delta-started":
		return "Migrate new items has started: only mail that arrived since the last pass is copied."
	case "retry-started":
		return "The failed items are being copied again."
	case "stopped":
		return "The pass is stopping. Start it again at any time: nothing is copied twice."
	case "asked", "bulk-ask":
		return "An email with a link to enter their passwords was sent to the users of " + mailboxes(n) + ". Each row shows “Waiting for end user” until they do."
	case "bulk-trial":
		return "The trial has started for " + mailboxes(n) + ". The statuses below update by themselves."
	case "bulk-full":
		return "The migration has started for " + mailboxes(n) + ". It keeps running when you close this page."
	case "bulk-delta":
		return "Migrate new items has started for " + mailboxes(n) + "."
	case "bulk-retry-errors":
		return "The failed items of " + mailboxes(n) + " are being copied again."
	case "bulk-stop":
		return capitalize(mailboxes(n)) + " stopping. Start them again at any time: nothing is copied twice."
	case "bulk-remove":
		return capitalize(mailboxes(n)) + " removed from this project. Mail already copied stays in the destination."
	case "logged-out":
		return "You are logged out."
	case "expired":
		return "Your session has ended. Log in again to continue."
	}
	return ""
}
