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
	var opts *imap.ListOptions
	if c.caps.Has(imap.CapSpecialUse) && (c.caps.Has(imap.CapListExtended) || c.caps.Has(imap.CapIMAP4rev2)) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := s.c.List("", "*", opts).Collect()
	if err != nil {
		s.fail(err)
		return nil, classify(err, "list folders")
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

// CreateFolder implements connector.Destination.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path) (connector.Folder, error) {
	f := connector.Folder{Path: p.Canonical(), Name: c.ns.nameOf(p), Delimiter: c.ns.delim, Role: mail.RoleFromName(p)}
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
	// Parents first: RFC 3501 only says servers SHOULD create them. The
	// commands are pipelined (one round trip for the whole chain): the
	// server runs them in order, and a parent that fails for a reason
	// other than existing already is reported before its children.
	type step struct {
		name string
		cmd  *imapclient.Command
	}
	var steps []step
	for i := 1; i <= len(p); i++ {
		if i == 1 && p[0] == mail.InboxName && len(p) > 1 {
			continue
		}
		name := c.ns.nameOf(p[:i])
		steps = append(steps, step{name, s.c.Create(name, nil)})
	}
	sub := s.c.Subscribe(f.Name)
	var first error
	for _, st := range steps {
		if err := st.cmd.Wait(); err != nil && !alreadyExists(err) && first == nil {
			first = classify(err, fmt.Sprintf("create folder %q", st.name))
			s.fail(err)
		}
	}
	if err := sub.Wait(); err != nil && first == nil {
		first = classify(err, fmt.Sprintf("subscribe folder %q", f.Name))
		s.fail(err)
	}
	return f, first
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return false
	}
	return ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exists")
}

// Quota implements connector.Conn using GETQUOTAROOT INBOX (RFC 9208).
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
	roots, err := s.c.GetQuotaRoot(mail.InboxName).Wait()
	if err != nil {
		s.fail(err)
		var ie *imap.Error
		if errors.As(err, &ie) {
			return connector.Quota{}, false, nil // no quota root: unlimited
		}
		return connector.Quota{}, false, classify(err, "read quota")
	}
	for _, r := range roots {
		if res, ok := r.Resources[imap.QuotaResourceStorage]; ok {
			// STORAGE is counted in units of 1024 octets (RFC 9208 5.1).
			return connector.Quota{Used: res.Usage * 1024, Limit: res.Limit * 1024}, true, nil
		}
	}
	return connector.Quota{}, false, nil
}

// Status implements connector.Conn with one STATUS command (RFC 3501
// 6.3.10), adding SIZE (RFC 8438) and HIGHESTMODSEQ (RFC 7162) where the
// server has them.
func (c *Conn) Status(ctx context.Context, f connector.Folder) (connector.FolderStatus, error) {
	sts, errs := c.Statuses(ctx, []connector.Folder{f})
	return sts[0], errs[0]
}

// Statuses implements connector.Conn: all STATUS commands go out on one
// session before any answer is read, so a delta pass over many folders
// costs one round trip, not one per folder.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder) ([]connector.FolderStatus, []error) {
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
	opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		HighestModSeq: c.feats.CondStore, Size: c.caps.Has(imap.CapStatusSize)}
	cmds := make([]*imapclient.StatusCommand, len(folders))
	for i, f := range folders {
		cmds[i] = s.c.Status(f.Name, opts)
	}
	for i, cmd := range cmds {
		data, err := cmd.Wait()
		if err != nil {
			s.fail(err)
			errs[i] = classify(err, fmt.Sprintf("status of folder %q", folders[i].Name))
			continue
		}
		st := connector.FolderStatus{UIDNext: uint32(data.UIDNext), UIDValidity: data.UIDValidity, HighestModSeq: data.HighestModSeq}
		if data.NumMessages != nil {
			st.Messages = *data.NumMessages
		}
		if data.Size != nil {
			st.Size = *data.Size
		}
		sts[i] = st
	}
	return sts, errs
}
