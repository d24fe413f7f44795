package graphserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Route names for RequestCount and InjectFault. A route reached through
// /mailFolders/{id}/messages/{id} counts as the /messages/{id} route.
const (
	RouteBatch               = "POST /$batch"
	RouteGetUser             = "GET /users/{id}"
	RouteListFolders         = "GET /users/{id}/mailFolders"
	RouteCreateFolder        = "POST /users/{id}/mailFolders"
	RouteGetFolder           = "GET /users/{id}/mailFolders/{id}"
	RouteListChildFolders    = "GET /users/{id}/mailFolders/{id}/childFolders"
	RouteCreateChildFolder   = "POST /users/{id}/mailFolders/{id}/childFolders"
	RouteListMessages        = "GET /users/{id}/mailFolders/{id}/messages"
	RouteListAllMessages     = "GET /users/{id}/messages"
	RouteDelta               = "GET /users/{id}/mailFolders/{id}/messages/delta"
	RouteCreateMessage       = "POST /users/{id}/messages"
	RouteCreateFolderMessage = "POST /users/{id}/mailFolders/{id}/messages"
	RouteImportMime          = "POST /beta/users/{id}/mailFolders/{id}/importMime"
	RouteGetMessage          = "GET /users/{id}/messages/{id}"
	RouteGetMIME             = "GET /users/{id}/messages/{id}/$value"
	RouteUpdateMessage       = "PATCH /users/{id}/messages/{id}"
	RouteDeleteMessage       = "DELETE /users/{id}/messages/{id}"
	RouteListAttachments     = "GET /users/{id}/messages/{id}/attachments"
	RouteAddAttachment       = "POST /users/{id}/messages/{id}/attachments"
	RouteGetAttachment       = "GET /users/{id}/messages/{id}/attachments/{id}"
	RouteDeleteAttachment    = "DELETE /users/{id}/messages/{id}/attachments/{id}"
	RouteCreateUploadSession = "POST /users/{id}/messages/{id}/attachments/createUploadSession"
	RouteUploadChunk         = "PUT uploadUrl"
	RouteCancelUpload        = "DELETE uploadUrl"
)

// target is a parsed Graph URL path.
type target struct {
	route      string
	me         bool
	userKey    string
	folderKeys []string // mailFolders/{a}/childFolders/{b}/... ; empty: the root collection
	viaFolder  bool     // message addressed under a folder
	messageKey string
	attachKey  string
	class      permClass
}

type permClass int

const (
	permUser permClass = iota
	permRead
	permReadBody
	permWrite
	permImport
)

// segment splits "name('key')" or "name(key)" into name and key.
func segment(s string) (name, key string) {
	if i := strings.IndexByte(s, '('); i > 0 && strings.HasSuffix(s, ")") {
		k := s[i+1 : len(s)-1]
		k = strings.TrimSuffix(strings.TrimPrefix(k, "'"), "'")
		return s[:i], k
	}
	return s, ""
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

func isAction(seg, name string) bool {
	return eq(seg, name) || eq(seg, "microsoft.graph."+name)
}

// parseTarget maps a path below the version to a route, or the error Graph
// gives for an unknown segment or an unsupported method.
func parseTarget(method, version string, segs []string) (*target, *graphError) {
	t := &target{}
	if len(segs) == 0 {
		return nil, errSegment("")
	}
	i := 0
	name, key := segment(segs[0])
	switch {
	case eq(name, "me") && key == "":
		t.me = true
		i = 1
	case eq(name, "users"):
		if key != "" {
			t.userKey, i = key, 1
		} else if len(segs) > 1 {
			t.userKey, i = segs[1], 2
		} else {
			return nil, errNotSupported()
		}
	default:
		return nil, errSegment(segs[0])
	}
	rest := segs[i:]
	pick := func(routes map[string]string) (*target, *graphError) {
		r, ok := routes[method]
		if !ok {
			return nil, errNotSupported()
		}
		t.route = r
		return t, nil
	}
	if len(rest) == 0 {
		t.class = permUser
		return pick(map[string]string{"GET": RouteGetUser})
	}
	name, key = segment(rest[0])
	switch {
	case eq(name, "mailFolders"):
		j := 1
		if key != "" {
			t.folderKeys = append(t.folderKeys, key)
		} else if len(rest) > 1 {
			t.folderKeys = append(t.folderKeys, rest[1])
			j = 2
		}
		if len(t.folderKeys) == 0 {
			if len(rest) > 1 {
				return nil, errSegment(rest[1])
			}
			t.class = permRead
			if method == "POST" {
				t.class = permWrite
			}
			return pick(map[string]string{"GET": RouteListFolders, "POST": RouteCreateFolder})
		}
		// childFolders chains: .../childFolders/{id}/childFolders/{id}...
		for j < len(rest) {
			n, k := segment(rest[j])
			if !eq(n, "childFolders") {
				break
			}
			if k == "" && j+1 < len(rest) {
				k = rest[j+1]
				j++
			}
			if k == "" {
				if j+1 != len(rest) {
					return nil, errSegment(rest[j+1])
				}
				t.class = permRead
				if method == "POST" {
					t.class = permWrite
				}
				return pick(map[string]string{"GET": RouteListChildFolders, "POST": RouteCreateChildFolder})
			}
			t.folderKeys = append(t.folderKeys, k)
			j++
		}
		rest = rest[j:]
		if len(rest) == 0 {
			t.class = permRead
			return pick(map[string]string{"GET": RouteGetFolder})
		}
		n, k := segment(rest[0])
		switch {
		case isAction(n, "importMime") && len(rest) == 1:
			if version != "beta" {
				return nil, errSegment(rest[0])
			}
			t.class = permImport
			return pick(map[string]string{"POST": RouteImportMime})
		case eq(n, "messages"):
			t.viaFolder = true
			if k == "" && len(rest) == 1 {
				t.class = permRead
				if method == "POST" {
					t.class = permWrite
				}
				return pick(map[string]string{"GET": RouteListMessages, "POST": RouteCreateFolderMessage})
			}
			if k == "" && len(rest) == 2 && isAction(rest[1], "delta") {
				t.class = permRead
				return pick(map[string]string{"GET": RouteDelta})
			}
			if k == "" {
				k, rest = rest[1], rest[1:]
			}
			t.messageKey = k
			return t.messageRoute(method, rest[1:])
		default:
			return nil, errSegment(rest[0])
		}
	case eq(name, "messages"):
		if key == "" && len(rest) == 1 {
			t.class = permRead
			if method == "POST" {
				t.class = permWrite
			}
			return pick(map[string]string{"GET": RouteListAllMessages, "POST": RouteCreateMessage})
		}
		if key == "" {
			key, rest = rest[1], rest[1:]
		}
		t.messageKey = key
		return t.messageRoute(method, rest[1:])
	default:
		return nil, errSegment(rest[0])
	}
}

func (t *target) messageRoute(method string, rest []string) (*target, *graphError) {
	pick := func(routes map[string]string, classes map[string]permClass) (*target, *graphError) {
		r, ok := routes[method]
		if !ok {
			return nil, errNotSupported()
		}
		t.route, t.class = r, classes[method]
		return t, nil
	}
	if len(rest) == 0 {
		return pick(map[string]string{"GET": RouteGetMessage, "PATCH": RouteUpdateMessage, "DELETE": RouteDeleteMessage},
			map[string]permClass{"GET": permRead, "PATCH": permWrite, "DELETE": permWrite})
	}
	n, k := segment(rest[0])
	switch {
	case n == "$value" && len(rest) == 1:
		return pick(map[string]string{"GET": RouteGetMIME}, map[string]permClass{"GET": permReadBody})
	case eq(n, "attachments"):
		if k == "" && len(rest) == 1 {
			return pick(map[string]string{"GET": RouteListAttachments, "POST": RouteAddAttachment},
				map[string]permClass{"GET": permReadBody, "POST": permWrite})
		}
		if k == "" && len(rest) == 2 && isAction(rest[1], "createUploadSession") {
			return pick(map[string]string{"POST": RouteCreateUploadSession}, map[string]permClass{"POST": permWrite})
		}
		if k == "" {
			k, rest = rest[1], rest[1:]
		}
		t.attachKey = k
		if len(rest) > 1 {
			return nil, errSegment(rest[1])
		}
		return pick(map[string]string{"GET": RouteGetAttachment, "DELETE": RouteDeleteAttachment},
			map[string]permClass{"GET": permReadBody, "DELETE": permWrite})
	default:
		return nil, errSegment(rest[0])
	}
}

// reqCtx carries one Graph request through its handler.
type reqCtx struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	version string
	reqID   string
	p       principal
	u       *mbx
	t       *target
	body    []byte
}

// base is the service root of this request, for @odata links.
func (c *reqCtx) base() string { return c.s.URL + "/" + c.version }

func (c *reqCtx) context(path string) string { return c.base() + "/$metadata#" + path }

func (c *reqCtx) userCtx() string { return "users('" + url.PathEscape(c.u.upn) + "')" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	h["OData-Version"] = []string{"4.0"} // as Graph spells it, not Go's canonical Odata-Version
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// jsonContent checks that a request body is declared as JSON.
func jsonContent(r *http.Request) *graphError {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errMediaType(ct)
	}
	return nil
}

// serveGraph runs one Graph request: route, count, faults, authentication,
// user and permission checks, throttling, then the handler. inBatch is set
// for the requests of a $batch.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, reqID string, inBatch *batchInfo) {
	now := s.now()
	path := strings.TrimPrefix(r.URL.Path, "/")
	version, rest, _ := strings.Cut(path, "/")
	var segs []string
	for _, sg := range strings.Split(rest, "/") {
		if sg != "" {
			segs = append(segs, sg)
		}
	}
	fail := func(e *graphError) { writeError(w, e, reqID, now) }

	if len(segs) == 1 && segs[0] == "$batch" {
		if gerr := s.countAndFault(RouteBatch); gerr != nil {
			fail(gerr)
			return
		}
		if inBatch != nil {
			fail(newError(http.StatusBadRequest, "BadRequest", "A batch request cannot contain another batch request."))
			return
		}
		if r.Method != http.MethodPost {
			fail(errNotSupported())
			return
		}
		p, gerr := s.authenticate(r)
		if gerr != nil {
			fail(gerr)
			return
		}
		s.serveBatch(w, r, version, reqID, p)
		return
	}
	t, gerr := parseTarget(r.Method, version, segs)
	if gerr != nil {
		fail(gerr)
		return
	}
	if gerr := s.countAndFault(t.route); gerr != nil {
		fail(gerr)
		return
	}
	p, gerr := s.authenticate(r)
	if gerr != nil {
		fail(gerr)
		return
	}
	c := &reqCtx{s: s, w: w, r: r, version: version, reqID: reqID, p: p, t: t}
	if gerr := s.resolveUser(c); gerr != nil {
		fail(gerr)
		return
	}
	if gerr := s.checkPermission(c); gerr != nil {
		fail(gerr)
		return
	}
	if t.route == RouteGetUser {
		if gerr := s.handleGetUser(c); gerr != nil {
			fail(gerr)
		}
		return
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
		b, gerr := readBody(r, s.opts.MaxRequestBody)
		if gerr != nil {
			fail(gerr)
			return
		}
		c.body = b
	}
	release, gerr := s.admit(p.tok.app.clientID, c.u.upn, int64(len(c.body)))
	if gerr != nil {
		fail(gerr)
		return
	}
	defer release()
	s.waitGate()
	if gerr := s.dispatch(c); gerr != nil {
		fail(gerr)
	}
}

// resolveUser finds the mailbox the request addresses, within the token's
// tenant, and applies the delegated-token rule that a user reaches only
// their own mailbox.
func (s *Server) resolveUser(c *reqCtx) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := c.t.userKey
	if c.t.me {
		if !c.p.delegated() {
			return newError(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		}
		key = c.p.tok.user
	}
	u := s.mail.users[strings.ToLower(key)]
	if u != nil && u.tenant != c.p.tok.tenant {
		u = nil
	}
	if u == nil {
		if c.t.route == RouteGetUser {
			return newError(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", key)
		}
		return errInvalidUser(key)
	}
	if c.p.delegated() && !strings.EqualFold(u.upn, c.p.tok.user) {
		return errAccessDenied()
	}
	if c.t.route != RouteGetUser && !u.hasMailbox {
		return newError(http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "REST API is not yet supported for this mailbox.")
	}
	c.u = u
	return nil
}

// checkPermission applies each API page's permission table.
func (s *Server) checkPermission(c *reqCtx) *graphError {
	p := c.p
	switch c.t.class {
	case permUser:
		if p.delegated() && p.has("User.Read") {
			return nil
		}
		if !p.has(RoleUserReadBasicAll, RoleUserReadAll, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All") {
			return newError(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		}
	case permRead:
		if !p.has(RoleMailReadBasic, RoleMailRead, RoleMailReadWrite) {
			return errAccessDenied()
		}
	case permReadBody:
		if !p.has(RoleMailRead, RoleMailReadWrite) {
			return errAccessDenied()
		}
	case permWrite:
		if !p.has(RoleMailReadWrite) {
			return errAccessDenied()
		}
	case permImport:
		if !p.has(RoleMailAdvancedWrite) {
			return errAccessDenied()
		}
		s.mu.Lock()
		enabled := c.u.tenant.importMime
		s.mu.Unlock()
		if !enabled {
			return errSegment("importMime")
		}
	}
	return nil
}

func (s *Server) dispatch(c *reqCtx) *graphError {
	switch c.t.route {
	case RouteListFolders, RouteListChildFolders:
		return s.handleListFolders(c)
	case RouteCreateFolder, RouteCreateChildFolder:
		return s.handleCreateFolder(c)
	case RouteGetFolder:
		return s.handleGetFolder(c)
	case RouteListMessages, RouteListAllMessages:
		return s.handleListMessages(c)
	case RouteDelta:
		return s.handleDelta(c)
	case RouteCreateMessage, RouteCreateFolderMessage:
		return s.handleCreateMessage(c)
	case RouteImportMime:
		return s.handleImportMime(c)
	case RouteGetMessage:
		return s.handleGetMessage(c)
	case RouteGetMIME:
		return s.handleGetMIME(c)
	case RouteUpdateMessage:
		return s.handleUpdateMessage(c)
	case RouteDeleteMessage:
		return s.handleDeleteMessage(c)
	case RouteListAttachments, RouteGetAttachment:
		return s.handleGetAttachments(c)
	case RouteAddAttachment:
		return s.handleAddAttachment(c)
	case RouteDeleteAttachment:
		return s.handleDeleteAttachment(c)
	case RouteCreateUploadSession:
		return s.handleCreateUploadSession(c)
	}
	return errNotSupported()
}

func (s *Server) handleGetUser(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select ", userProps, "microsoft.graph.user")
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	u := c.u
	local := u.upn
	if i := strings.IndexByte(local, '@'); i > 0 {
		local = local[:i]
	}
	o := obj{
		{"@odata.context", c.context("users/$entity")},
		{"businessPhones", []string{}},
		{"displayName", local},
		{"givenName", nil},
		{"jobTitle", nil},
		{"mail", nilIf(u.hasMailbox, u.upn)},
		{"mobilePhone", nil},
		{"officeLocation", nil},
		{"preferredLanguage", nil},
		{"surname", nil},
		{"userPrincipalName", u.upn},
		{"id", u.id},
	}
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, o.pick(q.sel))
	return nil
}

var userProps = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func nilIf(ok bool, v string) any {
	if !ok {
		return nil
	}
	return v
}
