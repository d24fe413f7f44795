package graphserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

var folderProps = []string{"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount", "isHidden", "wellKnownName"}

// folderProperties returns the properties of the version: wellKnownName is
// documented in beta only.
func folderProperties(version string) []string {
	if version == "beta" {
		return folderProps
	}
	return folderProps[:7]
}

// resolveFolder finds the folder of a mailFolders/{id}/childFolders/{id}
// chain; each key is an id or (for the first) a well-known name, and each
// must be a child of the one before.
func (c *reqCtx) resolveFolder() (*folder, *graphError) {
	var f *folder
	for i, k := range c.t.folderKeys {
		var next *folder
		if i == 0 {
			next = c.u.lookupFolder(k)
		} else if cand := c.u.lookupFolder(k); cand != nil && cand.parent == f {
			next = cand
		}
		if next == nil {
			return nil, errItemNotFound()
		}
		f = next
	}
	return f, nil
}

func (c *reqCtx) folderJSON(f *folder) obj {
	unread := 0
	for _, m := range f.messages {
		if !m.isRead {
			unread++
		}
	}
	o := obj{{"id", f.id}, {"displayName", f.displayName}}
	parent := ""
	if f.parent != nil {
		parent = f.parent.id
	} else {
		parent = "AAMkAGP" + f.id[7:] // the root's parent is outside the IPM subtree
	}
	o.set("parentFolderId", parent)
	o.set("childFolderCount", len(f.children))
	o.set("unreadItemCount", unread)
	o.set("totalItemCount", len(f.messages))
	o.set("isHidden", f.hidden)
	if c.version == "beta" {
		if f.wellKnown != "" {
			o.set("wellKnownName", f.wellKnown)
		} else {
			o.set("wellKnownName", nil)
		}
	}
	return o
}

func (s *Server) handleGetFolder(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select ", folderProperties(c.version), "microsoft.graph.mailFolder")
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	f, gerr := c.resolveFolder()
	if gerr != nil {
		s.mu.Unlock()
		return gerr
	}
	o := obj{{"@odata.context", c.context(c.userCtx() + "/mailFolders/$entity")}}
	o = append(o, c.folderJSON(f).pick(q.sel)...)
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// handleListFolders serves mailFolders (children of msgfolderroot) and
// childFolders, paged with $top and $skip like the real service's
// @odata.nextLink.
func (s *Server) handleListFolders(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select $top $skip ", folderProperties(c.version), "microsoft.graph.mailFolder")
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := c.u.root
	ctxPath := c.userCtx() + "/mailFolders"
	if c.t.route == RouteListChildFolders {
		f, gerr := c.resolveFolder()
		if gerr != nil {
			return gerr
		}
		parent = f
		ctxPath = c.userCtx() + "/mailFolders('" + f.id + "')/childFolders"
	}
	var all []*folder
	for _, f := range parent.children {
		if !f.hidden || q.includeHidden {
			all = append(all, f)
		}
	}
	size := s.opts.PageSize
	if q.top > 0 {
		size = q.top
	}
	if size > 1000 {
		size = 1000
	}
	from := q.skip
	if from > len(all) {
		from = len(all)
	}
	to := from + size
	if to > len(all) {
		to = len(all)
	}
	o := obj{{"@odata.context", c.context(ctxPath)}}
	if to < len(all) {
		nq := url.Values{}
		for k, v := range c.r.URL.Query() {
			nq[k] = v
		}
		nq.Set("$skip", strconv.Itoa(to))
		if q.top == 0 {
			nq.Set("$top", strconv.Itoa(size))
		}
		o.set("@odata.nextLink", c.s.URL+c.r.URL.Path+"?"+encodeQuery(nq))
	}
	vals := make([]obj, 0, to-from)
	for _, f := range all[from:to] {
		vals = append(vals, c.folderJSON(f).pick(q.sel))
	}
	o.set("value", vals)
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// handleCreateFolder serves POST mailFolders and childFolders: displayName
// and isHidden are the only writable properties (mailfolder-post-
// childfolders, user-post-mailfolders).
func (s *Server) handleCreateFolder(c *reqCtx) *graphError {
	if gerr := jsonContent(c.r); gerr != nil {
		return gerr
	}
	props, gerr := decodeObject(c.body, "microsoft.graph.mailFolder")
	if gerr != nil {
		return gerr
	}
	var name string
	var hidden bool
	for k, raw := range props {
		switch strings.ToLower(k) {
		case "displayname":
			if err := json.Unmarshal(raw, &name); err != nil {
				return errBodyRead("Cannot convert a value to target type 'Edm.String' because of conflict between input format string/number and parameter 'IEEE754Compatible' false/true.")
			}
		case "ishidden":
			if err := json.Unmarshal(raw, &hidden); err != nil {
				return errBodyRead("Cannot convert the literal '%s' to the expected type 'Edm.Boolean'.", string(raw))
			}
		case "@odata.type":
		case "id", "parentfolderid", "childfoldercount", "unreaditemcount", "totalitemcount", "wellknownname":
			return errBodyRead("The property '%s' is read-only and cannot be set.", k)
		default:
			return errUnknownProperty(k, "microsoft.graph.mailFolder")
		}
	}
	if strings.TrimSpace(name) == "" {
		return newError(http.StatusBadRequest, "ErrorInvalidRequest", "The folder's display name must be specified and not empty.")
	}
	s.mu.Lock()
	parent := c.u.root
	if c.t.route == RouteCreateChildFolder {
		f, gerr := c.resolveFolder()
		if gerr != nil {
			s.mu.Unlock()
			return gerr
		}
		parent = f
	}
	for _, ch := range parent.children {
		if strings.EqualFold(ch.displayName, name) {
			s.mu.Unlock()
			return newError(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
		}
	}
	f := s.createFolder(c.u, parent, name, hidden)
	o := obj{{"@odata.context", c.context(c.userCtx() + "/mailFolders/$entity")}}
	o = append(o, c.folderJSON(f)...)
	s.mu.Unlock()
	writeJSON(c.w, http.StatusCreated, o)
	return nil
}

// decodeObject parses a JSON object body, keeping raw values; a body that
// is not a JSON object is a RequestBodyRead error.
func decodeObject(body []byte, typ string) (map[string]json.RawMessage, *graphError) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(body, &props); err != nil || props == nil {
		return nil, errBodyRead("The request body could not be read as a JSON object of type '%s'.", typ)
	}
	return props, nil
}
