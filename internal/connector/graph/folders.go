package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// wellKnownRoles are the well-known folder names of the mailFolder
// resource page that have a Mailferry role; their ids are looked up and
// compared, never their display names (which follow the mailbox's
// language).
var wellKnownRoles = []struct {
	name string
	role mail.Role
}{
	{"inbox", mail.RoleInbox},
	{"sentitems", mail.RoleSent},
	{"drafts", mail.RoleDrafts},
	{"deleteditems", mail.RoleTrash},
	{"junkemail", mail.RoleJunk},
	{"archive", mail.RoleArchive},
}

const folderSelect = "id,displayName,parentFolderId,childFolderCount,totalItemCount,isHidden"

type graphFolder struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	ParentFolderID   string `json:"parentFolderId"`
	ChildFolderCount int    `json:"childFolderCount"`
	TotalItemCount   int64  `json:"totalItemCount"`
	IsHidden         bool   `json:"isHidden"`
}

type folderPage struct {
	Value    []graphFolder `json:"value"`
	NextLink string        `json:"@odata.nextLink"`
}

type folderNode struct {
	graphFolder
	path mail.Path
}

// folderTree is the folder hierarchy as last read, updated by
// CreateFolder. Guarded by Conn.folderMu.
type folderTree struct {
	rootID string
	byID   map[string]*folderNode
	kids   map[string][]*folderNode // parent id → children
}

func (t *folderTree) add(n *folderNode) {
	if _, dup := t.byID[n.ID]; dup {
		return
	}
	t.byID[n.ID] = n
	t.kids[n.ParentFolderID] = append(t.kids[n.ParentFolderID], n)
}

// child finds a child by display name. Exchange refuses two children
// whose names differ only in case (ErrorFolderExists), so the match is
// case-insensitive.
func (t *folderTree) child(parent, name string) *folderNode {
	for _, k := range t.kids[parent] {
		if strings.EqualFold(k.DisplayName, name) {
			return k
		}
	}
	return nil
}

// loadWellKnown looks up the root's and the well-known folders' ids in
// one JSON batch. A folder the mailbox lacks (archive, often) answers
// 404 and is skipped.
func (c *Conn) loadWellKnown(ctx context.Context) error {
	if c.wellKnown != nil {
		return nil
	}
	items := []batchItem{{Method: http.MethodGet, URL: strings.TrimPrefix(c.user, "/v1.0") + "/mailFolders/msgfolderroot?$select=id"}}
	for _, w := range wellKnownRoles {
		items = append(items, batchItem{Method: http.MethodGet, URL: strings.TrimPrefix(c.user, "/v1.0") + "/mailFolders/" + w.name + "?$select=id"})
	}
	res, err := c.batch(ctx, items)
	if err != nil {
		return err
	}
	known := map[string]string{}
	rootID := ""
	for i, r := range res {
		if r.Err != nil {
			if r.Status == http.StatusNotFound && i > 0 {
				continue
			}
			return c.sortError(r.Err, accessRead, connector.KindNoAccount, connector.KindConfig, "look up the well-known folders of %s", c.endpoint.Redacted)
		}
		var f graphFolder
		if err := json.Unmarshal(r.Body, &f); err != nil || f.ID == "" {
			return fmt.Errorf("graph: a well-known folder came without an id")
		}
		if i == 0 {
			rootID = f.ID
		} else {
			known[f.ID] = wellKnownRoles[i-1].name
			if wellKnownRoles[i-1].name == "inbox" {
				c.inboxID = f.ID
			}
		}
	}
	c.wellKnown = known
	c.tree = &folderTree{rootID: rootID, byID: map[string]*folderNode{}, kids: map[string][]*folderNode{}}
	return nil
}

// Folders lists every (visible) mail folder below the root. Hidden folders
// (isHidden) are left out, as Outlook leaves them out; CreateFolder still
// finds them when a name is taken by one.
func (c *Conn) Folders(ctx context.Context) ([]connector.Folder, error) {
	c.folderMu.Lock()
	defer c.folderMu.Unlock()
	if err := c.loadTree(ctx); err != nil {
		return nil, err
	}
	var out []connector.Folder
	for _, n := range c.tree.byID {
		if n.IsHidden || n.path == nil {
			continue
		}
		out = append(out, c.folderOf(n))
	}
	sort.Slice(out, func(i, j int) bool { return pathLess(out[i].Path, out[j].Path) })
	return out, nil
}

func pathLess(a, b mail.Path) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func (c *Conn) folderOf(n *folderNode) connector.Folder {
	role := mail.RoleNone
	if name, ok := c.wellKnown[n.ID]; ok {
		for _, w := range wellKnownRoles {
			if w.name == name {
				role = w.role
			}
		}
	}
	return connector.Folder{Path: n.path, Name: n.ID, Role: role, RoleFromServer: true, Delimiter: '/'}
}

// loadTree reads the whole hierarchy: the root's children, then the
// children of every folder that has some, the first page of up to 20
// folders per JSON batch.
func (c *Conn) loadTree(ctx context.Context) error {
	if err := c.loadWellKnown(ctx); err != nil {
		return err
	}
	t := &folderTree{rootID: c.tree.rootID, byID: map[string]*folderNode{}, kids: map[string][]*folderNode{}}
	query := "?$top=100&$select=" + folderSelect
	top, err := c.folderPages(ctx, c.user+"/mailFolders"+query, "")
	if err != nil {
		return err
	}
	level := c.addNodes(t, nil, top)
	for len(level) > 0 {
		var parents []*folderNode
		for _, n := range level {
			if n.ChildFolderCount > 0 {
				parents = append(parents, n)
			}
		}
		var next []*folderNode
		for start := 0; start < len(parents); start += maxBatch {
			group := parents[start:min(start+maxBatch, len(parents))]
			items := make([]batchItem, len(group))
			for i, p := range group {
				items[i] = batchItem{Method: http.MethodGet, URL: strings.TrimPrefix(c.user, "/v1.0") + "/mailFolders/" + url.PathEscape(p.ID) + "/childFolders" + query}
			}
			res, err := c.batch(ctx, items)
			if err != nil {
				return err
			}
			for i, r := range res {
				if r.Err != nil {
					if r.Status == http.StatusNotFound {
						continue // deleted meanwhile
					}
					return c.sortError(r.Err, accessRead, connector.KindMissingFolder, connector.KindConfig, "list the subfolders of %q", group[i].path.String())
				}
				var page folderPage
				if err := json.Unmarshal(r.Body, &page); err != nil {
					return fmt.Errorf("graph: read the subfolders of %q: %w", group[i].path.String(), err)
				}
				kids := page.Value
				if page.NextLink != "" {
					more, err := c.folderPages(ctx, page.NextLink, group[i].path.String())
					if err != nil {
						return err
					}
					kids = append(kids, more...)
				}
				next = append(next, c.addNodes(t, group[i].path, kids)...)
			}
		}
		level = next
	}
	c.tree = t
	return nil
}

func (c *Conn) addNodes(t *folderTree, parent mail.Path, fs []graphFolder) []*folderNode {
	var out []*folderNode
	for _, f := range fs {
		n := &folderNode{graphFolder: f}
		if parent == nil && f.ID == c.inboxID {
			n.path = mail.Path{mail.InboxName}
		} else {
			n.path = append(append(mail.Path{}, parent...), f.DisplayName)
		}
		t.add(n)
		out = append(out, n)
	}
	return out
}

// folderPages follows a folder collection to its end.
func (c *Conn) folderPages(ctx context.Context, link, what string) ([]graphFolder, error) {
	var all []graphFolder
	for link != "" {
		if !strings.HasPrefix(link, "/") && !c.sameOrigin(link) {
			return nil, fmt.Errorf("graph: a folder page link leaves the service root")
		}
		var page folderPage
		if err := c.getJSON(ctx, link, &page); err != nil {
			if what == "" {
				what = "the top-level folders"
			}
			return nil, c.sortError(err, accessRead, connector.KindMissingFolder, connector.KindConfig, "list %s of %s", what, c.endpoint.Redacted)
		}
		all = append(all, page.Value...)
		link = page.NextLink
	}
	return all, nil
}

// CreateFolder creates p and its missing parents. A folder that exists,
// found in the tree or reported by Graph as 409 ErrorFolderExists (also
// when a hidden folder holds the name), is returned as it is. role is
// not used: Graph cannot mark a folder's special use; the well-known
// folders exist in every mailbox.
func (c *Conn) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	p = p.Canonical()
	if len(p) == 0 {
		return connector.Folder{}, connector.Errorf(connector.KindConfig, "", errors.New("empty folder path"), "create a folder")
	}
	for _, seg := range p {
		if strings.TrimSpace(seg) == "" {
			return connector.Folder{}, connector.Errorf(connector.KindItem, "", fmt.Errorf("empty segment in %q", p.String()), "create folder %q", p.String())
		}
	}
	c.folderMu.Lock()
	defer c.folderMu.Unlock()
	if c.tree == nil || len(c.tree.byID) == 0 {
		if err := c.loadTree(ctx); err != nil {
			return connector.Folder{}, err
		}
	}
	parent, segs := c.tree.rootID, []string(p)
	var node *folderNode
	if p[0] == mail.InboxName {
		node = c.tree.byID[c.inboxID]
		if node == nil {
			return connector.Folder{}, connector.Errorf(connector.KindMissingFolder, "", errors.New("the mailbox has no inbox"), "create folder %q", p.String())
		}
		parent, segs = c.inboxID, p[1:]
	}
	for _, seg := range segs {
		n := c.tree.child(parent, seg)
		if n == nil {
			var err error
			if n, err = c.createChild(ctx, parent, seg); err != nil {
				return connector.Folder{}, c.sortError(err, accessWrite, connector.KindMissingFolder, connector.KindItem, "create folder %q", p.String())
			}
		}
		node, parent = n, n.ID
	}
	return c.folderOf(node), nil
}

func (c *Conn) createChild(ctx context.Context, parentID, name string) (*folderNode, error) {
	u := c.user + "/mailFolders/" + url.PathEscape(parentID) + "/childFolders"
	if parentID == c.tree.rootID {
		u = c.user + "/mailFolders"
	}
	body, _ := json.Marshal(map[string]any{"displayName": name, "isHidden": false})
	var f graphFolder
	// A resend after a lost answer meets 409, which is handled: safe to
	// resend.
	err := c.sendJSON(ctx, http.MethodPost, u, body, true, &f)
	if st, code := apiStatus(err); st == http.StatusConflict && strings.EqualFold(code, "ErrorFolderExists") {
		kids, lerr := c.folderPages(ctx, u+"?includeHiddenFolders=true&$top=100&$select="+folderSelect, "")
		if lerr != nil {
			return nil, lerr
		}
		for _, k := range kids {
			if strings.EqualFold(k.DisplayName, name) {
				f, err = k, nil
				break
			}
		}
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	parent := c.tree.byID[parentID]
	var ppath mail.Path
	if parent != nil {
		ppath = parent.path
	}
	if f.ParentFolderID == "" {
		f.ParentFolderID = parentID
	}
	n := &folderNode{graphFolder: f, path: append(append(mail.Path{}, ppath...), f.DisplayName)}
	if existing := c.tree.byID[f.ID]; existing != nil {
		return existing, nil
	}
	c.tree.add(n)
	return n, nil
}
