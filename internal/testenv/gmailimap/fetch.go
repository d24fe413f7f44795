package gmailimap

import (
	"net/mail"
	"strconv"
	"strings"
)

// fetchAtt is one parsed fetch-att (RFC 3501 section 9).
type fetchAtt struct {
	name string // UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, MODSEQ, X-GM-*, BODY, RFC822, RFC822.HEADER, RFC822.TEXT
	// Body sections (name BODY):
	peek    bool
	section string   // "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT
	fields  []string // header-list, as sent
	partial bool
	origin  uint32
	count   uint32
}

func (fa fetchAtt) isBody() bool {
	switch fa.name {
	case "BODY", "RFC822", "RFC822.HEADER", "RFC822.TEXT":
		return true
	}
	return false
}

// setsSeen reports whether fetching the item sets \Seen (RFC 3501
// section 6.4.5: BODY[...] and RFC822, RFC822.TEXT; not .PEEK or
// RFC822.HEADER).
func (fa fetchAtt) setsSeen() bool {
	return (fa.name == "BODY" && !fa.peek) || fa.name == "RFC822" || fa.name == "RFC822.TEXT"
}

// data returns the octets of a body item for raw.
func (fa fetchAtt) data(raw []byte) []byte {
	var b []byte
	switch {
	case fa.name == "RFC822" || (fa.name == "BODY" && fa.section == ""):
		b = raw
	case fa.name == "RFC822.HEADER" || fa.section == "HEADER":
		b, _ = splitMessage(raw)
	case fa.name == "RFC822.TEXT" || fa.section == "TEXT":
		_, b = splitMessage(raw)
	case fa.section == "HEADER.FIELDS":
		b = selectFields(raw, fa.fields, false)
	case fa.section == "HEADER.FIELDS.NOT":
		b = selectFields(raw, fa.fields, true)
	}
	if fa.partial {
		if int64(fa.origin) >= int64(len(b)) {
			return nil
		}
		b = b[fa.origin:]
		if int64(fa.count) < int64(len(b)) {
			b = b[:fa.count]
		}
	}
	return b
}

// label is the item name as the response writes it.
func (fa fetchAtt) label() string {
	if fa.name != "BODY" {
		return fa.name
	}
	s := "BODY[" + fa.section
	if fa.section == "HEADER.FIELDS" || fa.section == "HEADER.FIELDS.NOT" {
		s += " (" + strings.Join(fa.fields, " ") + ")"
	}
	s += "]"
	if fa.partial {
		s += "<" + strconv.FormatUint(uint64(fa.origin), 10) + ">"
	}
	return s
}

// fetchAtts parses the fetch attributes of FETCH:
//
//	("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")
func (c *session) fetchAtts() []fetchAtt {
	if c.p.peek() == '(' {
		var out []fetchAtt
		c.p.list(func() { out = append(out, c.fetchAtt()) })
		return out
	}
	switch strings.ToUpper(c.peekAtom()) {
	case "ALL":
		c.p.atom()
		return []fetchAtt{{name: "FLAGS"}, {name: "INTERNALDATE"}, {name: "RFC822.SIZE"}, {name: "ENVELOPE"}}
	case "FAST":
		c.p.atom()
		return []fetchAtt{{name: "FLAGS"}, {name: "INTERNALDATE"}, {name: "RFC822.SIZE"}}
	case "FULL":
		c.p.atom()
		c.p.fail("FULL needs BODY, which this test server does not implement")
		return nil
	}
	return []fetchAtt{c.fetchAtt()}
}

// peekAtom returns the atom at the parse position without consuming it.
func (c *session) peekAtom() string {
	save := c.p.pos
	var a string
	if c.p.err == nil {
		a = c.p.run(func(b byte) bool { return isAtomChar(b) && b != '[' }, "atom")
		c.p.err = nil
	}
	c.p.pos = save
	return a
}

// fetchAtt parses one fetch-att.
func (c *session) fetchAtt() fetchAtt {
	name := strings.ToUpper(c.p.run(func(b byte) bool { return isAtomChar(b) && b != '[' && b != '<' }, "fetch attribute"))
	switch name {
	case "UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "MODSEQ", "X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS",
		"RFC822", "RFC822.HEADER", "RFC822.TEXT":
		return fetchAtt{name: name}
	case "BODY", "BODY.PEEK":
		if c.p.peek() != '[' {
			c.p.fail("BODY and BODYSTRUCTURE are not implemented by this test server")
			return fetchAtt{}
		}
		fa := fetchAtt{name: "BODY", peek: name == "BODY.PEEK"}
		c.p.expect('[')
		if c.p.peek() != ']' {
			fa.section = strings.ToUpper(c.p.run(func(b byte) bool { return isAtomChar(b) && b != '[' }, "section"))
			switch fa.section {
			case "HEADER", "TEXT":
			case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
				c.p.sp()
				c.p.list(func() { fa.fields = append(fa.fields, c.p.astring()) })
			default:
				c.p.fail("section %q is not implemented by this test server (no MIME part numbers)", fa.section)
			}
		}
		c.p.expect(']')
		if c.p.take('<') {
			fa.partial = true
			fa.origin = c.p.number()
			c.p.expect('.')
			fa.count = c.p.nzNumber()
			c.p.expect('>')
		}
		return fa
	}
	if name == "BODYSTRUCTURE" || name == "BINARY" || name == "BINARY.PEEK" || name == "BINARY.SIZE" {
		c.p.fail("%s is not implemented by this test server", name)
		return fetchAtt{}
	}
	c.p.fail("unknown fetch attribute %q", name)
	return fetchAtt{}
}

// cmdFetch is FETCH and UID FETCH (RFC 3501 section 6.4.5) with
// CHANGEDSINCE (RFC 7162 section 3.1.4) and Gmail's X-GM-MSGID,
// X-GM-THRID and X-GM-LABELS.
func (c *session) cmdFetch(tag string) string {
	uid := c.cmd == "UID FETCH"
	c.p.sp()
	set := c.p.sequenceSet()
	c.p.sp()
	atts := c.fetchAtts()
	var changedSince uint64
	haveChanged := false
	if c.p.take(' ') {
		c.p.list(func() {
			if c.p.keyword() != "CHANGEDSINCE" {
				c.p.fail("unknown fetch modifier")
				return
			}
			c.p.sp()
			changedSince = c.p.number64()
			haveChanged = true
		})
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	has := map[string]bool{}
	for _, fa := range atts {
		has[fa.name] = true
	}
	if uid {
		has["UID"] = true
	}
	if haveChanged {
		has["MODSEQ"] = true
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if has["MODSEQ"] {
		c.condstore = true // RFC 7162 section 3.1: CONDSTORE-enabling
	}
	idx, ok := c.resolve(set, uid)
	if !ok {
		return "BAD Invalid message sequence number (Failure)"
	}
	skip := ""
	if !c.s.opts.IncludeSelectedLabel {
		skip = c.sel.f.ownLabel()
	}
	for _, i := range idx {
		e := c.sel.view[i]
		if haveChanged && entryModSeq(e) <= changedSince {
			continue
		}
		// Body data counts against the daily download budget; the
		// message that would go over it is not sent.
		var bodyBytes int64
		for _, fa := range atts {
			if fa.isBody() {
				bodyBytes += int64(len(fa.data(e.m.raw)))
			}
		}
		if bodyBytes > 0 {
			if r := c.overBudget(true, bodyBytes); r != nil {
				if r.bye != "" {
					c.bye = r.bye
					return "BYE"
				}
				return r.resp
			}
			c.acct.dayUsage(c.s.dayKey(c.s.now())).Downloaded += bodyBytes
		}
		flagsChanged := false
		if !c.sel.readOnly && !hasFlag(e.m, `\Seen`) {
			for _, fa := range atts {
				if fa.setsSeen() {
					c.acct.addFlag(e.m, `\Seen`)
					c.acct.touch(e.m)
					c.acct.notify()
					flagsChanged = true
					break
				}
			}
		}
		c.fetchOne(i, e, atts, has, flagsChanged, skip)
		c.sel.reported[e] = entryModSeq(e)
	}
	return "OK Success"
}

// fetchOne writes one FETCH response. Gmail puts its own items first
// and UID before the standard ones (captured responses).
func (c *session) fetchOne(i int, e *entry, atts []fetchAtt, has map[string]bool, flagsChanged bool, skipLabel string) {
	m := e.m
	var items []string
	if has["X-GM-THRID"] {
		items = append(items, "X-GM-THRID "+strconv.FormatUint(m.thrid, 10))
	}
	if has["X-GM-MSGID"] {
		items = append(items, "X-GM-MSGID "+strconv.FormatUint(m.id, 10))
	}
	if has["X-GM-LABELS"] {
		items = append(items, "X-GM-LABELS "+c.labelsStringSkip(m, skipLabel))
	}
	if has["UID"] {
		items = append(items, "UID "+strconv.FormatUint(uint64(e.uid), 10))
	}
	if has["MODSEQ"] {
		items = append(items, "MODSEQ ("+strconv.FormatUint(entryModSeq(e), 10)+")")
	}
	if has["INTERNALDATE"] {
		items = append(items, `INTERNALDATE "`+m.date.Format("02-Jan-2006 15:04:05 -0700")+`"`)
	}
	if has["RFC822.SIZE"] {
		items = append(items, "RFC822.SIZE "+strconv.Itoa(len(m.raw)))
	}
	if has["FLAGS"] || flagsChanged {
		items = append(items, "FLAGS "+flagString(e))
	}
	if has["ENVELOPE"] {
		items = append(items, "ENVELOPE "+envelope(m.raw))
	}
	c.emitf("* %d FETCH (%s", i+1, strings.Join(items, " "))
	sep := len(items) > 0
	for _, fa := range atts {
		if !fa.isBody() {
			continue
		}
		b := fa.data(m.raw)
		if sep {
			c.emit(" ")
		}
		sep = true
		c.emit(fa.label() + " {" + strconv.Itoa(len(b)) + "}\r\n")
		c.emitBytes(b)
	}
	c.emit(")\r\n")
}

// labelsString is X-GM-LABELS as written in STORE responses, with the
// same selected-folder rule as FETCH.
func (c *session) labelsString(m *message) string {
	skip := ""
	if !c.s.opts.IncludeSelectedLabel {
		skip = c.sel.f.ownLabel()
	}
	return c.labelsStringSkip(m, skip)
}

// labelsStringSkip writes the label list: "a list of ASTRINGs, encoded
// in UTF-7 as appropriate" (extensions page). System labels are quoted
// strings (`"\\Inbox"`) as Gmail sends them, or bare as in Google's
// examples with LabelsAsDocumented.
func (c *session) labelsStringSkip(m *message, skip string) string {
	var parts []string
	for _, l := range c.acct.labelList(m, skip) {
		switch {
		case strings.HasPrefix(l, `\`) && c.s.opts.LabelStyle == LabelsAsDocumented:
			parts = append(parts, l)
		case strings.HasPrefix(l, `\`):
			parts = append(parts, quoteString(l))
		default:
			parts = append(parts, astringOut(encodeMailbox(l)))
		}
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// envelope is the ENVELOPE structure (RFC 3501 section 7.4.2): date,
// subject, from, sender, reply-to, to, cc, bcc, in-reply-to,
// message-id. Header values are given as stored; sender and reply-to
// default to from.
func envelope(raw []byte) string {
	from := addresses(headerValue(raw, "From"))
	sender := addresses(headerValue(raw, "Sender"))
	if sender == "NIL" {
		sender = from
	}
	replyTo := addresses(headerValue(raw, "Reply-To"))
	if replyTo == "NIL" {
		replyTo = from
	}
	return "(" + strings.Join([]string{
		nstring(headerValue(raw, "Date")),
		nstring(headerValue(raw, "Subject")),
		from, sender, replyTo,
		addresses(headerValue(raw, "To")),
		addresses(headerValue(raw, "Cc")),
		addresses(headerValue(raw, "Bcc")),
		nstring(headerValue(raw, "In-Reply-To")),
		nstring(headerValue(raw, "Message-ID")),
	}, " ") + ")"
}

// addresses renders an address list as "(" 1*address ")" or NIL, each
// address being (name adl mailbox host).
func addresses(v string) string {
	if v == "" {
		return "NIL"
	}
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) == 0 {
		return "NIL"
	}
	var b strings.Builder
	b.WriteByte('(')
	for _, a := range list {
		local, host, _ := strings.Cut(a.Address, "@")
		b.WriteString("(" + nstring(a.Name) + " NIL " + nstring(local) + " " + nstring(host) + ")")
	}
	b.WriteByte(')')
	return b.String()
}
