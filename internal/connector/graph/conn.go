package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/spool"
)

// Conn is an open Graph mailbox. Its methods are safe for concurrent use.
type Conn struct {
	api      *client
	set      settings
	endpoint connector.Endpoint
	role     connector.Role
	user     string // /v1.0/users/{escaped mailbox}
	spool    *spool.Spool
	spoolDir string

	// importMime is set while the beta importMime action is usable
	// (decided at Open, switched off if the tenant later refuses it).
	importMime atomic.Bool

	folderMu  sync.Mutex
	wellKnown map[string]string // folder id → well-known name
	inboxID   string
	tree      *folderTree

	closed atomic.Bool
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.Destination  = (*Conn)(nil)
	_ connector.FlagSetter   = (*Conn)(nil)
	_ connector.Deleter      = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
)

// open connects: gets a token, checks that the mailbox exists and that
// the app may read it, and for a destination that it may write, and
// whether importMime is available.
func open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions, shared *sharedLimits, set settings) (*Conn, error) {
	// The mailbox is in the address (graph://TENANT/MAILBOX); an admin
	// login acting for another one is EWS's (Credentials.Mailbox).
	if err := connector.RefuseMailbox("Microsoft 365 (Graph)", e, o.Credentials); err != nil {
		return nil, err
	}
	if e.User == "" {
		return nil, connector.Errorf(connector.KindConfig, "expected graph://TENANT/MAILBOX", errors.New("no mailbox"), "open %s", e.Redacted)
	}
	root := DefaultServiceURL
	if o.ServiceURL != "" {
		root = strings.TrimSuffix(o.ServiceURL, "/")
	}
	if u, err := url.Parse(root); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, connector.Errorf(connector.KindConfig, "", fmt.Errorf("service URL %q is not an https URL", root), "open %s", e.Redacted)
	}
	httpc := oauth.HTTPClient(o)
	tokens, err := tokenSourceFor(e, o, httpc, set.clock.Now)
	if err != nil {
		return nil, err
	}
	lim := shared.acquire(set.clock, o.Credentials.OAuth.ClientID, strings.ToLower(e.User), o.MaxConnections, set.budgets)
	c := &Conn{
		api: &client{
			http: httpc, root: root, tokens: tokens, lim: lim, clock: set.clock, backoff: set.backoff,
		},
		set:      set,
		endpoint: e,
		role:     o.Role,
		user:     "/v1.0/users/" + url.PathEscape(e.User),
		spool:    spool.New(o.SpoolDir, set.memoryBudget),
		spoolDir: o.SpoolDir,
	}
	if err := c.probe(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) probe(ctx context.Context) error {
	a := accessRead
	if c.role == connector.RoleDestination {
		a = accessWrite
	}
	var inbox struct {
		ID string `json:"id"`
	}
	if err := c.getJSON(ctx, c.user+"/mailFolders/inbox?$select=id", &inbox); err != nil {
		return c.sortError(err, a, connector.KindNoAccount, connector.KindConfig, "open the mailbox %s", c.endpoint.Redacted)
	}
	c.inboxID = inbox.ID
	if c.role != connector.RoleDestination {
		return nil
	}
	// Whether the app may write, without writing: an empty PATCH of an
	// id that cannot exist changes nothing even if it did. Graph checks
	// the permission before it looks the item up.
	resp, err := c.api.do(ctx, request{
		method: http.MethodPatch, url: c.user + "/messages/" + url.PathEscape(probeID),
		contentType: "application/json", body: func() io.Reader { return strings.NewReader("{}") }, bodyLen: 2, idempotent: true,
	})
	if err == nil {
		resp.Close()
	} else if st, _ := apiStatus(err); st != http.StatusNotFound && st != http.StatusBadRequest {
		return c.sortError(err, accessWrite, connector.KindItem, connector.KindConfig, "check write access to %s", c.endpoint.Redacted)
	}
	ok, err := c.probeImportMime(ctx)
	if err != nil {
		return err
	}
	c.importMime.Store(ok)
	return nil
}

// probeID names no message: ids are base64 of an entry id, and '!' is
// not in their alphabet.
const probeID = "mailferry!probe"

// probeImportMime asks the beta importMime action to import something
// that is not base64: a tenant where the action exists and the app holds
// Mail-Advanced.ReadWrite.All answers 400 with a content error; 403 is a
// missing permission, 404 or 400 "Resource not found for the segment"
// an action that is not there. Nothing is stored either way.
func (c *Conn) probeImportMime(ctx context.Context) (bool, error) {
	resp, err := c.api.do(ctx, request{
		method: http.MethodPost, url: c.importURL(c.inboxID), contentType: "text/plain",
		body: func() io.Reader { return strings.NewReader("!") }, bodyLen: 1, idempotent: true,
	})
	if err == nil {
		// Something was imported from "!"; remove it.
		var m struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m)
		resp.Close()
		if m.ID != "" {
			_ = c.deleteOne(ctx, m.ID)
		}
		return true, nil
	}
	st, code := apiStatus(err)
	switch {
	case st == http.StatusBadRequest && !strings.EqualFold(code, "BadRequest") && code != "":
		return true, nil
	case st == http.StatusForbidden, st == http.StatusNotFound, st == http.StatusBadRequest, st == http.StatusMethodNotAllowed:
		return false, nil
	}
	return false, c.sortError(err, accessImport, connector.KindConfig, connector.KindConfig, "check whether %s can import MIME", c.endpoint.Redacted)
}

func (c *Conn) importURL(folderID string) string {
	return "/beta" + strings.TrimPrefix(c.user, "/v1.0") + "/mailFolders/" + url.PathEscape(folderID) + "/importMime"
}

// Features reports what Graph can do. ByteExact holds where importMime
// is used; messages written through the JSON path come back with
// AppendResult.Rebuilt.
func (c *Conn) Features() connector.Features {
	return connector.Features{
		MaxMessageSize:  150 << 20,
		MaxConnections:  int(c.api.lim.connCap),
		Folders:         true,
		Keywords:        true,
		CreateFolders:   true,
		SpecialUse:      true,
		ReportsRemovals: true,
		CheapChanges:    true,
		ExactNew:        true,
		AppendIDs:       true,
		ByteExact:       c.importMime.Load(),
	}
}

// Close releases the shared limits. Graph holds no session to end.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.api.lim.release()
		c.api.http.CloseIdleConnections()
	}
	return nil
}

// getJSON GETs url and decodes its JSON answer into v.
func (c *Conn) getJSON(ctx context.Context, u string, v any, header ...string) error {
	req := request{method: http.MethodGet, url: u, idempotent: true}
	if len(header) >= 2 {
		req.header = map[string]string{}
		for i := 0; i+1 < len(header); i += 2 {
			req.header[header[i]] = header[i+1]
		}
	}
	resp, err := c.api.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(v); err != nil {
		return &connector.Error{Kind: connector.KindTransient, Op: "read Graph's answer", Err: err}
	}
	return nil
}

// sendJSON sends a JSON body and decodes the answer into v (if not nil).
func (c *Conn) sendJSON(ctx context.Context, method, u string, body []byte, idempotent bool, v any) error {
	b, n := bytesBody(body)
	resp, err := c.api.do(ctx, request{method: method, url: u, contentType: "application/json", body: b, bodyLen: n, idempotent: idempotent})
	if err != nil {
		return err
	}
	defer resp.Close()
	if v == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return &connector.Error{Kind: connector.KindTransient, Op: "read Graph's answer", Err: err, Uncertain: !idempotent}
	}
	return nil
}

// sameOrigin reports whether link (a nextLink or deltaLink from Graph,
// or one read back from a stored cursor) points at the service root:
// the token is sent to it.
func (c *Conn) sameOrigin(link string) bool {
	u, err := url.Parse(link)
	r, err2 := url.Parse(c.api.root)
	return err == nil && err2 == nil && u.Scheme == "https" && strings.EqualFold(u.Host, r.Host) && u.User == nil
}
