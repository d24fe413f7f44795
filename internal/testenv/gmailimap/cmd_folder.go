package gmailimap

import (
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Keywords Gmail lists in FLAGS on every folder (captured SELECT
// responses).
const gmailFlags = `\Answered \Flagged \Draft \Deleted \Seen $NotPhishing $Phishing`

func nonexistent(name string) string {
	return "NO [NONEXISTENT] Unknown Mailbox: " + encodeMailbox(name) + " (Failure)"
}

// cmdSelect is SELECT and EXAMINE (RFC 3501 sections 6.3.1-2), with the
// CONDSTORE select parameter (RFC 7162 section 3.1.8).
func (c *session) cmdSelect(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	condstore := false
	if c.p.take(' ') {
		c.p.list(func() {
			switch c.p.keyword() {
			case "CONDSTORE":
				condstore = true
			default:
				c.p.fail("unknown select parameter")
			}
		})
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	readOnly := c.cmd == "EXAMINE"
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	// A failed SELECT leaves no folder selected (RFC 3501 section 6.3.1).
	c.sel = nil
	c.state = stateAuthenticated
	f := c.acct.folder(name)
	if f == nil {
		return nonexistent(name)
	}
	if condstore {
		c.condstore = true
	}
	flags := gmailFlags
	var kws []string
	for k := range c.acct.keywords {
		if k != "$NotPhishing" && k != "$Phishing" {
			kws = append(kws, k)
		}
	}
	sort.Strings(kws)
	if len(kws) > 0 {
		flags += " " + strings.Join(kws, " ")
	}
	c.emit("* FLAGS (" + flags + ")\r\n")
	if readOnly {
		c.emit("* OK [PERMANENTFLAGS ()] Flags permitted.\r\n")
	} else {
		c.emit("* OK [PERMANENTFLAGS (" + flags + ` \*)] Flags permitted.` + "\r\n")
	}
	c.emitf("* OK [UIDVALIDITY %d] UIDs valid.\r\n", f.uidValidity)
	c.emitf("* %d EXISTS\r\n", len(f.entries))
	c.emit("* 0 RECENT\r\n")
	c.emitf("* OK [UIDNEXT %d] Predicted next UID.\r\n", f.uidNext)
	c.emitf("* OK [HIGHESTMODSEQ %d]\r\n", max(f.highestModSeq, 1))
	c.sel = &selection{f: f, readOnly: readOnly, view: append([]*entry(nil), f.entries...), notified: c.acct.modseq, reported: map[*entry]uint64{}}
	c.state = stateSelected
	mode := "[READ-WRITE]"
	if readOnly {
		mode = "[READ-ONLY]"
	}
	return "OK " + mode + " " + encodeMailbox(f.name) + " selected. (Success)"
}

// cmdClose is CLOSE (which expunges silently, RFC 3501 section 6.4.2)
// and UNSELECT (RFC 3691, which does not).
func (c *session) cmdClose(tag string) string {
	c.p.end()
	if c.p.failed() {
		return ""
	}
	isClose := c.cmd == "CLOSE"
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if isClose && !c.sel.readOnly {
		for _, e := range append([]*entry(nil), c.sel.f.entries...) {
			if e.deleted {
				c.acct.expungeFrom(e.m, e.f)
			}
		}
	}
	c.sel = nil
	c.state = stateAuthenticated
	return "OK Returned to authenticated state. (Success)"
}

func (c *session) cmdCreate(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	// A trailing delimiter only says that names will be created below
	// it (RFC 3501 section 6.3.3).
	name = strings.TrimSuffix(name, "/")
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if _, err := c.acct.createLabel(name); err != nil {
		return folderError(err)
	}
	return "OK Success"
}

func folderError(err error) string {
	switch {
	case errors.Is(err, errNameExists):
		return "NO [ALREADYEXISTS] " + err.Error() + ". (Failure)"
	case errors.Is(err, errNameReserved):
		return "NO [CANNOT] " + err.Error() + ". (Failure)"
	}
	return "NO [CANNOT] " + err.Error() + ". (Failure)"
}

func (c *session) cmdDelete(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.acct.folder(name)
	switch {
	case f == nil:
		return nonexistent(name)
	case f.kind != kindUser:
		return "NO [CANNOT] System folders cannot be deleted. (Failure)"
	}
	c.acct.deleteLabel(f)
	return "OK Success"
}

func (c *session) cmdRename(tag string) string {
	c.p.sp()
	from := c.p.mailbox()
	c.p.sp()
	to := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.acct.folder(from)
	switch {
	case f == nil:
		return nonexistent(from)
	case f.kind != kindUser:
		return "NO [CANNOT] System folders cannot be renamed. (Failure)"
	}
	if err := c.acct.renameLabel(f, to); err != nil {
		return folderError(err)
	}
	return "OK Success"
}

func (c *session) cmdSubscribe(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	subscribe := c.cmd == "SUBSCRIBE"
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.acct.folder(name)
	if f == nil {
		return nonexistent(name)
	}
	f.subscribed = subscribe
	return "OK Success"
}

func (c *session) cmdNamespace(tag string) string {
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.emit(`* NAMESPACE (("" "/")) NIL NIL` + "\r\n")
	return "OK Success"
}

// listOptions are the LIST-EXTENDED (RFC 5258) selection and return
// options of one LIST command.
type listOptions struct {
	subscribedOnly bool // selection SUBSCRIBED
	specialUseOnly bool // selection SPECIAL-USE (RFC 6154 section 3)
	retSubscribed  bool
	status         []string // RETURN (STATUS (...)), RFC 5819
}

// cmdList is LIST, LSUB and XLIST: RFC 3501 sections 6.3.8-9 and RFC
// 5258 section 3:
//
//	list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
//	       [SP list-return-opts]
func (c *session) cmdList(tag string) string {
	verb := c.cmd
	var o listOptions
	c.p.sp()
	if verb == "LIST" && c.p.peek() == '(' {
		c.p.list(func() {
			switch c.p.keyword() {
			case "SUBSCRIBED":
				o.subscribedOnly, o.retSubscribed = true, true
			case "SPECIAL-USE":
				o.specialUseOnly = true
			case "RECURSIVEMATCH", "REMOTE":
			default:
				c.p.fail("unknown list selection option")
			}
		})
		c.p.sp()
	}
	ref := c.p.mailbox()
	c.p.sp()
	var patterns []string
	if verb == "LIST" && c.p.peek() == '(' {
		c.p.list(func() { patterns = append(patterns, c.p.listMailbox()) })
	} else {
		patterns = append(patterns, c.p.listMailbox())
	}
	if verb == "LIST" && c.p.take(' ') {
		if c.p.keyword() != "RETURN" {
			c.p.fail("expected RETURN")
		}
		c.p.sp()
		c.p.list(func() {
			switch c.p.keyword() {
			case "SUBSCRIBED":
				o.retSubscribed = true
			case "CHILDREN", "SPECIAL-USE":
				// Gmail always returns both.
			case "STATUS":
				c.p.sp()
				c.p.list(func() { o.status = append(o.status, c.p.keyword()) })
			default:
				c.p.fail("unknown list return option")
			}
		})
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	for _, item := range o.status {
		if !validStatusItem(item) {
			c.p.fail("unknown status item %s", item)
			return ""
		}
	}
	if verb == "LSUB" {
		o.subscribedOnly = true
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if len(patterns) == 1 && patterns[0] == "" {
		// RFC 3501 section 6.3.8: an empty pattern asks for the
		// delimiter and the root.
		c.emit("* " + verb + ` (\Noselect) "/" ""` + "\r\n")
		return "OK Success"
	}
	var res []*regexp.Regexp
	for _, pat := range patterns {
		if dec, err := decodeMailbox(pat); err == nil {
			pat = dec
		}
		if ref != "" && !strings.HasSuffix(ref, "/") && !strings.HasPrefix(pat, "/") {
			ref += "/"
		}
		res = append(res, listPattern(ref+pat))
	}
	for _, n := range c.acct.listNodes() {
		matched := false
		for _, re := range res {
			if re.MatchString(n.name) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		f := n.f
		if o.subscribedOnly && (f == nil || !f.subscribed) {
			continue
		}
		if o.specialUseOnly && (f == nil || f.kind.specialUse() == "") {
			continue
		}
		var attrs []string
		if n.children {
			attrs = append(attrs, `\HasChildren`)
		} else {
			attrs = append(attrs, `\HasNoChildren`)
		}
		if f == nil {
			attrs = append(attrs, `\Noselect`)
		} else {
			a := f.kind.specialUse()
			if verb == "XLIST" {
				a = f.kind.xlistAttr()
			}
			if a != "" {
				attrs = append(attrs, a)
			}
			if o.retSubscribed && f.subscribed && verb == "LIST" {
				attrs = append(attrs, `\Subscribed`)
			}
		}
		sort.Strings(attrs)
		c.emit("* " + verb + " (" + strings.Join(attrs, " ") + `) "/" ` + mailboxOut(n.name) + "\r\n")
		if f != nil && len(o.status) > 0 {
			c.emit("* STATUS " + mailboxOut(f.name) + " (" + c.statusItems(f, o.status) + ")\r\n")
		}
	}
	return "OK Success"
}

// listNode is a name LIST can return: a folder, or a parent that exists
// only because names below it do ("[Gmail]"), which is \Noselect.
type listNode struct {
	name     string
	f        *folder
	children bool
}

func (a *account) listNodes() []listNode {
	nodes := map[string]*listNode{}
	var order []string
	add := func(name string, f *folder) {
		key := strings.ToLower(name)
		if n, ok := nodes[key]; ok {
			if f != nil {
				n.f, n.name = f, name
			}
			return
		}
		nodes[key] = &listNode{name: name, f: f}
		order = append(order, key)
	}
	for _, f := range a.folders() {
		add(f.name, f)
		parts := strings.Split(f.name, "/")
		for i := len(parts) - 1; i > 0; i-- {
			add(strings.Join(parts[:i], "/"), nil)
		}
	}
	for _, n := range nodes {
		if i := strings.LastIndexByte(n.name, '/'); i > 0 {
			if p := nodes[strings.ToLower(n.name[:i])]; p != nil {
				p.children = true
			}
		}
	}
	out := make([]listNode, 0, len(order))
	for _, k := range order {
		out = append(out, *nodes[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if strings.EqualFold(out[i].name, "INBOX") != strings.EqualFold(out[j].name, "INBOX") {
			return strings.EqualFold(out[i].name, "INBOX")
		}
		return out[i].name < out[j].name
	})
	return out
}

// listPattern compiles a LIST pattern: "*" matches anything, "%"
// anything but the delimiter (RFC 3501 section 6.3.8). Matching ignores
// case, as Gmail's labels do.
func listPattern(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	for _, r := range pat {
		switch r {
		case '*':
			b.WriteString(".*")
		case '%':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func validStatusItem(item string) bool {
	switch item {
	case "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "APPENDLIMIT":
		return true
	}
	return false
}

// statusItems renders STATUS data items in the order asked (RFC 3501
// section 6.3.10; HIGHESTMODSEQ RFC 7162 section 3.1.6; APPENDLIMIT RFC
// 7889 section 4).
func (c *session) statusItems(f *folder, items []string) string {
	total, unseen := f.counts()
	var parts []string
	for _, it := range items {
		var v string
		switch it {
		case "MESSAGES":
			v = strconv.Itoa(total)
		case "RECENT":
			v = "0"
		case "UIDNEXT":
			v = strconv.FormatUint(uint64(f.uidNext), 10)
		case "UIDVALIDITY":
			v = strconv.FormatUint(uint64(f.uidValidity), 10)
		case "UNSEEN":
			v = strconv.Itoa(unseen)
		case "HIGHESTMODSEQ":
			v = strconv.FormatUint(max(f.highestModSeq, 1), 10)
		case "APPENDLIMIT":
			v = strconv.FormatInt(c.s.opts.AppendLimit, 10)
		}
		parts = append(parts, it+" "+v)
	}
	return strings.Join(parts, " ")
}

func (c *session) cmdStatus(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.sp()
	var items []string
	c.p.list(func() {
		it := c.p.keyword()
		if !validStatusItem(it) {
			c.p.fail("unknown status item %s", it)
		}
		items = append(items, it)
	})
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.acct.folder(name)
	if f == nil {
		return nonexistent(name)
	}
	if contains(items, "HIGHESTMODSEQ") {
		c.condstore = true // RFC 7162 section 3.1: a CONDSTORE-enabling command
	}
	c.emit("* STATUS " + mailboxOut(f.name) + " (" + c.statusItems(f, items) + ")\r\n")
	return "OK Success"
}

// Quota (RFC 2087 / RFC 9208): one root "" holding the whole account,
// storage in units of 1024 octets.
func (c *session) quotaLine() string {
	used := (c.acct.storage + 1023) / 1024
	return `* QUOTA "" (STORAGE ` + strconv.FormatInt(used, 10) + " " + strconv.FormatInt(c.s.opts.StorageQuota/1024, 10) + ")\r\n"
}

func (c *session) cmdGetQuotaRoot(tag string) string {
	c.p.sp()
	name := c.p.mailbox()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.acct.folder(name)
	if f == nil {
		return nonexistent(name)
	}
	c.emit("* QUOTAROOT " + mailboxOut(f.name) + ` ""` + "\r\n")
	c.emit(c.quotaLine())
	return "OK Success"
}

func (c *session) cmdGetQuota(tag string) string {
	c.p.sp()
	root := c.p.astring()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	if root != "" {
		return "NO [NONEXISTENT] Unknown quota root (Failure)"
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.emit(c.quotaLine())
	return "OK Success"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortStrings(s []string) { sort.Strings(s) }
