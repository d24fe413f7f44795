// Package xoauth2 is the client side of the SASL mechanism XOAUTH2 that
// Gmail and Microsoft 365 accept for IMAP, POP and SMTP with an OAuth 2.0
// access token. go-sasl has no XOAUTH2 client; this one implements its
// sasl.Client interface, so that go-imap's Client.Authenticate can use
// it.
//
// # Exchange
//
// The format is Google's "OAuth 2.0 Mechanism" page
// (developers.google.com/gmail/imap/xoauth2-protocol) and Microsoft's
// "Authenticate an IMAP, POP or SMTP connection using OAuth"
// (learn.microsoft.com/exchange/client-developer/legacy-protocols/
// how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth):
//
//	initial response:  "user=" user "\x01auth=Bearer " token "\x01\x01"
//
// sent base64-encoded by the protocol layer (with SASL-IR in the
// AUTHENTICATE command itself, or after an empty "+" continuation). When
// the token is refused, Google's servers answer with a continuation that
// carries base64 JSON, e.g. {"status":"401","schemes":"bearer
// mac","scope":"https://mail.google.com/"}; the client must answer it
// with an empty response, after which the server sends the tagged NO.
// Client.Next does that and keeps the decoded challenge, which
// Client.Failure returns: the caller combines it with the NO it got.
// Exchange Online is reported to answer "NO AUTHENTICATE failed." without
// a challenge; then Failure is nil.
//
// # Refresh on reconnect
//
// Login runs one exchange with a token from a TokenSource and, when the
// server refuses that token, invalidates it and tries once more with a
// new one (a token can be revoked or expire between its fetch and its
// use). The authenticate function it is given does the protocol part, so
// the same Login serves IMAP (go-imap's Client.Authenticate), POP3 and
// SMTP.
//
// # go-imap and the empty response
//
// go-imap v2 (beta.8) writes an empty SASL response as "=" rather than an
// empty line; RFC 9051's grammar allows "=" only for an empty initial
// response. internal/testenv/xoauth2imap takes "=" as empty (the tests
// check that it counted no non-empty answer); whether Gmail and Exchange
// Online do is unverified. Pass a refused function to Login that
// recognises the protocol's NO: Exchange is reported to send it without
// a challenge, and without one Login cannot tell a refusal from a broken
// connection.
//
// # Verified against documentation only
//
// The tests log in to internal/testenv/xoauth2imap (written from the two
// pages above by someone who had not seen this package) with tokens from
// internal/testenv/graphserver. No Gmail or Exchange Online server was
// reached.
package xoauth2
