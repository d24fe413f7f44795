package service

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/mailferry/mailferry/internal/store"
)

// TypeM365 is the endpoint type of Microsoft 365 reached through Microsoft
// Graph (connector/graph), as a source type or a destination preset's type.
const TypeM365 = "m365"

// TypeGmail is a Gmail or Google Workspace source: IMAP at
// imap.gmail.com with each mailbox's app password (Google's IMAP needs
// one when 2-Step Verification is on); its labels are read as Gmail's
// (connector/imap, X-GM-EXT-1), each message copied once.
const TypeGmail = "gmail"

const gmailHost = "imap.gmail.com"

// TypeExchange is an Exchange server reached through EWS at its OWA
// address (connector/ews); it may take an admin login that impersonates
// each mailbox (KindEWS).
const TypeExchange = "exchange"

// m365Host is what a Microsoft 365 side connects to: it names the side in
// the per-host limits of the workers.
const m365Host = "graph.microsoft.com"

// AdminCredentials are one side's project-wide credentials, entered once
// by the project's admin, that act on every mailbox of that side; mailbox
// rows of that side then need only an email address. Which fields apply
// depends on the side's type:
//
//   - Microsoft 365 (kind "m365-app", required): an app registration with
//     application permissions (Mail.Read to read, Mail.ReadWrite to
//     write) and admin consent: Tenant, ClientID, ClientSecret.
//   - Microsoft 365, each user signing in (kind "m365-delegated", chosen
//     instead of "m365-app"): an app registration with delegated
//     permissions (Mail.Read on a source, Mail.ReadWrite on a
//     destination, and offline_access) and a Web redirect URI
//     <base URL>/password/microsoft/callback: Tenant, ClientID and, for a
//     confidential client, ClientSecret. Each end user signs in through
//     their link (BeginSignIn); their refresh token is the mailbox row's
//     secret for that side.
//   - Exchange EWS (kind "ews-impersonation", optional): an account with
//     the ApplicationImpersonation role (which also spreads Exchange's
//     throttling budgets over the mailboxes): Login, Password.
//
// ClientSecret and Password are input only: the API never returns them
// (see AdminInfo).
type AdminCredentials struct {
	Tenant       string `json:"tenant,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Login        string `json:"login,omitempty"`
	Password     string `json:"password,omitempty"`
	// Kind is "m365-delegated" to have each end user sign in on a
	// Microsoft 365 side; otherwise the service sets it from the side's
	// type.
	Kind string `json:"kind,omitempty"`
	// RefreshToken (m365-delegated, in a Work only) is the mailbox's
	// user's, and TokenURL the operator's token endpoint ("" for
	// Microsoft's). Never input, never output.
	RefreshToken string `json:"-"`
	TokenURL     string `json:"-"`
}

// String hides the secret, so that printing credentials by mistake shows
// none.
func (a AdminCredentials) String() string {
	if a.Kind == kindEWS {
		return fmt.Sprintf("login %q password ***", a.Login)
	}
	return fmt.Sprintf("%s tenant %q client %q secret *** refresh token ***", a.Kind, a.Tenant, a.ClientID)
}

// GoString is String, for %#v.
func (a AdminCredentials) GoString() string { return a.String() }

// secret is the part that is sealed: the client secret or the password.
func (a *AdminCredentials) secret() string {
	if a.Kind == kindEWS {
		return a.Password
	}
	return a.ClientSecret
}

func (a *AdminCredentials) setSecret(v string) {
	if a.Kind == kindEWS {
		a.Password = v
	} else {
		a.ClientSecret = v
	}
}

// AdminInfo is a side's admin credentials as the API shows them: never
// the secret, only whether one is stored (none once the project is
// finished).
type AdminInfo struct {
	Kind      string `json:"kind"` // "m365-app", "m365-delegated" or "ews-impersonation"
	Tenant    string `json:"tenant,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Login     string `json:"login,omitempty"`
	HasSecret bool   `json:"has_secret"`
}

const (
	kindM365App = "m365-app"
	// kindM365Delegated: each end user signs in with Microsoft
	// (delegated permissions) instead of the app acting on every
	// mailbox.
	kindM365Delegated = "m365-delegated"
	// KindM365Delegated is AdminInfo.Kind of a Microsoft 365 side whose
	// users sign in themselves.
	KindM365Delegated = kindM365Delegated
	kindEWS           = "ews-impersonation"
	// KindEWS is AdminInfo.Kind of an Exchange admin login.
	KindEWS = kindEWS
)

func infoOf(c store.Credential) *AdminInfo {
	info := &AdminInfo{Kind: c.Kind, HasSecret: c.Secret != ""}
	if c.Kind == kindEWS {
		info.Login = c.Login
	} else {
		info.Tenant, info.ClientID = c.Tenant, c.Login
	}
	return info
}

// adminMarker is stored as a mailbox row's secret for a side that uses
// the project's admin credentials: it keeps "has passwords" true until the
// project is finished (which blanks it like any password) and is never
// opened.
const adminMarker = "@project-admin"

// usesAdmin reports whether an endpoint type always logs in with
// project-wide admin credentials instead of each mailbox's password.
func usesAdmin(typ string) bool { return typ == TypeM365 }

// adminKind is the kind of admin credentials an endpoint type takes, ""
// for none: Exchange may act on other mailboxes with one admin login
// (connector.Credentials.Mailbox).
func adminKind(typ string) string {
	switch typ {
	case TypeM365:
		return kindM365App
	case TypeExchange:
		return kindEWS
	}
	return ""
}

// tenantRe: a directory (tenant) id is a GUID; a verified domain is a DNS
// name such as contoso.onmicrosoft.com.
var (
	guidRe   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
)

// clean checks a side's credentials as entered; requireSecret is false
// when updating (an empty secret keeps the stored one).
func (a *AdminCredentials) clean(field string, requireSecret bool) error {
	if a.Kind == kindEWS {
		return a.cleanEWS(field, requireSecret)
	}
	if a.Login != "" || a.Password != "" {
		return inputErr(field+".login", "Microsoft 365 is reached with an app registration, not an admin login: enter its tenant ID, client ID and client secret instead")
	}
	a.Tenant, a.ClientID = strings.TrimSpace(a.Tenant), strings.TrimSpace(a.ClientID)
	if !guidRe.MatchString(a.Tenant) && !domainRe.MatchString(a.Tenant) {
		return inputErr(field+".tenant", "enter the Directory (tenant) ID from the app registration's Overview page in the Microsoft Entra admin center, e.g. 5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f, or a verified domain such as contoso.onmicrosoft.com")
	}
	if !guidRe.MatchString(a.ClientID) {
		return inputErr(field+".client_id", "enter the Application (client) ID from the app registration's Overview page, e.g. 8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d")
	}
	if strings.TrimSpace(a.ClientSecret) != a.ClientSecret {
		return inputErr(field+".client_secret", "the client secret starts or ends with a space; copy its Value (not its Secret ID) again from Certificates & secrets")
	}
	if requireSecret && a.ClientSecret == "" && a.Kind != kindM365Delegated {
		return inputErr(field+".client_secret", "enter the client secret's Value (not its Secret ID) from the app registration's Certificates & secrets page")
	}
	return nil
}

func (a *AdminCredentials) cleanEWS(field string, requireSecret bool) error {
	if a.Tenant != "" || a.ClientID != "" || a.ClientSecret != "" {
		return inputErr(field+".tenant", "an Exchange server is reached with an admin login, not an app registration: enter the admin account's login and password instead")
	}
	a.Login = strings.TrimSpace(a.Login)
	if a.Login == "" {
		return inputErr(field+".login", "enter the admin account's login (DOMAIN\\user, its user principal name or email address)")
	}
	if requireSecret && a.Password == "" {
		return inputErr(field+".password", "enter the admin account's password")
	}
	return nil
}

// checkAdmin checks the credentials given for a side of type typ: they
// are required for a Microsoft 365 side, optional for an Exchange side
// (an admin login with impersonation) and refused for any other.
func checkAdmin(field, typ string, a *AdminCredentials, requireSecret bool) error {
	kind := adminKind(typ)
	if kind == "" {
		if a != nil {
			return inputErr(field, "admin credentials are for Microsoft 365 (an app registration) and Exchange (an admin login with impersonation) only; this side logs in with each mailbox's own password")
		}
		return nil
	}
	if a == nil {
		if kind == kindEWS {
			return nil
		}
		return inputErr(field, "Microsoft 365 logs in with an app registration: enter its tenant ID, client ID and client secret (see the README's Microsoft 365 section)")
	}
	switch {
	case a.Kind == kindM365Delegated && kind == kindM365App:
		kind = kindM365Delegated
	case a.Kind != "" && a.Kind != kind:
		return inputErr(field+".kind", "this side takes credentials of kind %q (or, for Microsoft 365, %q: each user signs in), not %q", kind, kindM365Delegated, a.Kind)
	}
	a.Kind = kind
	return a.clean(field, requireSecret)
}

func adminAD(projectID string, side Side) []byte {
	return []byte("project:" + projectID + ":" + string(side) + "-admin")
}

// sealAdmin makes a side's credentials a store row, the secret sealed.
func (s *Service) sealAdmin(projectID string, side Side, a *AdminCredentials) (store.Credential, error) {
	b, err := s.sealer.Seal([]byte(a.secret()), adminAD(projectID, side))
	if err != nil {
		return store.Credential{}, fmt.Errorf("encrypt the %s admin secret: %w", side, err)
	}
	c := store.Credential{Side: string(side), Kind: a.Kind, Tenant: a.Tenant, Login: a.ClientID,
		Secret: base64.StdEncoding.EncodeToString(b)}
	switch {
	case a.Kind == kindEWS:
		c.Tenant, c.Login = "", a.Login
	case a.Kind == kindM365Delegated && a.ClientSecret == "":
		c.Secret = "" // a public client: nothing to seal
	case a.Kind != kindM365Delegated:
		c.Kind = kindM365App
	}
	return c, nil
}

// attachAdmins puts a project's credentials, without secrets, into p.
func (s *Service) attachAdmins(ctx context.Context, p *Project) error {
	cs, err := s.st.Credentials(ctx, p.ID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		info := infoOf(c)
		switch Side(c.Side) {
		case SideSource:
			p.SourceAdmin = info
		case SideDestination:
			p.DestinationAdmin = info
		}
	}
	return nil
}

// admin reads and opens a side's credentials.
func (s *Service) admin(ctx context.Context, projectID string, side Side) (*AdminCredentials, error) {
	cs, err := s.st.Credentials(ctx, projectID)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if Side(c.Side) != side {
			continue
		}
		if c.Kind == kindM365Delegated && c.Secret == "" {
			// A public client: the users' refresh tokens are the secrets.
			return &AdminCredentials{Kind: kindM365Delegated, Tenant: c.Tenant, ClientID: c.Login}, nil
		}
		if c.Secret == "" {
			return nil, fmt.Errorf("%w (the %s admin secret was erased when the project finished)", ErrSecretKey, side)
		}
		b, err := base64.StdEncoding.DecodeString(c.Secret)
		if err == nil {
			var secret []byte
			if secret, err = s.sealer.Open(b, adminAD(projectID, side)); err == nil {
				if c.Kind == kindEWS {
					return &AdminCredentials{Kind: kindEWS, Login: c.Login, Password: string(secret)}, nil
				}
				kind := kindM365App
				if c.Kind == kindM365Delegated {
					kind = kindM365Delegated
				}
				return &AdminCredentials{Kind: kind, Tenant: c.Tenant, ClientID: c.Login, ClientSecret: string(secret)}, nil
			}
		}
		return nil, fmt.Errorf("%w (%s admin secret: %v)", ErrSecretKey, side, err)
	}
	return nil, fmt.Errorf("%w (the %s mailbox uses the project's admin credentials, which are gone)", ErrSecretKey, side)
}
