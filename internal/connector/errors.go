package connector

import (
	"errors"
	"fmt"
	"time"
)

// Kind sorts errors by what the engine should do about them.
type Kind int

const (
	// KindUnknown errors are treated as transient until retries run out.
	KindUnknown Kind = iota
	// KindTransient: a dropped connection, timeout, BYE, [UNAVAILABLE],
	// [LIMIT] or throttling. Reconnect, back off and retry.
	KindTransient
	// KindItem: this one message failed (too big, rejected, vanished);
	// record it and go on with the rest.
	KindItem
	// KindQuota: the destination is full. Nothing more fits.
	KindQuota
	// KindAuth: the login was refused. Stop this mailbox.
	KindAuth
	// KindTLS: the TLS handshake or certificate check failed.
	KindTLS
	// KindHost: the host name does not resolve.
	KindHost
	// KindConnect: the connection was refused or timed out.
	KindConnect
	// KindMissingFolder: the folder does not exist.
	KindMissingFolder
	// KindConfig: the settings are wrong (e.g. plaintext login refused).
	KindConfig
	// KindNoAccount: the server says the mailbox (the account logged in
	// to) does not exist. Most servers do not tell it apart from a wrong
	// password (KindAuth). Stop this mailbox.
	KindNoAccount
	// KindPermission: the login worked but the account lacks a right the
	// operation needs (EWS ApplicationImpersonation, a Graph application
	// permission such as Mail.ReadWrite). Stop this mailbox; the hint
	// names the right to grant.
	KindPermission
)

// String names the kind for logs and JSON events.
func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindItem:
		return "item"
	case KindQuota:
		return "quota"
	case KindAuth:
		return "auth"
	case KindTLS:
		return "tls"
	case KindHost:
		return "host"
	case KindConnect:
		return "connect"
	case KindMissingFolder:
		return "missing-folder"
	case KindConfig:
		return "config"
	case KindNoAccount:
		return "no-account"
	case KindPermission:
		return "permission"
	}
	return "unknown"
}

// Fatal reports whether an error of this kind stops the whole mailbox.
func (k Kind) Fatal() bool {
	switch k {
	case KindAuth, KindTLS, KindHost, KindConnect, KindConfig, KindNoAccount, KindPermission:
		return true
	}
	return false
}

// Error is an error with a kind and a hint for the user. Connectors wrap
// every error they return in one.
type Error struct {
	Kind Kind
	// Op says what was being done, e.g. `log in to mail.example.com`.
	Op string
	// Hint tells the user what to do next. It may be empty.
	Hint string
	Err  error
	// Uncertain is set on append errors where the message may or may not
	// have been stored (the connection dropped before the answer came).
	Uncertain bool
	// RetryAfter is the server's hint of how long to wait before trying
	// again (IMAP "Suggested Backoff Time", EWS BackOffMilliseconds, HTTP
	// Retry-After); 0 when it gave none. The retry layer honours it.
	RetryAfter time.Duration
	// DailyLimit marks a RetryAfter that waits for a provider's daily
	// quota to reset (Gmail's IMAP bandwidth limits), not throttling:
	// the portal shows the pass as paused until then.
	DailyLimit bool
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(kind Kind, hint string, err error, op string, args ...any) *Error {
	return &Error{Kind: kind, Op: fmt.Sprintf(op, args...), Hint: hint, Err: err}
}

// KindOf returns the kind of err, KindUnknown when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}

// HintOf returns the first user hint found in err's chain.
func HintOf(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}

// IsUncertain reports whether a failed append may nevertheless have
// stored the message.
func IsUncertain(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Uncertain
}

// RetryAfterOf returns the first server hint of how long to wait found
// in err's chain, 0 when there is none.
func RetryAfterOf(err error) time.Duration {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return 0
		}
		if e.RetryAfter > 0 {
			return e.RetryAfter
		}
		err = e.Err
	}
	return 0
}

// IsDailyLimit reports whether err is a provider's daily limit (see
// Error.DailyLimit).
func IsDailyLimit(err error) bool {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return false
		}
		if e.DailyLimit {
			return true
		}
		err = e.Err
	}
	return false
}
