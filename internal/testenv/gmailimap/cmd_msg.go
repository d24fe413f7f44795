package gmailimap

import (
	"strconv"
	"strings"
	"time"
)

const respTooBig = "BAD [TOOBIG] Message too large. https://support.google.com/mail/answer/6584#limit"

// resolve returns the indexes into the session's view of the messages a
// sequence set names: by UID when uid is set (a range always includes
// the highest UID, RFC 3501 section 9 "seq-range"), else by sequence
// number. ok is false for a sequence number that names no message.
func (c *session) resolve(set seqSet, uid bool) (idx []int, ok bool) {
	view := c.sel.view
	if uid {
		if len(view) == 0 {
			return nil, true
		}
		maxUID := view[len(view)-1].uid
		for i, e := range view {
			if set.contains(e.uid, maxUID) {
				idx = append(idx, i)
			}
		}
		return idx, true
	}
	// A sequence number must name a message; "*" names the last one, so
	// it too is invalid in an empty folder (RFC 3501 section 9,
	// seq-number).
	n := uint32(len(view))
	for _, r := range set {
		if r.lo > n || r.hi > n || n == 0 {
			return nil, false
		}
	}
	for i := range view {
		if set.contains(uint32(i+1), n) {
			idx = append(idx, i)
		}
	}
	return idx, true
}

// folderLabels is what APPEND into f gives a message: the folder's
// label, or \Flagged for Starred, nothing for All Mail.
func folderLabels(f *folder) (labels, flags []string) {
	switch f.kind {
	case kindAll:
		return nil, nil
	case kindStarred:
		return nil, []string{`\Flagged`}
	case kindUser:
		return []string{f.name}, nil
	}
	return []string{f.kind.label()}, nil
}

// cmdAppend is RFC 3501 section 6.3.11 with UIDPLUS's APPENDUID (RFC
// 4315) and APPENDLIMIT (RFC 7889):
//
//	append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal
func (c *session) cmdAppend(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.sp()
	var flags []string
	if c.p.peek() == '(' {
		flags = c.p.flagList()
		c.p.sp()
	}
	date := time.Time{}
	if c.p.peek() == '"' {
		date = c.p.dateTime()
		c.p.sp()
	}
	if c.p.failed() {
		return ""
	}
	c.p.checkLiteral = func(n int64) error { return c.checkAppend(name, n) }
	raw := c.p.literal()
	c.p.checkLiteral = nil
	c.p.end()
	if c.p.failed() {
		return ""
	}
	for _, fl := range flags {
		if fl == `\Recent` {
			return "BAD Cannot set \\Recent (Failure)"
		}
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	a := c.acct
	f := a.folder(name)
	if f == nil {
		return "NO [TRYCREATE] Folder doesn't exist. (Failure)"
	}
	if date.IsZero() {
		date = c.s.now()
	}
	a.dayUsage(c.s.dayKey(c.s.now())).Uploaded += int64(len(raw))
	if !c.s.opts.AppendDuplicates {
		c.replaceDuplicate(raw, f)
	}
	labels, extra := folderLabels(f)
	var keep []string
	for _, fl := range append(flags, extra...) {
		if fl != `\Deleted` {
			keep = append(keep, fl)
		}
	}
	m := a.newMessage(raw, date, keep, labels, 0, 0)
	e := m.entries[f]
	if e == nil {
		return "OK (Success)" // cannot happen: the folder's label files it there
	}
	return "OK [APPENDUID " + strconv.FormatUint(uint64(f.uidValidity), 10) + " " + strconv.FormatUint(uint64(e.uid), 10) + "] (Success)"
}

// checkAppend vets an APPEND before its literal is sent: APPENDLIMIT,
// the daily upload budget and the storage quota. The refusal replaces
// the continuation request (RFC 3501 section 7.5 allows a tagged answer
// instead).
func (c *session) checkAppend(name string, n int64) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	a := c.acct
	if a.folder(name) == nil {
		return &literalRefused{resp: "NO [TRYCREATE] Folder doesn't exist. (Failure)"}
	}
	if n > c.s.opts.AppendLimit {
		c.s.stats.TooBig++
		return &literalRefused{resp: respTooBig}
	}
	if r := c.overBudget(false, n); r != nil {
		return r
	}
	if a.storage+n > c.s.opts.StorageQuota {
		return &literalRefused{resp: "NO [OVERQUOTA] Account exceeded storage quota. (Failure)"}
	}
	return nil
}

// replaceDuplicate deletes a message of f with the new message's
// Message-ID and Date (what Gmail is reported to do on APPEND; see
// LIMITS.md). The session sees it expunged at its next announcement.
func (c *session) replaceDuplicate(raw []byte, f *folder) {
	a := c.acct
	id := headerValue(raw, "Message-ID")
	if id == "" {
		return
	}
	date := headerValue(raw, "Date")
	for _, m := range append([]*message(nil), a.byMessageID[id]...) {
		if m.dateHdr == date && m.entries[f] != nil {
			a.deleteMessage(m)
		}
	}
}

// cmdCopy is COPY (RFC 3501 section 6.4.7) and MOVE (RFC 6851), with
// COPYUID (RFC 4315). In Gmail both add the destination's label; MOVE
// then takes away the source's.
func (c *session) cmdCopy(tag string) string {
	uid := strings.HasPrefix(c.cmd, "UID ")
	move := strings.HasSuffix(c.cmd, "MOVE")
	c.p.sp()
	set := c.p.sequenceSet()
	c.p.sp()
	name := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if move && c.sel.readOnly {
		return "NO [READ-ONLY] Folder is read-only. (Failure)"
	}
	a := c.acct
	dst := a.folder(name)
	if dst == nil {
		return "NO [TRYCREATE] Folder doesn't exist. (Failure)"
	}
	idx, ok := c.resolve(set, uid)
	if !ok {
		return "BAD Invalid message sequence number (Failure)"
	}
	src := c.sel.f
	var from, to []string
	for _, i := range idx {
		e := c.sel.view[i]
		if e.gone {
			continue
		}
		de := a.addToFolder(e.m, dst)
		if move && dst != src {
			a.leaveFolder(e.m, src)
		}
		if de != nil && !de.gone {
			from = append(from, strconv.FormatUint(uint64(e.uid), 10))
			to = append(to, strconv.FormatUint(uint64(de.uid), 10))
		}
	}
	code := ""
	if len(from) > 0 {
		code = "[COPYUID " + strconv.FormatUint(uint64(dst.uidValidity), 10) + " " + strings.Join(from, ",") + " " + strings.Join(to, ",") + "] "
	}
	if move {
		if code != "" {
			c.emit("* OK " + code + "(Success)\r\n")
		}
		return "OK Success"
	}
	return "OK " + code + "(Success)"
}

// leaveFolder takes m out of f for MOVE: the folder's label is removed
// (Starred unflags; All Mail, Trash and Spam are left by adding another
// label or not at all).
func (a *account) leaveFolder(m *message, f *folder) {
	switch f.kind {
	case kindAll, kindTrash, kindSpam:
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
}

// storeAtt is a parsed store-att-flags, or its X-GM-LABELS counterpart.
type storeAtt struct {
	op     byte // '+', '-' or 0 (replace)
	labels bool // X-GM-LABELS instead of FLAGS
	silent bool
	values []string
}

// cmdStore is STORE (RFC 3501 section 6.4.6) with UNCHANGEDSINCE (RFC
// 7162 section 3.1.3) and Gmail's X-GM-LABELS:
//
//	store = "STORE" SP sequence-set [SP "(" "UNCHANGEDSINCE" SP n ")"]
//	        SP (["+" / "-"] ("FLAGS" / "X-GM-LABELS") [".SILENT"])
//	        SP (list / item *(SP item))
func (c *session) cmdStore(tag string) string {
	uid := strings.HasPrefix(c.cmd, "UID ")
	c.p.sp()
	set := c.p.sequenceSet()
	c.p.sp()
	var unchangedSince uint64
	haveUnchanged := false
	if c.p.peek() == '(' {
		c.p.list(func() {
			if c.p.keyword() != "UNCHANGEDSINCE" {
				c.p.fail("unknown store modifier")
				return
			}
			c.p.sp()
			unchangedSince = c.p.number64()
			haveUnchanged = true
		})
		c.p.sp()
	}
	var att storeAtt
	if c.p.take('+') {
		att.op = '+'
	} else if c.p.take('-') {
		att.op = '-'
	}
	switch item := c.p.keyword(); item {
	case "FLAGS", "FLAGS.SILENT":
		att.silent = item == "FLAGS.SILENT"
	case "X-GM-LABELS", "X-GM-LABELS.SILENT":
		att.labels, att.silent = true, item == "X-GM-LABELS.SILENT"
	default:
		c.p.fail("unknown store item %s", item)
	}
	c.p.sp()
	value := c.p.flag
	if att.labels {
		value = c.labelArg
	}
	if c.p.peek() == '(' {
		c.p.list(func() { att.values = append(att.values, value()) })
	} else {
		att.values = append(att.values, value())
		for c.p.take(' ') {
			att.values = append(att.values, value())
		}
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.sel.readOnly {
		return "NO [READ-ONLY] STORE attempt on READ-ONLY folder. (Failure)"
	}
	if haveUnchanged {
		c.condstore = true
	}
	idx, ok := c.resolve(set, uid)
	if !ok {
		return "BAD Invalid message sequence number (Failure)"
	}
	var modified []string
	for _, i := range idx {
		e := c.sel.view[i]
		if e.gone {
			continue
		}
		if haveUnchanged && entryModSeq(e) > unchangedSince {
			if uid {
				modified = append(modified, strconv.FormatUint(uint64(e.uid), 10))
			} else {
				modified = append(modified, strconv.Itoa(i+1))
			}
			continue
		}
		if att.labels {
			c.storeLabels(e, att)
		} else {
			c.storeFlags(e, att)
		}
		if att.silent && !haveUnchanged {
			c.sel.reported[e] = entryModSeq(e)
			continue
		}
		items := ""
		if att.labels {
			items = "X-GM-LABELS " + c.labelsString(e.m)
		} else {
			items = "FLAGS " + flagString(e)
		}
		if uid {
			items += " UID " + strconv.FormatUint(uint64(e.uid), 10)
		}
		if c.condstore {
			items += " MODSEQ (" + strconv.FormatUint(entryModSeq(e), 10) + ")"
		}
		c.emitf("* %d FETCH (%s)\r\n", i+1, items)
		c.sel.reported[e] = entryModSeq(e)
	}
	if len(modified) > 0 {
		return "OK [MODIFIED " + strings.Join(modified, ",") + "] Conditional STORE failed"
	}
	return "OK Success"
}

// labelArg reads one X-GM-LABELS value: a flag-shaped system label
// (\Inbox) or an astring, decoded from modified UTF-7.
func (c *session) labelArg() string {
	if c.p.peek() == '\\' {
		c.p.pos++
		return `\` + c.p.atom()
	}
	s := c.p.astring()
	if dec, err := decodeMailbox(s); err == nil {
		return dec
	}
	return s
}

func (c *session) storeFlags(e *entry, att storeAtt) {
	a := c.acct
	m := e.m
	wasFlagged := hasFlag(m, `\Flagged`)
	wantDeleted := e.deleted
	if att.op == 0 {
		m.flags = map[string]struct{}{}
		wantDeleted = false
	}
	for _, fl := range att.values {
		if fl == `\Deleted` {
			wantDeleted = att.op != '-'
			continue
		}
		if fl == `\Recent` {
			continue
		}
		if att.op == '-' {
			delete(m.flags, fl)
		} else {
			a.addFlag(m, fl)
		}
	}
	a.touch(m)
	if wantDeleted != e.deleted {
		e.deleted = wantDeleted
		e.modseq = a.bump()
		e.f.highestModSeq = e.modseq
	}
	if wasFlagged != hasFlag(m, `\Flagged`) {
		a.reindex(m)
	}
	a.notify()
	if e.deleted && !c.s.opts.ManualExpunge && !e.gone {
		// Auto-Expunge on: the message leaves the folder at once.
		a.expungeFrom(m, e.f)
	}
}

func hasFlag(m *message, fl string) bool {
	_, ok := m.flags[fl]
	return ok
}

func (c *session) storeLabels(e *entry, att storeAtt) {
	a := c.acct
	var labels []string
	for _, v := range att.values {
		l, ok := a.resolveLabel(v)
		if !ok {
			if att.op == '-' {
				continue
			}
			// Gmail creates a label named in STORE +X-GM-LABELS.
			f, err := a.createLabel(v)
			if err != nil {
				continue
			}
			l = f.name
		}
		labels = append(labels, l)
	}
	switch att.op {
	case '+':
		a.addLabels(e.m, labels...)
	case '-':
		a.removeLabels(e.m, labels...)
	default:
		a.setLabels(e.m, labels)
	}
}

// cmdExpunge is EXPUNGE (RFC 3501 section 6.4.3) and UID EXPUNGE (RFC
// 4315 section 2.1). Gmail expunges by removing the folder's label
// (expungeFrom); the EXPUNGE responses are sent by syncSelected.
func (c *session) cmdExpunge(tag string) string {
	var set seqSet
	uid := c.cmd == "UID EXPUNGE"
	if uid {
		c.p.sp()
		set = c.p.sequenceSet()
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.sel.readOnly {
		return "NO [READ-ONLY] EXPUNGE attempt on READ-ONLY folder. (Failure)"
	}
	f := c.sel.f
	var maxUID uint32
	if n := len(f.entries); n > 0 {
		maxUID = f.entries[n-1].uid
	}
	for _, e := range append([]*entry(nil), f.entries...) {
		if e.deleted && (!uid || set.contains(e.uid, maxUID)) {
			c.acct.expungeFrom(e.m, f)
		}
	}
	return "OK Success"
}

// cmdIdle is RFC 2177: changes are announced as they happen until the
// client sends DONE.
func (c *session) cmdIdle(tag string) string {
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.wmu.Lock()
	_, err := c.w.WriteString("+ idling\r\n")
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return ""
	}
	done := make(chan error, 1)
	go func() { done <- c.p.readLine() }()
	for {
		c.s.mu.Lock()
		changed := c.acct.changed
		if c.sel != nil {
			c.syncSelected()
		}
		c.s.mu.Unlock()
		if c.flushOut("") != nil {
			<-done
			return ""
		}
		select {
		case err := <-done:
			if err != nil {
				c.p.err = err
				return ""
			}
			if !strings.EqualFold(string(c.p.buf), "DONE") {
				c.p.pos = len(c.p.buf)
				return "BAD Expected DONE (Failure)"
			}
			c.p.pos = len(c.p.buf)
			return "OK IDLE terminated (Success)"
		case <-changed:
		}
	}
}
