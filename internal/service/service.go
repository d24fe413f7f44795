package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailferry/mailferry/internal/connector/ews"
	"github.com/mailferry/mailferry/internal/store"
)

// Sealer encrypts secrets at rest (secrets.Box). The associated data binds
// a ciphertext to its row, so it cannot be moved to another.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(sealed, associatedData []byte) ([]byte, error)
}

// Queue starts and stops mailbox jobs (River in production).
type Queue interface {
	// Enqueue schedules jobs for mailboxes' parts of passes within tx,
	// the transaction that records them, and returns the job IDs in the
	// order of refs. Their arguments carry IDs only, never secrets.
	Enqueue(ctx context.Context, tx *store.Tx, refs []store.JobRef) ([]int64, error)
	// Cancel asks a queued or running job to stop.
	Cancel(ctx context.Context, jobID int64) error
}

// Service is the migration service. Safe for concurrent use; any number
// of processes may serve one database.
type Service struct {
	st      *store.Store
	sealer  Sealer
	presets map[string]Preset
	order   []string
	queue   Queue

	notifier Notifier
	baseURL  string

	// maxPasses and planner: see options.go.
	maxPasses int
	planner   Planner

	// identity: where end users sign in with Microsoft (signin.go).
	identity MicrosoftIdentity
}

// New returns a service over the store st.
func New(st *store.Store, sealer Sealer, presets []Preset) *Service {
	s := &Service{st: st, sealer: sealer, presets: map[string]Preset{}}
	for _, p := range presets {
		s.presets[p.ID] = p
		s.order = append(s.order, p.ID)
	}
	return s
}

// SetQueue connects the job queue; passes cannot start before.
func (s *Service) SetQueue(q Queue) { s.queue = q }

// Presets lists the destination presets in configuration order.
func (s *Service) Presets() []Preset {
	out := make([]Preset, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.presets[id])
	}
	return out
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func now() int64 { return time.Now().Unix() }

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Owner is a user, identified by contact email.
type Owner struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	// Operator: the user sees every project (SessionByID and
	// OwnerByToken fill it in).
	Operator bool `json:"operator,omitempty"`
}

// EnsureOwner returns the owner with this email, creating it.
func (s *Service) EnsureOwner(ctx context.Context, email string) (Owner, error) {
	addr, err := mail.ParseAddress(strings.TrimSpace(email))
	if err != nil {
		return Owner{}, inputErr("email", "this is not a valid email address; it looks like name@company.com")
	}
	email = strings.ToLower(addr.Address)
	// Another request (or process) may create it at the same time; the
	// store returns whichever was created.
	o, err := s.st.EnsureOwner(ctx, newID(), email, now())
	return ownerFrom(o), err
}

// IssueToken creates an API token for an owner. Only its hash is kept.
func (s *Service) IssueToken(ctx context.Context, ownerID string) (string, error) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := "mf_" + base64.RawURLEncoding.EncodeToString(b)
	if err := s.st.AddToken(ctx, hashToken(token), ownerID, now()); err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return token, nil
}

// OwnerByToken authenticates an API token.
func (s *Service) OwnerByToken(ctx context.Context, token string) (Owner, error) {
	o, err := s.st.OwnerByToken(ctx, hashToken(token))
	if err != nil {
		return Owner{}, notFound(err)
	}
	out := Owner{ID: o.ID, Email: o.Email}
	out.Operator, err = s.st.IsOperator(ctx, o.ID)
	return out, err
}

// OwnerByID reads an owner.
func (s *Service) OwnerByID(ctx context.Context, id string) (Owner, error) {
	o, err := s.st.Owner(ctx, id)
	return ownerFrom(o), notFound(err)
}

// notFound turns the store's missing row into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, store.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// ProjectInput creates a project.
type ProjectInput struct {
	Name              string   `json:"name"`
	Source            Endpoint `json:"source"`
	DestinationPreset string   `json:"destination_preset"`
	Options           Options  `json:"options"`
	// SourceAdmin and DestinationAdmin are a side's project-wide admin
	// credentials: a Microsoft 365 app registration (required there) or
	// an Exchange account with the ApplicationImpersonation role
	// (optional there), so that mailbox rows of that side need only email
	// addresses; refused for other types. Their secrets are stored sealed
	// and never returned.
	SourceAdmin      *AdminCredentials `json:"source_admin,omitempty"`
	DestinationAdmin *AdminCredentials `json:"destination_admin,omitempty"`
}

func (in *ProjectInput) validate(presets map[string]Preset) error {
	if err := in.validateServers(presets); err != nil {
		return err
	}
	if err := checkAdmin("source_admin", in.Source.Type, in.SourceAdmin, true); err != nil {
		return err
	}
	return checkAdmin("destination_admin", presets[in.DestinationPreset].Type, in.DestinationAdmin, true)
}

func (in *ProjectInput) validateServers(presets map[string]Preset) error {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		return inputErr("name", "give the project a name")
	}
	if in.Source.Type == "" {
		in.Source.Type = "imap"
	}
	switch in.Source.Type {
	case "imap", "pop3":
	case TypeM365:
		// Graph over HTTPS, always: nothing to choose but the app.
		in.Source.Host, in.Source.Port, in.Source.Security = m365Host, 443, "tls"
		in.Source.Insecure, in.Source.AllowPlaintext = false, false
	case TypeGmail:
		in.Source.Host, in.Source.Port, in.Source.Security = gmailHost, 993, "tls"
		in.Source.Insecure, in.Source.AllowPlaintext = false, false
	case "exchange":
		if err := in.Source.exchange("source"); err != nil {
			return err
		}
	default:
		return inputErr("source.type", "unknown source type %q: use imap, pop3, exchange, gmail or m365 (Microsoft 365)", in.Source.Type)
	}
	in.Source.Host = strings.TrimSpace(in.Source.Host)
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(in.Source.Host, "["), "]")); err == nil && a.Zone() == "" {
		in.Source.Host = a.String() // an IPv6 address is stored without brackets
	} else if in.Source.Host == "" || strings.ContainsAny(in.Source.Host, " /:@") {
		return inputErr("source.host", "enter the server name only, e.g. mail.example.com or imap.example.com (an IP address works too)")
	}
	if in.Source.Security == "" {
		in.Source.Security = "tls"
	}
	switch in.Source.Security {
	case "tls", "starttls", "none":
		if in.Source.Port == 0 {
			in.Source.Port = DefaultPort(in.Source.Type, in.Source.Security)
		}
	default:
		if in.Source.Type == "pop3" {
			return inputErr("source.security", "use tls (port 995), starttls or none (no encryption, port 110)")
		}
		return inputErr("source.security", "use tls (port 993), starttls or none (no encryption, port 143)")
	}
	if in.Source.Security == "none" {
		// Without TLS there is no certificate to accept, and the
		// password travels in clear text only when the user says so:
		// a login would be refused otherwise.
		in.Source.Insecure = false
		if !in.Source.AllowPlaintext {
			return inputErr("source.allow_plaintext", "with no encryption the passwords travel in clear text: set allow_plaintext to accept that, or use tls or starttls")
		}
	}
	if in.Source.Port < 1 || in.Source.Port > 65535 {
		return inputErr("source.port", "the port must be between 1 and 65535 (IMAP: 993 with SSL, 143 without; POP3: 995 with SSL, 110 without)")
	}
	if _, ok := presets[in.DestinationPreset]; !ok {
		var ids []string
		for id := range presets {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return inputErr("destination_preset", "choose one of the destinations offered: %s", strings.Join(ids, ", "))
	}
	for _, d := range []struct{ field, v string }{{"options.since", in.Options.Since}, {"options.before", in.Options.Before}} {
		if d.v != "" {
			if _, err := time.Parse("2006-01-02", d.v); err != nil {
				return inputErr(d.field, "use a date like 2024-01-31")
			}
		}
	}
	return nil
}

// CreateProject creates a project for an owner.
func (s *Service) CreateProject(ctx context.Context, ownerID string, in ProjectInput) (Project, error) {
	if err := in.validate(s.presets); err != nil {
		return Project{}, err
	}
	if err := validateRules(in.Options); err != nil {
		return Project{}, err
	}
	opts, _ := json.Marshal(in.Options)
	p := Project{ID: newID(), Name: in.Name, Source: in.Source, DestinationPreset: in.DestinationPreset, Options: in.Options,
		State: "active", CreatedAt: time.Unix(now(), 0), ownerID: ownerID}
	row := projectRow(p)
	row.Options = string(opts)
	var creds []store.Credential
	for _, a := range []struct {
		side Side
		in   *AdminCredentials
		out  **AdminInfo
	}{{SideSource, in.SourceAdmin, &p.SourceAdmin}, {SideDestination, in.DestinationAdmin, &p.DestinationAdmin}} {
		if a.in == nil {
			continue
		}
		c, err := s.sealAdmin(p.ID, a.side, a.in)
		if err != nil {
			return Project{}, err
		}
		creds = append(creds, c)
		*a.out = infoOf(c)
	}
	if err := s.st.CreateProjectWith(ctx, row, creds); err != nil {
		return Project{}, err
	}
	s.attachPreset(&p)
	return p, nil
}

// exchange turns what a user knows of their Exchange server (the Outlook
// on the web address, e.g. https://mail.example.com/owa, or the server's
// name) into its host and port; EWS is always spoken over TLS.
func (e *Endpoint) exchange(field string) error {
	raw, err := ews.EndpointFromUserInput(strings.TrimSpace(e.Host))
	if err != nil {
		return inputErr(field+".host", "enter the Outlook on the web address, e.g. https://mail.example.com/owa")
	}
	ep, err := ews.Parse(raw)
	if err != nil || ep.Path != ews.DefaultPath {
		return inputErr(field+".host", "enter the Outlook on the web address, e.g. https://mail.example.com/owa (Exchange Web Services must be at /EWS/Exchange.asmx)")
	}
	e.Host, e.Port, e.Security, e.AllowPlaintext = ep.Host, ep.Port, "tls", false
	return nil
}

// projectRow is p as the store keeps it (Options is left to the caller).
func projectRow(p Project) store.Project {
	return store.Project{ID: p.ID, OwnerID: p.ownerID, Name: p.Name, SourceType: p.Source.Type, SourceHost: p.Source.Host,
		SourcePort: p.Source.Port, SourceSecurity: p.Source.Security, SourceInsecure: p.Source.Insecure,
		SourcePlaintext: p.Source.AllowPlaintext, DestinationPreset: p.DestinationPreset, State: p.State, CreatedAt: p.CreatedAt.Unix()}
}

func (s *Service) attachPreset(p *Project) {
	if pr, ok := s.presets[p.DestinationPreset]; ok {
		p.Destination = &pr
	}
}

func (s *Service) fromProjectRow(r store.Project) Project {
	p := Project{ID: r.ID, Name: r.Name, Source: Endpoint{Type: r.SourceType, Host: r.SourceHost, Port: r.SourcePort,
		Security: r.SourceSecurity, Insecure: r.SourceInsecure, AllowPlaintext: r.SourcePlaintext},
		DestinationPreset: r.DestinationPreset, State: r.State, CreatedAt: time.Unix(r.CreatedAt, 0), ownerID: r.OwnerID}
	_ = json.Unmarshal([]byte(r.Options), &p.Options)
	if r.FinishedAt != 0 {
		p.FinishedAt = time.Unix(r.FinishedAt, 0)
	}
	if r.Mailboxes != nil {
		p.Mailboxes = map[Status]int{}
		for st, n := range r.Mailboxes {
			p.Mailboxes[Status(st)] = n
		}
	}
	s.attachPreset(&p)
	return p
}

// Project returns an owner's project; another owner's is ErrNotFound,
// except to an operator, who sees every project (OwnerEmail set).
func (s *Service) Project(ctx context.Context, ownerID, projectID string) (Project, error) {
	if ownerID == "" {
		return Project{}, ErrNotFound
	}
	r, err := s.st.Project(ctx, ownerID, projectID)
	if errors.Is(err, store.ErrNoRows) {
		// Asked only on this path, so that an owner's reads cost no
		// more than before.
		owner, oerr := s.operatorView(ctx, ownerID, projectID)
		if oerr != nil {
			return Project{}, oerr
		}
		if r, err = s.st.Project(ctx, owner, projectID); err == nil {
			o, oerr := s.OwnerByID(ctx, owner)
			if oerr != nil {
				return Project{}, oerr
			}
			p := s.fromProjectRow(r)
			p.OwnerEmail = o.Email
			return p, s.attachAdmins(ctx, &p)
		}
	}
	if err != nil {
		if err = notFound(err); err != ErrNotFound {
			err = fmt.Errorf("read project: %w", err)
		}
		return Project{}, err
	}
	p := s.fromProjectRow(r)
	if err := s.attachAdmins(ctx, &p); err != nil {
		return p, fmt.Errorf("read project: %w", err)
	}
	return p, nil
}

// Projects lists an owner's projects, newest first.
func (s *Service) Projects(ctx context.Context, ownerID string) ([]Project, error) {
	rs, err := s.st.Projects(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	var out []Project
	for _, r := range rs {
		p := s.fromProjectRow(r)
		if err := s.attachAdmins(ctx, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// projectForWrite checks ownership and that the project is not finished.
func (s *Service) projectForWrite(ctx context.Context, ownerID, projectID string) (Project, error) {
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return p, err
	}
	if p.ownerID != ownerID {
		return p, ErrNotOwner
	}
	if p.State == "finished" {
		return p, &InputError{Message: "this project is finished and read-only; start a new migration to move more mail"}
	}
	return p, nil
}

// StatusCollector exports mailboxes by status (the jobs' states as users
// see them) as a gauge computed from the database at scrape time, so every
// process reports the same numbers.
func (s *Service) StatusCollector() prometheus.Collector {
	return &statusCollector{s: s, desc: prometheus.NewDesc("mailferry_mailboxes", "Mailboxes by status.", []string{"status"}, nil)}
}

type statusCollector struct {
	s    *Service
	desc *prometheus.Desc
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.s.st.MailboxesByStatus(context.Background())
	if err != nil {
		return
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), st)
	}
}

// ProjectUpdate changes a project after it was created: its name and its
// source server (e.g. the corrected address Solve Issue asks for). Fields
// left out (null) keep their values. Changing the security without a port
// moves a default port along (993 ↔ 143). The destination cannot change:
// mail may already have been copied there.
type ProjectUpdate struct {
	Name   *string         `json:"name,omitempty"`
	Source *EndpointUpdate `json:"source,omitempty"`
	// SourceAdmin and DestinationAdmin replace a Microsoft 365 side's app
	// credentials (e.g. a new client secret after the old one expired);
	// an empty client secret keeps the stored one.
	SourceAdmin      *AdminCredentials `json:"source_admin,omitempty"`
	DestinationAdmin *AdminCredentials `json:"destination_admin,omitempty"`
}

// EndpointUpdate is the part of an Endpoint to change.
type EndpointUpdate struct {
	Type           *string `json:"type,omitempty"`
	Host           *string `json:"host,omitempty"`
	Port           *int    `json:"port,omitempty"`
	Security       *string `json:"security,omitempty"`
	Insecure       *bool   `json:"insecure,omitempty"`
	AllowPlaintext *bool   `json:"allow_plaintext,omitempty"`
}

// busyMailboxes counts a project's mailboxes that a pass is working on.
func busyMailboxes(p Project) int {
	return p.Mailboxes[StatusQueued] + p.Mailboxes[StatusVerifying] + p.Mailboxes[StatusMigrating]
}

// UpdateProject applies u to an owner's active project. It is refused
// while a pass runs, since its workers already use the old settings.
func (s *Service) UpdateProject(ctx context.Context, ownerID, projectID string, u ProjectUpdate) (Project, error) {
	p, err := s.projectForWrite(ctx, ownerID, projectID)
	if err != nil {
		return p, err
	}
	if busyMailboxes(p) > 0 {
		return p, fmt.Errorf("%w: a pass is running; stop it or wait for it to end before changing the servers", ErrConflict)
	}
	in := ProjectInput{Name: p.Name, Source: p.Source, DestinationPreset: p.DestinationPreset, Options: p.Options}
	if u.Name != nil {
		in.Name = *u.Name
	}
	if e := u.Source; e != nil {
		if e.Type != nil {
			in.Source.Type = *e.Type
		}
		if e.Host != nil {
			in.Source.Host = *e.Host
		}
		if e.Security != nil && *e.Security != in.Source.Security {
			if e.Port == nil && (in.Source.Port == 993 || in.Source.Port == 143) {
				in.Source.Port = 0 // the new security's default
			}
			in.Source.Security = *e.Security
		}
		if e.Port != nil {
			in.Source.Port = *e.Port
		}
		if e.Insecure != nil {
			in.Source.Insecure = *e.Insecure
		}
		if e.AllowPlaintext != nil {
			in.Source.AllowPlaintext = *e.AllowPlaintext
		}
	}
	if err := in.validateServers(s.presets); err != nil {
		return p, err
	}
	if in.Source.Type != p.Source.Type && (usesAdmin(in.Source.Type) || usesAdmin(p.Source.Type) || p.SourceAdmin != nil) {
		// The mailbox rows were entered for the old way of logging in
		// (passwords, or addresses only).
		return p, inputErr("source.type", "a project cannot change between a source reached with admin credentials (Microsoft 365, or Exchange with an admin login) and a server with passwords; start a new project for the other source")
	}
	var creds []store.Credential
	for _, a := range []struct {
		side  Side
		field string
		typ   string
		in    *AdminCredentials
		cur   *AdminInfo
	}{{SideSource, "source_admin", in.Source.Type, u.SourceAdmin, p.SourceAdmin},
		{SideDestination, "destination_admin", s.presets[p.DestinationPreset].Type, u.DestinationAdmin, p.DestinationAdmin}} {
		if a.in == nil {
			continue
		}
		if a.in.Kind == "" && a.cur != nil {
			a.in.Kind = a.cur.Kind // an update need not repeat the kind
		}
		if err := checkAdmin(a.field, a.typ, a.in, a.cur == nil); err != nil {
			return p, err
		}
		if a.cur != nil && a.cur.Kind != a.in.Kind {
			// The rows hold either the app's marker or each user's
			// sign-in.
			return p, inputErr(a.field+".kind", "a project cannot change between an app registration acting on every mailbox and users who sign in themselves; start a new project for the other way")
		}
		if a.in.secret() == "" {
			old, err := s.admin(ctx, p.ID, a.side)
			if err != nil || old.Kind != a.in.Kind {
				field := a.field + ".client_secret"
				if a.in.Kind == kindEWS {
					field = a.field + ".password"
				}
				return p, &InputError{Field: field, Message: "the stored secret cannot be read; enter it again"}
			}
			a.in.setSecret(old.secret())
		}
		c, err := s.sealAdmin(p.ID, a.side, a.in)
		if err != nil {
			return p, err
		}
		creds = append(creds, c)
	}
	p.Name, p.Source = in.Name, in.Source
	// The store refuses it if a pass was started since the check above.
	if err := s.st.UpdateProject(ctx, projectRow(p)); errors.Is(err, store.ErrBusy) {
		return p, fmt.Errorf("%w: a pass is running; stop it or wait for it to end before changing the servers", ErrConflict)
	} else if err != nil {
		return p, err
	}
	for _, c := range creds {
		if err := s.st.SetCredential(ctx, p.ID, c); errors.Is(err, store.ErrBusy) {
			return p, fmt.Errorf("%w: a pass is running; stop it or wait for it to end before changing the admin credentials", ErrConflict)
		} else if err != nil {
			return p, err
		}
	}
	return s.Project(ctx, ownerID, projectID)
}

// DeleteProject removes an owner's project with its mailboxes, their
// stored passwords, passes, statistics and failure reports. Mail already
// copied stays on the destination and nothing is touched on either
// server. It is refused while a pass runs: its workers would go on with
// rows that no longer exist; stop the pass first.
func (s *Service) DeleteProject(ctx context.Context, ownerID, projectID string) error {
	p, err := s.Project(ctx, ownerID, projectID)
	if err != nil {
		return err
	}
	if p.ownerID != ownerID {
		return ErrNotOwner
	}
	if busyMailboxes(p) > 0 {
		return fmt.Errorf("%w: a pass is running; stop it first, then delete the project", ErrConflict)
	}
	err = s.st.DeleteProject(ctx, projectID)
	if errors.Is(err, store.ErrBusy) {
		return fmt.Errorf("%w: a pass is running; stop it first, then delete the project", ErrConflict)
	}
	return err
}
