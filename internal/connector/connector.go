// Package connector defines what the engine knows of a mail system: a
// source it reads from and a destination it writes to, addressed by
// opaque IDs and cursors that each connector chooses, with optional
// abilities as small interfaces discovered into Features. Connectors are
// opened only through a Registry. See DESIGN in doc.go.
package connector

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mailferry/mailferry/internal/mail"
)

// ID identifies one message within one folder of one mailbox. It is
// opaque to everyone but the connector that made it (IMAP
// "<uidvalidity>.<uid>", a POP3 UIDL, a Maildir unique name, an EWS
// ItemId, a Graph id), at most MaxIDLen bytes, and stable for as long as
// the folder's cursor stays valid.
type ID string

// MaxIDLen bounds an ID so that the store can index it.
const MaxIDLen = 1024

// Cursor is a folder's change state: "what is new or changed since". It
// is made and read back only by the connector that made it (IMAP:
// UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ; POP3: the UIDLs seen;
// EWS: a SyncState; Graph: a delta link). The empty cursor means nothing
// has been seen yet.
type Cursor string

// Folder is one folder as a connector sees it.
type Folder struct {
	// Path is the folder's logical path: the server's delimiter and
	// personal namespace prefix removed. The inbox is mail.Path{"INBOX"}.
	Path mail.Path
	// Name is the server's own handle for the folder (an IMAP mailbox
	// name, an EWS FolderId, a file path). Connectors accept it back in
	// every call; everyone else treats it as opaque.
	Name string
	// Role is the folder's special use, from the server when
	// RoleFromServer, else guessed from its name.
	Role           mail.Role
	RoleFromServer bool
	// Delimiter is the server's hierarchy delimiter, 0 for a flat store.
	Delimiter rune
	// NoSelect folders exist only as parents and hold no messages.
	NoSelect bool
	// Class is empty for mail folders. Folders of other kinds (calendar,
	// contacts, tasks) are listed with their class (e.g. "IPF.Appointment")
	// so that the engine can skip them with a note.
	Class string
}

// IsMail reports whether the folder holds mail.
func (f Folder) IsMail() bool { return f.Class == "" }

// FolderStatus describes a folder's state at the time it was read.
type FolderStatus struct {
	Messages int64
	// Size is the folder's total bytes, 0 when the connector cannot tell.
	Size int64
	// Unchanged is set by StatusReader.Statuses when it was given a
	// cursor and the connector is certain nothing changed since (IMAP:
	// STATUS equals the cursor and HIGHESTMODSEQ is known). False means
	// "may have changed".
	Unchanged bool
}

// Change says why a message is in a listing.
type Change int

const (
	// ChangeNew: not seen at the Since cursor (every message of a full
	// listing).
	ChangeNew Change = iota
	// ChangeFlags: existed at Since; its flags may have changed. Size,
	// date and headers may be zero.
	ChangeFlags
	// ChangeRemoved: existed at Since and is gone. Only ID is set. Only
	// connectors with Features.ReportsRemovals report these.
	ChangeRemoved
)

// Message is the metadata of one message, as listed.
type Message struct {
	ID           ID
	Change       Change
	Size         int64
	InternalDate time.Time
	Flags        []string
	Headers      mail.Headers
	Identity     mail.Identity
	// Skip, set by a source, says this message is not to be copied from
	// this folder, and why: it is copied from another folder that also
	// shows it (a Gmail message with several labels). The engine counts
	// it as skipped, never as failed, and never copies it from here.
	Skip string
}

// ListOptions narrows a listing.
type ListOptions struct {
	// Since lists only what changed after that cursor: new messages
	// (ChangeNew) and, with Changes, messages whose flags may have changed
	// (ChangeFlags) and, where the connector ReportsRemovals, removed ones
	// (ChangeRemoved). An empty Since lists everything as ChangeNew.
	Since   Cursor
	Changes bool
	// AllOld additionally lists every message that existed at Since
	// (ChangeFlags, flags only), so that a caller can find removed
	// messages on connectors that do not report removals.
	AllOld bool
	// Batch is how many messages are handed to the callback at once; the
	// connector picks a default when 0. Memory stays bounded by it.
	Batch int
	// ForAppend opens the folder as a destination: Listing.Accept then
	// says which flags can be stored.
	ForAppend bool
	// NoMessages opens the folder without listing its messages: only the
	// Listing (status, cursor, Accept) is wanted, e.g. for a destination
	// folder that a delta pass only appends to. A connector that cannot
	// open a folder without listing it may list anyway; callers ignore
	// what it delivers then.
	NoMessages bool
	// StrictSince makes List fail with an error that wraps
	// ErrCursorInvalid, before it delivers anything, when Since is no
	// longer valid (IMAP UIDVALIDITY changed, an mbox file was rewritten,
	// an EWS sync state or Graph delta token expired, or a cursor this
	// connector did not make), instead of listing in full with
	// Listing.Reset. The engine always sets it with Since: it must know
	// that the IDs it recorded became meaningless before it acts on the
	// first message, or it would copy the whole folder again. Every
	// connector with cursors must honour it (the conformance suite checks
	// it with a cursor the connector did not make).
	StrictSince bool
}

// ErrCursorInvalid is wrapped by List's error when ListOptions.StrictSince
// is set and Since is no longer valid: the IDs recorded for the folder
// under that cursor mean nothing any more.
var ErrCursorInvalid = errors.New("the folder's change cursor is no longer valid (the folder was renumbered or rebuilt)")

// Listing is what List reports besides the messages.
type Listing struct {
	// Status is the folder's state when the listing began.
	Status FolderStatus
	// Cursor covers everything this listing delivered. The caller stores
	// it only once every listed message is settled, so that an
	// interrupted pass resumes from the older cursor.
	Cursor Cursor
	// Reset is set when Since was no longer valid (IMAP UIDVALIDITY
	// changed, an EWS sync state or Graph delta token expired): the
	// listing was then a full one, and IDs recorded for this folder
	// before mean nothing.
	Reset bool
	// Accept says which flags the folder stores (ForAppend only).
	Accept FlagAcceptance
}

// FlagAcceptance says which flags a destination folder stores.
type FlagAcceptance struct {
	// AnyKeyword is IMAP's "\*" in PERMANENTFLAGS: new keywords can be
	// created.
	AnyKeyword bool
	// Flags lists the flags that can be stored today.
	Flags []string
}

// Body is one message's RFC 5322 bytes as streamed by a source.
type Body struct {
	Message Message
	// Reader yields exactly Size bytes. It is valid only during the
	// callback that received it.
	Reader io.Reader
	Size   int64
}

// AppendRequest is one message to write.
type AppendRequest struct {
	Flags        []string
	InternalDate time.Time
	Size         int64
	// Body yields exactly Size bytes.
	Body io.Reader
	// Retry marks a message sent again after an error. Connectors that
	// group messages send it on its own, so that one bad message cannot
	// keep failing a whole group.
	Retry bool
	// More is a hint that another message for the same folder follows
	// soon (it is being fetched or waits for its turn). A connector that
	// groups appends into one command (IMAP MULTIAPPEND) keeps the group
	// open a little longer for it instead of ending the group after a
	// short pause; without the hint it ends sooner. It never changes
	// what is stored.
	More bool
	// Reopen, when set, returns a new reader over the same Size bytes
	// from the start. Connectors that must read a body twice use it (the
	// IMAP connector counts bare LFs before it sends the literal, whose
	// size must be known up front); without it they buffer the body.
	Reopen func() io.Reader
}

// AppendResult is what the destination reports for a stored message.
type AppendResult struct {
	// ID is the new copy's ID when the server reports it (IMAP
	// APPENDUID, EWS/Graph item ids); empty otherwise.
	ID ID
	// Rebuilt is set when the destination stored a message rebuilt from
	// the given one's content rather than its bytes (Graph's JSON path):
	// the copy is content-equivalent, not byte-exact, whatever
	// Features.ByteExact says.
	Rebuilt bool
}

// PendingAppend is an append whose bytes have been sent but whose answer
// may still be on its way; splitting the two is what lets a connector
// pipeline writes on a high-latency link.
type PendingAppend interface {
	// Wait blocks until the server answered. It may be called once.
	Wait() (AppendResult, error)
}

// Quota is the storage quota of a mailbox, in bytes; Limit 0 is unknown.
type Quota struct {
	Used, Limit int64
}

// Conn is what every connector offers. All methods may be called from
// several goroutines at once; the connector spreads calls over its
// sessions and reconnects dropped ones.
type Conn interface {
	// Features reports what the connector can do; valid after Open.
	// Callers use FeaturesOf, which also fills in the optional
	// interfaces implemented.
	Features() Features
	// Folders lists every folder, parents and non-mail folders included.
	Folders(ctx context.Context) ([]Folder, error)
	// List streams a folder's messages in batches, in the connector's
	// order (IMAP: ascending UID), as ListOptions selects. Messages
	// flagged \Deleted are listed; filtering is the caller's. A callback
	// error ends the listing and is returned.
	List(ctx context.Context, f Folder, opts ListOptions, fn func([]Message) error) (Listing, error)
	// Close ends every session. It is safe to call more than once.
	Close() error
}

// Source is a connector that can read messages.
type Source interface {
	Conn
	// Fetch streams the bodies of msgs (all from folder f) to fn, in any
	// order. A message that no longer exists or cannot be read is
	// reported through fn with a nil Reader and a KindItem error, and
	// Fetch goes on with the others. Fetch returns an error only when the
	// session failed (then some messages may not have been reported), or
	// when fn returned one.
	Fetch(ctx context.Context, f Folder, msgs []Message, fn func(b Body, err error) error) error
}

// Destination is a connector that can write messages.
type Destination interface {
	Conn
	// CreateFolder creates p (and missing parents) and returns it.
	// Creating a folder that exists is not an error, so the call is
	// idempotent. role is a hint for stores that can mark a folder's
	// special use (RFC 6154 CREATE-SPECIAL-USE); mail.RoleNone for none.
	CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (Folder, error)
	// Append sends one message to folder f and returns once its bytes
	// are on their way. The caller must call Wait on the result. An error
	// from Append itself means nothing was stored. An error from Wait may
	// leave the outcome unknown (see IsUncertain), and the caller must
	// check before writing the message again.
	Append(ctx context.Context, f Folder, req AppendRequest) (PendingAppend, error)
}

// FlagSetter is a destination that can change the flags of copies it
// holds.
type FlagSetter interface {
	// SetFlags replaces the flags of these messages of folder f.
	// Repeating it is harmless; IDs the connector no longer recognises
	// (a renumbered folder) are ignored, never applied to other messages.
	SetFlags(ctx context.Context, f Folder, ids []ID, flags []string) error
}

// Deleter is a destination that can delete single messages.
type Deleter interface {
	// Delete removes exactly these messages of folder f and no others. An
	// ID that is gone or no longer recognised is not an error and deletes
	// nothing.
	Delete(ctx context.Context, f Folder, ids []ID) error
}

// QuotaReader reports a mailbox's storage quota.
type QuotaReader interface {
	// Quota reports the quota; ok is false when the server does not say.
	Quota(ctx context.Context) (q Quota, ok bool, err error)
}

// StatusReader reads folder counters without listing messages, for many
// folders at once (pipelined where the protocol allows: IMAP STATUS).
type StatusReader interface {
	// Statuses returns one status per folder; errs[i] belongs to
	// folders[i]. since[i], when not empty, is the folder's stored cursor:
	// the status then says whether the folder is Unchanged since it.
	// since may be nil.
	Statuses(ctx context.Context, folders []Folder, since []Cursor) (sts []FolderStatus, errs []error)
}

// FolderNote is a part of a store that Folders could not list (an
// unreadable directory of an mbox tree): its folders and their messages
// are unknown. The engine reports it like a failed item, with Path and
// Err, and copies the rest.
type FolderNote struct {
	// Path is where in the folder tree the unreadable part sits, as far
	// as known.
	Path mail.Path
	// Err says what went wrong; a *Error with a hint for the user.
	Err error
}

// FolderNoter is a connector whose folder listing can go on past parts
// of the store it cannot read, instead of failing as a whole.
type FolderNoter interface {
	// FoldersNoted is Folders that also returns what it could not list.
	// The engine calls it instead of Folders when a connector has it.
	FoldersNoted(ctx context.Context) ([]Folder, []FolderNote, error)
}

// Wrapper is a layer around another connector (package layer): it
// implements every optional interface and passes calls on. FeaturesOf
// takes the optional abilities from the connector it wraps, so callers
// must check Features, never the interfaces a connector implements.
type Wrapper interface {
	Unwrap() Conn
}

// Warmer is a connector whose sessions cost round trips to open. Warm
// starts opening up to n sessions in the background (and, when appends
// is set, what appending needs); it returns at once and failures are
// silent.
type Warmer interface {
	Warm(n int, appends bool)
}
