package connector

import (
	"context"
	"io"
	"time"

	"github.com/mailferry/mailferry/internal/mail"
)

// Folder is one folder as a connector sees it.
type Folder struct {
	// Path is the folder's path with the server's delimiter and personal
	// namespace prefix removed. The inbox is always mail.Path{"INBOX"}.
	Path mail.Path
	// Name is the server's own name for the folder (already decoded from
	// modified UTF-7). Connectors accept it back in every call; the engine
	// treats it as opaque.
	Name string
	// Role is the folder's special use, from the server's SPECIAL-USE
	// attribute, else guessed from its name.
	Role mail.Role
	// RoleFromServer is true when Role came from the server, not a guess.
	RoleFromServer bool
	// Delimiter is the server's hierarchy delimiter, 0 for a flat server.
	Delimiter rune
	// NoSelect folders exist only as parents and hold no messages.
	NoSelect bool
}

// FolderStatus describes a folder's state at the time of a listing.
type FolderStatus struct {
	UIDValidity   uint32
	UIDNext       uint32
	Messages      uint32
	HighestModSeq uint64 // 0 without CONDSTORE
	Size          int64  // total bytes, when known (Status only)
	// AcceptAnyKeyword is the "\*" of PERMANENTFLAGS: new keywords can be
	// stored. PermanentFlags lists the flags that can be stored today.
	AcceptAnyKeyword bool
	PermanentFlags   []string
}

// Message is the metadata of one message, as listed.
type Message struct {
	UID          uint32
	Size         int64
	InternalDate time.Time
	Flags        []string
	Headers      mail.Headers
	Identity     mail.Identity
}

// ListOptions narrows a listing.
type ListOptions struct {
	// MinUID lists only messages with UID >= MinUID (0 lists all).
	MinUID uint32
	// Batch is how many messages are handed to the callback at once; the
	// connector picks a default when 0. Memory stays bounded by it.
	Batch int
	// ForAppend opens the folder as a destination, so that the status
	// reports which flags can be stored (PermanentFlags).
	ForAppend bool
	// MaxUID lists only messages with UID <= MaxUID (0: no bound).
	MaxUID uint32
	// FlagsOnly lists UID and flags only: no size, date or headers
	// (Identity is then zero). Used to carry flag changes over.
	FlagsOnly bool
	// ChangedSince lists only messages whose flags changed after this
	// mod-sequence (CONDSTORE, RFC 7162); ignored without CONDSTORE.
	ChangedSince uint64
}

// Body is one message's RFC 822 bytes as streamed by a source.
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
	// group messages (MULTIAPPEND) send it on its own, so that one bad
	// message cannot keep failing a whole group.
	Retry bool
}

// AppendResult is what the destination reports for a stored message.
type AppendResult struct {
	// UID and UIDValidity are set when the server reports them (UIDPLUS).
	UID         uint32
	UIDValidity uint32
}

// PendingAppend is an APPEND whose bytes have been sent but whose answer
// may still be on its way. Splitting the two is what lets a connector
// pipeline writes on a high-latency link.
type PendingAppend interface {
	// Wait blocks until the server answered. It may be called once.
	Wait() (AppendResult, error)
}

// Quota is the storage quota of a mailbox, in bytes; Limit 0 is unknown.
type Quota struct {
	Used, Limit int64
}

// Features reports what a connector can do and its limits. The engine
// checks features; it never type-switches on a connector.
type Features struct {
	// MaxMessageSize is the largest message the destination accepts
	// (APPENDLIMIT), 0 when unknown or unlimited.
	MaxMessageSize int64
	UIDPlus        bool // append reports the new UID
	CondStore      bool // HIGHESTMODSEQ and CHANGEDSINCE
	SpecialUse     bool // folders carry server-given roles
	Keywords       bool // arbitrary keywords can be stored at all
	// MaxConnections is the number of parallel sessions this connector
	// will open; callers use it to size their worker pools.
	MaxConnections int
}

// Conn is what every connector offers. All methods may be called from
// several goroutines at once; the connector spreads calls over its
// sessions and reconnects dropped ones.
type Conn interface {
	// Features reports capabilities; valid after a successful Open.
	Features() Features
	// Folders lists every folder, parents included.
	Folders(ctx context.Context) ([]Folder, error)
	// List streams the messages of a folder in ascending UID order, in
	// batches, and returns the folder's status as seen when listing began.
	// Messages flagged \Deleted are listed; filtering is the caller's.
	List(ctx context.Context, f Folder, opts ListOptions, fn func([]Message) error) (FolderStatus, error)
	// Status reports a folder's counters without listing its messages
	// (one STATUS command on IMAP). Size is 0 when the server cannot tell.
	Status(ctx context.Context, f Folder) (FolderStatus, error)
	// Statuses is Status for many folders at once; connectors pipeline
	// it where the protocol allows. errs[i] belongs to folders[i].
	Statuses(ctx context.Context, folders []Folder) (sts []FolderStatus, errs []error)
	// Quota reports the mailbox quota; ok is false when unknown.
	Quota(ctx context.Context) (q Quota, ok bool, err error)
	// Close logs out every session. It is safe to call more than once.
	Close() error
}

// Warmer is implemented by connectors whose sessions cost round trips to
// open. Warm starts opening sessions in the background, up to n in all,
// and, when appends is set, what appending needs; it returns at once and
// failures are silent (the pool dials on demand as before). Callers use it
// so that logins overlap the folder discovery rather than follow it: at
// 20 ms RTT an IMAP login is about four round trips.
type Warmer interface {
	Warm(n int, appends bool)
}

// Source is a connector that can read messages.
type Source interface {
	Conn
	// Fetch streams the bodies of msgs (all from folder f) to fn, in any
	// order. A message that no longer exists or cannot be read is reported
	// through fn with a nil Reader and a non-nil err, and Fetch goes on
	// with the others. Fetch returns an error only when the session failed
	// (then some messages may not have been reported at all), or when fn
	// returned one.
	Fetch(ctx context.Context, f Folder, msgs []Message, fn func(b Body, err error) error) error
}

// Destination is a connector that can write messages.
type Destination interface {
	Conn
	// CreateFolder creates p (and missing parents), subscribes it and
	// returns it. Creating a folder that exists is not an error, so the
	// call is idempotent. A role other than mail.RoleNone is given to
	// the new folder where the server allows (IMAP CREATE-SPECIAL-USE,
	// RFC 6154 section 3); elsewhere, and for a folder that existed, it
	// is ignored.
	CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (Folder, error)
	// Append sends one message to folder f and returns once its bytes are
	// on their way. The caller must call Wait on the result. An error from
	// Append itself means nothing was stored. An error from Wait may leave
	// the outcome unknown (see IsUncertain), and the caller must check
	// before writing the message again.
	Append(ctx context.Context, f Folder, req AppendRequest) (PendingAppend, error)
	// SetFlags replaces the flags of the messages with these UIDs in
	// folder f. Repeating it is harmless.
	SetFlags(ctx context.Context, f Folder, uids []uint32, flags []string) error
	// Delete removes the messages with these UIDs from folder f, and no
	// others: a connector that cannot expunge single messages only marks
	// them deleted. Deleting a UID that is already gone is not an error.
	Delete(ctx context.Context, f Folder, uids []uint32) error
}
