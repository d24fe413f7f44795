package gmailimap

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/testenv/xoauth2imap"
)

// Capabilities, as captured from imap.gmail.com (LIMITS.md lists the
// captures) minus what this server does not implement: AUTH=PLAIN-
// CLIENTTOKEN before login, COMPRESS=DEFLATE and UTF8=ACCEPT after it.
const (
	capsPreAuth  = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=OAUTHBEARER"
	capsPostAuth = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT="
)

// Gmail's answers to failed logins (captured; see LIMITS.md).
const (
	respInvalidCredentials = "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"
	respAppPassword        = "NO [ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)"
	respTooMany            = "NO [ALERT] Too many simultaneous connections. (Failure)"
	respSuspended          = "NO [ALERT] Account exceeded command or bandwidth limits. (Failure)"
)

func (c *session) capabilities() string {
	if c.state == stateNotAuthenticated {
		return capsPreAuth
	}
	return capsPostAuth + strconv.FormatInt(c.s.opts.AppendLimit, 10)
}

func (c *session) cmdCapability(tag string) string {
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.emit("* CAPABILITY " + c.capabilities() + "\r\n")
	return "OK Thats all she wrote! " + c.token
}

func (c *session) cmdNoop(tag string) string {
	c.p.end()
	return "OK Success"
}

// cmdXyzzy is Gmail's easter egg, advertised as the XYZZY capability.
func (c *session) cmdXyzzy(tag string) string {
	c.p.end()
	c.emit("* OK Nothing happens.\r\n")
	return "OK Success"
}

func (c *session) cmdLogout(tag string) string {
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.emit("* BYE LOGOUT Requested\r\n")
	_ = c.flushOut(tag + " OK 73 good day (Success)")
	return ""
}

// cmdID is RFC 2971: id ::= "ID" SP id-params-list, id-params-list ::=
// "(" *(string SP nstring) ")" / nil.
func (c *session) cmdID(tag string) string {
	c.p.sp()
	params := map[string]string{}
	if c.p.peek() == '(' {
		var key string
		i := 0
		c.p.list(func() {
			var v string
			if c.p.peek() == 'N' || c.p.peek() == 'n' {
				if a := c.p.atom(); !strings.EqualFold(a, "NIL") {
					c.p.fail("expected string or NIL")
				}
			} else {
				v = c.p.str()
			}
			if i%2 == 0 {
				key = v
			} else {
				params[key] = v
			}
			i++
		})
		if i%2 != 0 {
			c.p.fail("ID parameters must come in pairs")
		}
	} else if a := c.p.atom(); !strings.EqualFold(a, "NIL") {
		c.p.fail("expected a parameter list or NIL")
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.s.mu.Lock()
	c.s.clientIDs = append(c.s.clientIDs, params)
	c.s.mu.Unlock()
	c.emit(`* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail" "remote-host" ` +
		quoteString(c.remote) + ` "connection-token" ` + quoteString(c.token) + ")\r\n")
	return "OK Success"
}

func (c *session) cmdEnable(tag string) string {
	var enabled []string
	for c.p.take(' ') {
		switch name := c.p.keyword(); name {
		case "CONDSTORE":
			if !c.condstore {
				c.condstore = true
				enabled = append(enabled, name)
			}
		}
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	c.emit(strings.TrimRight("* ENABLED "+strings.Join(enabled, " "), " ") + "\r\n")
	return "OK Success"
}

// cmdLogin is LOGIN, which Gmail allows only with an app password.
func (c *session) cmdLogin(tag string) string {
	c.p.sp()
	user := c.p.astring()
	c.p.sp()
	pass := c.p.astring()
	c.p.end()
	if c.p.failed() {
		return ""
	}
	if st := c.checkPassword(user, pass); st != "" {
		return st
	}
	return c.login(user)
}

// checkPassword returns "" when pass is user's app password, else the
// refusal.
func (c *session) checkPassword(user, pass string) string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	a := c.s.accounts[strings.ToLower(user)]
	switch {
	case a == nil:
		c.s.stats.Refused++
		return respInvalidCredentials
	case a.appPassword == "":
		c.s.stats.Refused++
		return respAppPassword
	case pass != a.appPassword:
		c.s.stats.Refused++
		return respInvalidCredentials
	}
	return ""
}

// login makes the session authenticated as user, or returns the refusal
// status: a suspended account, or one at its connection cap.
func (c *session) login(user string) string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.admit(user)
	if st != "" {
		return st
	}
	c.emit("* CAPABILITY " + c.capabilities() + "\r\n")
	return "OK " + c.user + " authenticated (Success)"
}

// admit does login's checks and bookkeeping; Server.mu is held.
func (c *session) admit(user string) string {
	a := c.s.accounts[strings.ToLower(user)]
	if a == nil {
		c.s.stats.Refused++
		return respInvalidCredentials
	}
	now := c.s.now()
	if a.suspended != "" && a.suspended == c.s.dayKey(now) {
		c.s.stats.OverLimit++
		return respSuspended
	}
	if a.conns >= c.s.opts.MaxConnections {
		c.s.stats.TooManyConnections++
		return respTooMany
	}
	a.conns++
	a.peakConns = max(a.peakConns, a.conns)
	c.acct = a
	c.user = a.user
	c.loginAt = now
	c.state = stateAuthenticated
	c.s.stats.Logins++
	return ""
}

// cmdAuthenticate is RFC 3501 section 6.2.2 with SASL-IR (RFC 4959):
// "AUTHENTICATE" SP auth-type [SP (base64 / "=")].
func (c *session) cmdAuthenticate(tag string) string {
	c.p.sp()
	mech := c.p.keyword()
	var ir []byte
	haveIR := false
	if c.p.take(' ') {
		haveIR = true
		s := c.p.run(func(b byte) bool { return b != ' ' }, "initial response")
		if s != "=" {
			var err error
			if ir, err = base64.StdEncoding.DecodeString(s); err != nil {
				c.p.fail("initial response is not base64")
			}
		}
	}
	c.p.end()
	if c.p.failed() {
		return ""
	}
	switch mech {
	case "XOAUTH2", "OAUTHBEARER", "PLAIN":
	default:
		c.s.mu.Lock()
		c.s.stats.Refused++
		c.s.mu.Unlock()
		return "NO [AUTHENTICATIONFAILED] Unsupported authentication mechanism (Failure)"
	}
	if !haveIR {
		// No initial response: an empty challenge asks for it.
		resp, status := c.saslExchange(nil)
		if status != "" {
			return status
		}
		ir = resp
	}
	switch mech {
	case "PLAIN":
		return c.authPlain(ir)
	case "OAUTHBEARER":
		return c.authOAuthBearer(ir)
	}
	return c.authXOAUTH2(ir)
}

// saslExchange sends a challenge ("+ " base64) and reads the client's
// response line. status is set when the exchange ended instead: the
// client cancelled with "*" (RFC 3501 section 6.2.2) or sent bad base64.
func (c *session) saslExchange(challenge []byte) (resp []byte, status string) {
	c.wmu.Lock()
	_, err := c.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		c.p.err = err
		return nil, ""
	}
	if err := c.p.readLine(); err != nil {
		c.p.err = err
		return nil, ""
	}
	line := string(c.p.buf)
	c.p.pos = len(c.p.buf)
	if line == "*" {
		return nil, "BAD Authentication cancelled"
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, "BAD Invalid SASL response. (Failure)"
	}
	return b, ""
}

// challengeError is a refused token's status and scope for the JSON
// challenge.
func (c *session) challengeFor(err error) []byte {
	status, scope := "400", c.s.opts.Scope
	var ch interface {
		ChallengeStatus() string
		ChallengeScope() string
	}
	if errors.As(err, &ch) {
		if v := ch.ChallengeStatus(); v != "" {
			status = v
		}
		if v := ch.ChallengeScope(); v != "" {
			scope = v
		}
	}
	// Field order and the capitalised "Bearer" are Gmail's, as captured
	// (LIMITS.md); Google's page shows the same three fields.
	b, _ := json.Marshal(struct {
		Status  string `json:"status"`
		Schemes string `json:"schemes"`
		Scope   string `json:"scope"`
	}{status, "Bearer", scope})
	return b
}

// failAfterChallenge sends the JSON error challenge, waits for the
// client's response (which must be empty) and returns final, the tagged
// status (XOAUTH2 page, "Error response").
func (c *session) failAfterChallenge(challenge []byte, final string, dummy []byte) string {
	resp, status := c.saslExchange(challenge)
	if c.p.failed() {
		return ""
	}
	if status == "" && !bytes.Equal(resp, dummy) && len(resp) != 0 {
		c.s.mu.Lock()
		c.s.stats.NonEmptyAfterChallenge++
		c.s.mu.Unlock()
	}
	return final
}

func (c *session) verifyToken(user, token string) error {
	if c.s.opts.Verify == nil {
		return errors.New("no token verifier configured")
	}
	return c.s.opts.Verify(user, token)
}

// authXOAUTH2 checks the exact SASL XOAUTH2 client response
// (developers.google.com/gmail/imap/xoauth2-protocol):
// "user=" {User} "^Aauth=Bearer " {Access Token} "^A^A".
func (c *session) authXOAUTH2(resp []byte) string {
	user, token, err := xoauth2imap.ParseResponse(resp)
	if err != nil {
		c.s.mu.Lock()
		c.s.stats.Malformed++
		c.s.mu.Unlock()
		return "BAD Invalid SASL argument. (Failure)"
	}
	return c.tokenLogin(user, token, nil)
}

// tokenLogin finishes an OAuth login: a refused token, an unknown
// account, or a login refused by the connection cap or a suspension
// each get the error challenge first, as Gmail does.
func (c *session) tokenLogin(user, token string, dummy []byte) string {
	if err := c.verifyToken(user, token); err != nil {
		c.s.mu.Lock()
		c.s.stats.Refused++
		c.s.mu.Unlock()
		return c.failAfterChallenge(c.challengeFor(err), respInvalidCredentials, dummy)
	}
	c.s.mu.Lock()
	st := c.admit(user)
	if st == "" {
		c.emit("* CAPABILITY " + c.capabilities() + "\r\n")
	}
	c.s.mu.Unlock()
	if st != "" {
		return c.failAfterChallenge(c.challengeFor(nil), st, dummy)
	}
	return "OK " + c.user + " authenticated (Success)"
}

// authPlain is RFC 4616: [authzid] NUL authcid NUL passwd.
func (c *session) authPlain(resp []byte) string {
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		c.s.mu.Lock()
		c.s.stats.Malformed++
		c.s.mu.Unlock()
		return "BAD Invalid SASL argument. (Failure)"
	}
	user := string(parts[1])
	if len(parts[0]) != 0 && !strings.EqualFold(string(parts[0]), user) {
		c.s.mu.Lock()
		c.s.stats.Refused++
		c.s.mu.Unlock()
		return respInvalidCredentials
	}
	if st := c.checkPassword(user, string(parts[2])); st != "" {
		return st
	}
	return c.login(user)
}

// authOAuthBearer is RFC 7628 section 3.1: gs2-header kvsep *kvpair
// kvsep, with kvsep %x01, the user in the gs2 header's "a=" and
// auth=Bearer token among the pairs.
func (c *session) authOAuthBearer(resp []byte) string {
	user, token, ok := parseOAuthBearer(resp)
	if !ok {
		c.s.mu.Lock()
		c.s.stats.Malformed++
		c.s.mu.Unlock()
		return "BAD Invalid SASL argument. (Failure)"
	}
	// RFC 7628 section 3.2.3: the client answers a failure with a
	// single %x01.
	return c.tokenLogin(user, token, []byte{1})
}

func parseOAuthBearer(resp []byte) (user, token string, ok bool) {
	s := string(resp)
	if !strings.HasSuffix(s, "\x01\x01") {
		return "", "", false
	}
	fields := strings.Split(strings.TrimSuffix(s, "\x01\x01"), "\x01")
	gs2 := strings.Split(fields[0], ",")
	// gs2-header = gs2-cbind-flag "," [authzid] ","; no channel binding.
	if len(gs2) != 3 || (gs2[0] != "n" && gs2[0] != "y") || gs2[2] != "" || !strings.HasPrefix(gs2[1], "a=") {
		return "", "", false
	}
	user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(gs2[1][2:])
	for _, kv := range fields[1:] {
		k, v, found := strings.Cut(kv, "=")
		if !found || k == "" {
			return "", "", false
		}
		if k == "auth" {
			t, found := strings.CutPrefix(v, "Bearer ")
			if !found || t == "" || strings.Contains(t, " ") {
				return "", "", false
			}
			token = t
		}
	}
	return user, token, user != "" && token != ""
}
