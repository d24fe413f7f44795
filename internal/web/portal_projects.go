package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/service"
)

// statusOrder is the order in which counts by status are listed.
var statusOrder = []service.Status{
	service.StatusNotStarted, service.StatusQueued, service.StatusVerifying, service.StatusReady, service.StatusMigrating,
	service.StatusCompleted, service.StatusCompletedWithErrors, service.StatusFailed, service.StatusStopped,
}

type statusCount struct {
	Status service.Status
	Count  int
}

// projectCard is one project on My Migrations.
type projectCard struct {
	service.Project
	Total  int
	Counts []statusCount
	Next   string // what to do next, in a few words
}

func sortedCounts(m map[service.Status]int) ([]statusCount, int) {
	var out []statusCount
	total := 0
	for _, st := range statusOrder {
		if n := m[st]; n > 0 {
			out = append(out, statusCount{st, n})
			total += n
		}
	}
	return out, total
}

// nextHint says what a project needs next, from its counts alone.
func nextHint(p service.Project, total int) string {
	c := p.Mailboxes
	switch {
	case p.State == "finished":
		return "Finished. See what was migrated."
	case total == 0:
		return "Next: add the mailboxes to move."
	case c[service.StatusQueued]+c[service.StatusVerifying]+c[service.StatusMigrating] > 0:
		return "Working now: open it to watch the progress."
	case c[service.StatusCompleted]+c[service.StatusCompletedWithErrors] > 0:
		return "Next: migrate new items, or finish."
	case c[service.StatusFailed] > 0:
		return "Next: fix the mailboxes that failed."
	case c[service.StatusReady] > 0:
		return "Next: start the migration."
	default:
		return "Next: run the trial."
	}
}

func (s *Server) myMigrations(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	ps, err := s.svc.Projects(r.Context(), sess.Owner.ID)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	cards := make([]projectCard, 0, len(ps))
	for _, p := range ps {
		counts, total := sortedCounts(p.Mailboxes)
		cards = append(cards, projectCard{Project: p, Total: total, Counts: counts, Next: nextHint(p, total)})
	}
	s.render(w, r, http.StatusOK, "migrations", view{Title: "My Migrations", Session: sess, CSRF: sess.CSRF, Notice: notice(r), Data: cards})
}

// sourceType is one choice of source system.
type sourceType struct {
	Value, Label, Hint string
	Enabled            bool
}

var sourceTypes = []sourceType{
	{"imap", "IMAP", "Most mail providers and hosting companies: cPanel, Plesk, GoDaddy, Zoho, Gmail, Yahoo and others.", true},
	{"pop3", "POP3", "For old servers that offer POP3 only.", false},
	{"exchange", "Microsoft Exchange", "Exchange on your own servers, through Outlook Web Access.", false},
	{"m365", "Microsoft 365", "Microsoft 365 and Office 365 mailboxes.", false},
}

type securityChoice struct {
	Value, Label, Hint string
	Port               int
}

var securityChoices = []securityChoice{
	{"tls", "SSL/TLS", "Encrypted from the start. Recommended; usually port 993.", 993},
	{"starttls", "STARTTLS", "Starts unencrypted, then switches to encryption; usually port 143.", 143},
	{"none", "None", "Not encrypted: the password can be read on the network. Usually port 143.", 143},
}

// projectForm is the first step of the wizard: servers.
type projectForm struct {
	Name, Type, Host, Port, Security, Preset string
	AllowPlaintext, Insecure                 bool
	Errors                                   map[string]string
	Types                                    []sourceType
	Securities                               []securityChoice
	Presets                                  []service.Preset
}

func (s *Server) renderNewMigration(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, f projectForm, errMsg string) {
	f.Types, f.Securities, f.Presets = sourceTypes, securityChoices, s.svc.Presets()
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	if f.Preset == "" && len(f.Presets) == 1 {
		f.Preset = f.Presets[0].ID
	}
	s.render(w, r, status, "new", view{Title: "Start a new migration", Session: sess, CSRF: sess.CSRF, Steps: wizardSteps(nil, 1),
		Error: errMsg, Data: f})
}

func (s *Server) newMigration(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderNewMigration(w, r, sess, http.StatusOK, projectForm{Type: "imap", Security: "tls", Port: "993"}, "")
}

// projectFields maps the service's field names to the form's.
var projectFields = map[string]string{
	"name": "name", "source.type": "type", "source.host": "host", "source.port": "port", "source.security": "security",
	"destination_preset": "preset",
}

func (s *Server) createMigration(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	f := projectForm{
		Name: strings.TrimSpace(r.PostFormValue("name")), Type: r.PostFormValue("type"), Host: strings.TrimSpace(r.PostFormValue("host")),
		Port: strings.TrimSpace(r.PostFormValue("port")), Security: r.PostFormValue("security"), Preset: r.PostFormValue("preset"),
		AllowPlaintext: r.PostFormValue("allow_plaintext") == "yes", Insecure: r.PostFormValue("insecure") == "yes",
		Errors: map[string]string{},
	}
	in := service.ProjectInput{Name: f.Name, DestinationPreset: f.Preset,
		Source: service.Endpoint{Type: f.Type, Host: f.Host, Security: f.Security, Insecure: f.Insecure}}
	if f.Port != "" {
		port, err := strconv.Atoi(f.Port)
		if err != nil {
			f.Errors["port"] = "Enter the port as a number: 993 for SSL/TLS, 143 for STARTTLS or none."
		}
		in.Source.Port = port
	}
	if f.Security == "none" {
		if !f.AllowPlaintext {
			f.Errors["allow_plaintext"] = "Without encryption anyone on the network can read the passwords. Tick this box to accept that, or choose SSL/TLS or STARTTLS."
		}
		in.Source.AllowPlaintext = f.AllowPlaintext
	}
	if len(f.Errors) > 0 {
		s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, "Please correct the fields marked below.")
		return
	}
	p, err := s.svc.CreateProject(r.Context(), sess.Owner.ID, in)
	var ie *service.InputError
	if errors.As(err, &ie) {
		field, ok := projectFields[ie.Field]
		if !ok {
			s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, capitalize(ie.Message)+".")
			return
		}
		f.Errors[field] = capitalize(ie.Message) + "."
		s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, "Please correct the fields marked below.")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+p.ID+"/mailboxes?notice=created", http.StatusSeeOther)
}

// projectHome opens a project at the step it is at.
func (s *Server) projectHome(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	st, err := s.loadState(r, sess, false)
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	base := "/projects/" + st.Project.ID
	target := base + "/mailboxes"
	switch {
	case st.Project.State == "finished":
		target = base + "/done"
	case len(st.Mailboxes) == 0:
	case st.HasCopy:
		target = base + "/migrate"
	case len(st.Passes) > 0:
		target = base + "/trial"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
