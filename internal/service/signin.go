package service

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/store"
)

// End users sign in with Microsoft (issue 17, item 4): on a Microsoft
// 365 side of kind "m365-delegated" the end user's page has no password
// field but a "Sign in with Microsoft" button. It runs the authorization
// code flow with PKCE (RFC 6749 §4.1, RFC 7636) against the operator's
// identity endpoints; the callback redeems the code for the user's
// refresh token, which is sealed as that mailbox's secret for the side
// and is what the worker logs in with (oauth.Source, refresh-token
// grant). The state is bound to the link (its token hash) and to a
// nonce the browser holds in a cookie, so that a callback works only in
// the browser that started it, once, for ten minutes. Codes and tokens
// never reach logs, URLs after the callback, or errors.

// Default Microsoft identity platform endpoints; "{tenant}" is replaced.
const (
	MicrosoftAuthorizeURL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
	MicrosoftTokenURL     = oauth.MicrosoftTokenURL
)

const (
	// signInTTL is how long a started sign-in waits for its callback:
	// the authorization code's own lifetime.
	signInTTL = 10 * time.Minute
	// At most this many sign-ins are started per link per hour.
	signInsPerLink = 10
	// scopeGraphPrefix names Graph's delegated permissions.
	scopeGraphPrefix = "https://graph.microsoft.com/"
)

// MicrosoftIdentity is where end users sign in with Microsoft. The
// operator sets it (serve --m365-authorize-url, --m365-token-url for
// national clouds and tests); a project owner never can, since codes and
// client secrets are sent there.
type MicrosoftIdentity struct {
	// AuthorizeURL and TokenURL: "" are Microsoft's; "{tenant}" is
	// replaced by the project's tenant.
	AuthorizeURL, TokenURL string
	// HTTPClient redeems codes: the operator's outbound policy
	// (netpolicy). nil is http.DefaultClient.
	HTTPClient *http.Client
}

// SetMicrosoftIdentity sets the sign-in endpoints; call it before serving.
func (s *Service) SetMicrosoftIdentity(id MicrosoftIdentity) { s.identity = id }

func (s *Service) authorizeURL(tenant string) string {
	u := s.identity.AuthorizeURL
	if u == "" {
		u = MicrosoftAuthorizeURL
	}
	return strings.ReplaceAll(u, "{tenant}", url.PathEscape(tenant))
}

// SignInOrigin is the origin of the authorization endpoint, which the
// end user's page lets its sign-in forms go to.
func (s *Service) SignInOrigin() string {
	u, err := url.Parse(s.authorizeURL("common"))
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (s *Service) tokenURL(tenant string) string {
	u := s.identity.TokenURL
	if u == "" {
		u = MicrosoftTokenURL
	}
	return strings.ReplaceAll(u, "{tenant}", url.PathEscape(tenant))
}

// delegatedScopes are the delegated permissions a side's sign-in asks
// for: read on a source, read and write on a destination, and a refresh
// token.
func delegatedScopes(side Side) []string {
	mail := "Mail.Read"
	if side == SideDestination {
		mail = "Mail.ReadWrite"
	}
	return []string{scopeGraphPrefix + mail, oauth.ScopeOfflineAccess}
}

// Sign-in errors the end user's pages explain.
var (
	// ErrSignInCancelled: the user declined at Microsoft (access_denied).
	ErrSignInCancelled = errors.New("the sign-in with Microsoft was cancelled; nothing was saved, and your link still works")
	// ErrSignInState: the callback does not belong to a sign-in started
	// in this browser in the last ten minutes (unknown, used or expired
	// state, or a nonce cookie that does not match).
	ErrSignInState = errors.New("this sign-in was not started from your link in this browser, or it took longer than ten minutes; open your link again and sign in from there")
	// ErrSignInRefused: Microsoft did not give a refresh token for the
	// code.
	ErrSignInRefused = errors.New("Microsoft did not accept the sign-in; nothing was saved. Try again from your link, or ask the person moving your email to check the app registration")
)

// SignInStart is a started sign-in: send the browser to URL and give it
// Nonce in a cookie that the callback reads back.
type SignInStart struct {
	URL, Nonce string
}

// delegatedApp returns a side's credentials when its users sign in
// themselves (m365-delegated), nil otherwise.
func (s *Service) delegatedApp(ctx context.Context, projectID string, side Side) (*AdminCredentials, error) {
	cs, err := s.st.Credentials(ctx, projectID)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if Side(c.Side) == side && c.Kind == kindM365Delegated {
			return s.admin(ctx, projectID, side)
		}
	}
	return nil, nil
}

func (s *Service) oauthConfig(a *AdminCredentials, side Side, redirectURL string) oauth2.Config {
	return oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, RedirectURL: redirectURL, Scopes: delegatedScopes(side),
		Endpoint: oauth2.Endpoint{AuthURL: s.authorizeURL(a.Tenant), TokenURL: s.tokenURL(a.Tenant), AuthStyle: oauth2.AuthStyleInParams}}
}

func signInAD(stateHash string) []byte { return []byte("sign-in:" + stateHash) }

// signInSealed is what a started sign-in keeps sealed.
type signInSealed struct {
	Verifier string `json:"v"`
	Token    string `json:"t"` // the link's, to send the user back to it
}

// BeginSignIn starts an end user's sign-in with Microsoft for one side of
// the link token; redirectURL is the portal's callback, registered with
// the app. ErrNotFound for an unusable link or a side whose users do
// not sign in; a *RateLimitError after signInsPerLink starts in an hour.
func (s *Service) BeginSignIn(ctx context.Context, token string, side Side, redirectURL string) (SignInStart, error) {
	t := time.Now()
	if token == "" {
		return SignInStart{}, ErrNotFound
	}
	l, err := s.st.PasswordLinkByHash(ctx, hashToken(token), t.Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return SignInStart{}, ErrNotFound
	}
	if err != nil {
		return SignInStart{}, err
	}
	a, err := s.delegatedApp(ctx, l.ProjectID, side)
	if err != nil {
		return SignInStart{}, err
	}
	if a == nil {
		return SignInStart{}, ErrNotFound
	}
	n, err := s.st.SignInsSince(ctx, hashToken(token), t.Add(-time.Hour).Unix())
	if err != nil {
		return SignInStart{}, err
	}
	if n >= signInsPerLink {
		return SignInStart{}, &RateLimitError{Retry: time.Hour}
	}
	state, nonce, verifier := randomToken(32), randomToken(32), oauth2.GenerateVerifier()
	plain, _ := json.Marshal(signInSealed{Verifier: verifier, Token: token})
	sealed, err := s.sealer.Seal(plain, signInAD(hashToken(state)))
	if err != nil {
		return SignInStart{}, fmt.Errorf("encrypt the sign-in: %w", err)
	}
	if err := s.st.AddSignIn(ctx, store.SignInRequest{StateHash: hashToken(state), TokenHash: hashToken(token), NonceHash: hashToken(nonce),
		Side: string(side), Sealed: base64.StdEncoding.EncodeToString(sealed), CreatedAt: t.Unix(), ExpiresAt: t.Add(signInTTL).Unix()}); err != nil {
		return SignInStart{}, err
	}
	email := l.SourceEmail
	if side == SideDestination {
		email = l.DestEmail
	}
	cfg := s.oauthConfig(a, side, redirectURL)
	u := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", email),
		oauth2.SetAuthURLParam("prompt", "select_account"))
	return SignInStart{URL: u, Nonce: nonce}, nil
}

// SignInCallback is what the authorization endpoint sent back.
type SignInCallback struct {
	State, Code string
	// Error is the endpoint's error parameter (access_denied when the
	// user declined).
	Error string
	// Nonce is the browser's cookie.
	Nonce string
	// RedirectURL is the one BeginSignIn was given.
	RedirectURL string
}

// SignInResult says where the user goes next.
type SignInResult struct {
	// Complete: every side of the mailbox has its credentials and the
	// link is used up.
	Complete bool
	// Token is the link's token, to send the user back to their page
	// (more to enter, or a cancelled sign-in to try again); empty when
	// the state was not known.
	Token string
	Side  Side
}

// FinishSignIn checks a callback and stores the signed-in user's sealed
// refresh token for that side of the link's mailbox only. Errors:
// ErrSignInState (unknown, used or expired state, or a nonce mismatch),
// ErrSignInCancelled (with the link's token in the result, to go back),
// ErrNotFound (the link was used or expired meanwhile), ErrSignInRefused
// (the code was not redeemed for a refresh token). No error carries the
// code or a token.
func (s *Service) FinishSignIn(ctx context.Context, cb SignInCallback) (SignInResult, error) {
	t := time.Now()
	if cb.State == "" {
		return SignInResult{}, ErrSignInState
	}
	stateHash := hashToken(cb.State)
	req, err := s.st.TakeSignIn(ctx, stateHash, t.Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return SignInResult{}, ErrSignInState
	}
	if err != nil {
		return SignInResult{}, err
	}
	if cb.Nonce == "" || hashToken(cb.Nonce) != req.NonceHash {
		return SignInResult{}, ErrSignInState
	}
	b, err := base64.StdEncoding.DecodeString(req.Sealed)
	if err != nil {
		return SignInResult{}, fmt.Errorf("%w (sign-in: not a sealed value)", ErrSecretKey)
	}
	plain, err := s.sealer.Open(b, signInAD(stateHash))
	if err != nil {
		return SignInResult{}, fmt.Errorf("%w (sign-in: %v)", ErrSecretKey, err)
	}
	var kept signInSealed
	if err := json.Unmarshal(plain, &kept); err != nil {
		return SignInResult{}, fmt.Errorf("read the sign-in: %w", err)
	}
	res := SignInResult{Token: kept.Token, Side: Side(req.Side)}
	l, err := s.st.PasswordLinkByHash(ctx, req.TokenHash, t.Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return SignInResult{}, ErrNotFound
	}
	if err != nil {
		return res, err
	}
	switch {
	case cb.Error == "access_denied":
		return res, ErrSignInCancelled
	case cb.Error != "" || cb.Code == "":
		return res, ErrSignInRefused
	}
	a, err := s.delegatedApp(ctx, l.ProjectID, res.Side)
	if err != nil {
		return res, err
	}
	if a == nil {
		return SignInResult{}, ErrNotFound
	}
	cfg := s.oauthConfig(a, res.Side, cb.RedirectURL)
	hc := s.identity.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), cb.Code, oauth2.VerifierOption(kept.Verifier))
	if err != nil {
		// The error's text may quote the request; only the
		// endpoint's error code goes on.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return res, fmt.Errorf("%w (the token endpoint answered %d %s)", ErrSignInRefused, re.Response.StatusCode, re.ErrorCode)
		}
		return res, fmt.Errorf("%w (the token endpoint could not be reached)", ErrSignInRefused)
	}
	if tok.RefreshToken == "" {
		return res, fmt.Errorf("%w (no refresh token: the app must allow the offline_access permission)", ErrSignInRefused)
	}
	sealed, err := s.seal(l.MailboxID, string(res.Side), tok.RefreshToken)
	if err != nil {
		return res, err
	}
	res.Complete, err = s.st.StoreSignIn(ctx, req.TokenHash, l.MailboxID, req.Side, sealed, t.Unix())
	if errors.Is(err, sql.ErrNoRows) {
		return SignInResult{}, ErrNotFound
	}
	return res, err
}

// signedIn returns a side's app credentials with the mailbox's user's
// refresh token, for the worker.
func (s *Service) signedIn(ctx context.Context, projectID, mailboxID string, side Side, sealed string) (*AdminCredentials, error) {
	a, err := s.admin(ctx, projectID, side)
	if err != nil {
		return nil, err
	}
	if sealed == "" {
		return nil, notSignedIn{side}
	}
	if a.RefreshToken, err = s.open(mailboxID, string(side), sealed); err != nil {
		return nil, err
	}
	a.TokenURL = s.identity.TokenURL
	return a, nil
}

// sideKinds reads the kind of each side's project credentials.
func (s *Service) sideKinds(ctx context.Context, projectID string) (map[Side]string, error) {
	cs, err := s.st.Credentials(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := map[Side]string{}
	for _, c := range cs {
		out[Side(c.Side)] = c.Kind
	}
	return out, nil
}

// notSignedIn fails a mailbox's pass like unreadable secrets do (no retry
// helps), with its own message.
type notSignedIn struct{ side Side }

func (e notSignedIn) Error() string {
	return fmt.Sprintf("the %s mailbox's user has not signed in with Microsoft yet: ask them again (Resend)", e.side)
}

func (e notSignedIn) Is(target error) bool { return target == ErrSecretKey }

// KeepRefreshToken stores a rotated refresh token of a mailbox's signed-in
// side (the worker's token source hands them out), sealed; a side whose
// credentials were erased meanwhile (Finish) stays erased.
func (s *Service) KeepRefreshToken(ctx context.Context, mailboxID string, side Side, token string) error {
	sealed, err := s.seal(mailboxID, string(side), token)
	if err != nil || sealed == "" {
		return err
	}
	return s.st.ReplaceSideSecret(ctx, mailboxID, string(side), sealed)
}
