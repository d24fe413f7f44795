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
	// AppendIDs: AppendResult.ID is set (IMAP UIDPLUS).
	AppendIDs bool
	// ByteExact: the destination stores and serves the bytes as given.
	// False for stores that rebuild messages (a Graph JSON import). Where
	// only some messages are rebuilt (Graph importMime for small ones,
	// JSON for large ones), AppendResult.Rebuilt marks those.
	ByteExact bool

	// Filled by FeaturesOf from the optional interfaces.
	SetFlags, Delete, Quota, Status, Warm bool
}

// FeaturesOf returns c's features with the optional abilities filled in
// from the interfaces c implements.
func FeaturesOf(c Conn) Features {
	f := c.Features()
	_, f.SetFlags = c.(FlagSetter)
	_, f.Delete = c.(Deleter)
	_, f.Quota = c.(QuotaReader)
	_, f.Status = c.(StatusReader)
	_, f.Warm = c.(Warmer)
	return f
}
