package ews

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/spool"
)

const (
	// defaultMaxConnections is the requests one mailbox has in flight at
	// most: well under Exchange's default EWSMaxConcurrency of 27
	// (ews-throttling-in-exchange), which Outlook and mobile clients of
	// the same user share, and under the "no more than ten open requests"
	// the same page advises.
	defaultMaxConnections = 4
	// spoolBudget is the memory one Conn may hold for bodies in flight;
	// the rest is spooled to temporary files.
	spoolBudget = 8 << 20
)

// Conn is one Exchange mailbox reached through EWS. It implements
// connector.Source, connector.Destination, connector.FlagSetter,
// connector.Deleter, connector.QuotaReader and connector.StatusReader;
// all methods are safe for concurrent use.
type Conn struct {
	endpoint connector.Endpoint
	cl       *client
	tr       *transport
	spool    *spool.Spool
	maxConns int
	// mailbox is the impersonated mailbox, "" for the login's own.
	mailbox string

	maxMessageSize int64

	// wk holds the FolderIds of the distinguished folders, found at
	// Open.
	wk wellKnown

	mu sync.Mutex
	// children caches folder names under each parent FolderId (names
	// lower case, as Exchange compares them), from Folders and
	// CreateFolder.
	children map[string]map[string]cachedFolder

	// noTransportHeaders is set once the server refused
	// PR_TRANSPORT_MESSAGE_HEADERS on CreateItem; later items are
	// written without it (see append.go).
	noTransportHeaders atomic.Bool
	closed             atomic.Bool

	// batching writes small messages several per CreateItem (batch.go).
	batching bool
	bmu      sync.Mutex
	batches  map[string]*batch // by FolderId
}

type cachedFolder struct {
	id, name, class string
}

var (
	_ connector.Source       = (*Conn)(nil)
	_ connector.Destination  = (*Conn)(nil)
	_ connector.FlagSetter   = (*Conn)(nil)
	_ connector.Deleter      = (*Conn)(nil)
	_ connector.QuotaReader  = (*Conn)(nil)
	_ connector.StatusReader = (*Conn)(nil)
)

// Open checks the settings and reads the mailbox's well-known folders,
// so that a wrong address, password, certificate, a missing mailbox or a
// missing impersonation right is reported now, as a *connector.Error
// whose kind says which.
//
// What it reads from e and o:
//   - e: an address parsed by Parse (ews:// or ews+https://). Its auth
//     parameter picks NTLM or Basic; its impersonate parameter is the
//     same as o.Credentials.Mailbox.
//   - o.Credentials.Username and Password: the login (DOMAIN\user, a
//     UPN or the email address). Username defaults to e.User.
//   - o.Credentials.Mailbox: the mailbox to act on with the login's
//     ApplicationImpersonation right (an admin or service account);
//     empty to open the login's own mailbox.
//   - o.InsecureSkipVerify, o.RootCAs: certificate checks (always TLS).
//   - o.Dial: every TCP connection goes through it when set.
//   - o.MaxConnections: requests in flight at most (default 4).
//   - o.StallTimeout: a connection with no progress this long is
//     dropped (default 2 minutes).
//   - o.SpoolDir: where bodies larger than 1 MiB wait while being
//     fetched.
//
// o.AllowPlaintext is ignored: EWS is only spoken over TLS.
func Open(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	c, err := newConn(e, o)
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newConn validates e and o without touching the network.
func newConn(e connector.Endpoint, o connector.OpenOptions) (*Conn, error) {
	op := "open " + e.Redacted
	if e.Scheme != Scheme && e.Scheme != SchemeHTTPS {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op,
			Err: fmt.Errorf("%q is not an EWS scheme", e.Scheme), Hint: "Use ews://host or ews+https://host/path."}
	}
	if e.Host == "" {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op, Err: errors.New("no host name"),
			Hint: "Give the Exchange server's name, e.g. ews://mail.example.com."}
	}
	mode, ok := parseAuthMode(e.Params[ParamAuth])
	if !ok {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op, Err: fmt.Errorf("unknown auth=%q", e.Params[ParamAuth]),
			Hint: "Use auth=ntlm, auth=basic or leave it out."}
	}
	user := o.Credentials.Username
	if user == "" {
		user = e.User
	}
	if user == "" {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op, Err: errors.New("no user name"),
			Hint: "Give the login: DOMAIN\\user, the user principal name or the email address."}
	}
	mailbox := strings.TrimSpace(o.Credentials.Mailbox)
	if p := e.Params[ParamImpersonate]; p != "" {
		if mailbox != "" && !strings.EqualFold(mailbox, p) {
			return nil, &connector.Error{Kind: connector.KindConfig, Op: op,
				Err:  fmt.Errorf("two mailboxes to act on: %q in the address and %q in the settings", p, mailbox),
				Hint: "Name the mailbox once."}
		}
		mailbox = p
	}
	if mailbox != "" && !plausibleSMTP(mailbox) {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: op, Err: fmt.Errorf("%q is not an email address", mailbox),
			Hint: "Name the mailbox to act on by its primary SMTP address."}
	}
	maxConns := o.MaxConnections
	if maxConns <= 0 {
		maxConns = defaultMaxConnections
	}
	stall := o.StallTimeout
	if stall <= 0 {
		stall = defaultStallTimeout
	}
	u := serviceURL(e)
	tr := &transport{
		server:  e.Redacted,
		addr:    dialAddress(e),
		reqPath: u.RequestURI(),
		hostHdr: u.Host,
		tlsConf: &tls.Config{
			ServerName:         e.Host,
			RootCAs:            o.RootCAs,
			InsecureSkipVerify: o.InsecureSkipVerify,
			MinVersion:         tls.VersionTLS12,
			// HTTP/1.1 only: NTLM authenticates a connection, which
			// HTTP/2 multiplexing would break ([MS-NTHT] 1.5).
			NextProtos: []string{"http/1.1"},
		},
		dial:   o.Dial,
		stall:  stall,
		user:   user,
		pass:   o.Credentials.Password,
		anchor: mailbox,
		want:   mode,
		slots:  make(chan struct{}, maxConns),
	}
	if mode != authAuto {
		tr.mode.Store(int32(mode))
	}
	cl := &client{t: tr, impersonate: mailbox, server: tr.server}
	probe, err := cl.marshal(&getFolderReq{Shape: idOnly(), FolderIDs: []folderRef{{Distinguished: "msgfolderroot"}}})
	if err != nil {
		return nil, err
	}
	tr.probe = probe
	return &Conn{
		endpoint: e,
		cl:       cl,
		tr:       tr,
		spool:    spool.New(o.SpoolDir, spoolBudget),
		maxConns: maxConns,
		mailbox:  mailbox,
		children: map[string]map[string]cachedFolder{},
		batching: true,
		batches:  map[string]*batch{},
	}, nil
}

// wellKnown are the FolderIds of the distinguished folders
// (web-service-reference/distinguishedfolderid). Exchange 2013 SP1's
// schema has no "archive" id (later schemas added it for Exchange
// Online); an Archive folder is found by its name.
type wellKnown struct {
	root, msgRoot string
	roles         map[string]mail.Role // FolderId → role
	inbox         string
	quotaKiB      int64 // PR_QUOTA_RECEIVE on the root, 0 unknown
}

var distinguishedRoles = []struct {
	id   string
	role mail.Role
}{
	{"inbox", mail.RoleInbox},
	{"sentitems", mail.RoleSent},
	{"drafts", mail.RoleDrafts},
	{"deleteditems", mail.RoleTrash},
	{"junkemail", mail.RoleJunk},
}

// start reads the root, the message folder root and the distinguished
// folders in one GetFolder: it is the login check.
func (c *Conn) start(ctx context.Context) error {
	what := "open the mailbox at " + c.endpoint.Redacted
	if c.mailbox != "" {
		what = fmt.Sprintf("open mailbox %s at %s as %s", c.mailbox, c.endpoint.Redacted, c.tr.user)
	}
	ids := []folderRef{{Distinguished: "root"}, {Distinguished: "msgfolderroot"}}
	for _, d := range distinguishedRoles {
		ids = append(ids, folderRef{Distinguished: d.id})
	}
	var resp getFolderResp
	err := c.cl.call(ctx, what, &getFolderReq{
		Shape:     idOnly(propQuotaReceive, propMaxSubmitSize),
		FolderIDs: ids,
	}, &resp)
	if err != nil {
		return err
	}
	if len(resp.Messages) != len(ids) {
		return &connector.Error{Kind: connector.KindTransient, Op: what, Hint: hintProtocol,
			Err: fmt.Errorf("GetFolder answered %d messages for %d folders", len(resp.Messages), len(ids))}
	}
	wk := wellKnown{roles: map[string]mail.Role{}}
	for i, m := range resp.Messages {
		if err := messageErr(m.respStatus, what); err != nil {
			if i < 2 || connector.KindOf(err) != connector.KindMissingFolder {
				return err
			}
			continue // a mailbox without e.g. a Junk Email folder
		}
		if len(m.Folders.Folders) == 0 {
			continue
		}
		f := m.Folders.Folders[0]
		switch i {
		case 0:
			wk.root = f.ID.ID
			if q, ok := findExtInt(f.Extended, propQuotaReceive.Tag); ok && q > 0 {
				wk.quotaKiB = q
			}
			if m, ok := findExtInt(f.Extended, propMaxSubmitSize.Tag); ok && m > 0 {
				c.maxMessageSize = m << 10
			}
		case 1:
			wk.msgRoot = f.ID.ID
		default:
			d := distinguishedRoles[i-2]
			wk.roles[f.ID.ID] = d.role
			if d.role == mail.RoleInbox {
				wk.inbox = f.ID.ID
			}
		}
	}
	if wk.msgRoot == "" || wk.inbox == "" {
		return &connector.Error{Kind: connector.KindTransient, Op: what, Hint: hintProtocol,
			Err: errors.New("the server did not return the mailbox's message folder root or inbox")}
	}
	c.wk = wk
	c.cl.reached.Store(true)
	return nil
}

// Features reports what EWS offers. ByteExact is false: Exchange
// converts MIME into MAPI properties on CreateItem and writes new MIME on
// GetItem (see doc.go).
func (c *Conn) Features() connector.Features {
	return connector.Features{
		MaxMessageSize:  c.maxMessageSize,
		MaxConnections:  c.maxConns,
		Folders:         true,
		CreateFolders:   true,
		Keywords:        false,
		SpecialUse:      true,
		ReportsRemovals: true,
		CheapChanges:    true,
		// SyncFolderItems from a SyncState reports as Create exactly the
		// items that arrived in the folder after it.
		ExactNew:  true,
		AppendIDs: true,
		ByteExact: false,
	}
}

// Close ends every connection. It is safe to call more than once.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.flushBatches()
	c.tr.close()
	return nil
}

// folderOp names an operation on a folder for errors.
func (c *Conn) folderOp(verb string, f connector.Folder) string {
	return fmt.Sprintf("%s folder %q of %s", verb, f.Path.String(), c.who())
}

func (c *Conn) who() string {
	if c.mailbox != "" {
		return c.mailbox + " at " + c.endpoint.Redacted
	}
	return c.endpoint.Redacted
}
