package graphserver

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"
)

// WritePath says which request created a message.
type WritePath string

const (
	WriteSeed       WritePath = "seed"       // SeedMessage (test API)
	WriteMIMEDraft  WritePath = "mime"       // POST .../messages with text/plain base64 MIME (always a draft)
	WriteJSON       WritePath = "json"       // POST .../messages with a JSON message
	WriteImportMIME WritePath = "importMime" // POST beta .../mailFolders/{id}/importMime
)

// wellKnownFolders are created in every mailbox under msgfolderroot, with
// the display names of an English-language mailbox (mailFolder resource:
// well-known folder names).
var wellKnownFolders = []struct{ name, display string }{
	{"archive", "Archive"},
	{"conversationhistory", "Conversation History"},
	{"deleteditems", "Deleted Items"},
	{"drafts", "Drafts"},
	{"inbox", "Inbox"},
	{"junkemail", "Junk Email"},
	{"outbox", "Outbox"},
	{"sentitems", "Sent Items"},
}

type mailState struct {
	users       map[string]*mbx // by lowercase UPN and by id
	seq         uint64          // change sequence for delta
	deltaRounds map[string]*deltaRound
	deltaMarks  map[string]*deltaMark
	uploads     map[string]*uploadSession
}

func (st *mailState) init() {
	st.users = map[string]*mbx{}
	st.deltaRounds = map[string]*deltaRound{}
	st.deltaMarks = map[string]*deltaMark{}
	st.uploads = map[string]*uploadSession{}
}

func (st *mailState) next() uint64 {
	st.seq++
	return st.seq
}

type mbx struct {
	id, upn    string
	tenant     *tenant
	hasMailbox bool
	root       *folder
	folders    map[string]*folder
	wellKnown  map[string]*folder
	messages   map[string]*message
}

type folder struct {
	id, displayName, wellKnown string
	hidden                     bool
	parent                     *folder
	children                   []*folder
	messages                   []*message // in creation order
	tombstones                 []tombstone
}

type tombstone struct {
	id  string
	seq uint64
}

type recipient struct{ Name, Address string }

type header struct{ Name, Value string }

type extProp struct {
	id    extPropID
	value string
}

type message struct {
	id, changeKey  string
	version        int
	folder         *folder
	mime           []byte // immutable; replaced, never modified in place
	writePath      WritePath
	isDraft        bool
	isRead         bool
	flagStatus     string
	flagExtra      map[string]any // startDateTime, dueDateTime, completedDateTime as sent
	categories     []string
	importance     string
	inference      string
	received, sent time.Time
	created, mod   time.Time
	subject        string
	from, sender   *recipient
	to, cc, bcc    []recipient
	replyTo        []recipient
	messageID      string
	headers        []header // internetMessageHeaders given in JSON
	bodyType       string   // "text" or "html"
	body           string
	ext            map[string]extProp // by canonical id
	attachments    []*attachment
	deliveryRcpt   bool
	readRcpt       bool
	conversationID string
	seq            uint64
	createdSeq     uint64 // when it arrived in its folder
}

type attachment struct {
	id, name, contentType, contentID string
	isInline                         bool
	content                          []byte
	via                              string // "create", "post", "uploadSession"
	modified                         time.Time
}

// graphID makes an opaque id in the style of Exchange's (base64 with '-'
// and '_', ending in '='), so clients meet '=' and '-' in URL paths.
func graphID(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + base64.URLEncoding.EncodeToString(b)
}

func newGUID() string { return newRequestID() }

// AddMailbox creates a user with a mailbox and the well-known folders and
// returns the user's id (a GUID). upn is the userPrincipalName and SMTP
// address.
func (s *Server) AddMailbox(tenantID, upn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUser(tenantID, upn, true)
}

// AddUserWithoutMailbox creates a directory user with no Exchange mailbox
// (mail routes answer MailboxNotEnabledForRESTAPI).
func (s *Server) AddUserWithoutMailbox(tenantID, upn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUser(tenantID, upn, false)
}

func (s *Server) addUser(tenantID, upn string, withMailbox bool) string {
	t := s.mustTenant(tenantID)
	u := &mbx{id: newGUID(), upn: upn, tenant: t, hasMailbox: withMailbox, folders: map[string]*folder{}, wellKnown: map[string]*folder{}, messages: map[string]*message{}}
	u.root = &folder{id: graphID("AAMkAGR"), displayName: "Top of Information Store", wellKnown: "msgfolderroot"}
	u.folders[u.root.id] = u.root
	u.wellKnown["msgfolderroot"] = u.root
	for _, wk := range wellKnownFolders {
		f := &folder{id: graphID("AAMkAGW"), displayName: wk.display, wellKnown: wk.name, parent: u.root}
		u.root.children = append(u.root.children, f)
		u.folders[f.id] = f
		u.wellKnown[wk.name] = f
	}
	s.mail.users[strings.ToLower(upn)] = u
	s.mail.users[strings.ToLower(u.id)] = u
	return u.id
}

func (s *Server) mustUser(upn string) *mbx {
	u := s.mail.users[strings.ToLower(upn)]
	if u == nil {
		panic(fmt.Sprintf("graphserver: unknown mailbox %q (AddMailbox first)", upn))
	}
	return u
}

// lookupFolder resolves a folder id or well-known name (case-insensitive).
func (u *mbx) lookupFolder(key string) *folder {
	if f := u.folders[key]; f != nil {
		return f
	}
	return u.wellKnown[strings.ToLower(key)]
}

// folderByPath resolves "inbox", an id, or a display-name path such as
// "Inbox/Projects/2024" from the root.
func (u *mbx) folderByPath(p string) *folder {
	if f := u.lookupFolder(p); f != nil {
		return f
	}
	cur := u.root
	for _, name := range strings.Split(p, "/") {
		var next *folder
		for _, c := range cur.children {
			if strings.EqualFold(c.displayName, name) {
				next = c
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

func (s *Server) mustFolder(u *mbx, p string) *folder {
	f := u.folderByPath(p)
	if f == nil {
		panic(fmt.Sprintf("graphserver: mailbox %s has no folder %q", u.upn, p))
	}
	return f
}

// AddFolder creates a folder under parent (an id, well-known name or
// display-name path) and returns its id.
func (s *Server) AddFolder(upn, parent, displayName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	return s.createFolder(u, s.mustFolder(u, parent), displayName, false).id
}

// AddHiddenFolder is AddFolder with isHidden true.
func (s *Server) AddHiddenFolder(upn, parent, displayName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	return s.createFolder(u, s.mustFolder(u, parent), displayName, true).id
}

func (s *Server) createFolder(u *mbx, parent *folder, name string, hidden bool) *folder {
	f := &folder{id: graphID("AAMkAGF"), displayName: name, hidden: hidden, parent: parent}
	parent.children = append(parent.children, f)
	u.folders[f.id] = f
	return f
}

// FolderID returns the id of a folder given by id, well-known name or
// display-name path, or "" if there is none.
func (s *Server) FolderID(upn, path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.mustUser(upn).folderByPath(path); f != nil {
		return f.id
	}
	return ""
}

// FolderInfo describes a folder for tests.
type FolderInfo struct {
	ID, DisplayName, WellKnownName, ParentID string
	Path                                     string // display names from below the root, "/"-joined
	Hidden                                   bool
	MessageCount                             int
}

// Folders lists every folder of a mailbox below the root, parents first.
func (s *Server) Folders(upn string) []FolderInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	var out []FolderInfo
	var walk func(f *folder, path string)
	walk = func(f *folder, path string) {
		for _, c := range f.children {
			p := c.displayName
			if path != "" {
				p = path + "/" + c.displayName
			}
			out = append(out, FolderInfo{ID: c.id, DisplayName: c.displayName, WellKnownName: c.wellKnown, ParentID: f.id, Path: p, Hidden: c.hidden, MessageCount: len(c.messages)})
			walk(c, p)
		}
	}
	walk(u.root, "")
	return out
}

// Seed is a message placed directly into a mailbox by SeedMessage.
type Seed struct {
	MIME       []byte
	IsRead     bool
	IsDraft    bool
	FlagStatus string // "notFlagged" (default), "flagged", "complete"
	Categories []string
	Received   time.Time // default now
	Sent       time.Time // default the Date header, else Received
}

// SeedMessage stores a message as if it had been delivered and returns its
// id. The MIME bytes are kept exactly; subject, from, recipients,
// Message-ID and the body shown in JSON are read from them.
func (s *Server) SeedMessage(upn, folderPath string, seed Seed) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	f := s.mustFolder(u, folderPath)
	now := s.now()
	m := s.newMessage(u, f, WriteSeed, seed.MIME, now)
	m.isDraft = seed.IsDraft
	m.isRead = seed.IsRead
	if seed.FlagStatus != "" {
		m.flagStatus = seed.FlagStatus
	}
	m.categories = append([]string(nil), seed.Categories...)
	if !seed.Received.IsZero() {
		m.received = seed.Received
	}
	if !seed.Sent.IsZero() {
		m.sent = seed.Sent
	} else if m.sent.IsZero() {
		m.sent = m.received
	}
	s.addMessage(f, m)
	return m.id
}

// newMessage makes a message from MIME bytes (headers parsed for the JSON
// view); it is not yet in a folder.
func (s *Server) newMessage(u *mbx, f *folder, path WritePath, raw []byte, now time.Time) *message {
	m := &message{id: graphID("AAMkAGM"), writePath: path, mime: raw, flagStatus: "notFlagged", importance: "normal", inference: "focused",
		received: now, created: now, mod: now, ext: map[string]extProp{}, conversationID: graphID("AAQkAGC")}
	if raw != nil {
		mi := parseMIME(raw)
		m.subject, m.messageID, m.bodyType, m.body = mi.subject, mi.messageID, mi.bodyType, mi.body
		m.from, m.to, m.cc, m.bcc, m.replyTo = mi.from, mi.to, mi.cc, mi.bcc, mi.replyTo
		m.sender = mi.sender
		if m.sender == nil {
			m.sender = m.from
		}
		m.sent = mi.date
		m.hasMIMEAttachments(mi.attachments)
	}
	return m
}

func (m *message) hasMIMEAttachments(n int) {
	for i := 0; i < n; i++ {
		// Attachments inside stored MIME are not separate objects here; a
		// placeholder keeps hasAttachments right (LIMITS.md).
		m.attachments = append(m.attachments, &attachment{id: "mime", via: "mime"})
	}
}

func (s *Server) addMessage(f *folder, m *message) {
	u := s.ownerOf(f)
	m.folder = f
	m.version = 1
	m.changeKey = changeKey(m)
	m.seq = s.mail.next()
	m.createdSeq = m.seq
	f.messages = append(f.messages, m)
	u.messages[m.id] = m
}

func (s *Server) ownerOf(f *folder) *mbx {
	for _, u := range s.mail.users {
		if u.folders[f.id] == f {
			return u
		}
	}
	panic("graphserver: folder without mailbox")
}

// touch records a change to m for delta and etags.
func (s *Server) touch(m *message) {
	m.version++
	m.changeKey = changeKey(m)
	m.mod = s.now()
	m.seq = s.mail.next()
}

func changeKey(m *message) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("CQAAABYAAA%s%06d", m.id[len(m.id)-12:len(m.id)-1], m.version)))
}

func (s *Server) removeMessage(u *mbx, m *message) {
	f := m.folder
	for i, x := range f.messages {
		if x == m {
			f.messages = append(f.messages[:i], f.messages[i+1:]...)
			break
		}
	}
	f.tombstones = append(f.tombstones, tombstone{id: m.id, seq: s.mail.next()})
	delete(u.messages, m.id)
}

// AttachmentInfo describes an attachment for tests.
type AttachmentInfo struct {
	ID, Name, ContentType, ContentID string
	IsInline                         bool
	Content                          []byte
	// Via is how it arrived: "create" (in the creating JSON), "post"
	// (POST .../attachments) or "uploadSession".
	Via string
}

// MessageInfo is a snapshot of a stored message for tests.
type MessageInfo struct {
	ID, FolderID, FolderName string
	// MIME is what $value serves: the exact bytes for seeded, MIME-draft
	// and importMime messages, a rebuilt message for JSON ones.
	MIME                                            []byte
	WritePath                                       WritePath
	IsDraft, IsRead                                 bool
	FlagStatus                                      string
	Categories                                      []string
	ReceivedDateTime, SentDateTime, CreatedDateTime time.Time
	Subject, InternetMessageID                      string
	Attachments                                     []AttachmentInfo
	// ExtendedProperties maps canonical ids ("Integer 0xe07") to values.
	ExtendedProperties map[string]string
	// InternetMessageHeaders are the headers given in JSON.
	InternetMessageHeaders map[string]string
}

func (s *Server) info(m *message) MessageInfo {
	mi := MessageInfo{ID: m.id, FolderID: m.folder.id, FolderName: m.folder.displayName, MIME: s.mimeOf(m), WritePath: m.writePath,
		IsDraft: m.isDraft, IsRead: m.isRead, FlagStatus: m.flagStatus, Categories: append([]string(nil), m.categories...),
		ReceivedDateTime: m.received, SentDateTime: m.sent, CreatedDateTime: m.created, Subject: m.subject, InternetMessageID: m.messageID,
		ExtendedProperties: map[string]string{}, InternetMessageHeaders: map[string]string{}}
	for _, a := range m.attachments {
		if a.via == "mime" {
			continue
		}
		mi.Attachments = append(mi.Attachments, AttachmentInfo{ID: a.id, Name: a.name, ContentType: a.contentType, ContentID: a.contentID, IsInline: a.isInline, Content: a.content, Via: a.via})
	}
	for _, p := range m.ext {
		mi.ExtendedProperties[p.id.String()] = p.value
	}
	for _, h := range m.headers {
		mi.InternetMessageHeaders[h.Name] = h.Value
	}
	return mi
}

// Message returns a stored message by id.
func (s *Server) Message(upn, id string) (MessageInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mustUser(upn).messages[id]
	if m == nil {
		return MessageInfo{}, false
	}
	return s.info(m), true
}

// Messages lists the messages of a folder in creation order.
func (s *Server) Messages(upn, folderPath string) []MessageInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.mustFolder(s.mustUser(upn), folderPath)
	out := make([]MessageInfo, 0, len(f.messages))
	for _, m := range f.messages {
		out = append(out, s.info(m))
	}
	return out
}

// AllMessages lists every message of a mailbox, sorted by folder path and
// creation order.
func (s *Server) AllMessages(upn string) []MessageInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	var out []MessageInfo
	for _, m := range u.messages {
		out = append(out, s.info(m))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FolderID != out[j].FolderID {
			return out[i].FolderName < out[j].FolderName
		}
		return out[i].CreatedDateTime.Before(out[j].CreatedDateTime)
	})
	return out
}

// SetRead changes a message's read state as a mail client would (a delta
// "updated" change).
func (s *Server) SetRead(upn, id string, read bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mustUser(upn).messages[id]
	if m == nil {
		panic("graphserver: no message " + id)
	}
	m.isRead = read
	s.touch(m)
}

// DeleteMessage deletes a message as a mail client would (a delta @removed
// entry).
func (s *Server) DeleteMessage(upn, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	if m := u.messages[id]; m != nil {
		s.removeMessage(u, m)
	}
}

// MoveMessage moves a message to another folder; like Exchange it gets a
// new id, which is returned.
func (s *Server) MoveMessage(upn, id, destPath string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(upn)
	m := u.messages[id]
	if m == nil {
		panic("graphserver: no message " + id)
	}
	dest := s.mustFolder(u, destPath)
	s.removeMessage(u, m)
	m.id = graphID("AAMkAGM")
	s.addMessage(dest, m)
	return m.id
}
