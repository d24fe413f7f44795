package imap

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// namespace is the personal namespace (RFC 2342) plus the prefixes of the
// other namespaces, whose folders belong to other users and are skipped.
type namespace struct {
	prefix string
	delim  rune
	others []string
}

func readNamespace(c *imapclient.Client, caps imap.CapSet) (namespace, error) {
	var ns namespace
	if caps.Has(imap.CapNamespace) || caps.Has(imap.CapIMAP4rev2) {
		data, err := c.Namespace().Wait()
		if err != nil {
			return ns, err
		}
		if len(data.Personal) > 0 {
			ns.prefix, ns.delim = data.Personal[0].Prefix, data.Personal[0].Delim
		}
		for _, d := range append(data.Other, data.Shared...) {
			if d.Prefix != "" {
				ns.others = append(ns.others, d.Prefix)
			}
		}
		if ns.delim != 0 {
			return ns, nil
		}
	}
	// Without NAMESPACE, LIST "" "" reveals the delimiter (RFC 3501 6.3.8).
	list, err := c.List("", "", nil).Collect()
	if err != nil {
		return ns, err
	}
	if len(list) > 0 {
		ns.delim = list[0].Delim
	}
	return ns, nil
}

// pathOf turns a server name into a mail.Path: the personal prefix is
// removed and the name split at the delimiter, so Courier's
// "INBOX.Archive.2019" becomes Archive/2019.
func (ns namespace) pathOf(name string) mail.Path {
	if strings.EqualFold(name, mail.InboxName) {
		return mail.Path{mail.InboxName}
	}
	if ns.prefix != "" && len(name) > len(ns.prefix) && strings.EqualFold(name[:len(ns.prefix)], ns.prefix) {
		name = name[len(ns.prefix):]
	}
	if ns.delim == 0 {
		return mail.Path{name}
	}
	return mail.Path(strings.Split(name, string(ns.delim))).Canonical()
}

// nameOf is the reverse of pathOf. A segment that contains the server's
// delimiter cannot be expressed as one level, so the delimiter is replaced
// by '_' there (a '.' in "Co.2019" on a Courier server); everything else,
// including '&' and non-ASCII, is kept and go-imap encodes it in modified
// UTF-7.
func (ns namespace) nameOf(p mail.Path) string {
	if p.IsInbox() {
		return mail.InboxName
	}
	segs := make([]string, len(p))
	for i, s := range p {
		if ns.delim != 0 {
			s = strings.ReplaceAll(s, string(ns.delim), "_")
		}
		segs[i] = s
	}
	if len(segs) > 0 && strings.EqualFold(segs[0], mail.InboxName) {
		segs[0] = mail.InboxName
		// INBOX/Sub on a server whose prefix is "INBOX." is "INBOX.Sub",
		// not "INBOX.INBOX.Sub".
		if strings.EqualFold(ns.prefix, mail.InboxName+string(ns.delim)) {
			return strings.Join(segs, string(ns.delim))
		}
	}
	return ns.prefix + strings.Join(segs, string(ns.delim))
}

func (ns namespace) foreign(name string) bool {
	for _, p := range ns.others {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Folders implements connector.Conn.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	s, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()()
	var opts *imap.ListOptions
	if c.caps.Has(imap.CapSpecialUse) && (c.caps.Has(imap.CapListExtended) || c.caps.Has(imap.CapIMAP4rev2)) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := s.c.List("", "*", opts).Collect()
	if err != nil {
		s.fail(err)
		return nil, s.classify(err, "list folders")
	}
	var out []connector.Folder
	seenInbox := false
	for _, l := range list {
		if c.ns.foreign(l.Mailbox) {
			continue
		}
		f := connector.Folder{Name: l.Mailbox, Path: c.ns.pathOf(l.Mailbox), Delimiter: l.Delim}
		if len(f.Path) == 0 || (len(f.Path) == 1 && f.Path[0] == "") {
			continue // the bare namespace prefix itself
		}
		for _, a := range l.Attrs {
			switch {
			case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)),
				strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
				f.NoSelect = true
			case c.gmail && strings.EqualFold(string(a), `\Important`):
				c.mu.Lock()
				if c.gmailImportant == nil {
					c.gmailImportant = map[string]bool{}
				}
				c.gmailImportant[l.Mailbox] = true
				c.mu.Unlock()
			default:
				if r := mail.RoleFromAttr(string(a)); r != mail.RoleNone {
					f.Role, f.RoleFromServer = r, true
				}
			}
		}
		if f.Role == mail.RoleNone {
			f.Role = mail.RoleFromName(f.Path)
		}
		if f.Path.IsInbox() {
			seenInbox = true
		}
		out = append(out, f)
	}
	if !seenInbox {
		// Every mailbox has an INBOX (RFC 3501 5.1) even when a LIST
		// pattern or a namespace quirk hides it.
		out = append(out, connector.Folder{Name: mail.InboxName, Path: mail.Path{mail.InboxName}, Role: mail.RoleInbox, Delimiter: c.ns.delim})
	}
	return out, nil
}

// CreateFolder implements connector.Destination. A folder created for a
// role carries it on servers with CREATE-SPECIAL-USE (RFC 6154 section 3),
// so that mail programs on the new server recognise it.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	f := connector.Folder{Path: p.Canonical(), Name: c.ns.nameOf(p), Delimiter: c.ns.delim, Role: role}
	if role == mail.RoleNone {
		f.Role = mail.RoleFromName(p)
	}
	if p.IsInbox() {
		return f, nil
	}
	// One CREATE sequence at a time per mailbox: with several sessions
	// creating folders at once, Dovecot 2.3 was seen to leave a new folder
	// out of later LIST answers (its mailbox list index), which made the
	// folder and its mail invisible to clients.
	c.createMu.Lock()
	defer c.createMu.Unlock()
	s, err := c.acquire(ctx)
	if err != nil {
		return f, err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()()
	use := c.useAttr(role)
	// Parents first: RFC 3501 only says servers SHOULD create them. The
	// commands are pipelined (one round trip for the whole chain): the
	// server runs them in order, and a parent that fails for a reason
	// other than existing already is reported before its children.
	type step struct {
		name string
		cmd  *imapclient.Command
		use  bool
	}
	var steps []step
	for i := 1; i <= len(p); i++ {
		if i == 1 && p[0] == mail.InboxName && len(p) > 1 {
			continue
		}
		name := c.ns.nameOf(p[:i])
		var opts *imap.CreateOptions
		if i == len(p) && use != "" {
			opts = &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{use}}
		}
		steps = append(steps, step{name, s.c.Create(name, opts), opts != nil})
	}
	sub := s.c.Subscribe(f.Name)
	var failed []step
	var errs []error
	existed := false // the folder itself was there already
	for i, st := range steps {
		err := st.cmd.Wait()
		if err == nil && i < len(steps)-1 {
			c.madeParents[st.name] = true
		}
		if i == len(steps)-1 && err != nil && alreadyExists(err) {
			existed = true
		}
		if err != nil && !alreadyExists(err) {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				s.fail(err)
				return f, s.classify(err, fmt.Sprintf("create folder %q", st.name))
			}
			failed = append(failed, st)
			errs = append(errs, err)
		}
	}
	subErr := sub.Wait()
	for i, st := range failed {
		last := st.name == f.Name
		if st.use {
			// The server may refuse the attribute ([USEATTR], e.g. when
			// another folder has it already) rather than the folder: a
			// folder without its role is still the right place for the
			// mail, which matters more.
			if err := s.c.Create(st.name, nil).Wait(); err == nil || alreadyExists(err) {
				continue
			}
		}
		// Some servers answer CREATE of a folder that exists with a bare
		// NO (Courier-IMAP: "NO Cannot create this folder."), without
		// the [ALREADYEXISTS] code of RFC 5530: only LIST can tell.
		ok, err := c.exists(s, st.name)
		if err != nil {
			return f, err
		}
		if !ok {
			return f, s.classify(errs[i], fmt.Sprintf("create folder %q", st.name))
		}
		existed = existed || last
	}
	if existed && use != "" && c.madeParents[f.Name] && c.caps.Has(imap.CapMetadata) {
		// This folder was made earlier as the parent of another, before
		// its own turn came, so it was made without its role: give it
		// now, through the METADATA entry RFC 6154 section 4 defines. A
		// folder that was there before this connection is left alone.
		val := []byte(use)
		if err := s.c.SetMetadata(f.Name, map[string]*[]byte{"/private/specialuse": &val}).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				s.fail(err)
				return f, s.classify(err, fmt.Sprintf("set the role of folder %q", f.Name))
			}
		}
	}
	if subErr != nil && len(failed) > 0 {
		// The pipelined SUBSCRIBE ran before the folder was made above.
		subErr = s.c.Subscribe(f.Name).Wait()
	}
	if subErr != nil {
		// A parent that could not be created also fails the SUBSCRIBE of
		// its child, so it is reported above first.
		s.fail(subErr)
		return f, s.classify(subErr, fmt.Sprintf("subscribe folder %q", f.Name))
	}
	return f, nil
}

// useAttr is the SPECIAL-USE attribute to create a folder for role with,
// "" when the server cannot take one (RFC 6154 section 3).
func (c *Conn) useAttr(role mail.Role) imap.MailboxAttr {
	if role == mail.RoleNone || role == mail.RoleInbox || !c.caps.Has(imap.CapCreateSpecialUse) {
		return ""
	}
	return imap.MailboxAttr(role)
}

// exists reports whether LIST shows a folder called name. The name is
// the pattern: a '*' or '%' in it acts as a wildcard, which can only add
// other folders to the answer, and only an exact match counts.
func (c *Conn) exists(s *session, name string) (bool, error) {
	list, err := s.c.List("", name, nil).Collect()
	if err != nil {
		s.fail(err)
		return false, s.classify(err, fmt.Sprintf("list folder %q", name))
	}
	for _, l := range list {
		if l.Mailbox == name || strings.EqualFold(name, mail.InboxName) && strings.EqualFold(l.Mailbox, name) {
			for _, a := range l.Attrs {
				if strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
					return false, nil
				}
			}
			return true, nil
		}
	}
	return false, nil
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return false
	}
	return ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exists")
}

// Quota implements connector.QuotaReader using GETQUOTAROOT INBOX (RFC 9208).
func (c *Conn) Quota(ctx context.Context) (connector.Quota, bool, error) {
	if !c.caps.Has(imap.CapQuota) {
		return connector.Quota{}, false, nil
	}
	s, err := c.acquire(ctx)
	if err != nil {
		return connector.Quota{}, false, err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()()
	roots, err := s.c.GetQuotaRoot(mail.InboxName).Wait()
	if err != nil {
		s.fail(err)
		var ie *imap.Error
		if errors.As(err, &ie) {
			return connector.Quota{}, false, nil // no quota root: unlimited
		}
		// An answer go-imap cannot parse (Courier-IMAP sends `* QUOTA
		// "ROOT"` without the resource list RFC 9208 section 7.1
		// requires, when no quota is set) says nothing about the quota:
		// unknown, as without QUOTA. Network trouble stays an error.
		if e := s.classify(err, "read quota"); connector.KindOf(e) != connector.KindUnknown {
			return connector.Quota{}, false, e
		}
		return connector.Quota{}, false, nil
	}
	for _, r := range roots {
		if res, ok := r.Resources[imap.QuotaResourceStorage]; ok {
			// STORAGE is counted in units of 1024 octets (RFC 9208 5.1).
			return connector.Quota{Used: res.Usage * 1024, Limit: res.Limit * 1024}, true, nil
		}
	}
	return connector.Quota{}, false, nil
}

// Statuses implements connector.StatusReader with STATUS (RFC 3501
// section 6.3.10), adding SIZE (RFC 8438) and HIGHESTMODSEQ (RFC 7162)
// where the server has them. All STATUS commands go out on one session
// before any answer is read, so a delta pass over many folders costs one
// round trip, not one per folder. A folder is Unchanged when its
// UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ equal its cursor's and
// the server has CONDSTORE: without it a flag change leaves STATUS as it
// was, so nothing can vouch for an untouched folder.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	s, err := c.acquire(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return sts, errs
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()()
	var desel *imapclient.Command
	for _, f := range folders {
		if f.Name == s.selected {
			desel = c.deselect(s)
			break
		}
	}
	opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		HighestModSeq: c.condStore, Size: c.caps.Has(imap.CapStatusSize)}
	cmds := make([]*imapclient.StatusCommand, len(folders))
	for i, f := range folders {
		cmds[i] = s.c.Status(f.Name, opts)
	}
	if desel != nil {
		if err := desel.Wait(); err != nil {
			s.fail(err) // a NO leaves the session usable; the STATUS answers stand
		}
	}
	for i, cmd := range cmds {
		data, err := cmd.Wait()
		if err != nil {
			s.fail(err)
			errs[i] = s.classify(err, fmt.Sprintf("status of folder %q", folders[i].Name))
			continue
		}
		st := connector.FolderStatus{}
		if data.NumMessages != nil {
			st.Messages = int64(*data.NumMessages)
		}
		if data.Size != nil {
			st.Size = *data.Size
		}
		if i < len(since) && since[i] != "" {
			if cur, ok := parseCursor(since[i]); ok && data.NumMessages != nil {
				st.Unchanged = cur.modSeq != 0 && data.HighestModSeq == cur.modSeq && data.UIDValidity == cur.uidValidity &&
					uint32(data.UIDNext) == cur.uidNext && int64(*data.NumMessages) == cur.messages
			}
		}
		sts[i] = st
	}
	return sts, errs
}
