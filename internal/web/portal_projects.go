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
	service.StatusNotStarted, service.StatusWaitingForUser, service.StatusQueued, service.StatusVerifying, service.StatusReady, service.StatusMigrating,
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
	{"gmail", "Gmail", "Gmail and Google Workspace, through IMAP with each mailbox's app password. Labels become folders; each message is copied once.", true},
	{"pop3", "POP3", "For old servers that offer POP3 only. POP3 has the inbox only: it lands in the new inbox, unread.", true},
	{"exchange", "Exchange (OWA address)", "Exchange 2013 to 2019 on your own servers: enter the Outlook Web Access address, e.g. https://mail.domain.com/owa.", true},
	{"m365", "Microsoft 365", "Microsoft 365 and Office 365 mailboxes, read through Microsoft Graph with your app registration: no passwords needed.", true},
}

type securityChoice struct {
	Value, Label, Hint string
	// Port and POP3Port are the usual ports with this security
	// (service.DefaultPort).
	Port, POP3Port int
}

var securityChoices = []securityChoice{
	{"tls", "SSL/TLS", "Encrypted from the start. Recommended; usually port 993 (IMAP) or 995 (POP3).", 993, 995},
	{"starttls", "STARTTLS", "Starts unencrypted, then switches to encryption; usually port 143 (IMAP) or 110 (POP3).", 143, 110},
	{"none", "No encryption", "The password and the mail can be read on the network. Usually port 143 (IMAP) or 110 (POP3).", 143, 110},
}

// projectForm is the first step of the wizard: servers. With Editing
// set it changes the servers of an existing project (the destination
// stays: mail may already be there).
type projectForm struct {
	Name, Type, Host, Port, Security, Preset string
	AllowPlaintext, Insecure                 bool
	// Source and Destination are the Microsoft 365 app registrations
	// (the secrets are never shown again).
	Source, Destination appForm
	// SourceAdmin and DestAdmin are the optional admin logins (Exchange
	// impersonation); their passwords are never shown back.
	SourceAdmin, DestAdmin string
	// SourceAdminStored: editing, and an Exchange admin login is stored.
	SourceAdminStored bool
	Errors            map[string]string
	Types             []sourceType
	Securities        []securityChoice
	Presets           []service.Preset
	Editing           *service.Project
	// Lookup: the page offers to find the settings from an address.
	Lookup bool
}

func (s *Server) renderNewMigration(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, f projectForm, errMsg string) {
	f.Types, f.Securities, f.Presets = sourceTypes, securityChoices, s.svc.Presets()
	f.Lookup = s.portal.cfg.Settings != nil && f.Editing == nil
	f.Source.Redirect, f.Destination.Redirect = s.signInRedirect(), s.signInRedirect()
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	if f.Preset == "" && len(f.Presets) == 1 {
		f.Preset = f.Presets[0].ID
	}
	v := view{Title: "Start a new migration", Session: sess, CSRF: sess.CSRF, Steps: wizardSteps(nil, 1), Error: errMsg, Data: f}
	if p := f.Editing; p != nil {
		v.Title, v.Project, v.Steps = "Servers · "+p.Name, p, wizardSteps(p, 1)
	}
	s.render(w, r, status, "new", v)
}

func (s *Server) newMigration(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderNewMigration(w, r, sess, http.StatusOK, projectForm{Type: "imap", Security: "tls", Port: "993"}, "")
}

// appForm is a side's Microsoft 365 app registration on the form.
type appForm struct {
	Tenant, ClientID string
	// HasSecret: a secret is stored (editing), so the field may stay empty.
	HasSecret bool
	// SignIn: each end user signs in with Microsoft from their link
	// (kind m365-delegated) instead of the app acting on every mailbox.
	SignIn bool
	// Redirect is the callback URI to register for the sign-in.
	Redirect string
}

func fromAdmin(a *service.AdminInfo) appForm {
	if a == nil {
		return appForm{}
	}
	return appForm{Tenant: a.Tenant, ClientID: a.ClientID, HasSecret: a.HasSecret, SignIn: a.Kind == service.KindM365Delegated}
}

// projectFields maps the service's field names to the form's.
var projectFields = map[string]string{
	"name": "name", "source.type": "type", "source.host": "host", "source.port": "port", "source.security": "security",
	"source.allow_plaintext": "allow_plaintext", "destination_preset": "preset",
	"source_admin.login": "source_admin", "source_admin.password": "source_admin_password",
	"destination_admin.login": "destination_admin", "destination_admin.password": "destination_admin_password",
	"source_admin": "src_tenant", "source_admin.tenant": "src_tenant", "source_admin.client_id": "src_client_id",
	"source_admin.client_secret": "src_client_secret",
	"destination_admin":          "dst_tenant", "destination_admin.tenant": "dst_tenant", "destination_admin.client_id": "dst_client_id",
	"destination_admin.client_secret": "dst_client_secret",
	"source_admin.kind":               "src_auth", "destination_admin.kind": "dst_auth",
}

// readApp reads a side's app registration fields (prefix src_ or dst_).
func readApp(r *http.Request, prefix string) (appForm, *service.AdminCredentials) {
	f := appForm{Tenant: strings.TrimSpace(r.PostFormValue(prefix + "tenant")), ClientID: strings.TrimSpace(r.PostFormValue(prefix + "client_id")),
		SignIn: r.PostFormValue(prefix+"auth") == "signin"}
	a := &service.AdminCredentials{Tenant: f.Tenant, ClientID: f.ClientID, ClientSecret: r.PostFormValue(prefix + "client_secret"), Kind: "m365-app"}
	if f.SignIn {
		a.Kind = service.KindM365Delegated
	}
	return f, a
}

// readEWSAdmin reads a side's optional Exchange admin login (fields
// name and name_password); nil when both are empty.
func readEWSAdmin(r *http.Request, name string) (string, *service.AdminCredentials) {
	login, pw := strings.TrimSpace(r.PostFormValue(name)), r.PostFormValue(name+"_password")
	if login == "" && pw == "" {
		return "", nil
	}
	return login, &service.AdminCredentials{Login: login, Password: pw}
}

// presetType is the type of the preset with this id ("" if none).
func (s *Server) presetType(id string) string {
	for _, p := range s.svc.Presets() {
		if p.ID == id {
			return p.Type
		}
	}
	return ""
}

// readServerForm reads the servers form into f and the source endpoint
// it describes; field errors that need no service go into f.Errors.
func readServerForm(r *http.Request) (projectForm, service.Endpoint) {
	f := projectForm{
		Name: strings.TrimSpace(r.PostFormValue("name")), Type: r.PostFormValue("type"), Host: strings.TrimSpace(r.PostFormValue("host")),
		Port: strings.TrimSpace(r.PostFormValue("port")), Security: r.PostFormValue("security"), Preset: r.PostFormValue("preset"),
		AllowPlaintext: r.PostFormValue("allow_plaintext") == "yes", Insecure: r.PostFormValue("insecure") == "yes",
		Errors: map[string]string{},
	}
	if f.Type == service.TypeM365 || f.Type == service.TypeGmail {
		// Microsoft Graph, or Gmail's IMAP server: no server, port or
		// security to choose.
		f.Host, f.Port, f.Security, f.AllowPlaintext, f.Insecure = "", "", "tls", false, false
		return f, service.Endpoint{Type: f.Type}
	}
	src := service.Endpoint{Type: f.Type, Host: f.Host, Security: f.Security, Insecure: f.Insecure}
	if f.Type == service.TypeExchange {
		// Exchange is always reached over TLS on the OWA address's
		// port; the IMAP port and security fields do not apply.
		f.Port, f.Security, f.AllowPlaintext = "", "tls", false
		src.Security = "tls"
		return f, src
	}
	if f.Port != "" {
		port, err := strconv.Atoi(f.Port)
		if err != nil {
			f.Errors["port"] = "Enter the port as a number: for IMAP 993 with SSL/TLS, 143 with STARTTLS or no encryption; for POP3 995 and 110."
		}
		src.Port = port
	}
	if f.Security == "none" {
		// There is no certificate to accept without TLS.
		f.Insecure, src.Insecure = false, false
		if !f.AllowPlaintext {
			f.Errors["allow_plaintext"] = "Without encryption anyone on the network can read the passwords. Tick this box to accept that, or choose SSL/TLS or STARTTLS."
		}
		src.AllowPlaintext = f.AllowPlaintext
	}
	return f, src
}

// serverFormError shows a service error on the servers form: next to its
// field when it has one.
func (s *Server) serverFormError(w http.ResponseWriter, r *http.Request, sess *service.Session, f projectForm, err error) {
	var ie *service.InputError
	if errors.As(err, &ie) {
		field, ok := projectFields[ie.Field]
		if ie.Field == "source_admin" && f.Type != service.TypeM365 {
			field = "source_admin" // the Exchange admin login's field
		}
		if ie.Field == "destination_admin" && s.presetType(f.Preset) != service.TypeM365 {
			field = "destination_admin"
		}
		if !ok {
			s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, capitalize(ie.Message)+".")
			return
		}
		f.Errors[field] = capitalize(ie.Message) + "."
		s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, "Please correct the fields marked below.")
		return
	}
	if errors.Is(err, service.ErrConflict) {
		s.renderNewMigration(w, r, sess, http.StatusConflict, f, userMessage(err)+". Nothing was changed.")
		return
	}
	s.portalFail(w, r, sess, err)
}

func (s *Server) createMigration(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	f, src := readServerForm(r)
	if len(f.Errors) > 0 {
		s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, "Please correct the fields marked below.")
		return
	}
	in := service.ProjectInput{Name: f.Name, DestinationPreset: f.Preset, Source: src}
	// The admin fields of the types not chosen are hidden, not removed:
	// only the chosen type's are read.
	switch src.Type {
	case service.TypeM365:
		f.Source, in.SourceAdmin = readApp(r, "src_")
	case service.TypeExchange:
		f.SourceAdmin, in.SourceAdmin = readEWSAdmin(r, "source_admin")
	}
	switch s.presetType(f.Preset) {
	case service.TypeM365:
		f.Destination, in.DestinationAdmin = readApp(r, "dst_")
	case service.TypeExchange:
		f.DestAdmin, in.DestinationAdmin = readEWSAdmin(r, "destination_admin")
	}
	p, err := s.svc.CreateProject(r.Context(), sess.Owner.ID, in)
	if err != nil {
		s.serverFormError(w, r, sess, f, err)
		return
	}
	http.Redirect(w, r, "/projects/"+p.ID+"/mailboxes?notice=created", http.StatusSeeOther)
}

// serversPage is the first step again for an existing project: its name
// and source server can be corrected (Solve Issue sends users here).
func (s *Server) serversPage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	if p.State == "finished" {
		http.Redirect(w, r, "/projects/"+p.ID+"/done", http.StatusSeeOther)
		return
	}
	f := projectForm{Name: p.Name, Type: p.Source.Type, Host: p.Source.Host, Port: strconv.Itoa(p.Source.Port), Security: p.Source.Security,
		Preset: p.DestinationPreset, AllowPlaintext: p.Source.AllowPlaintext, Insecure: p.Source.Insecure, Editing: &p,
		Source: fromAdmin(p.SourceAdmin), Destination: fromAdmin(p.DestinationAdmin)}
	if f.Type == service.TypeM365 || f.Type == service.TypeGmail {
		f.Host, f.Port = "", ""
	}
	f.SourceAdmin, f.SourceAdminStored = ewsAdminOf(p.SourceAdmin)
	s.renderNewMigration(w, r, sess, http.StatusOK, f, "")
}

// ewsAdminOf is a side's stored Exchange admin login, and whether there
// is one.
func ewsAdminOf(a *service.AdminInfo) (string, bool) {
	if a == nil || a.Kind != service.KindEWS {
		return "", false
	}
	return a.Login, a.HasSecret
}

func (s *Server) saveServers(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	f, src := readServerForm(r)
	f.Editing, f.Preset = &p, p.DestinationPreset
	f.Source, f.Destination = fromAdmin(p.SourceAdmin), fromAdmin(p.DestinationAdmin)
	_, f.SourceAdminStored = ewsAdminOf(p.SourceAdmin)
	var srcApp, dstApp *service.AdminCredentials
	switch src.Type {
	case service.TypeM365:
		var sf appForm
		sf, srcApp = readApp(r, "src_")
		f.Source.Tenant, f.Source.ClientID, f.Source.SignIn = sf.Tenant, sf.ClientID, sf.SignIn
	case service.TypeExchange:
		// Adds, replaces or keeps (both fields empty, or the login
		// with no new password) the admin login.
		f.SourceAdmin, srcApp = readEWSAdmin(r, "source_admin")
	}
	if p.DestinationAdmin != nil {
		var df appForm
		df, dstApp = readApp(r, "dst_")
		f.Destination.Tenant, f.Destination.ClientID, f.Destination.SignIn = df.Tenant, df.ClientID, df.SignIn
	}
	if len(f.Errors) > 0 {
		s.renderNewMigration(w, r, sess, http.StatusBadRequest, f, "Please correct the fields marked below. Nothing was changed yet.")
		return
	}
	port := src.Port
	u := service.ProjectUpdate{Name: &f.Name, Source: &service.EndpointUpdate{Type: &src.Type, Host: &src.Host, Port: &port,
		Security: &src.Security, Insecure: &src.Insecure, AllowPlaintext: &src.AllowPlaintext}}
	if f.Port == "" {
		u.Source.Port = nil // the security's default
	}
	u.SourceAdmin, u.DestinationAdmin = srcApp, dstApp
	if _, err := s.svc.UpdateProject(r.Context(), sess.Owner.ID, p.ID, u); err != nil {
		s.serverFormError(w, r, sess, f, err)
		return
	}
	next := "/mailboxes"
	if p.Mailboxes[service.StatusNotStarted] < total(p.Mailboxes) {
		next = "/trial" // tried before: the trial checks the new settings
	}
	http.Redirect(w, r, "/projects/"+p.ID+next+"?notice=servers-updated", http.StatusSeeOther)
}

func total(counts map[service.Status]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// deletePage asks before a project is deleted.
func (s *Server) deletePage(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	s.renderDelete(w, r, sess, http.StatusOK, "")
}

func (s *Server) renderDelete(w http.ResponseWriter, r *http.Request, sess *service.Session, status int, errMsg string) {
	p, err := s.svc.Project(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	s.render(w, r, status, "delete", view{Title: "Delete " + p.Name, Session: sess, CSRF: sess.CSRF, Project: &p, Error: errMsg,
		Data: struct {
			Mailboxes int
			Busy      bool
		}{total(p.Mailboxes), p.Mailboxes[service.StatusQueued]+p.Mailboxes[service.StatusVerifying]+p.Mailboxes[service.StatusMigrating] > 0}})
}

func (s *Server) deleteSubmit(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	if r.PostFormValue("confirm") != "delete" {
		s.renderDelete(w, r, sess, http.StatusBadRequest, "Nothing was deleted: confirm with the Delete button below.")
		return
	}
	err := s.svc.DeleteProject(r.Context(), sess.Owner.ID, r.PathValue("project"))
	if errors.Is(err, service.ErrConflict) {
		s.renderDelete(w, r, sess, http.StatusConflict, userMessage(err)+".")
		return
	}
	if err != nil {
		s.portalFail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/migrations?notice=deleted", http.StatusSeeOther)
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
