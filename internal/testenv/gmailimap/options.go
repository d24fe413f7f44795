package gmailimap

import (
	"sync"
	"time"
)

// Options configures a Server. The zero value of every field is Gmail's
// documented or reported default; tests shrink the budgets so that they
// can reach them with a few kilobytes.
type Options struct {
	// Now is the server's clock: daily budgets, INTERNALDATE of APPENDs
	// without a date, session lifetimes. Default time.Now. A *Clock's Now
	// lets a test move time forward.
	Now func() time.Time

	// Verify decides whether an OAuth 2.0 access token logs user in
	// (AUTHENTICATE XOAUTH2 and OAUTHBEARER); nil refuses every token.
	// graphserver.Server.CheckIMAPToken fits. An error with
	// ChallengeStatus() and ChallengeScope() string methods (as
	// graphserver.IMAPAuthError has) sets the status and scope of the JSON
	// error challenge; otherwise they are "400" and Scope, as Gmail sends
	// for any refused token (LIMITS.md).
	Verify func(user, token string) error
	// Scope is the scope of the error challenge. Default
	// https://mail.google.com/.
	Scope string

	// DailyDownloadBytes is the message data a user may fetch per day
	// ("Download via IMAP 2500 MB" per day, Google Workspace admin help
	// answer 1071518). Default 2,500,000,000.
	DailyDownloadBytes int64
	// DailyUploadBytes is the message data a user may APPEND per day
	// ("Upload via IMAP 500 MB"). Default 500,000,000.
	DailyUploadBytes int64
	// DayZone is where a day starts and ends for the budgets. Default UTC
	// (Google does not say; LIMITS.md).
	DayZone *time.Location
	// OverLimit is how a user past a daily budget is answered. Default
	// OverLimitNO.
	OverLimit OverLimit

	// MaxConnections is the number of authenticated connections one
	// account may have at once; the next login gets "NO [ALERT] Too many
	// simultaneous connections. (Failure)". Default 15.
	MaxConnections int
	// AppendLimit is the largest message APPEND accepts, advertised as
	// APPENDLIMIT=n (RFC 7889). Default 35651584, the value Gmail
	// advertises.
	AppendLimit int64
	// StorageQuota is the account's storage in bytes, reported by
	// GETQUOTAROOT and enforced on APPEND. Default 15 GiB (the free
	// account's 15 GB).
	StorageQuota int64
	// SessionLifetime, if set, ends an authenticated session that long
	// after its login with "* BYE Session expired, please login again.",
	// sent before the first command issued after that time.
	SessionLifetime time.Duration

	// ManualExpunge is Gmail's "Auto-Expunge off" setting: a message
	// flagged \Deleted stays in the folder until EXPUNGE, UID EXPUNGE or
	// CLOSE. By default (Gmail's default, "Auto-Expunge on") STORE
	// +FLAGS \Deleted removes the message from the folder at once.
	ManualExpunge bool
	// ExpungeBehavior is Gmail's "When a message is marked as deleted and
	// expunged from the last visible IMAP folder" setting. Default
	// ExpungeArchive.
	ExpungeBehavior ExpungeBehavior
	// AppendDuplicates makes every APPEND create a new message. By default
	// an APPEND into a folder that already holds a message with the same
	// Message-ID and Date header replaces that message (old one expunged,
	// new one added), as reported for Gmail (LIMITS.md).
	AppendDuplicates bool
	// IncludeSelectedLabel makes FETCH X-GM-LABELS list the label of the
	// selected folder too. By default it is left out, as reported for
	// Gmail (LIMITS.md): a client must add the folder's own label itself.
	IncludeSelectedLabel bool
	// LabelStyle is how system labels are written in X-GM-LABELS. Default
	// LabelsQuoted.
	LabelStyle LabelStyle
	// FolderNames renames system folders, keyed by their special-use
	// attribute (`\All`, `\Drafts`, `\Important`, `\Sent`, `\Junk`,
	// `\Flagged`, `\Trash`), e.g. {`\All`: "[Gmail]/Alle Nachrichten"}
	// for an account whose language is German, or the "[Google Mail]/…"
	// names of older UK and German accounts. Default the English
	// "[Gmail]/…" names of Google's IMAP extensions page.
	FolderNames map[string]string

	// Plaintext serves IMAP without TLS. By default the server speaks
	// implicit TLS (port 993 style) with a per-instance self-signed
	// certificate, as imap.gmail.com does.
	Plaintext bool

	// Logf, if set, receives one line per command (user, tag, command
	// name, status). Arguments, tokens and passwords are never logged.
	Logf func(format string, args ...any)
}

// OverLimit says how a user past a daily budget is answered.
type OverLimit int

const (
	// OverLimitNO answers the FETCH or APPEND that would go past the
	// budget, and every later one that day, with "NO [OVERQUOTA] Account
	// exceeded command or bandwidth limits. (Failure)". Other commands
	// and new logins keep working.
	OverLimitNO OverLimit = iota
	// OverLimitBye sends "* BYE Session expired, please login again." and
	// closes the connection instead of running that command, and refuses
	// logins for the rest of the day with "NO [ALERT] Account exceeded
	// command or bandwidth limits. (Failure)": the account is suspended
	// until the next day.
	OverLimitBye
)

// ExpungeBehavior is what happens to a message expunged from the last
// folder it was visible in (besides All Mail).
type ExpungeBehavior int

const (
	// ExpungeArchive keeps the message in All Mail (Gmail's default).
	ExpungeArchive ExpungeBehavior = iota
	// ExpungeTrash moves it to Trash.
	ExpungeTrash
	// ExpungeDeleteForever deletes it.
	ExpungeDeleteForever
)

// LabelStyle is how system labels appear in FETCH X-GM-LABELS.
type LabelStyle int

const (
	// LabelsQuoted writes them as quoted strings, ("\\Inbox" "\\Sent"
	// foo), as Gmail does on the wire (captures in client trackers).
	LabelsQuoted LabelStyle = iota
	// LabelsAsDocumented writes them bare, (\Inbox \Sent foo), as in the
	// examples of Google's IMAP extensions page.
	LabelsAsDocumented
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Scope == "" {
		c.Scope = "https://mail.google.com/"
	}
	if c.DailyDownloadBytes == 0 {
		c.DailyDownloadBytes = 2500 * 1000 * 1000
	}
	if c.DailyUploadBytes == 0 {
		c.DailyUploadBytes = 500 * 1000 * 1000
	}
	if c.DayZone == nil {
		c.DayZone = time.UTC
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 15
	}
	if c.AppendLimit == 0 {
		c.AppendLimit = 35651584
	}
	if c.StorageQuota == 0 {
		c.StorageQuota = 15 << 30
	}
	return c
}

// Clock is a settable clock for Options.Now. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
