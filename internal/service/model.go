package service

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Errors the API maps to HTTP statuses.
var (
	// ErrNotFound is also what a caller gets for another owner's objects,
	// so that their existence is not revealed.
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// InputError is a problem with what the user sent, for one field.
type InputError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// Rows carries per-row problems of a CSV import.
	Rows []RowError `json:"rows,omitempty"`
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Status is a mailbox's state in the seed's flow.
type Status string

// Mailbox statuses. The labels are what users see.
const (
	StatusNotStarted          Status = "not_started"
	StatusQueued              Status = "queued"
	StatusVerifying           Status = "verifying"
	StatusReady               Status = "ready"
	StatusFailed              Status = "failed"
	StatusMigrating           Status = "migrating"
	StatusCompleted           Status = "completed"
	StatusCompletedWithErrors Status = "completed_with_errors"
	StatusStopped             Status = "stopped"
)

// Label is the status as the portal shows it.
func (s Status) Label() string {
	switch s {
	case StatusNotStarted:
		return "Not started"
	case StatusQueued:
		return "Queued"
	case StatusVerifying:
		return "Verifying"
	case StatusReady:
		return "Ready for migration"
	case StatusFailed:
		return "Failed"
	case StatusMigrating:
		return "Migrating"
	case StatusCompleted:
		return "Completed"
	case StatusCompletedWithErrors:
		return "Completed with errors"
	case StatusStopped:
		return "Stopped"
	case StatusWaitingForUser:
		return "Waiting for end user"
	}
	return string(s)
}

// Terminal reports whether a mailbox pass in this status is over.
func (s Status) Terminal() bool {
	switch s {
	case StatusReady, StatusFailed, StatusCompleted, StatusCompletedWithErrors, StatusStopped, StatusNotStarted:
		return true
	}
	return false
}

// PassKind is what a pass does.
type PassKind string

// Pass kinds, after MigrationWiz.
const (
	PassVerify      PassKind = "verify"       // log in to both sides
	PassTrial       PassKind = "trial"        // verify, plan folders, count, check quota (70% rule)
	PassPreStage    PassKind = "pre-stage"    // only messages older than a cutoff
	PassFull        PassKind = "full"         // everything
	PassDelta       PassKind = "delta"        // Migrate new items
	PassRetryErrors PassKind = "retry-errors" // the failed items of the last pass
	// PassProof is "Verify migration" (issue 15): read both mailboxes
	// and prove, per folder, that every source message is on the
	// destination (internal/verify). Not PassVerify, which is the
	// login check and keeps its stored name.
	PassProof PassKind = "proof"
)

// Valid reports whether k is a known kind.
func (k PassKind) Valid() bool {
	switch k {
	case PassVerify, PassTrial, PassPreStage, PassFull, PassDelta, PassRetryErrors, PassProof:
		return true
	}
	return false
}

// Copies reports whether the pass copies mail (as opposed to checking).
func (k PassKind) Copies() bool { return k != PassVerify && k != PassTrial && k != PassProof }

// Endpoint is a mail server.
type Endpoint struct {
	// Type is "imap", "exchange" (EWS, Exchange 2013-2019, with each
	// mailbox's password or the project's admin login), "m365"
	// (Microsoft 365 through Microsoft Graph, with the project's app
	// credentials) or, for a source, "pop3" or "gmail" (IMAP at
	// imap.gmail.com with app passwords).
	Type     string `json:"type"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Security string `json:"security"` // tls | starttls | none
	// Insecure accepts invalid certificates; AllowPlaintext permits
	// logging in without TLS. Both are explicit opt-outs.
	Insecure       bool `json:"insecure,omitempty"`
	AllowPlaintext bool `json:"allow_plaintext,omitempty"`
}

// URL is the endpoint as a connector address (connector/all parses it):
// the scheme says the type and the security, e.g. pop3s://host:995.
func (e Endpoint) URL() string {
	switch e.Type {
	case "exchange":
		// Always TLS; NTLM or Basic as the server offers (connector/ews).
		return "ews://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	case TypeM365:
		// Graph addresses name the mailbox too: see MailboxURL.
		return "graph://"
	case TypeGmail:
		return "imaps://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	}
	scheme := e.Type
	if scheme == "" {
		scheme = "imap"
	}
	switch e.Security {
	case "tls":
		scheme += "s"
	case "starttls":
		scheme += "+starttls"
	}
	return scheme + "://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// MailboxURL is the connector address of one mailbox of a Microsoft 365
// endpoint, graph://TENANT/MAILBOX (connector/graph); other types have one
// address for every mailbox (URL).
func (e Endpoint) MailboxURL(tenant, mailbox string) string {
	if e.Type != TypeM365 {
		return e.URL()
	}
	return "graph://" + tenant + "/" + mailbox
}

// DefaultPort is the usual port of a source type and security: 993 and
// 143 for IMAP, 995 and 110 for POP3 (RFC 8314).
func DefaultPort(typ, security string) int {
	tls := security == "tls"
	switch {
	case typ == "exchange":
		return 443
	case typ == "pop3" && tls:
		return 995
	case typ == "pop3":
		return 110
	case tls:
		return 993
	}
	return 143
}

// Preset is an operator-defined destination, e.g. "Rackspace Email".
type Preset struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Endpoint
}

// Options tune a project's passes.
type Options struct {
	Include     []string `json:"include,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
	Mappings    []string `json:"mappings,omitempty"`
	Since       string   `json:"since,omitempty"`  // YYYY-MM-DD
	Before      string   `json:"before,omitempty"` // YYYY-MM-DD
	LogSubjects bool     `json:"log_subjects,omitempty"`
}

// Project is one migration project.
type Project struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Source            Endpoint  `json:"source"`
	DestinationPreset string    `json:"destination_preset"`
	Destination       *Preset   `json:"destination,omitempty"`
	Options           Options   `json:"options"`
	State             string    `json:"state"` // active | finished
	CreatedAt         time.Time `json:"created_at"`
	FinishedAt        time.Time `json:"finished_at,omitzero"`
	// Counts by mailbox status, in listings.
	Mailboxes map[Status]int `json:"mailboxes,omitempty"`
	// SourceAdmin and DestinationAdmin are the sides' project-wide admin
	// credentials (a Microsoft 365 app, an Exchange impersonation login),
	// without their secrets; nil for a side that logs in with each
	// mailbox's password.
	SourceAdmin      *AdminInfo `json:"source_admin,omitempty"`
	DestinationAdmin *AdminInfo `json:"destination_admin,omitempty"`
	// OwnerEmail is set only when an operator looks at another user's
	// project: the page says whose it is and that it is read-only.
	OwnerEmail string `json:"owner_email,omitempty"`
	ownerID    string
}

// Mailbox is a mailbox pair as the API shows it: never with passwords.
type Mailbox struct {
	ID          string    `json:"id"`
	ProjectID   string    `json:"project_id"`
	SourceEmail string    `json:"source_email"`
	SourceLogin string    `json:"source_login"`
	DestEmail   string    `json:"destination_email"`
	DestLogin   string    `json:"destination_login"`
	Flags       string    `json:"flags,omitempty"`
	Status      Status    `json:"status"`
	StatusLabel string    `json:"status_label"`
	StatusAt    time.Time `json:"status_at"`
	// MoreInfo is the exact error of the last failure; SolveIssue the
	// steps to fix it.
	MoreInfo   string    `json:"more_info,omitempty"`
	SolveIssue *Solution `json:"solve_issue,omitempty"`
	// HasPasswords is false once the project is finished.
	HasPasswords bool          `json:"has_passwords"`
	LastPass     *MailboxPass  `json:"last_pass,omitempty"`
	History      []StatusEvent `json:"history,omitempty"`
}

// StatusEvent is one stored status change.
type StatusEvent struct {
	At     time.Time `json:"at"`
	Status Status    `json:"status"`
	Detail string    `json:"detail,omitempty"`
}

// Pass is one run over some mailboxes of a project.
type Pass struct {
	ID         string        `json:"id"`
	ProjectID  string        `json:"project_id"`
	Kind       PassKind      `json:"kind"`
	State      string        `json:"state"` // running | completed | stopped
	Cutoff     time.Time     `json:"cutoff,omitzero"`
	CreatedAt  time.Time     `json:"created_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
	Mailboxes  []MailboxPass `json:"mailboxes,omitempty"`
}

// MailboxPass is one mailbox's part of a pass, with live progress.
type MailboxPass struct {
	PassID      string    `json:"pass_id"`
	Kind        PassKind  `json:"kind"`
	MailboxID   string    `json:"mailbox_id"`
	Status      Status    `json:"status"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	TotalMsgs   int64     `json:"total_messages"`
	TotalBytes  int64     `json:"total_bytes"`
	Copied      int64     `json:"copied"`
	CopiedBytes int64     `json:"copied_bytes"`
	Present     int64     `json:"already_present"`
	Skipped     int64     `json:"skipped"`
	Failed      int64     `json:"failed"`
	FlagUpdates int64     `json:"flag_updates"`
	Folder      string    `json:"current_folder,omitempty"`
	Rate        float64   `json:"messages_per_second"`
	ETASeconds  int64     `json:"eta_seconds"`
	DurationSec float64   `json:"duration_seconds"`
	QuotaUsed   int64     `json:"destination_quota_used,omitempty"`
	QuotaLimit  int64     `json:"destination_quota_limit,omitempty"`
	Warning     string    `json:"warning,omitempty"`
	Plan        []PlanRow `json:"plan,omitempty"`
	ErrorClass  string    `json:"error_class,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	// Worker names the worker process that runs (or ran) this part;
	// ProgressAt is when that worker last stored its progress. Any API
	// process shows the same, whichever worker it is.
	Worker     string    `json:"worker,omitempty"`
	ProgressAt time.Time `json:"progress_at,omitzero"`
	// Paused is set while the running part waits on its server (Gmail's
	// daily limit, throttling), with until when.
	Paused *Pause `json:"paused,omitempty"`
}

// PlanRow is one folder of a trial's plan.
type PlanRow struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Messages    int64  `json:"messages"`
	Bytes       int64  `json:"bytes"`
	// The counts of a copying pass's folder (issue 17), balanced as the
	// engine's (migrate.FolderResult): Messages (the source messages this
	// pass dealt with) = Copied + Present + Skipped + Failed + Left (left
	// only by a stopped pass). Earlier: settled by earlier passes, not
	// looked at; Unchanged: skipped after one STATUS showed nothing new.
	Copied    int64 `json:"copied,omitempty"`
	Present   int64 `json:"already_present,omitempty"`
	Skipped   int64 `json:"skipped,omitempty"`
	Failed    int64 `json:"failed,omitempty"`
	Left      int64 `json:"left,omitempty"`
	Earlier   int64 `json:"settled_earlier,omitempty"`
	Unchanged bool  `json:"unchanged,omitempty"`
	// Excluded: an include or exclude rule leaves the folder out; all
	// its messages are Skipped (by a filter) and none is looked at.
	Excluded bool `json:"excluded_by_rule,omitempty"`
}

// FailedItem is one message a pass could not copy, or all the messages of
// a folder that could not be listed (no ID, Messages their number).
type FailedItem struct {
	PassID string `json:"pass_id"`
	Folder string `json:"folder"`
	// ID is the source connector's ID of the message: IMAP
	// "<uidvalidity>.<uid>", a POP3 UIDL, a file name. Items recorded by
	// releases before the connector model have UID instead.
	ID   string `json:"id,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	Size int64  `json:"size"`
	// Messages is how many messages the item stands for: 1 for a
	// message, a folder's count for a folder, 0 for a failure that left
	// no message uncopied.
	Messages int64  `json:"messages"`
	Kind     string `json:"kind"`
	Reason   string `json:"reason"`
	Subject  string `json:"subject,omitempty"`
}
