package connector

// Features reports what a connector can do and its limits. The engine
// checks features; it never type-switches on a connector. A connector
// fills the first group in its Features method; FeaturesOf adds the
// second from the optional interfaces the connector implements.
type Features struct {
	// MaxMessageSize is the largest message the destination accepts
	// (IMAP APPENDLIMIT), 0 when unknown or unlimited.
	MaxMessageSize int64
	// MaxConnections is the number of parallel sessions the connector
	// will open; callers size their worker pools with it.
	MaxConnections int
	// Folders: the store has a folder tree. False (POP3) means INBOX only.
	Folders bool
	// CreateFolders: Destination.CreateFolder can create folders.
	CreateFolders bool
	// Keywords: arbitrary keywords can be stored at all.
	Keywords bool
	// SpecialUse: folders carry server-given roles (RoleFromServer).
	SpecialUse bool
	// ReportsRemovals: List with Since and Changes reports ChangeRemoved.
	ReportsRemovals bool
	// CheapChanges: List with Since and Changes costs O(changes), not
	// O(folder) (IMAP CONDSTORE, EWS SyncFolderItems, Graph delta).
	CheapChanges bool
	// ExactNew: List with Since lists as ChangeNew exactly the messages
	// that arrived after the cursor, never an older one (IMAP UIDs, POP3
	// UIDLs, an mbox file that only grew). Without it (Maildir, EML: their
	// cursors say whether a directory changed, not what) a changed folder
	// is listed whole as ChangeNew, and the engine tells old from new by
	// its state. The engine finds a copy whose APPEND answer was lost
	// among the arrivals only on destinations with ExactNew.
	ExactNew bool
	// AppendIDs: AppendResult.ID is set (IMAP UIDPLUS).
	AppendIDs bool
	// ByteExact: the destination stores and serves the bytes as given.
	// False for stores that rebuild messages (a Graph JSON import). Where
	// only some messages are rebuilt (Graph importMime for small ones,
	// JSON for large ones), AppendResult.Rebuilt marks those.
	ByteExact bool

	// Filled by FeaturesOf from the optional interfaces.
	SetFlags, Delete, Quota, Status, Warm, Notes bool
}

// FeaturesOf returns c's features with the optional abilities filled in
// from the interfaces c implements. For a layer (Wrapper) they are those
// of the connector it wraps, since a layer implements every interface.
func FeaturesOf(c Conn) Features {
	f := c.Features()
	if w, ok := c.(Wrapper); ok {
		in := FeaturesOf(w.Unwrap())
		f.SetFlags, f.Delete, f.Quota, f.Status, f.Warm, f.Notes = in.SetFlags, in.Delete, in.Quota, in.Status, in.Warm, in.Notes
		return f
	}
	_, f.SetFlags = c.(FlagSetter)
	_, f.Delete = c.(Deleter)
	_, f.Quota = c.(QuotaReader)
	_, f.Status = c.(StatusReader)
	_, f.Warm = c.(Warmer)
	_, f.Notes = c.(FolderNoter)
	return f
}
