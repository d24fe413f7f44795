package gmailimap

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type connState int

const (
	stateNotAuthenticated connState = iota
	stateAuthenticated
	stateSelected
)

// session is one client connection (RFC 3501 section 3 states).
type session struct {
	s      *Server
	closer io.Closer
	cw     *countWriter
	remote string
	token  string // Gmail's per-connection token in greeting and OKs

	wmu sync.Mutex
	w   *bufio.Writer

	p *parser

	// The following are owned by the session goroutine; fields read by
	// the test API (user, acct) are written under Server.mu.
	state     connState
	acct      *account
	user      string
	loginAt   time.Time
	sel       *selection
	condstore bool
	closed    atomic.Bool

	// out collects the responses of the command being run, written
	// after Server.mu is released; bodies are referenced, not copied.
	out [][]byte
	// bye, when set by a command, is sent as "* BYE <bye>" instead of
	// the tagged response, and the connection is closed.
	bye string
	// dropAfter, when not negative, is a FaultDropAfter armed for the
	// command in progress.
	dropAfter int64
	// allowExpunge is false while the command in progress may not see
	// EXPUNGE responses (FETCH, STORE, SEARCH: RFC 3501 section 7.4.1).
	allowExpunge bool
	// cmd is the name of the command in progress ("UID FETCH").
	cmd string
}

// selection is the selected folder as this session sees it: its own
// sequence numbering, updated only at points where the protocol lets the
// server announce changes.
type selection struct {
	f        *folder
	readOnly bool
	view     []*entry // sequence number i+1 is view[i]
	// notified is the MODSEQ up to which changes were announced.
	notified uint64
	// reported holds entries whose current state this session already
	// sent (after its own STORE or FETCH), so sync does not repeat them.
	reported map[*entry]uint64
}

// countWriter counts what is written and, when dropAt is set, closes
// the connection once that many bytes have gone out (a fault).
type countWriter struct {
	w      io.Writer
	closer io.Closer
	n      atomic.Int64
	dropAt atomic.Int64 // -1: never
}

func (cw *countWriter) Write(b []byte) (int, error) {
	if at := cw.dropAt.Load(); at >= 0 {
		left := at - cw.n.Load()
		if left < int64(len(b)) {
			if left < 0 {
				left = 0
			}
			n, _ := cw.w.Write(b[:left])
			cw.n.Add(int64(n))
			_ = cw.closer.Close()
			return n, errors.New("gmailimap: connection dropped by an injected fault")
		}
	}
	n, err := cw.w.Write(b)
	cw.n.Add(int64(n))
	return n, err
}

func randomToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 14)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (s *Server) newSession(rw io.ReadWriter, closer io.Closer, remote string) *session {
	cw := &countWriter{w: rw, closer: closer}
	cw.dropAt.Store(-1)
	c := &session{s: s, closer: closer, cw: cw, remote: remote, token: randomToken(), dropAfter: -1}
	c.w = bufio.NewWriterSize(cw, 32<<10)
	c.p = newParser(bufio.NewReaderSize(rw, 16<<10))
	c.p.cont = c.continuation
	return c
}

// continuation asks the client for a synchronizing literal's octets.
func (c *session) continuation() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.WriteString("+ go ahead\r\n"); err != nil {
		return err
	}
	return c.w.Flush()
}

func (c *session) emit(s string)            { c.out = append(c.out, []byte(s)) }
func (c *session) emitf(f string, a ...any) { c.emit(fmt.Sprintf(f, a...)) }
func (c *session) emitBytes(b []byte)       { c.out = append(c.out, b) }

// flushOut writes the collected responses and, if tagged is set, the
// tagged status line.
func (c *session) flushOut(tagged string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := c.out
	c.out = nil
	for _, b := range out {
		if _, err := c.w.Write(b); err != nil {
			return err
		}
	}
	if tagged != "" {
		if _, err := c.w.WriteString(tagged + "\r\n"); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// close ends the connection; safe from any goroutine.
func (c *session) close() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.closer.Close()
	}
}

// sendBye writes "* BYE text" and closes the connection; used by faults
// and the test API from other goroutines.
func (c *session) sendBye(text string) {
	c.wmu.Lock()
	_, _ = c.w.WriteString("* BYE " + text + "\r\n")
	_ = c.w.Flush()
	c.wmu.Unlock()
	c.close()
}

// command is a handler and the states it is valid in.
type command struct {
	fn     func(c *session, tag string) string
	states stateSet
}

// stateSet is a set of connStates.
type stateSet uint8

const (
	notAuth  stateSet = 1 << stateNotAuthenticated
	authed   stateSet = 1<<stateAuthenticated | 1<<stateSelected
	selected stateSet = 1 << stateSelected
	anyState          = notAuth | authed
)

func commandTable() map[string]command {
	return map[string]command{
		"CAPABILITY":   {(*session).cmdCapability, anyState},
		"NOOP":         {(*session).cmdNoop, anyState},
		"LOGOUT":       {(*session).cmdLogout, anyState},
		"ID":           {(*session).cmdID, anyState},
		"XYZZY":        {(*session).cmdXyzzy, anyState},
		"LOGIN":        {(*session).cmdLogin, notAuth},
		"AUTHENTICATE": {(*session).cmdAuthenticate, notAuth},
		"ENABLE":       {(*session).cmdEnable, authed},
		"SELECT":       {(*session).cmdSelect, authed},
		"EXAMINE":      {(*session).cmdSelect, authed},
		"CREATE":       {(*session).cmdCreate, authed},
		"DELETE":       {(*session).cmdDelete, authed},
		"RENAME":       {(*session).cmdRename, authed},
		"SUBSCRIBE":    {(*session).cmdSubscribe, authed},
		"UNSUBSCRIBE":  {(*session).cmdSubscribe, authed},
		"LIST":         {(*session).cmdList, authed},
		"LSUB":         {(*session).cmdList, authed},
		"XLIST":        {(*session).cmdList, authed},
		"NAMESPACE":    {(*session).cmdNamespace, authed},
		"STATUS":       {(*session).cmdStatus, authed},
		"APPEND":       {(*session).cmdAppend, authed},
		"IDLE":         {(*session).cmdIdle, authed},
		"GETQUOTA":     {(*session).cmdGetQuota, authed},
		"GETQUOTAROOT": {(*session).cmdGetQuotaRoot, authed},
		"CHECK":        {(*session).cmdNoop, selected},
		"CLOSE":        {(*session).cmdClose, selected},
		"UNSELECT":     {(*session).cmdClose, selected},
		"EXPUNGE":      {(*session).cmdExpunge, selected},
		"UID EXPUNGE":  {(*session).cmdExpunge, selected},
		"SEARCH":       {(*session).cmdSearch, selected},
		"UID SEARCH":   {(*session).cmdSearch, selected},
		"FETCH":        {(*session).cmdFetch, selected},
		"UID FETCH":    {(*session).cmdFetch, selected},
		"STORE":        {(*session).cmdStore, selected},
		"UID STORE":    {(*session).cmdStore, selected},
		"COPY":         {(*session).cmdCopy, selected},
		"UID COPY":     {(*session).cmdCopy, selected},
		"MOVE":         {(*session).cmdCopy, selected},
		"UID MOVE":     {(*session).cmdCopy, selected},
	}
}

// run serves the connection until it ends.
func (c *session) run() {
	defer c.end()
	c.emitf("* OK Gimap ready for requests from %s %s\r\n", c.remote, c.token)
	if c.flushOut("") != nil {
		return
	}
	table := c.s.commands
	for !c.closed.Load() {
		if err := c.p.begin(); err != nil {
			if errors.Is(err, errLineTooLong) {
				c.emit("* BAD Line too long\r\n")
				_ = c.flushOut("")
			}
			return
		}
		tag := c.p.run(func(b byte) bool { return isAstringChar(b) && b != '+' }, "tag")
		c.p.sp()
		name := c.p.keyword()
		if name == "UID" {
			c.p.sp()
			name = "UID " + c.p.keyword()
		}
		if c.p.failed() {
			if !c.finishBad(tag) {
				return
			}
			continue
		}
		c.s.countCommand(c, name)
		if !c.applyFaults(name) {
			return
		}
		if c.p.failed() { // FaultReply
			if !c.finishBad(tag) {
				return
			}
			continue
		}
		if !c.checkSessionLifetime() {
			return
		}
		cmd, ok := table[name]
		if !ok {
			c.p.fail("Unknown command")
			if !c.finishBad(tag) {
				return
			}
			continue
		}
		if !c.inState(cmd.states) {
			_ = c.p.skipCommand()
			if c.flushOut(tag+" BAD Command not valid in this state") != nil {
				return
			}
			continue
		}
		c.cmd = name
		c.allowExpunge = name != "FETCH" && name != "STORE" && name != "SEARCH"
		status := cmd.fn(c, tag)
		if c.p.failed() {
			if !c.finishBad(tag) {
				return
			}
			continue
		}
		c.logf(tag, name, status)
		if c.bye != "" {
			c.emit("* BYE " + c.bye + "\r\n")
			_ = c.flushOut("")
			return
		}
		if status == "" {
			return // the command ended the connection (LOGOUT, I/O error)
		}
		if c.acct != nil {
			c.s.mu.Lock()
			if c.state == stateSelected && c.sel != nil {
				c.syncSelected()
			}
			if c.acct.throttled && strings.HasPrefix(status, "OK") {
				// Gmail marks answers to a throttled account so
				// (captured: "OK Success [THROTTLED]").
				status += " [THROTTLED]"
			}
			c.s.mu.Unlock()
		}
		if c.dropAfter >= 0 {
			c.cw.dropAt.Store(c.cw.n.Load() + c.dropAfter)
		}
		if c.flushOut(tag+" "+status) != nil {
			return
		}
		if c.dropAfter >= 0 {
			// The response was shorter than the fault's AfterBytes.
			c.dropAfter = -1
			c.cw.dropAt.Store(-1)
		}
	}
}

// finishBad answers a command that failed to parse (or whose literal was
// refused) and skips what is left of it. It reports whether the
// connection goes on.
func (c *session) finishBad(tag string) bool {
	err := c.p.err
	var lr *literalRefused
	switch {
	case errors.As(err, &lr):
		if tag == "" {
			tag = "*"
		}
		if lr.bye != "" {
			_ = c.flushOut("")
			c.sendBye(lr.bye)
			return false
		}
		c.out = nil
		if c.flushOut(tag+" "+lr.resp) != nil {
			return false
		}
		return c.p.skipCommand() == nil
	case errors.Is(err, errBadSyntax):
		if serr := c.p.skipCommand(); serr != nil {
			return false
		}
		c.out = nil
		if tag == "" {
			return c.flushOut("* BAD Could not parse command") == nil
		}
		msg := strings.TrimPrefix(err.Error(), errBadSyntax.Error()+": ")
		if msg == "Unknown command" {
			return c.flushOut(tag+" BAD Unknown command") == nil
		}
		return c.flushOut(tag+" BAD Could not parse command ("+msg+")") == nil
	}
	return false // I/O error or the client went away
}

func (c *session) inState(states stateSet) bool { return states&(1<<c.state) != 0 }

func (c *session) logf(tag, name, status string) {
	if c.s.opts.Logf == nil {
		return
	}
	word := status
	if i := strings.IndexByte(status, ' '); i > 0 {
		word = status[:i]
	}
	c.s.opts.Logf("gmailimap: %s %s %s %s", c.user, tag, name, word)
}

// end releases what the session holds.
func (c *session) end() {
	c.close()
	c.s.mu.Lock()
	if c.acct != nil {
		c.acct.conns--
	}
	delete(c.s.sessions, c)
	c.s.mu.Unlock()
}

// checkSessionLifetime ends a session older than Options.SessionLifetime.
func (c *session) checkSessionLifetime() bool {
	if c.state == stateNotAuthenticated || c.s.opts.SessionLifetime <= 0 {
		return true
	}
	if c.s.now().Sub(c.loginAt) < c.s.opts.SessionLifetime {
		return true
	}
	_ = c.p.skipCommand()
	c.sendBye("Session expired, please login again.")
	return false
}

// syncSelected announces what changed in the selected folder since the
// last announcement: EXPUNGE (when allowed), EXISTS and FETCH of changed
// flags (RFC 3501 section 7.4.1 and 7.3.1; RFC 7162 section 3.2 for
// MODSEQ). Called with Server.mu held.
func (c *session) syncSelected() {
	sel := c.sel
	f := sel.f
	if c.allowExpunge {
		for i := len(sel.view) - 1; i >= 0; i-- {
			if sel.view[i].gone {
				c.emitf("* %d EXPUNGE\r\n", i+1)
				sel.view = append(sel.view[:i:i], sel.view[i+1:]...)
			}
		}
	}
	var last uint32
	known := len(sel.view)
	if known > 0 {
		last = sel.view[known-1].uid
	}
	for _, e := range f.entries {
		if e.uid > last {
			sel.view = append(sel.view, e)
		}
	}
	if len(sel.view) > known {
		c.emitf("* %d EXISTS\r\n", len(sel.view))
	}
	// Flag changes of messages the client already knows; new ones are
	// announced by EXISTS and fetched by the client.
	for i, e := range sel.view[:known] {
		if e.gone {
			continue
		}
		ms := entryModSeq(e)
		if ms <= sel.notified || sel.reported[e] == ms {
			continue
		}
		c.emitf("* %d FETCH (%s)\r\n", i+1, c.flagsItems(e))
	}
	sel.notified = c.acct.modseq
	sel.reported = map[*entry]uint64{}
}

// flagsItems is "UID n FLAGS (...)" plus MODSEQ under CONDSTORE, the
// items of an unsolicited FETCH.
func (c *session) flagsItems(e *entry) string {
	s := "UID " + strconv.FormatUint(uint64(e.uid), 10) + " FLAGS " + flagString(e)
	if c.condstore {
		s += " MODSEQ (" + strconv.FormatUint(entryModSeq(e), 10) + ")"
	}
	return s
}

func entryModSeq(e *entry) uint64 { return max(e.m.modseq, e.modseq) }

// flagString is the FLAGS list of an entry: the message's flags plus
// \Deleted of this folder, in a stable order.
func flagString(e *entry) string {
	var sys, kw []string
	for f := range e.m.flags {
		if strings.HasPrefix(f, `\`) {
			sys = append(sys, f)
		} else {
			kw = append(kw, f)
		}
	}
	if e.deleted {
		sys = append(sys, `\Deleted`)
	}
	sortStrings(sys)
	sortStrings(kw)
	return "(" + strings.Join(append(sys, kw...), " ") + ")"
}
