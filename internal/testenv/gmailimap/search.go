package gmailimap

import (
	"bytes"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// matcher tests one message of the selected folder; seq is its sequence
// number.
type matcher func(seq uint32, e *entry) bool

// searchCtx carries what keys need while matching.
type searchCtx struct {
	c       *session
	maxSeq  uint32
	maxUID  uint32
	modseq  bool // a MODSEQ key was used (RFC 7162 section 3.1.5)
	rawErr  string
	account *account
}

// cmdSearch is SEARCH and UID SEARCH (RFC 3501 section 6.4.4), with
// ESEARCH's RETURN options (RFC 4731), CONDSTORE's MODSEQ key (RFC 7162
// section 3.1.5) and Gmail's X-GM-RAW, X-GM-MSGID, X-GM-THRID and
// X-GM-LABELS keys:
//
//	search = "SEARCH" [SP "RETURN" SP "(" [opt *(SP opt)] ")"]
//	         [SP "CHARSET" SP astring] 1*(SP search-key)
func (c *session) cmdSearch(tag string) string {
	uid := c.cmd == "UID SEARCH"
	var ret []string
	esearch := false
	c.p.sp()
	if strings.EqualFold(c.peekAtom(), "RETURN") {
		c.p.atom()
		c.p.sp()
		esearch = true
		c.p.list(func() {
			opt := c.p.keyword()
			switch opt {
			case "MIN", "MAX", "ALL", "COUNT":
				ret = append(ret, opt)
			default:
				c.p.fail("unknown search return option %s", opt)
			}
		})
		c.p.sp()
		if len(ret) == 0 {
			ret = []string{"ALL"}
		}
	}
	badCharset := false
	if strings.EqualFold(c.peekAtom(), "CHARSET") {
		c.p.atom()
		c.p.sp()
		cs := strings.ToUpper(c.p.astring())
		badCharset = cs != "UTF-8" && cs != "US-ASCII"
		c.p.sp()
	}
	sc := &searchCtx{c: c, account: c.acct}
	var keys []matcher
	keys = append(keys, c.searchKey(sc))
	for c.p.take(' ') {
		keys = append(keys, c.searchKey(sc))
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	if badCharset {
		return "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset (Failure)"
	}
	if sc.rawErr != "" {
		return "BAD " + sc.rawErr
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	view := c.sel.view
	sc.maxSeq = uint32(len(view))
	if len(view) > 0 {
		sc.maxUID = view[len(view)-1].uid
	}
	var hits []uint32
	var highest uint64
	for i, e := range view {
		ok := true
		for _, k := range keys {
			if !k(uint32(i+1), e) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		n := uint32(i + 1)
		if uid {
			n = e.uid
		}
		hits = append(hits, n)
		highest = max(highest, entryModSeq(e))
	}
	if sc.modseq {
		c.condstore = true
	}
	if esearch {
		c.emit(esearchResponse(tag, uid, ret, hits, sc.modseq, highest))
		return "OK SEARCH (Success)"
	}
	var b strings.Builder
	b.WriteString("* SEARCH")
	for _, n := range hits {
		b.WriteString(" " + strconv.FormatUint(uint64(n), 10))
	}
	if sc.modseq && len(hits) > 0 {
		b.WriteString(" (MODSEQ " + strconv.FormatUint(highest, 10) + ")")
	}
	c.emit(b.String() + "\r\n")
	return "OK SEARCH (Success)"
}

// esearchResponse is RFC 4731 section 3.1's ESEARCH response.
func esearchResponse(tag string, uid bool, ret []string, hits []uint32, modseq bool, highest uint64) string {
	var b strings.Builder
	b.WriteString("* ESEARCH (TAG " + quoteString(tag) + ")")
	if uid {
		b.WriteString(" UID")
	}
	for _, opt := range ret {
		switch opt {
		case "MIN":
			if len(hits) > 0 {
				b.WriteString(" MIN " + strconv.FormatUint(uint64(hits[0]), 10))
			}
		case "MAX":
			if len(hits) > 0 {
				b.WriteString(" MAX " + strconv.FormatUint(uint64(hits[len(hits)-1]), 10))
			}
		case "COUNT":
			b.WriteString(" COUNT " + strconv.Itoa(len(hits)))
		case "ALL":
			if len(hits) > 0 {
				b.WriteString(" ALL " + compactSet(hits))
			}
		}
	}
	if modseq && len(hits) > 0 {
		b.WriteString(" MODSEQ " + strconv.FormatUint(highest, 10))
	}
	return b.String() + "\r\n"
}

// compactSet writes ascending numbers as a sequence-set with ranges.
func compactSet(ns []uint32) string {
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(ns[i]), 10))
		if j > i {
			b.WriteString(":" + strconv.FormatUint(uint64(ns[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

// searchKey parses one search-key (RFC 3501 section 9). Keys that read
// message state run under Server.mu, when matching.
func (c *session) searchKey(sc *searchCtx) matcher {
	p := c.p
	if p.peek() == '(' {
		var all []matcher
		p.list(func() { all = append(all, c.searchKey(sc)) })
		return func(n uint32, e *entry) bool {
			for _, k := range all {
				if !k(n, e) {
					return false
				}
			}
			return true
		}
	}
	if b := p.peek(); (b >= '0' && b <= '9') || b == '*' {
		set := p.sequenceSet()
		return func(n uint32, e *entry) bool { return set.contains(n, sc.maxSeq) }
	}
	key := p.keyword()
	flagKey := func(flag string, want bool) matcher {
		return func(_ uint32, e *entry) bool {
			if flag == `\Deleted` {
				return e.deleted == want
			}
			return hasFlag(e.m, flag) == want
		}
	}
	str := func() string { p.sp(); return strings.ToLower(p.astring()) }
	header := func(name string) matcher {
		v := str()
		return func(_ uint32, e *entry) bool {
			return strings.Contains(strings.ToLower(headerValue(e.m.raw, name)), v)
		}
	}
	date := func() time.Time { p.sp(); return p.date() }
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	sentDate := func(e *entry) (time.Time, bool) {
		t, err := mail.ParseDate(e.m.dateHdr)
		return day(t), err == nil
	}
	switch key {
	case "ALL":
		return func(uint32, *entry) bool { return true }
	case "ANSWERED", "UNANSWERED":
		return flagKey(`\Answered`, key == "ANSWERED")
	case "DELETED", "UNDELETED":
		return flagKey(`\Deleted`, key == "DELETED")
	case "DRAFT", "UNDRAFT":
		return flagKey(`\Draft`, key == "DRAFT")
	case "FLAGGED", "UNFLAGGED":
		return flagKey(`\Flagged`, key == "FLAGGED")
	case "SEEN", "UNSEEN":
		return flagKey(`\Seen`, key == "SEEN")
	case "NEW", "RECENT":
		return func(uint32, *entry) bool { return false } // Gmail reports 0 RECENT
	case "OLD":
		return func(uint32, *entry) bool { return true }
	case "KEYWORD", "UNKEYWORD":
		p.sp()
		kw := p.atom()
		return flagKey(kw, key == "KEYWORD")
	case "BCC", "CC", "FROM", "TO", "SUBJECT":
		return header(map[string]string{"BCC": "Bcc", "CC": "Cc", "FROM": "From", "TO": "To", "SUBJECT": "Subject"}[key])
	case "HEADER":
		p.sp()
		name := p.astring()
		v := str()
		return func(_ uint32, e *entry) bool {
			for _, f := range headerFields(func() []byte { h, _ := splitMessage(e.m.raw); return h }()) {
				if strings.EqualFold(fieldName(f), name) {
					if v == "" || strings.Contains(strings.ToLower(string(f[bytes.IndexByte(f, ':')+1:])), v) {
						return true
					}
				}
			}
			return false
		}
	case "BODY", "TEXT":
		v := []byte(str())
		return func(_ uint32, e *entry) bool {
			hay := e.m.raw
			if key == "BODY" {
				_, hay = splitMessage(hay)
			}
			return bytes.Contains(bytes.ToLower(hay), v)
		}
	case "BEFORE", "ON", "SINCE":
		t := date()
		return func(_ uint32, e *entry) bool {
			d := day(e.m.date)
			return (key == "BEFORE" && d.Before(t)) || (key == "ON" && d.Equal(t)) || (key == "SINCE" && !d.Before(t))
		}
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		t := date()
		return func(_ uint32, e *entry) bool {
			d, ok := sentDate(e)
			return ok && ((key == "SENTBEFORE" && d.Before(t)) || (key == "SENTON" && d.Equal(t)) || (key == "SENTSINCE" && !d.Before(t)))
		}
	case "LARGER", "SMALLER":
		p.sp()
		n := int(p.number())
		return func(_ uint32, e *entry) bool {
			return (key == "LARGER" && len(e.m.raw) > n) || (key == "SMALLER" && len(e.m.raw) < n)
		}
	case "NOT":
		p.sp()
		k := c.searchKey(sc)
		return func(n uint32, e *entry) bool { return !k(n, e) }
	case "OR":
		p.sp()
		k1 := c.searchKey(sc)
		p.sp()
		k2 := c.searchKey(sc)
		return func(n uint32, e *entry) bool { return k1(n, e) || k2(n, e) }
	case "UID":
		p.sp()
		set := p.sequenceSet()
		return func(_ uint32, e *entry) bool { return set.contains(e.uid, sc.maxUID) }
	case "MODSEQ":
		// MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer
		p.sp()
		if p.peek() == '"' {
			p.quoted()
			p.sp()
			p.atom()
			p.sp()
		}
		n := p.number64()
		sc.modseq = true
		return func(_ uint32, e *entry) bool { return entryModSeq(e) >= n }
	case "X-GM-MSGID":
		p.sp()
		id := p.number64()
		return func(_ uint32, e *entry) bool { return e.m.id == id }
	case "X-GM-THRID":
		p.sp()
		id := p.number64()
		return func(_ uint32, e *entry) bool { return e.m.thrid == id }
	case "X-GM-LABELS":
		p.sp()
		l := c.labelArg()
		return func(_ uint32, e *entry) bool {
			r, ok := sc.account.resolveLabel(l)
			if !ok {
				return false
			}
			return contains(sc.account.labelList(e.m, ""), r)
		}
	case "X-GM-RAW":
		p.sp()
		q := p.astring()
		m, err := rawQuery(sc, q)
		if err != "" {
			sc.rawErr = err
		}
		return m
	}
	p.fail("unknown search key %q", key)
	return func(uint32, *entry) bool { return false }
}

// rawQuery is a small subset of Gmail's search syntax for X-GM-RAW
// (support.google.com/mail/answer/7190): space-separated terms, all of
// which must match; "-" negates a term. Supported: rfc822msgid:,
// label:, in:, is:starred/unread/read/important, from:, to:, subject:,
// larger:/smaller: (bytes, or with K/M), and bare words (searched in
// the whole message). Anything else is refused with a message naming
// it, so that a test never relies on an approximation.
func rawQuery(sc *searchCtx, q string) (matcher, string) {
	var terms []matcher
	for _, t := range strings.Fields(q) {
		neg := strings.HasPrefix(t, "-")
		t = strings.TrimPrefix(t, "-")
		op, arg, isOp := strings.Cut(t, ":")
		arg = strings.Trim(arg, `"`)
		lower := strings.ToLower(arg)
		var m matcher
		switch op = strings.ToLower(op); {
		case !isOp:
			w := []byte(strings.ToLower(t))
			m = func(_ uint32, e *entry) bool { return bytes.Contains(bytes.ToLower(e.m.raw), w) }
		case op == "rfc822msgid":
			m = func(_ uint32, e *entry) bool {
				return strings.EqualFold(strings.Trim(e.m.msgID, "<>"), strings.Trim(arg, "<>"))
			}
		case op == "label" || op == "in":
			switch lower {
			case "anywhere", "all":
				m = func(uint32, *entry) bool { return true }
			default:
				name := arg
				switch lower {
				case "inbox", "sent", "drafts", "draft", "trash", "spam", "starred", "important":
					name = `\` + lower
				}
				m = func(_ uint32, e *entry) bool {
					r, ok := sc.account.resolveLabel(name)
					return ok && contains(sc.account.labelList(e.m, ""), r)
				}
			}
		case op == "is":
			flag := map[string]string{"starred": `\Flagged`, "unread": `\Seen`, "read": `\Seen`}[lower]
			switch lower {
			case "starred", "read":
				m = func(_ uint32, e *entry) bool { return hasFlag(e.m, flag) }
			case "unread":
				m = func(_ uint32, e *entry) bool { return !hasFlag(e.m, flag) }
			case "important":
				m = func(_ uint32, e *entry) bool { _, ok := e.m.labels[labelImportant]; return ok }
			default:
				return nil, "X-GM-RAW is:" + arg + " is not supported by this test server"
			}
		case op == "from" || op == "to" || op == "subject":
			name := map[string]string{"from": "From", "to": "To", "subject": "Subject"}[op]
			m = func(_ uint32, e *entry) bool {
				return strings.Contains(strings.ToLower(headerValue(e.m.raw, name)), lower)
			}
		case op == "larger" || op == "smaller":
			n, ok := rawSize(lower)
			if !ok {
				return nil, "X-GM-RAW " + t + ": bad size"
			}
			larger := op == "larger"
			m = func(_ uint32, e *entry) bool {
				return (larger && int64(len(e.m.raw)) > n) || (!larger && int64(len(e.m.raw)) < n)
			}
		default:
			return nil, "X-GM-RAW operator " + op + ": is not supported by this test server"
		}
		if neg {
			inner := m
			m = func(n uint32, e *entry) bool { return !inner(n, e) }
		}
		terms = append(terms, m)
	}
	return func(n uint32, e *entry) bool {
		for _, t := range terms {
			if !t(n, e) {
				return false
			}
		}
		return true
	}, ""
}

func rawSize(s string) (int64, bool) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1024, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err == nil && n >= 0
}
