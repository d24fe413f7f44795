package ewsserver

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"mime"
	"net/mail"
	"sort"
	"strings"
	"time"
)

// PidTagMessageFlags bits ([MS-OXCMSG] section 2.2.1.6).
const (
	msgFlagRead      = 0x00000001 // mfRead
	msgFlagUnsent    = 0x00000008 // mfUnsent: the item is a draft
	msgFlagHasAttach = 0x00000010 // mfHasAttach
)

// PidTagFlagStatus values ([MS-OXOFLAG] section 2.2.1.1).
const (
	flagStatusNone     = 0
	flagStatusComplete = 1
	flagStatusFlagged  = 2
)

// Flag statuses as EWS spells them (FlagStatusType in types.xsd).
const (
	FlagNotFlagged = "NotFlagged"
	FlagFlagged    = "Flagged"
	FlagComplete   = "Complete"
)

type user struct {
	smtp           string // primary SMTP address, lower case
	password       string
	logins         []string // extra login names, lower case (e.g. `contoso\alice`)
	canImpersonate bool
	mbx            *mailbox // nil for an account without a mailbox
}

type mailbox struct {
	num           uint16
	smtp          string
	quota         int64
	maxMessage    int64
	root          *folder
	msgRoot       *folder
	folders       map[string]*folder // by id
	distinguished map[string]*folder
	items         map[string]*item  // by id
	seq           uint64            // mailbox-wide change number
	tombstones    map[uint32]string // ids of removed items, for SyncFolderItems' Delete
	nextNum       uint32
}

type folder struct {
	mbx           *mailbox
	id, changeKey string
	num           uint32
	parent        *folder
	children      []*folder
	name, class   string
	element       string // Folder, CalendarFolder, ContactsFolder, TasksFolder
	distinguished string
	items         map[uint32]*item
}

type item struct {
	id        string
	num       uint32
	changeKey string
	// version is the change number of the last change of any kind;
	// contentVersion that of the last change other than the read flag, so
	// that SyncFolderItems can tell ReadFlagChange from Update.
	version, contentVersion uint64
	folder                  *folder
	mime                    []byte
	flags                   int32 // PidTagMessageFlags
	received                time.Time
	created, modified       time.Time
	flagStatus              int
	class                   string
	ext                     map[propKey]string // extended properties as sent
	subject, messageID      string
	sent                    time.Time
	hasAttachments          bool
	origin                  string
}

func (it *item) isDraft() bool { return it.flags&msgFlagUnsent != 0 }
func (it *item) isRead() bool  { return it.flags&msgFlagRead != 0 }

// Opaque identifiers. Real EWS ids are base64 of binary store ids; these
// are base64 too (so '+', '/' and '=' occur and a client that puts them
// into URLs or compares them case-insensitively breaks here as it would on
// Exchange), with a random part so that an id from another server or
// mailbox is not found.
const (
	idKindFolder = 'F'
	idKindItem   = 'I'
	idLen        = 1 + 2 + 4 + 9 // kind, mailbox, number, random
)

func newID(kind byte, mbx uint16, num uint32) string {
	b := make([]byte, idLen)
	b[0] = kind
	binary.BigEndian.PutUint16(b[1:], mbx)
	binary.BigEndian.PutUint32(b[3:], num)
	_, _ = rand.Read(b[7:])
	return base64.StdEncoding.EncodeToString(b)
}

// idWellFormed reports whether s could be an id of the given kind; an id
// that is not is ErrorInvalidIdMalformed, one that is but names nothing is
// ErrorItemNotFound or ErrorFolderNotFound.
func idWellFormed(s string, kind byte) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) == idLen && b[0] == kind
}

func changeKey(prefix byte, v uint64) string {
	b := make([]byte, 9)
	b[0] = prefix
	binary.BigEndian.PutUint64(b[1:], v)
	return base64.StdEncoding.EncodeToString(b)
}

func (m *mailbox) bump() uint64 { m.seq++; return m.seq }

func (m *mailbox) newFolder(parent *folder, name, class, element, distinguished string) *folder {
	m.nextNum++
	f := &folder{mbx: m, num: m.nextNum, parent: parent, name: name, class: class, element: element, distinguished: distinguished, items: map[uint32]*item{}}
	f.id = newID(idKindFolder, m.num, f.num)
	f.changeKey = changeKey('A', m.bump())
	m.folders[f.id] = f
	if parent != nil {
		parent.children = append(parent.children, f)
	}
	if distinguished != "" {
		m.distinguished[distinguished] = f
	}
	return f
}

// newMailbox creates the folders a new Exchange 2016 mailbox has: the
// root, "Top of Information Store" (msgfolderroot) and the default
// folders under it, with the folder classes Exchange gives them.
func newMailbox(num uint16, smtp string, o UserOptions) *mailbox {
	m := &mailbox{num: num, smtp: smtp, quota: o.QuotaBytes, maxMessage: o.MaxMessageBytes,
		folders: map[string]*folder{}, distinguished: map[string]*folder{}, items: map[string]*item{}, tombstones: map[uint32]string{}}
	m.root = m.newFolder(nil, "", "", "Folder", "root")
	m.msgRoot = m.newFolder(m.root, "Top of Information Store", "", "Folder", "msgfolderroot")
	defaults := []struct{ name, class, element, dist string }{
		{"Calendar", "IPF.Appointment", "CalendarFolder", "calendar"},
		{"Contacts", "IPF.Contact", "ContactsFolder", "contacts"},
		{"Deleted Items", "IPF.Note", "Folder", "deleteditems"},
		{"Drafts", "IPF.Note", "Folder", "drafts"},
		{"Inbox", "IPF.Note", "Folder", "inbox"},
		{"Journal", "IPF.Journal", "Folder", "journal"},
		{"Junk Email", "IPF.Note", "Folder", "junkemail"},
		{"Notes", "IPF.StickyNote", "Folder", "notes"},
		{"Outbox", "IPF.Note", "Folder", "outbox"},
		{"Sent Items", "IPF.Note", "Folder", "sentitems"},
		{"Tasks", "IPF.Task", "TasksFolder", "tasks"},
	}
	for _, d := range defaults {
		m.newFolder(m.msgRoot, d.name, d.class, d.element, d.dist)
	}
	if o.SystemFolders {
		sync := m.newFolder(m.msgRoot, "Sync Issues", "IPF.Note", "Folder", "syncissues")
		m.newFolder(sync, "Conflicts", "IPF.Note", "Folder", "conflicts")
		m.newFolder(sync, "Local Failures", "IPF.Note", "Folder", "localfailures")
		m.newFolder(sync, "Server Failures", "IPF.Note", "Folder", "serverfailures")
		m.newFolder(m.msgRoot, "Conversation Action Settings", "IPF.Configuration", "Folder", "")
		m.newFolder(m.msgRoot, "RSS Feeds", "IPF.Note.OutlookHomepage", "Folder", "")
	}
	// Folders outside the IPM subtree, as on a real mailbox; FindFolder
	// from msgfolderroot never shows them.
	ri := m.newFolder(m.root, "Recoverable Items", "", "Folder", "recoverableitemsroot")
	m.newFolder(ri, "Deletions", "", "Folder", "recoverableitemsdeletions")
	return m
}

func (m *mailbox) size() int64 {
	var n int64
	for _, it := range m.items {
		n += int64(len(it.mime))
	}
	return n
}

func (f *folder) sortedItems() []*item {
	out := make([]*item, 0, len(f.items))
	for _, it := range f.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].num < out[j].num })
	return out
}

func (f *folder) unread() int {
	n := 0
	for _, it := range f.items {
		if !it.isRead() {
			n++
		}
	}
	return n
}

func (f *folder) size() int64 {
	var n int64
	for _, it := range f.items {
		n += int64(len(it.mime))
	}
	return n
}

// path is the folder's names from below msgfolderroot, nil for the root
// folders themselves.
func (f *folder) path() []string {
	var p []string
	for g := f; g != nil && g != g.mbx.msgRoot && g != g.mbx.root; g = g.parent {
		p = append([]string{g.name}, p...)
	}
	return p
}

// descendants lists f's subfolders depth-first, parents before children.
func (f *folder) descendants() []*folder {
	var out []*folder
	for _, c := range f.children {
		out = append(out, c)
		out = append(out, c.descendants()...)
	}
	return out
}

func (f *folder) childNamed(name string) *folder {
	for _, c := range f.children {
		// Exchange compares folder names without regard to case.
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

// addItem stores a new item. The caller holds the server lock.
func (m *mailbox) addItem(f *folder, it *item, now time.Time) {
	m.nextNum++
	it.num = m.nextNum
	it.id = newID(idKindItem, m.num, it.num)
	it.folder = f
	it.created, it.modified = now, now
	if it.received.IsZero() {
		it.received = now
	}
	if it.class == "" {
		it.class = "IPM.Note"
	}
	parseMIMEHeaders(it)
	m.touch(it, true)
	m.items[it.id] = it
	f.items[it.num] = it
}

// touch records a change to it. content is false for a change of the read
// flag alone.
func (m *mailbox) touch(it *item, content bool) {
	v := m.bump()
	it.version = v
	if content {
		it.contentVersion = v
	}
	it.changeKey = changeKey('C', v)
}

func (m *mailbox) removeItem(it *item) {
	delete(m.items, it.id)
	delete(it.folder.items, it.num)
	m.tombstones[it.num] = it.id
	m.bump()
}

// parseMIMEHeaders reads what EWS reports as Subject, InternetMessageId,
// DateTimeSent and HasAttachments from the stored MIME. It never changes
// the stored bytes.
func parseMIMEHeaders(it *item) {
	msg, err := mail.ReadMessage(bytes.NewReader(it.mime))
	if err != nil {
		return
	}
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		it.subject = s
	} else {
		it.subject = msg.Header.Get("Subject")
	}
	it.messageID = strings.TrimSpace(msg.Header.Get("Message-Id"))
	if d, err := msg.Header.Date(); err == nil {
		it.sent = d
	}
	ct := strings.ToLower(msg.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "multipart/mixed") && bytes.Contains(bytes.ToLower(it.mime), []byte("content-disposition: attachment")) {
		it.hasAttachments = true
	}
}

// ---- The Go API for tests -------------------------------------------------

// UserOptions describe an account.
type UserOptions struct {
	// Password for Basic and NTLM.
	Password string
	// Logins are further names the account logs in with besides its
	// primary SMTP address, e.g. `CONTOSO\alice` (DOMAIN\user). For NTLM
	// the domain and user parts are matched as sent in the Type 3 message.
	Logins []string
	// CanImpersonate gives the account the ApplicationImpersonation role
	// for every mailbox on the server.
	CanImpersonate bool
	// NoMailbox makes an account without a mailbox, like an admin service
	// account: it can only impersonate.
	NoMailbox bool
	// QuotaBytes is the mailbox's prohibit-send-receive quota: a CreateItem
	// that would make the mailbox larger fails with ErrorQuotaExceeded.
	// Zero means unlimited. GetFolder on the root folder reports it as
	// PR_QUOTA_WARNING/SEND/RECEIVE (0x341A-0x341C, KiB).
	QuotaBytes int64
	// MaxMessageBytes is the largest message CreateItem accepts; larger
	// ones fail with ErrorMessageSizeExceeded. Zero means unlimited.
	// Reported as PR_MAX_SUBMIT_MESSAGE_SIZE (0x666D, KiB) on the root.
	MaxMessageBytes int64
	// SystemFolders adds the folders Outlook and Exchange create in a used
	// mailbox (Sync Issues with Conflicts, Local Failures and Server
	// Failures; Conversation Action Settings, IPF.Configuration; RSS
	// Feeds) so that a client's folder filter can be tested.
	SystemFolders bool
}

// AddUser creates an account and, unless o.NoMailbox, its mailbox with the
// default folders. smtp is the primary SMTP address (case-insensitive).
func (s *Server) AddUser(smtp string, o UserOptions) error {
	key := strings.ToLower(strings.TrimSpace(smtp))
	if key == "" || !strings.Contains(key, "@") {
		return fmt.Errorf("ewsserver: AddUser: %q is not an SMTP address", smtp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[key]; ok {
		return fmt.Errorf("ewsserver: AddUser: %s exists already", smtp)
	}
	u := &user{smtp: key, password: o.Password, canImpersonate: o.CanImpersonate}
	for _, l := range o.Logins {
		u.logins = append(u.logins, strings.ToLower(l))
	}
	if !o.NoMailbox {
		s.nextMailbox++
		u.mbx = newMailbox(s.nextMailbox, key, o)
	}
	s.users[key] = u
	return nil
}

// Mailbox gives access to a mailbox's contents for seeding and inspection.
// It returns nil if there is no mailbox for smtp.
func (s *Server) Mailbox(smtp string) *Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(strings.TrimSpace(smtp))]
	if u == nil || u.mbx == nil {
		return nil
	}
	return &Mailbox{s: s, m: u.mbx}
}

// Mailbox is a handle on one mailbox. Its methods are safe for concurrent
// use with requests.
type Mailbox struct {
	s *Server
	m *mailbox
}

// FolderInfo describes a folder as stored.
type FolderInfo struct {
	ID, ChangeKey string
	ParentID      string
	DisplayName   string
	FolderClass   string
	// Element is the EWS element the folder is returned as: Folder,
	// CalendarFolder, ContactsFolder or TasksFolder.
	Element string
	// Distinguished is the DistinguishedFolderId name, if any.
	Distinguished string
	// Path is the names from below msgfolderroot; nil for root and
	// msgfolderroot, and for folders outside the IPM subtree it starts at
	// the root.
	Path        []string
	TotalCount  int
	UnreadCount int
	SizeBytes   int64
}

func (f *folder) info() FolderInfo {
	fi := FolderInfo{ID: f.id, ChangeKey: f.changeKey, DisplayName: f.name, FolderClass: f.class, Element: f.element,
		Distinguished: f.distinguished, Path: f.path(), TotalCount: len(f.items), UnreadCount: f.unread(), SizeBytes: f.size()}
	if f.parent != nil {
		fi.ParentID = f.parent.id
	}
	return fi
}

// Folders lists every folder of the mailbox, depth-first from the root.
func (b *Mailbox) Folders() []FolderInfo {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	out := []FolderInfo{b.m.root.info()}
	for _, f := range b.m.root.descendants() {
		out = append(out, f.info())
	}
	return out
}

// FolderID returns the id of the folder with the given path below
// msgfolderroot (names compared without regard to case, as Exchange does),
// e.g. FolderID("Inbox", "Projects"). With no arguments it returns
// msgfolderroot's id.
func (b *Mailbox) FolderID(path ...string) (string, bool) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	f := b.m.msgRoot
	for _, name := range path {
		if f = f.childNamed(name); f == nil {
			return "", false
		}
	}
	return f.id, true
}

// DistinguishedFolderID returns the id of a distinguished folder such as
// "inbox" or "msgfolderroot", or "" if the mailbox has none by that name.
func (b *Mailbox) DistinguishedFolderID(name string) string {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if f := b.m.distinguished[name]; f != nil {
		return f.id
	}
	return ""
}

// CreateFolder adds a folder under parentID. class "" means IPF.Note; a
// class of IPF.Appointment, IPF.Contact or IPF.Task makes the folder a
// CalendarFolder, ContactsFolder or TasksFolder.
func (b *Mailbox) CreateFolder(parentID, name, class string) (string, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	p := b.m.folders[parentID]
	if p == nil {
		return "", fmt.Errorf("ewsserver: CreateFolder: no parent folder %q", parentID)
	}
	if p.childNamed(name) != nil {
		return "", fmt.Errorf("ewsserver: CreateFolder: %q exists already", name)
	}
	if class == "" {
		class = "IPF.Note"
	}
	return b.m.newFolder(p, name, class, elementForClass(class), "").id, nil
}

func elementForClass(class string) string {
	switch {
	case strings.HasPrefix(class, "IPF.Appointment"):
		return "CalendarFolder"
	case strings.HasPrefix(class, "IPF.Contact"):
		return "ContactsFolder"
	case strings.HasPrefix(class, "IPF.Task"):
		return "TasksFolder"
	}
	return "Folder"
}

// SeedItem is an item put into a mailbox by a test.
type SeedItem struct {
	MIME     []byte
	IsRead   bool
	IsDraft  bool
	Received time.Time // zero: now
	// Flag is FlagNotFlagged (or ""), FlagFlagged or FlagComplete.
	Flag      string
	ItemClass string // "" means IPM.Note
}

// AddItem stores an item in a folder as if it had been delivered there,
// and returns its id.
func (b *Mailbox) AddItem(folderID string, si SeedItem) (string, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	f := b.m.folders[folderID]
	if f == nil {
		return "", fmt.Errorf("ewsserver: AddItem: no folder %q", folderID)
	}
	st, ok := flagStatusFromString(si.Flag)
	if !ok {
		return "", fmt.Errorf("ewsserver: AddItem: flag %q is not NotFlagged, Flagged or Complete", si.Flag)
	}
	it := &item{mime: bytes.Clone(si.MIME), received: si.Received, flagStatus: st, class: si.ItemClass, origin: "seed"}
	if si.IsRead {
		it.flags |= msgFlagRead
	}
	if si.IsDraft {
		it.flags |= msgFlagUnsent
	}
	b.m.addItem(f, it, b.s.now())
	return it.id, nil
}

// ItemInfo describes an item as stored.
type ItemInfo struct {
	ID, ChangeKey string
	FolderID      string
	FolderPath    []string
	// MIME is exactly the bytes the item was created with.
	MIME    []byte
	IsRead  bool
	IsDraft bool
	// MessageFlags is PR_MESSAGE_FLAGS (0x0E07).
	MessageFlags int32
	// Received is DateTimeReceived (PR_MESSAGE_DELIVERY_TIME, 0x0E06).
	Received time.Time
	// FlagStatus is FlagNotFlagged, FlagFlagged or FlagComplete.
	FlagStatus string
	ItemClass  string
	Subject    string
	// Extended holds the extended properties a client set, keyed like
	// "0x0E07/Integer" (tag) or "{GUID}/Name/String".
	Extended map[string]string
	// Origin is "seed" for AddItem, "CreateItem" for items a client made.
	Origin string
}

func (it *item) info() ItemInfo {
	ii := ItemInfo{ID: it.id, ChangeKey: it.changeKey, FolderID: it.folder.id, FolderPath: it.folder.path(),
		MIME: bytes.Clone(it.mime), IsRead: it.isRead(), IsDraft: it.isDraft(), MessageFlags: it.flags,
		Received: it.received, FlagStatus: flagStatusString(it.flagStatus), ItemClass: it.class, Subject: it.subject,
		Extended: map[string]string{}, Origin: it.origin}
	for k, v := range it.ext {
		ii.Extended[k.String()] = v
	}
	return ii
}

// Items lists the items of a folder in the order they were stored.
func (b *Mailbox) Items(folderID string) []ItemInfo {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	f := b.m.folders[folderID]
	if f == nil {
		return nil
	}
	var out []ItemInfo
	for _, it := range f.sortedItems() {
		out = append(out, it.info())
	}
	return out
}

// AllItems lists every item of the mailbox, ordered by folder path and
// then by the order they were stored.
func (b *Mailbox) AllItems() []ItemInfo {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	var out []ItemInfo
	for _, f := range b.m.root.descendants() {
		for _, it := range f.sortedItems() {
			out = append(out, it.info())
		}
	}
	return out
}

// Item returns one item by id.
func (b *Mailbox) Item(id string) (ItemInfo, bool) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	it := b.m.items[id]
	if it == nil {
		return ItemInfo{}, false
	}
	return it.info(), true
}

// SetRead changes an item's read flag as a user in Outlook would; a later
// SyncFolderItems reports it as a ReadFlagChange.
func (b *Mailbox) SetRead(id string, read bool) error {
	return b.change(id, false, func(it *item) {
		if read {
			it.flags |= msgFlagRead
		} else {
			it.flags &^= msgFlagRead
		}
	})
}

// SetFlag changes an item's follow-up flag (FlagNotFlagged, FlagFlagged,
// FlagComplete); a later SyncFolderItems reports it as an Update.
func (b *Mailbox) SetFlag(id, status string) error {
	st, ok := flagStatusFromString(status)
	if !ok {
		return fmt.Errorf("ewsserver: SetFlag: %q is not NotFlagged, Flagged or Complete", status)
	}
	return b.change(id, true, func(it *item) { it.flagStatus = st })
}

func (b *Mailbox) change(id string, content bool, fn func(*item)) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	it := b.m.items[id]
	if it == nil {
		return fmt.Errorf("ewsserver: no item %q", id)
	}
	fn(it)
	it.modified = b.s.now()
	b.m.touch(it, content)
	return nil
}

// DeleteItem removes an item for good.
func (b *Mailbox) DeleteItem(id string) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	it := b.m.items[id]
	if it == nil {
		return fmt.Errorf("ewsserver: DeleteItem: no item %q", id)
	}
	b.m.removeItem(it)
	return nil
}

// MoveItem moves an item to another folder. Like Exchange, the item gets
// a new id; the new id is returned.
func (b *Mailbox) MoveItem(id, folderID string) (string, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	it := b.m.items[id]
	f := b.m.folders[folderID]
	if it == nil || f == nil {
		return "", fmt.Errorf("ewsserver: MoveItem: no item %q or folder %q", id, folderID)
	}
	return b.m.moveItem(it, f, b.s.now()).id, nil
}

func (m *mailbox) moveItem(it *item, f *folder, now time.Time) *item {
	m.removeItem(it)
	moved := *it
	moved.ext = cloneExt(it.ext)
	m.addItem(f, &moved, now)
	return &moved
}

func cloneExt(in map[propKey]string) map[propKey]string {
	if in == nil {
		return nil
	}
	out := make(map[propKey]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// SizeBytes is the mailbox size as this server counts it: the sum of the
// stored MIME sizes.
func (b *Mailbox) SizeBytes() int64 {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.m.size()
}

func flagStatusFromString(s string) (int, bool) {
	switch s {
	case "", FlagNotFlagged:
		return flagStatusNone, true
	case FlagFlagged:
		return flagStatusFlagged, true
	case FlagComplete:
		return flagStatusComplete, true
	}
	return 0, false
}

func flagStatusString(v int) string {
	switch v {
	case flagStatusFlagged:
		return FlagFlagged
	case flagStatusComplete:
		return FlagComplete
	}
	return FlagNotFlagged
}
