package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/pacer"
)

// Scheme is the URL scheme this connector owns.
const Scheme = "graph"

// DefaultServiceURL is Microsoft Graph's global service root.
const DefaultServiceURL = "https://graph.microsoft.com"

// Backend registers the Graph connector. The returned value keeps the
// concurrency and budget state shared by every mailbox its Open opens
// with one app, so the one registry of a process should hold one
// Backend() (internal/connector/all does).
func Backend() connector.Backend {
	shared := newSharedLimits()
	return connector.Backend{
		Name:        "graph",
		Schemes:     []string{Scheme},
		Source:      true,
		Destination: true,
		Parse:       Parse,
		Open: func(ctx context.Context, e connector.Endpoint, o connector.OpenOptions) (connector.Conn, error) {
			return open(ctx, e, o, shared, defaultSettings())
		},
	}
}

// Parse reads graph://TENANT/MAILBOX or graph://MAILBOX, where TENANT
// is the Microsoft Entra tenant id (a GUID) or one of its domains and
// MAILBOX the user principal name (or object id) of the mailbox. Without
// a tenant, the credentials' tenant is used, else the mailbox's domain
// (every accepted domain of Exchange Online is a verified domain of its
// tenant). Nothing else is read from the address: no secrets, no
// settings, no service URL.
func Parse(raw string) (connector.Endpoint, error) {
	var e connector.Endpoint
	rest, ok := strings.CutPrefix(raw, Scheme+"://")
	if !ok {
		if len(raw) > len(Scheme)+3 && strings.EqualFold(raw[:len(Scheme)+3], Scheme+"://") {
			rest = raw[len(Scheme)+3:]
		} else {
			return e, fmt.Errorf("Microsoft 365 address %q: expected graph://TENANT/MAILBOX, e.g. graph://contoso.onmicrosoft.com/alice@contoso.com", raw)
		}
	}
	if strings.ContainsAny(rest, "?#") {
		return e, fmt.Errorf("Microsoft 365 address %q: settings after '?' or '#' are not understood; app credentials and service URLs are options, never part of the address", redact(raw))
	}
	tenant, mailbox, hasTenant := strings.Cut(rest, "/")
	if !hasTenant {
		tenant, mailbox = "", rest
	}
	mailbox = strings.TrimSuffix(mailbox, "/")
	if m, err := url.PathUnescape(mailbox); err == nil {
		mailbox = m
	}
	switch {
	case mailbox == "":
		return e, fmt.Errorf("Microsoft 365 address %q names no mailbox: expected graph://TENANT/MAILBOX, e.g. graph://contoso.onmicrosoft.com/alice@contoso.com", raw)
	case strings.ContainsAny(mailbox, "/\\ \t"):
		return e, fmt.Errorf("Microsoft 365 address %q: %q is not a mailbox address", raw, mailbox)
	case !hasTenant && strings.Count(mailbox, "@") != 1:
		return e, fmt.Errorf("Microsoft 365 address %q: give the mailbox as user@domain, or the tenant too: graph://TENANT/MAILBOX", redact(raw))
	case hasTenant && (tenant == "" || strings.ContainsAny(tenant, "@: ")):
		// "user:password@" is refused here as well, without echoing it.
		return e, fmt.Errorf("Microsoft 365 address %q: the part before the mailbox is not a tenant id or domain; expected graph://TENANT/MAILBOX", redact(raw))
	}
	e.Scheme = Scheme
	e.Raw = raw
	e.User = mailbox
	// The hosts contacted are Microsoft's, whatever the tenant: per-host
	// limits then group every Graph mailbox, as Graph's own limits do.
	e.Host = "graph.microsoft.com"
	e.Port = 443
	if hasTenant {
		e.Params = map[string]string{"tenant": tenant}
		e.Redacted = Scheme + "://" + tenant + "/" + mailbox
	} else {
		e.Redacted = Scheme + "://" + mailbox
	}
	return e, nil
}

// redact hides what looks like a password (user:pass@) in an address
// that was not understood.
func redact(raw string) string {
	rest, _ := strings.CutPrefix(raw, Scheme+"://")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if c := strings.Index(rest[:at], ":"); c >= 0 && !strings.Contains(rest[:c], "/") {
			return Scheme + "://" + rest[:c] + ":***" + rest[at:]
		}
	}
	return raw
}

// settings are the connector's tunables; tests shrink them.
type settings struct {
	clock   clock
	budgets budgets
	backoff pacer.Backoff
	// maxRequestBody bounds one request body ("about 4 MB").
	maxRequestBody int64
	// inlineAttachment: attachments up to this size go into the
	// creating request or a POST, larger ones through an upload session
	// (outlook-large-attachments: "3 MB").
	inlineAttachment int64
	// uploadChunk is the byte range of one upload-session PUT: at most
	// 4 MB ("up to 4 MB each time") and a multiple of 320 KiB, the
	// OneDrive rule some SDKs apply to Outlook sessions too.
	uploadChunk int64
	// pageSize is asked for with Prefer: odata.maxpagesize.
	pageSize int
	// memoryBudget is the spool's in-memory share of bodies.
	memoryBudget int64
}

func defaultSettings() settings {
	return settings{
		clock:            realClock{},
		budgets:          budgets{requests: requestBudget, reqWin: requestWindow, upload: uploadBudget, upWin: uploadWindow, largestUpload: 4 << 20},
		backoff:          pacer.Backoff{Min: time.Second, Max: time.Minute, Attempts: 6},
		maxRequestBody:   4 << 20,
		inlineAttachment: 3 << 20,
		uploadChunk:      12 * 320 << 10, // 3.75 MiB
		pageSize:         100,
		memoryBudget:     8 << 20,
	}
}

var errNoCredentials = errors.New("no app credentials")

// tokenSourceFor builds the token source from the credentials. App-only
// access asks for Graph's .default scope (the application permissions
// granted); a refresh token asks for the delegated permissions consented
// to, and for a new refresh token.
func tokenSourceFor(e connector.Endpoint, o connector.OpenOptions, client *http.Client, now func() time.Time) (*oauth.Source, error) {
	cred := o.Credentials.OAuth
	if cred == nil || cred.ClientID == "" {
		return nil, connector.Errorf(connector.KindConfig,
			"give the app registration's tenant, client id and client secret or certificate (see the Microsoft 365 section of the README)",
			errNoCredentials, "open %s", e.Redacted)
	}
	tenant := e.Params["tenant"]
	if tenant == "" {
		tenant = cred.Tenant
	}
	if tenant == "" {
		_, tenant, _ = strings.Cut(e.User, "@")
	}
	c := *cred
	c.Tenant = tenant
	if c.Provider != "" && c.Provider != connector.OAuthMicrosoft {
		return nil, connector.Errorf(connector.KindConfig, "Microsoft 365 needs a Microsoft Entra app registration", fmt.Errorf("OAuth provider %q", c.Provider), "open %s", e.Redacted)
	}
	scopes := []string{oauth.ScopeGraph}
	if c.RefreshToken != "" {
		scopes = append(scopes, oauth.ScopeOfflineAccess)
	}
	cfg, err := oauth.ConfigFromCredentials(&c, tenant, scopes, client)
	if err != nil {
		return nil, err
	}
	cfg.Now = now
	return oauth.New(cfg)
}
