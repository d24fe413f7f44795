package xoauth2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/connector"
)

// Mechanism is the SASL mechanism name (IMAP capability AUTH=XOAUTH2).
const Mechanism = "XOAUTH2"

// InitialResponse returns the client's first (and only) message before
// the protocol's base64: "user=" user "\x01auth=Bearer " token "\x01\x01".
func InitialResponse(user, token string) []byte {
	b := make([]byte, 0, len(user)+len(token)+20)
	b = append(b, "user="...)
	b = append(b, user...)
	b = append(b, "\x01auth=Bearer "...)
	b = append(b, token...)
	b = append(b, "\x01\x01"...)
	return b
}

// Failure is the server's JSON error challenge, as documented by Google:
// status is an HTTP-like code ("401": the token is invalid or expired;
// "400": a malformed request), schemes the accepted ones, scope the scope
// that would have worked.
type Failure struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
	// Raw is the challenge as received, when it was not JSON.
	Raw string `json:"-"`
}

func (f *Failure) Error() string {
	if f.Status == "" && f.Raw != "" {
		return fmt.Sprintf("the server refused the OAuth token: %q", f.Raw)
	}
	msg := "the server refused the OAuth token (status " + f.Status
	switch f.Status {
	case "401":
		msg += ": invalid or expired"
	case "400":
		msg += ": malformed request"
	}
	msg += ")"
	if f.Scope != "" {
		msg += "; it needs scope " + f.Scope
	}
	return msg
}

// ParseChallenge decodes a server challenge (already base64-decoded by
// the protocol layer). Anything that is not the documented JSON is kept
// as Raw, bounded, so that the error can still show it.
func ParseChallenge(challenge []byte) *Failure {
	var f Failure
	if err := json.Unmarshal(challenge, &f); err != nil || (f.Status == "" && f.Scope == "" && f.Schemes == "") {
		raw := strings.ToValidUTF8(string(challenge), "?")
		if len(raw) > 200 {
			raw = raw[:200] + "…"
		}
		return &Failure{Raw: raw}
	}
	return &f
}

// Client is one XOAUTH2 exchange. Use a new one for every attempt.
type Client struct {
	user, token string
	started     bool
	failure     *Failure
}

var _ sasl.Client = (*Client)(nil)

// NewClient returns a client that logs user in with token.
func NewClient(user, token string) *Client {
	return &Client{user: user, token: token}
}

// Start implements sasl.Client: the mechanism and the initial response.
func (c *Client) Start() (mech string, ir []byte, err error) {
	switch {
	case c.user == "":
		return "", nil, errors.New("xoauth2: no user name")
	case c.token == "":
		return "", nil, errors.New("xoauth2: no access token")
	case strings.ContainsAny(c.user, "\x01\r\n"), strings.ContainsAny(c.token, "\x01\r\n "):
		// \x01 separates the fields; a token never holds one.
		return "", nil, errors.New("xoauth2: the user name or token holds a control character")
	}
	c.started = true
	return Mechanism, InitialResponse(c.user, c.token), nil
}

// Next implements sasl.Client. XOAUTH2 has no second step: a challenge is
// the server's error report. It is kept (see Failure) and answered with
// the empty response Google and Microsoft ask for, so that the server
// ends the exchange with its tagged NO.
func (c *Client) Next(challenge []byte) ([]byte, error) {
	if !c.started {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	if c.failure != nil {
		// A second challenge: not part of the mechanism. Aborting
		// makes the protocol layer cancel the exchange.
		return nil, fmt.Errorf("xoauth2: unexpected second challenge after %w", c.failure)
	}
	c.failure = ParseChallenge(challenge)
	return []byte{}, nil
}

// Failure returns the server's decoded error challenge, nil if it sent
// none.
func (c *Client) Failure() *Failure { return c.failure }

// TokenSource is what Login needs of an OAuth token source
// (*oauth.Source implements it).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate(token string)
}

// Login authenticates user with a token from ts through authenticate,
// which runs one SASL exchange with the given client (for IMAP:
// func(c sasl.Client) error { return imapClient.Authenticate(c) }) and
// returns the protocol's error. When the server refuses the token, Login
// invalidates it and tries once more with a fresh one. The error returned
// is a connector.Error: KindAuth for a refused token, with the server's
// challenge decoded into it and a hint; a failure to get a token keeps
// its own kind.
//
// refused reports whether a protocol error means the credentials were
// refused (IMAP: NO [AUTHENTICATIONFAILED] or a NO to AUTHENTICATE) rather
// than a broken connection; nil treats every error after a Failure
// challenge as a refusal and any other error as final.
func Login(ctx context.Context, user string, ts TokenSource, authenticate func(sasl.Client) error, refused func(error) bool) error {
	op := fmt.Sprintf("log in as %s with OAuth (XOAUTH2)", user)
	var last error
	for attempt := 0; attempt < 2; attempt++ {
		token, err := ts.Token(ctx)
		if err != nil {
			return err
		}
		c := NewClient(user, token)
		err = authenticate(c)
		if err == nil {
			return nil
		}
		f := c.Failure()
		isRefusal := f != nil
		if refused != nil {
			isRefusal = refused(err)
		}
		if !isRefusal {
			return connector.Errorf(connector.KindTransient, "", err, "%s", op)
		}
		ts.Invalidate(token)
		last = err
		if f != nil {
			last = fmt.Errorf("%w (%v)", err, f)
		}
	}
	return connector.Errorf(connector.KindAuth, loginHint, last, "%s", op)
}

const loginHint = "the mail server refused a freshly issued OAuth token: for Microsoft 365 app-only access grant the app IMAP.AccessAsApp with admin consent and give its service principal access to the mailbox (Add-MailboxPermission); for delegated access and Gmail check that the token's user is this mailbox and that IMAP is enabled for it"
