package gmailimap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// Server is a running Gmail-like IMAP server. All methods are safe for
// concurrent use.
type Server struct {
	// Addr is host:port on the loopback interface.
	Addr string
	// CertPool trusts exactly this server's certificate (nil with
	// Options.Plaintext).
	CertPool *x509.CertPool

	opts     Options
	commands map[string]command
	ln       net.Listener
	wg       sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	accounts  map[string]*account // by lower-case user
	sessions  map[*session]struct{}
	counts    map[string]map[string]int // user ("" for all) → command → count
	faults    []*Fault
	stats     Stats
	clientIDs []map[string]string
}

// Stats counts what clients did.
type Stats struct {
	Logins    int // successful LOGIN and AUTHENTICATE
	Refused   int // passwords and tokens refused
	Malformed int // SASL responses not of the mechanism's exact form
	// NonEmptyAfterChallenge counts clients that answered an XOAUTH2 or
	// OAUTHBEARER error challenge with data instead of the empty (or
	// %x01) response the mechanisms require.
	NonEmptyAfterChallenge int
	TooManyConnections     int // logins refused by MaxConnections
	OverLimit              int // commands refused by a daily budget
	TooBig                 int // APPENDs refused by AppendLimit
}

// Usage is what one account moved on one day. Only message data counts:
// the octets of BODY[...], BINARY[...] and RFC822* items fetched, and of
// APPEND literals accepted.
type Usage struct {
	Downloaded int64
	Uploaded   int64
}

// Start listens on a free loopback port; the server stops on t.Cleanup.
// opts may be nil for the defaults.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	s := newServer(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gmailimap: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.ln = ln
	if !s.opts.Plaintext {
		dir := t.TempDir()
		pool, err := testenv.WriteSelfSignedCert(dir)
		if err != nil {
			t.Fatalf("gmailimap: certificate: %v", err)
		}
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatalf("gmailimap: load certificate: %v", err)
		}
		s.CertPool = pool
		s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func newServer(opts *Options) *Server {
	return &Server{
		opts:     opts.withDefaults(),
		commands: commandTable(),
		accounts: map[string]*account{},
		sessions: map[*session]struct{}{},
		counts:   map[string]map[string]int{},
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := s.newSession(conn, conn, remoteIP(conn))
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = conn.Close()
			return
		}
		s.sessions[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
		}()
	}
}

func remoteIP(conn net.Conn) string {
	if host, _, err := net.SplitHostPort(conn.RemoteAddr().String()); err == nil {
		return host
	}
	return conn.RemoteAddr().String()
}

// Close stops the server and ends every connection. Safe to call more
// than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	var open []*session
	for c := range s.sessions {
		open = append(open, c)
	}
	s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for _, c := range open {
		c.close()
	}
	s.wg.Wait()
}

// TLSConfig is a client configuration that trusts the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (s *Server) now() time.Time { return s.opts.Now() }

// dayKey is the budget day of t.
func (s *Server) dayKey(t time.Time) string { return t.In(s.opts.DayZone).Format("2006-01-02") }

// AccountOptions configures an account.
type AccountOptions struct {
	// AppPassword lets the account log in with LOGIN and AUTHENTICATE
	// PLAIN. Without it those are refused with Gmail's "Application-
	// specific password required" alert, as for an account with 2-Step
	// Verification: OAuth 2.0 is then the only way in.
	AppPassword string
	// Labels are user labels to create ("Work", "Work/2024").
	Labels []string
}

// AddAccount creates an empty account with INBOX and the system folders.
// User names are matched case-insensitively.
func (s *Server) AddAccount(user string, opts *AccountOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(user)
	if _, ok := s.accounts[key]; ok {
		return fmt.Errorf("gmailimap: account %q exists", user)
	}
	a := newAccount(user, &s.opts)
	if opts != nil {
		a.appPassword = opts.AppPassword
		for _, l := range opts.Labels {
			if _, err := a.createLabel(l); err != nil && !errors.Is(err, errNameExists) {
				return fmt.Errorf("gmailimap: label %q: %w", l, err)
			}
		}
	}
	s.accounts[key] = a
	return nil
}

func (s *Server) account(user string) (*account, error) {
	a := s.accounts[strings.ToLower(user)]
	if a == nil {
		return nil, fmt.Errorf("gmailimap: no account %q (AddAccount first)", user)
	}
	return a, nil
}

// CreateLabel creates a user label (and its parents).
func (s *Server) CreateLabel(user, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return err
	}
	if _, err := a.createLabel(name); err != nil && !errors.Is(err, errNameExists) {
		return fmt.Errorf("gmailimap: label %q: %w", name, err)
	}
	return nil
}

// Message is a message to seed.
type Message struct {
	// Raw is the RFC 5322 message, stored and served byte for byte.
	Raw []byte
	// Labels as X-GM-LABELS names them: `\Inbox`, `\Sent`, `\Draft`,
	// `\Important`, `\Starred`, `\Trash`, `\Spam`, or user labels (created
	// if missing). No labels means archived: only in All Mail.
	Labels []string
	// Flags are IMAP flags and keywords (\Seen, \Flagged, $Forwarded, ...);
	// \Flagged also puts the message in Starred.
	Flags []string
	// InternalDate defaults to the server clock's now.
	InternalDate time.Time
	// MsgID and ThreadID set X-GM-MSGID and X-GM-THRID; 0 assigns them
	// (the thread from In-Reply-To/References, else the message's own).
	MsgID    uint64
	ThreadID uint64
}

// Seed stores a message in an account and returns its X-GM-MSGID.
func (s *Server) Seed(user string, m Message) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return 0, err
	}
	if m.MsgID != 0 && a.msgs[m.MsgID] != nil {
		return 0, fmt.Errorf("gmailimap: X-GM-MSGID %d exists", m.MsgID)
	}
	var labels []string
	for _, l := range m.Labels {
		r, ok := a.resolveLabel(l)
		if !ok {
			if _, err := a.createLabel(l); err != nil {
				return 0, fmt.Errorf("gmailimap: label %q: %w", l, err)
			}
			r = a.folder(l).name
		}
		labels = append(labels, r)
	}
	date := m.InternalDate
	if date.IsZero() {
		date = s.now()
	}
	raw := append([]byte(nil), m.Raw...)
	msg := a.newMessage(raw, date, m.Flags, labels, m.MsgID, m.ThreadID)
	return msg.id, nil
}

// MessageInfo is a stored message as the test API shows it.
type MessageInfo struct {
	MsgID, ThreadID uint64
	Raw             []byte
	Size            int
	// Labels as FETCH X-GM-LABELS would list them from All Mail.
	Labels       []string
	Flags        []string
	InternalDate time.Time
	ModSeq       uint64
	// Folders maps each folder the message is in to its UID there.
	Folders map[string]uint32
}

func (a *account) info(m *message) MessageInfo {
	mi := MessageInfo{
		MsgID: m.id, ThreadID: m.thrid, Raw: m.raw, Size: len(m.raw),
		Labels: a.labelList(m, ""), InternalDate: m.date, ModSeq: m.modseq,
		Folders: map[string]uint32{},
	}
	for f := range m.flags {
		mi.Flags = append(mi.Flags, f)
	}
	sort.Strings(mi.Flags)
	for f, e := range m.entries {
		mi.Folders[f.name] = e.uid
	}
	return mi
}

// Message returns a stored message by X-GM-MSGID.
func (s *Server) Message(user string, msgID uint64) (MessageInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return MessageInfo{}, false
	}
	m := a.msgs[msgID]
	if m == nil {
		return MessageInfo{}, false
	}
	return a.info(m), true
}

// Messages returns every stored message of the account, by X-GM-MSGID.
func (s *Server) Messages(user string) []MessageInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return nil
	}
	out := make([]MessageInfo, 0, len(a.msgs))
	for _, m := range a.msgs {
		out = append(out, a.info(m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MsgID < out[j].MsgID })
	return out
}

// FolderInfo is a folder as the test API shows it.
type FolderInfo struct {
	Name          string
	SpecialUse    string // `\All`, `\Sent`, ... or "" for INBOX and labels
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Entries       []FolderEntry // ascending UID
}

// FolderEntry is one message in a folder.
type FolderEntry struct {
	UID     uint32
	MsgID   uint64
	Deleted bool // \Deleted set here (only with ManualExpunge)
}

func folderInfo(f *folder) FolderInfo {
	fi := FolderInfo{Name: f.name, SpecialUse: f.kind.specialUse(), UIDValidity: f.uidValidity, UIDNext: f.uidNext, HighestModSeq: f.highestModSeq}
	for _, e := range f.entries {
		fi.Entries = append(fi.Entries, FolderEntry{UID: e.uid, MsgID: e.m.id, Deleted: e.deleted})
	}
	return fi
}

// Folder returns one folder of an account.
func (s *Server) Folder(user, name string) (FolderInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return FolderInfo{}, false
	}
	f := a.folder(name)
	if f == nil {
		return FolderInfo{}, false
	}
	return folderInfo(f), true
}

// Folders returns every selectable folder of an account in LIST order.
func (s *Server) Folders(user string) []FolderInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return nil
	}
	var out []FolderInfo
	for _, f := range a.folders() {
		out = append(out, folderInfo(f))
	}
	return out
}

// ResetUIDValidity gives a folder a new UIDVALIDITY and renumbers its
// messages from 1, as a server does after rebuilding its index; clients
// must then forget what they knew of the folder's UIDs.
func (s *Server) ResetUIDValidity(user, name string) error {
	s.mu.Lock()
	a, err := s.account(user)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	f := a.folder(name)
	if f == nil {
		s.mu.Unlock()
		return fmt.Errorf("gmailimap: no folder %q", name)
	}
	f.uidValidity = a.nextUIDValidity
	a.nextUIDValidity++
	f.uidNext = 1
	for _, e := range f.entries {
		e.uid = f.uidNext
		f.uidNext++
	}
	// Sessions that have the folder selected cannot follow the new
	// numbering; they are ended as a server would.
	var stale []*session
	for c := range s.sessions {
		if c.acct == a && c.sel != nil && c.sel.f == f {
			stale = append(stale, c)
		}
	}
	a.notify()
	s.mu.Unlock()
	for _, c := range stale {
		c.sendBye("UIDVALIDITY changed")
	}
	return nil
}

// Commands returns how many commands of each name were received, for one
// user or, with user "", for all connections. Names are upper-case, UID
// commands as "UID FETCH" etc. Commands sent before a login (LOGIN and
// AUTHENTICATE themselves included) count only under "".
func (s *Server) Commands(user string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.counts[strings.ToLower(user)] {
		out[k] = v
	}
	return out
}

func (s *Server) countCommand(c *session, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range []string{"", strings.ToLower(c.user)} {
		m := s.counts[u]
		if m == nil {
			m = map[string]int{}
			s.counts[u] = m
		}
		m[name]++
		if c.user == "" {
			break
		}
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ClientIDs returns the parameters of every ID command received (RFC
// 2971), which Google asks clients to send.
func (s *Server) ClientIDs() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.clientIDs...)
}

// Usage returns what an account moved on the budget day containing day.
func (s *Server) Usage(user string, day time.Time) Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return Usage{}
	}
	if u := a.usage[s.dayKey(day)]; u != nil {
		return u.Usage
	}
	return Usage{}
}

// UsageByDay returns every day's usage of an account, keyed by date
// (YYYY-MM-DD in Options.DayZone).
func (s *Server) UsageByDay(user string) map[string]Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Usage{}
	if a, err := s.account(user); err == nil {
		for k, u := range a.usage {
			out[k] = u.Usage
		}
	}
	return out
}

// Connections returns the account's authenticated connections now and
// the most it had at once.
func (s *Server) Connections(user string) (now, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return 0, 0
	}
	return a.conns, a.peakConns
}

// SetThrottled marks (or unmarks) an account as throttled: its tagged
// OK answers then end in " [THROTTLED]", as Gmail's do when it slows an
// account down (captured in MailKit issue 1396). Nothing is slowed.
func (s *Server) SetThrottled(user string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(user)
	if err != nil {
		return err
	}
	a.throttled = on
	return nil
}

// Bye sends "* BYE text" on every connection of user (all connections
// with user "") and closes them. It returns how many were closed.
func (s *Server) Bye(user, text string) int {
	return s.endSessions(user, func(c *session) { c.sendBye(text) })
}

// Drop closes every connection of user (all with "") without a word, as
// a network fault or a provider's silent throttling would.
func (s *Server) Drop(user string) int {
	return s.endSessions(user, (*session).close)
}

func (s *Server) endSessions(user string, end func(*session)) int {
	s.mu.Lock()
	var hit []*session
	for c := range s.sessions {
		if user == "" || strings.EqualFold(c.user, user) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		end(c)
	}
	return len(hit)
}
