package ews

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// pageSize is the entries one FindFolder or FindItem page asks for: the
// default EWSFindCountLimit (ews-throttling-in-exchange: "The default
// policy in Exchange limits the page size to 1000 items"). A server with
// a lower limit returns a partial page with IncludesLastItemInRange
// false, and the next page starts where it stopped.
const pageSize = 1000

// folderProps are what a folder listing asks for.
var folderProps = []prop{{Field: "folder:ParentFolderId"}, {Field: "folder:DisplayName"}, {Field: "folder:FolderClass"}}

// findFolders lists every folder below parent (Deep) or its children
// (Shallow), page by page until IncludesLastItemInRange
// (exchange-web-services/how-to-perform-paged-searches-by-using-ews-in-
// exchange).
func (c *Conn) findFolders(ctx context.Context, what string, parent folderRef, traversal string, props []prop) ([]folderXML, error) {
	var out []folderXML
	offset := 0
	for {
		var resp findFolderResp
		err := c.cl.call(ctx, what, &findFolderReq{
			Traversal: traversal,
			Shape:     idOnly(props...),
			View:      pageView{Max: pageSize, Offset: offset, BasePoint: "Beginning"},
			Parents:   []folderRef{parent},
		}, &resp)
		if err != nil {
			return nil, err
		}
		if len(resp.Messages) != 1 {
			return nil, protocolErr(what, "FindFolder answered %d messages for one folder", len(resp.Messages))
		}
		m := resp.Messages[0]
		if err := messageErr(m.respStatus, what); err != nil {
			return nil, err
		}
		got := m.Root.Folders.Folders
		out = append(out, got...)
		if m.Root.Last {
			return out, nil
		}
		next := m.Root.Offset
		if next <= offset {
			if len(got) == 0 {
				return nil, protocolErr(what, "FindFolder returned an empty page that is not the last one")
			}
			next = offset + len(got)
		}
		offset = next
	}
}

func protocolErr(what, format string, args ...any) error {
	return &connector.Error{Kind: connector.KindTransient, Op: what, Hint: hintProtocol, Err: fmt.Errorf(format, args...)}
}

// isMailClass reports whether a FolderClass holds mail: IPF.Note and its
// descendants (IPF.Note.OutlookHomepage, …), and folders without a class
// (folders made by IMAP clients and older tools).
func isMailClass(class string) bool {
	return class == "" || strings.EqualFold(class, "IPF.Note") || strings.HasPrefix(strings.ToUpper(class), "IPF.NOTE.") ||
		strings.EqualFold(class, "IPF.Imap")
}

// Folders lists every folder below the message folder root ("Top of
// Information Store"). Paths are built from DisplayNames; a name may
// hold any character, '/' included, since a mail.Path keeps segments
// apart (Delimiter is 0: EWS has no hierarchy delimiter). The inbox is
// {"INBOX"} whatever its (localised) name. Roles come from the
// distinguished folder ids (RoleFromServer), Archive from its name.
// Calendars, contacts, tasks, notes and other non-mail folders are
// listed with Class set to their FolderClass; search folders with Class
// "SearchFolder".
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	what := "list the folders of " + c.who()
	raw, err := c.findFolders(ctx, what, folderRef{ID: c.wk.msgRoot}, "Deep", folderProps)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]folderXML, len(raw))
	for _, f := range raw {
		byID[f.ID.ID] = f
	}
	children := map[string]map[string]cachedFolder{}
	paths := map[string]mail.Path{}
	var pathOf func(id string, depth int) (mail.Path, bool)
	pathOf = func(id string, depth int) (mail.Path, bool) {
		if p, ok := paths[id]; ok {
			return p, true
		}
		f, ok := byID[id]
		if !ok || depth > 256 {
			return nil, false
		}
		var p mail.Path
		switch {
		case id == c.wk.inbox:
			p = mail.Path{mail.InboxName}
		case f.Parent.ID == c.wk.msgRoot:
			p = mail.Path{topName(f.DisplayName)}
		default:
			pp, ok := pathOf(f.Parent.ID, depth+1)
			if !ok {
				return nil, false
			}
			p = append(append(mail.Path{}, pp...), f.DisplayName)
		}
		paths[id] = p
		return p, true
	}
	out := make([]connector.Folder, 0, len(raw))
	for _, f := range raw {
		p, ok := pathOf(f.ID.ID, 0)
		if !ok {
			continue // its parent is not below the message folder root
		}
		cf := connector.Folder{Path: p, Name: f.ID.ID}
		if f.XMLName.Local == "SearchFolder" {
			cf.Class = "SearchFolder"
		} else if !isMailClass(f.Class) {
			cf.Class = f.Class
		}
		if r, ok := c.wk.roles[f.ID.ID]; ok {
			cf.Role, cf.RoleFromServer = r, true
		} else if cf.IsMail() {
			cf.Role = mail.RoleFromName(p)
			if cf.Role == mail.RoleInbox {
				cf.Role = mail.RoleNone
			}
		}
		out = append(out, cf)
		parent := f.Parent.ID
		if children[parent] == nil {
			children[parent] = map[string]cachedFolder{}
		}
		children[parent][strings.ToLower(f.DisplayName)] = cachedFolder{id: f.ID.ID, name: f.DisplayName, class: f.Class}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Path, out[j].Path
		if a.IsInbox() != b.IsInbox() {
			return a.IsInbox()
		}
		return a.Key() < b.Key()
	})
	c.mu.Lock()
	c.children = children
	c.mu.Unlock()
	return out, nil
}

// topName keeps a top-level folder that is named like the inbox apart
// from the inbox itself (a mailbox whose inbox has a localised name may
// hold a user folder called "Inbox"): without this both would be
// mail.Path{"INBOX"}.
func topName(name string) string {
	if strings.EqualFold(name, mail.InboxName) {
		return name + " (folder)"
	}
	return name
}

// CreateFolder creates p and its missing parents below the message
// folder root ({"INBOX", …} below the inbox) and returns it. A folder
// that exists is not an error: CreateFolder's ErrorFolderExists
// (web-service-reference/createfolder-operation) is answered by looking
// the folder up. Exchange compares names without regard to case, so
// "work" finds an existing "Work". role is ignored: EWS cannot mark a
// folder's special use. A name that exists as a calendar, contacts or
// other non-mail folder is returned with its Class set.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	p = p.Canonical()
	what := fmt.Sprintf("create folder %q in %s", p.String(), c.who())
	if len(p) == 0 {
		return connector.Folder{}, &connector.Error{Kind: connector.KindConfig, Op: what, Err: errors.New("empty folder path")}
	}
	parent, rest := c.wk.msgRoot, p
	got := mail.Path{}
	class := ""
	if strings.EqualFold(p[0], mail.InboxName) {
		parent, rest, got = c.wk.inbox, p[1:], mail.Path{mail.InboxName}
	}
	for _, seg := range rest {
		if seg == "" {
			return connector.Folder{}, &connector.Error{Kind: connector.KindConfig, Op: what, Err: errors.New("empty folder name")}
		}
		f, err := c.child(ctx, what, parent, seg)
		if err != nil {
			return connector.Folder{}, err
		}
		got = append(got, f.name)
		if parent == c.wk.msgRoot {
			got[len(got)-1] = topName(f.name)
		}
		parent, class = f.id, f.class
	}
	out := connector.Folder{Path: got, Name: parent}
	if !isMailClass(class) {
		out.Class = class
	}
	if r, ok := c.wk.roles[parent]; ok {
		out.Role, out.RoleFromServer = r, true
	} else if out.IsMail() {
		out.Role = mail.RoleFromName(got)
	}
	return out, nil
}

// child finds or creates the folder name under parent.
func (c *Conn) child(ctx context.Context, what, parent, name string) (cachedFolder, error) {
	key := strings.ToLower(name)
	c.mu.Lock()
	f, ok := c.children[parent][key]
	c.mu.Unlock()
	if ok {
		return f, nil
	}
	var resp createFolderResp
	req := &createFolderReq{Parent: folderRef{ID: parent}}
	req.Folders = append(req.Folders, struct {
		Class string `xml:"t:FolderClass"`
		Name  string `xml:"t:DisplayName"`
	}{"IPF.Note", name})
	err := c.cl.call(ctx, what, req, &resp)
	if err != nil {
		return cachedFolder{}, err
	}
	if len(resp.Messages) != 1 {
		return cachedFolder{}, protocolErr(what, "CreateFolder answered %d messages for one folder", len(resp.Messages))
	}
	m := resp.Messages[0]
	switch {
	case m.Code == "ErrorFolderExists":
		return c.lookupChild(ctx, what, parent, name)
	case m.Code == "ErrorParentFolderNotFound":
		// The cache named a folder deleted meanwhile; forget it.
		c.mu.Lock()
		for _, kids := range c.children {
			for k, v := range kids {
				if v.id == parent {
					delete(kids, k)
				}
			}
		}
		c.mu.Unlock()
		return cachedFolder{}, messageErr(m.respStatus, what)
	}
	if err := messageErr(m.respStatus, what); err != nil {
		return cachedFolder{}, err
	}
	if len(m.Folders.Folders) == 0 || m.Folders.Folders[0].ID.ID == "" {
		return cachedFolder{}, protocolErr(what, "CreateFolder returned no FolderId")
	}
	f = cachedFolder{id: m.Folders.Folders[0].ID.ID, name: name, class: "IPF.Note"}
	c.remember(parent, f)
	return f, nil
}

// lookupChild finds an existing folder by name among parent's children.
func (c *Conn) lookupChild(ctx context.Context, what, parent, name string) (cachedFolder, error) {
	kids, err := c.findFolders(ctx, what, folderRef{ID: parent}, "Shallow", folderProps)
	if err != nil {
		return cachedFolder{}, err
	}
	var found *cachedFolder
	for _, k := range kids {
		cf := cachedFolder{id: k.ID.ID, name: k.DisplayName, class: k.Class}
		c.remember(parent, cf)
		if strings.EqualFold(k.DisplayName, name) && found == nil {
			found = &cf
		}
	}
	if found == nil {
		return cachedFolder{}, protocolErr(what, "Exchange said the folder exists but does not list it")
	}
	return *found, nil
}

func (c *Conn) remember(parent string, f cachedFolder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.children[parent] == nil {
		c.children[parent] = map[string]cachedFolder{}
	}
	c.children[parent][strings.ToLower(f.name)] = f
}

// statusBatch is how many folders one GetFolder asks for.
const statusBatch = 100

// Statuses reads TotalCount and PR_MESSAGE_SIZE_EXTENDED of many folders
// with one GetFolder per hundred folders. Unchanged is never set: EWS has
// no folder counter that changes with every flag change, so a folder is
// checked with one SyncFolderItems call instead (List with Since), which
// costs one call when nothing changed.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	for start := 0; start < len(folders); start += statusBatch {
		end := min(start+statusBatch, len(folders))
		ids := make([]folderRef, 0, end-start)
		for _, f := range folders[start:end] {
			ids = append(ids, folderRef{ID: f.Name})
		}
		what := "read folder counters of " + c.who()
		var resp getFolderResp
		err := c.cl.call(ctx, what, &getFolderReq{Shape: idOnly(prop{Field: "folder:TotalCount"}, propFolderSize), FolderIDs: ids}, &resp)
		if err == nil && len(resp.Messages) != len(ids) {
			err = protocolErr(what, "GetFolder answered %d messages for %d folders", len(resp.Messages), len(ids))
		}
		for i := start; i < end; i++ {
			if err != nil {
				errs[i] = err
				continue
			}
			m := resp.Messages[i-start]
			if e := messageErr(m.respStatus, c.folderOp("read counters of", folders[i])); e != nil {
				errs[i] = e
				continue
			}
			if len(m.Folders.Folders) == 0 {
				errs[i] = protocolErr(what, "GetFolder returned no folder")
				continue
			}
			f := m.Folders.Folders[0]
			if f.TotalCount != nil {
				sts[i].Messages = *f.TotalCount
			}
			if n, ok := findExtInt(f.Extended, propFolderSize.Tag); ok && n > 0 {
				sts[i].Size = n
			}
		}
	}
	return sts, errs
}

// Quota reads the mailbox's "prohibit send and receive" quota from the
// root folder and adds up PR_MESSAGE_SIZE_EXTENDED of every folder for
// what is used. ok is false when the server does not report a quota
// (EWS has no operation for mailbox statistics; see wire.go).
func (c *Conn) Quota(ctx context.Context) (connector.Quota, bool, error) {
	what := "read the quota of " + c.who()
	var resp getFolderResp
	err := c.cl.call(ctx, what, &getFolderReq{Shape: idOnly(propQuotaReceive), FolderIDs: []folderRef{{Distinguished: "root"}}}, &resp)
	if err != nil {
		return connector.Quota{}, false, err
	}
	if len(resp.Messages) != 1 {
		return connector.Quota{}, false, protocolErr(what, "GetFolder answered %d messages for one folder", len(resp.Messages))
	}
	if err := messageErr(resp.Messages[0].respStatus, what); err != nil {
		return connector.Quota{}, false, err
	}
	var limit int64
	if fs := resp.Messages[0].Folders.Folders; len(fs) > 0 {
		if q, ok := findExtInt(fs[0].Extended, propQuotaReceive.Tag); ok && q > 0 {
			limit = q << 10
		}
	}
	if limit == 0 {
		return connector.Quota{}, false, nil
	}
	all, err := c.findFolders(ctx, what, folderRef{ID: c.wk.root}, "Deep", []prop{propFolderSize})
	if err != nil {
		return connector.Quota{}, false, err
	}
	var used int64
	for _, f := range all {
		if n, ok := findExtInt(f.Extended, propFolderSize.Tag); ok && n > 0 {
			used += n
		}
	}
	return connector.Quota{Used: used, Limit: limit}, true, nil
}
