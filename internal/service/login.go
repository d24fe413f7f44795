package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Login-link settings, after the seed: a single-use link that expires.
//
// Links are limited per address so that nobody can flood a mailbox with
// them, but the limit must not lock the address's owner out: anyone can
// ask for links to anyone's address. So the window of the per-address
// limit is the lifetime of a link. Whenever the limit refuses a request,
// the links it counted were all mailed to the owner within the last
// LoginLinkTTL, none has expired yet, and the newest one logs the owner
// in; a flood only ever delays a new link by at most LoginLinkTTL, and
// sends at most loginPerAddress mails per LoginLinkTTL. Sending a new
// link never invalidates the earlier ones, for the same reason.
const (
	LoginLinkTTL = 15 * time.Minute
	SessionTTL   = 12 * time.Hour
	// At most this many links per address per LoginLinkTTL.
	loginPerAddress = 3
	// At most this many links per client IP an hour.
	loginPerIP      = 20
	loginIPWindow   = time.Hour
	loginAddrWindow = LoginLinkTTL
)

// ErrRateLimited means too many login links were asked for. The error
// returned is a *RateLimitError, which says for how long.
var ErrRateLimited = errors.New("too many login requests; wait a while and try again")

// RateLimitError is a refused login-link request.
type RateLimitError struct {
	// PerAddress: the address had its links; else the client IP did.
	PerAddress bool
	// Retry is when a new link can be asked for.
	Retry time.Duration
}

func (e *RateLimitError) Error() string { return ErrRateLimited.Error() }

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// RequestLogin creates a login token for email and returns it, for the
// caller to mail as a link. It answers the same way whether or not the
// address is known (an unknown one becomes a new owner on first login),
// so the page cannot be used to find out who has an account. Requests
// are limited per address and per client IP.
func (s *Service) RequestLogin(ctx context.Context, email, clientIP string) (string, error) {
	addr, err := cleanEmail("email", email)
	if err != nil {
		return "", err
	}
	t := time.Now()
	for _, b := range []struct {
		bucket  string
		limit   int
		window  time.Duration
		address bool
	}{{"addr:" + addr, loginPerAddress, loginAddrWindow, true}, {"ip:" + clientIP, loginPerIP, loginIPWindow, false}} {
		n, oldest, err := s.st.LoginRequests(ctx, b.bucket, t.Add(-b.window).Unix())
		if err != nil {
			return "", err
		}
		if n >= b.limit {
			retry := time.Until(time.Unix(oldest, 0).Add(b.window)).Round(time.Minute)
			return "", &RateLimitError{PerAddress: b.address, Retry: max(retry, time.Minute)}
		}
	}
	if err := s.st.AddLoginRequest(ctx, t.Unix(), t.Add(-max(loginIPWindow, loginAddrWindow)).Unix(), "addr:"+addr, "ip:"+clientIP); err != nil {
		return "", err
	}
	token := randomToken(32)
	if err := s.st.AddLoginToken(ctx, hashToken(token), addr, t.Add(LoginLinkTTL).Unix()); err != nil {
		return "", fmt.Errorf("store login token: %w", err)
	}
	return token, nil
}

// Session is a logged-in browser.
type Session struct {
	ID    string // the cookie value; only its hash is stored
	Owner Owner
	CSRF  string // token every state-changing form must carry
}

// ConsumeLogin turns a login token into a session, once. Expired, used
// or unknown tokens are ErrNotFound.
func (s *Service) ConsumeLogin(ctx context.Context, token string) (Session, error) {
	t := time.Now().Unix()
	// Marking it used is the single-use guarantee: only one request, of
	// any API process, can flip used_at from 0.
	email, err := s.st.UseLoginToken(ctx, hashToken(token), t)
	if err != nil {
		return Session{}, notFound(err)
	}
	owner, err := s.EnsureOwner(ctx, email)
	if err != nil {
		return Session{}, err
	}
	sess := Session{ID: randomToken(32), Owner: owner, CSRF: randomToken(24)}
	if err := s.st.AddSession(ctx, hashToken(sess.ID), owner.ID, sess.CSRF, t, time.Now().Add(SessionTTL).Unix()); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// SessionByID authenticates a session cookie.
func (s *Service) SessionByID(ctx context.Context, id string) (Session, error) {
	o, csrf, err := s.st.Session(ctx, hashToken(id), time.Now().Unix())
	if err != nil {
		return Session{ID: id}, notFound(err)
	}
	sess := Session{ID: id, Owner: Owner{ID: o.ID, Email: o.Email}, CSRF: csrf}
	sess.Owner.Operator, err = s.st.IsOperator(ctx, o.ID)
	return sess, err
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, id string) error {
	return s.st.DeleteSession(ctx, hashToken(id))
}
