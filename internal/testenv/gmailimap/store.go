package gmailimap

import (
	"errors"
	"sort"
	"strings"
	"time"
)

// System labels as FETCH X-GM-LABELS names them. \Starred is not stored:
// a message has it exactly when it is flagged.
const (
	labelInbox     = `\Inbox`
	labelSent      = `\Sent`
	labelDraft     = `\Draft`
	labelImportant = `\Important`
	labelStarred   = `\Starred`
	labelTrash     = `\Trash`
	labelSpam      = `\Spam`
)

// folderKind says which Gmail view a folder is. Every kind but kindUser
// is a system folder under "[Gmail]".
type folderKind int

const (
	kindUser folderKind = iota
	kindInbox
	kindAll
	kindDrafts
	kindImportant
	kindSent
	kindSpam
	kindStarred
	kindTrash
)

func systemKinds() []folderKind {
	return []folderKind{kindAll, kindDrafts, kindImportant, kindSent, kindSpam, kindStarred, kindTrash}
}

// specialUse is the RFC 6154 attribute, plus Gmail's \Important, that
// LIST shows on the folder (developers.google.com/gmail/imap/imap-extensions,
// "Special-Use Extension of the LIST command").
func (k folderKind) specialUse() string {
	switch k {
	case kindAll:
		return `\All`
	case kindDrafts:
		return `\Drafts`
	case kindImportant:
		return `\Important`
	case kindSent:
		return `\Sent`
	case kindSpam:
		return `\Junk`
	case kindStarred:
		return `\Flagged`
	case kindTrash:
		return `\Trash`
	}
	return ""
}

// xlistAttr is the attribute of the deprecated XLIST command, whose names
// differ from SPECIAL-USE (the extensions page: "similar but not
// identical").
func (k folderKind) xlistAttr() string {
	switch k {
	case kindInbox:
		return `\Inbox`
	case kindAll:
		return `\AllMail`
	case kindSpam:
		return `\Spam`
	case kindStarred:
		return `\Starred`
	}
	return k.specialUse()
}

func (k folderKind) defaultName() string {
	switch k {
	case kindInbox:
		return "INBOX"
	case kindAll:
		return "[Gmail]/All Mail"
	case kindDrafts:
		return "[Gmail]/Drafts"
	case kindImportant:
		return "[Gmail]/Important"
	case kindSent:
		return "[Gmail]/Sent Mail"
	case kindSpam:
		return "[Gmail]/Spam"
	case kindStarred:
		return "[Gmail]/Starred"
	case kindTrash:
		return "[Gmail]/Trash"
	}
	return ""
}

// label is the system label that puts a message in a folder of this kind
// ("" for All Mail and Starred, which follow from other state).
func (k folderKind) label() string {
	switch k {
	case kindInbox:
		return labelInbox
	case kindDrafts:
		return labelDraft
	case kindImportant:
		return labelImportant
	case kindSent:
		return labelSent
	case kindSpam:
		return labelSpam
	case kindTrash:
		return labelTrash
	}
	return ""
}

// account is one Gmail mailbox: one message store whose labels appear as
// folders. Guarded by Server.mu.
type account struct {
	user        string
	appPassword string
	opts        *Options

	modseq          uint64
	nextUIDValidity uint32
	nextMsgID       uint64
	msgs            map[uint64]*message
	byMessageID     map[string][]*message
	storage         int64
	keywords        map[string]struct{}

	inbox  *folder
	system map[folderKind]*folder
	labels map[string]*folder // user labels by lower-case name

	// changed is closed and replaced whenever a folder changes, to wake
	// IDLE sessions.
	changed chan struct{}

	conns     int
	peakConns int
	usage     map[string]*dayState
	// throttled makes tagged OKs end in " [THROTTLED]".
	throttled bool
	// suspended is the day (DayZone date) on which the account went over
	// a budget in OverLimitBye mode; logins are refused until it changes.
	suspended string
}

// message is one stored message. Its bytes never change.
type message struct {
	id, thrid uint64
	raw       []byte
	date      time.Time
	msgID     string // Message-ID header value, trimmed
	dateHdr   string // Date header value, trimmed
	flags     map[string]struct{}
	labels    map[string]struct{}
	modseq    uint64
	entries   map[*folder]*entry
	gone      bool
}

// folder is a label's view: the messages carrying it, each with its own
// UID in this folder.
type folder struct {
	name          string
	kind          folderKind
	uidValidity   uint32
	uidNext       uint32
	entries       []*entry // ascending UID
	highestModSeq uint64
	subscribed    bool
}

// entry is a message as seen in one folder.
type entry struct {
	uid     uint32
	m       *message
	f       *folder
	deleted bool // \Deleted is per folder (Gmail's expunge removes a label)
	modseq  uint64
	gone    bool
}

func newAccount(user string, opts *Options) *account {
	a := &account{
		user:            user,
		opts:            opts,
		nextUIDValidity: 1,
		nextMsgID:       1_700_000_000_000_000_000,
		msgs:            map[uint64]*message{},
		byMessageID:     map[string][]*message{},
		keywords:        map[string]struct{}{},
		system:          map[folderKind]*folder{},
		labels:          map[string]*folder{},
		changed:         make(chan struct{}),
		usage:           map[string]*dayState{},
	}
	a.inbox = a.newFolder("INBOX", kindInbox)
	for _, k := range systemKinds() {
		name := k.defaultName()
		if n := opts.FolderNames[k.specialUse()]; n != "" {
			name = n
		}
		a.system[k] = a.newFolder(name, k)
	}
	return a
}

func (a *account) newFolder(name string, kind folderKind) *folder {
	f := &folder{name: name, kind: kind, uidValidity: a.nextUIDValidity, uidNext: 1, subscribed: true}
	a.nextUIDValidity++
	return f
}

// folders returns every selectable folder: INBOX, the system folders and
// the user labels, in LIST order (INBOX first, then by name).
func (a *account) folders() []*folder {
	out := []*folder{a.inbox}
	var rest []*folder
	for _, f := range a.system {
		rest = append(rest, f)
	}
	for _, f := range a.labels {
		rest = append(rest, f)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].name < rest[j].name })
	return append(out, rest...)
}

// folder finds a folder by name. INBOX is case-insensitive (RFC 3501
// section 5.1); so are Gmail labels, which cannot differ only in case.
func (a *account) folder(name string) *folder {
	if strings.EqualFold(name, "INBOX") {
		return a.inbox
	}
	for _, f := range a.system {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return a.labels[strings.ToLower(name)]
}

// systemPrefix is the name of the non-selectable parent of the system
// folders, "[Gmail]" by default.
func (a *account) systemPrefix() string {
	name := a.system[kindAll].name
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		return name[:i]
	}
	return ""
}

var (
	errNameInvalid  = errors.New("Invalid folder name")
	errNameReserved = errors.New("Folder name is reserved")
	errNameExists   = errors.New("Folder name conflicts with existing folder name")
)

// checkLabelName validates a new user label name (UTF-8, "/" as the
// hierarchy delimiter).
func (a *account) checkLabelName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") ||
		strings.ContainsAny(name, "\r\n\x00") || strings.HasPrefix(name, `\`) {
		return errNameInvalid
	}
	p := a.systemPrefix()
	if strings.EqualFold(name, "INBOX") || (p != "" && (strings.EqualFold(name, p) || strings.HasPrefix(strings.ToLower(name), strings.ToLower(p)+"/"))) {
		return errNameReserved
	}
	return nil
}

// createLabel creates a user label and the labels above it (RFC 3501
// section 6.3.3: "the server SHOULD create any superior hierarchical
// names"). It reports errNameExists when name itself exists.
func (a *account) createLabel(name string) (*folder, error) {
	if err := a.checkLabelName(name); err != nil {
		return nil, err
	}
	if a.folder(name) != nil {
		return nil, errNameExists
	}
	parts := strings.Split(name, "/")
	var f *folder
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if f = a.folder(p); f == nil {
			f = a.newFolder(p, kindUser)
			a.labels[strings.ToLower(p)] = f
		}
	}
	a.notify()
	return f, nil
}

func (a *account) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *account) bump() uint64 {
	a.modseq++
	return a.modseq
}

// visible is the set of folders a message appears in. Trash and Spam
// hide a message from every other folder, All Mail included; otherwise it
// is in All Mail, in the folder of each label, and in Starred when
// flagged.
func (a *account) visible(m *message) map[*folder]bool {
	if m.gone {
		return nil
	}
	if _, ok := m.labels[labelTrash]; ok {
		return map[*folder]bool{a.system[kindTrash]: true}
	}
	if _, ok := m.labels[labelSpam]; ok {
		return map[*folder]bool{a.system[kindSpam]: true}
	}
	out := map[*folder]bool{a.system[kindAll]: true}
	if _, ok := m.flags[`\Flagged`]; ok {
		out[a.system[kindStarred]] = true
	}
	for l := range m.labels {
		switch l {
		case labelInbox:
			out[a.inbox] = true
		case labelSent:
			out[a.system[kindSent]] = true
		case labelDraft:
			out[a.system[kindDrafts]] = true
		case labelImportant:
			out[a.system[kindImportant]] = true
		default:
			if f := a.labels[strings.ToLower(l)]; f != nil {
				out[f] = true
			}
		}
	}
	return out
}

// touch gives m a new MODSEQ and raises HIGHESTMODSEQ of its folders
// (RFC 7162 section 3.1.1).
func (a *account) touch(m *message) {
	m.modseq = a.bump()
	for f := range m.entries {
		f.highestModSeq = m.modseq
	}
}

// reindex puts m into the folders it should now be in and takes it out
// of the others. A folder it joins gives it the next UID there.
func (a *account) reindex(m *message) {
	want := a.visible(m)
	changed := false
	for f, e := range m.entries {
		if !want[f] {
			a.removeEntry(e)
			changed = true
		}
	}
	// Join folders in name order so UIDs are assigned deterministically.
	var join []*folder
	for f := range want {
		if m.entries[f] == nil {
			join = append(join, f)
		}
	}
	sort.Slice(join, func(i, j int) bool { return join[i].name < join[j].name })
	for _, f := range join {
		e := &entry{uid: f.uidNext, m: m, f: f, modseq: a.bump()}
		f.uidNext++
		f.entries = append(f.entries, e)
		f.highestModSeq = e.modseq
		m.entries[f] = e
		changed = true
	}
	if changed {
		a.notify()
	}
}

func (a *account) removeEntry(e *entry) {
	f := e.f
	i := sort.Search(len(f.entries), func(i int) bool { return f.entries[i].uid >= e.uid })
	if i < len(f.entries) && f.entries[i] == e {
		f.entries = append(f.entries[:i:i], f.entries[i+1:]...)
	}
	e.gone = true
	delete(e.m.entries, f)
	f.highestModSeq = a.bump()
}

// newMessage stores raw with the given state and files it into its
// folders. msgID and thrID of 0 are assigned.
func (a *account) newMessage(raw []byte, date time.Time, flags, labels []string, msgID, thrID uint64) *message {
	if msgID == 0 {
		msgID = a.nextMsgID
	}
	if msgID >= a.nextMsgID {
		a.nextMsgID = msgID + 1
	}
	m := &message{
		id:      msgID,
		raw:     raw,
		date:    date,
		msgID:   headerValue(raw, "Message-ID"),
		dateHdr: headerValue(raw, "Date"),
		flags:   map[string]struct{}{},
		labels:  map[string]struct{}{},
		entries: map[*folder]*entry{},
	}
	m.thrid = thrID
	if m.thrid == 0 {
		m.thrid = a.threadOf(raw, msgID)
	}
	for _, fl := range flags {
		a.addFlag(m, fl)
	}
	for _, l := range labels {
		a.applyLabel(m, l)
	}
	a.msgs[m.id] = m
	if m.msgID != "" {
		a.byMessageID[m.msgID] = append(a.byMessageID[m.msgID], m)
	}
	a.storage += int64(len(raw))
	m.modseq = a.bump()
	a.reindex(m)
	return m
}

// threadOf returns the X-GM-THRID of a new message: that of the first
// earlier message its In-Reply-To or References name, else its own id.
// (Gmail also threads by subject; LIMITS.md.)
func (a *account) threadOf(raw []byte, own uint64) uint64 {
	refs := headerValue(raw, "In-Reply-To") + " " + headerValue(raw, "References")
	for _, id := range strings.Fields(refs) {
		if ms := a.byMessageID[id]; len(ms) > 0 {
			return ms[0].thrid
		}
	}
	return own
}

func (a *account) deleteMessage(m *message) {
	if m.gone {
		return
	}
	m.gone = true
	for _, e := range m.entries {
		a.removeEntry(e)
	}
	delete(a.msgs, m.id)
	if m.msgID != "" {
		list := a.byMessageID[m.msgID]
		for i, x := range list {
			if x == m {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(a.byMessageID, m.msgID)
		} else {
			a.byMessageID[m.msgID] = list
		}
	}
	a.storage -= int64(len(m.raw))
	a.notify()
}

// applyLabel adds a label without reindexing. Trash and Spam replace
// every other label (the message leaves all other folders); any other
// label takes a message out of Trash or Spam.
func (a *account) applyLabel(m *message, l string) {
	switch l {
	case labelStarred:
		a.addFlag(m, `\Flagged`)
		return
	case labelTrash, labelSpam:
		m.labels = map[string]struct{}{l: {}}
		return
	}
	delete(m.labels, labelTrash)
	delete(m.labels, labelSpam)
	if f := a.labels[strings.ToLower(l)]; f != nil {
		l = f.name
	}
	m.labels[l] = struct{}{}
}

func (a *account) dropLabel(m *message, l string) {
	if l == labelStarred {
		delete(m.flags, `\Flagged`)
		return
	}
	if f := a.labels[strings.ToLower(l)]; f != nil {
		l = f.name
	}
	delete(m.labels, l)
}

func (a *account) addFlag(m *message, fl string) {
	if fl == `\Deleted` || fl == `\Recent` {
		return
	}
	if !strings.HasPrefix(fl, `\`) {
		a.keywords[fl] = struct{}{}
	}
	m.flags[fl] = struct{}{}
}

// addLabels adds labels to m and refiles it.
func (a *account) addLabels(m *message, labels ...string) {
	for _, l := range labels {
		a.applyLabel(m, l)
	}
	a.touch(m)
	a.reindex(m)
}

// removeLabels removes labels from m and refiles it.
func (a *account) removeLabels(m *message, labels ...string) {
	for _, l := range labels {
		a.dropLabel(m, l)
	}
	a.touch(m)
	a.reindex(m)
}

// setLabels replaces m's labels (STORE X-GM-LABELS).
func (a *account) setLabels(m *message, labels []string) {
	m.labels = map[string]struct{}{}
	delete(m.flags, `\Flagged`)
	for _, l := range labels {
		a.applyLabel(m, l)
	}
	a.touch(m)
	a.reindex(m)
}

// addToFolder is COPY, MOVE or APPEND into f: the folder's label is
// added (Starred flags the message; All Mail changes nothing).
func (a *account) addToFolder(m *message, f *folder) *entry {
	switch f.kind {
	case kindAll:
	case kindStarred:
		a.addFlag(m, `\Flagged`)
		a.touch(m)
	case kindUser:
		a.addLabels(m, f.name)
	default:
		a.addLabels(m, f.kind.label())
	}
	a.reindex(m)
	return m.entries[f]
}

// expungeFrom is EXPUNGE of m in f, following "How actions sync in
// IMAP" (support.google.com/mail/answer/77657): deleting from a label
// folder removes that label, from Spam or Trash deletes the message for
// good. Deleting from All Mail, and from the last folder the message was
// visible in, follows ExpungeBehavior (All Mail cannot archive, so there
// it trashes unless the behaviour is to delete).
func (a *account) expungeFrom(m *message, f *folder) {
	switch f.kind {
	case kindTrash, kindSpam:
		a.deleteMessage(m)
		return
	case kindAll:
		if a.opts.ExpungeBehavior == ExpungeDeleteForever {
			a.deleteMessage(m)
		} else {
			a.addLabels(m, labelTrash)
		}
		return
	case kindStarred:
		delete(m.flags, `\Flagged`)
		a.touch(m)
		a.reindex(m)
	case kindUser:
		a.removeLabels(m, f.name)
	default:
		a.removeLabels(m, f.kind.label())
	}
	if vis := a.visible(m); len(vis) == 1 && vis[a.system[kindAll]] {
		switch a.opts.ExpungeBehavior {
		case ExpungeTrash:
			a.addLabels(m, labelTrash)
		case ExpungeDeleteForever:
			a.deleteMessage(m)
		}
	}
}

// deleteLabel removes a user label from every message and drops its
// folder; labels below it stay.
func (a *account) deleteLabel(f *folder) {
	for _, m := range a.msgs {
		if _, ok := m.labels[f.name]; ok {
			delete(m.labels, f.name)
			a.touch(m)
		}
	}
	for _, e := range append([]*entry(nil), f.entries...) {
		a.removeEntry(e)
	}
	delete(a.labels, strings.ToLower(f.name))
	a.notify()
}

// renameLabel renames a user label and those below it (RFC 3501 section
// 6.3.5), keeping their UIDs.
func (a *account) renameLabel(f *folder, to string) error {
	if err := a.checkLabelName(to); err != nil {
		return err
	}
	if g := a.folder(to); g != nil && g != f {
		return errNameExists
	}
	from := f.name
	var moved []*folder
	for _, g := range a.labels {
		if g == f || strings.HasPrefix(strings.ToLower(g.name), strings.ToLower(from)+"/") {
			moved = append(moved, g)
		}
	}
	for _, g := range moved {
		old := g.name
		delete(a.labels, strings.ToLower(old))
		g.name = to + old[len(from):]
		a.labels[strings.ToLower(g.name)] = g
		for _, m := range a.msgs {
			if _, ok := m.labels[old]; ok {
				delete(m.labels, old)
				m.labels[g.name] = struct{}{}
				a.touch(m)
			}
		}
	}
	// Create the new parents, if any, as labels.
	if i := strings.LastIndexByte(to, '/'); i > 0 && a.folder(to[:i]) == nil {
		if _, err := a.createLabel(to[:i]); err != nil {
			return err
		}
	}
	a.notify()
	return nil
}

// labelList is X-GM-LABELS of m: system labels first, then user labels,
// each group sorted (as in captured Gmail responses). skip, if set, is
// left out (the selected folder's own label).
func (a *account) labelList(m *message, skip string) []string {
	var sys, usr []string
	if _, ok := m.flags[`\Flagged`]; ok {
		sys = append(sys, labelStarred)
	}
	for l := range m.labels {
		if strings.HasPrefix(l, `\`) {
			sys = append(sys, l)
		} else {
			usr = append(usr, l)
		}
	}
	sort.Strings(sys)
	sort.Strings(usr)
	out := make([]string, 0, len(sys)+len(usr))
	for _, l := range append(sys, usr...) {
		if l != skip {
			out = append(out, l)
		}
	}
	return out
}

// ownLabel is the label a folder stands for, as X-GM-LABELS writes it.
func (f *folder) ownLabel() string {
	switch f.kind {
	case kindUser:
		return f.name
	case kindStarred:
		return labelStarred
	}
	return f.kind.label()
}

// messages counts the folder's messages and those without \Seen.
func (f *folder) counts() (total, unseen int) {
	for _, e := range f.entries {
		total++
		if _, ok := e.m.flags[`\Seen`]; !ok {
			unseen++
		}
	}
	return total, unseen
}

// resolveLabel maps a label named by a client (STORE X-GM-LABELS, SEARCH
// X-GM-LABELS) to its stored form: a system label, or a user label's
// name. System folders may be named by their folder name too, and
// "\Drafts" (the extensions page's example) stands for \Draft. ok is
// false for a user label that does not exist.
func (a *account) resolveLabel(l string) (string, bool) {
	switch strings.ToLower(l) {
	case `\inbox`, "inbox":
		return labelInbox, true
	case `\sent`:
		return labelSent, true
	case `\draft`, `\drafts`:
		return labelDraft, true
	case `\important`:
		return labelImportant, true
	case `\starred`:
		return labelStarred, true
	case `\trash`:
		return labelTrash, true
	case `\spam`:
		return labelSpam, true
	}
	if f := a.folder(l); f != nil {
		if f.kind == kindAll {
			return "", false
		}
		return f.ownLabel(), true
	}
	return l, false
}
