// Package xoauth2imap is an in-process IMAP server that logs in only with
// SASL XOAUTH2, for testing IMAP clients against Microsoft 365 and Gmail
// style OAuth2 logins.
//
// The mechanism follows Google's "OAuth 2.0 Mechanism" page
// (developers.google.com/gmail/imap/xoauth2-protocol) and
// Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth":
// the client's response is base64 of
//
//	"user=" {user} "\x01auth=Bearer " {token} "\x01\x01"
//
// and is checked byte for byte. On a refused token the server sends a
// base64 JSON error challenge ({"status":"401","schemes":"bearer",
// "scope":"..."}), the client must answer with an empty line, and only then
// gets the tagged NO. LOGIN and other mechanisms are refused.
//
// Mailboxes are go-imap's imapmemserver users, so mail works after login.
// Tokens are checked by Options.Verify, typically
// graphserver.Server.CheckIMAPToken, so that tokens minted by the test
// token endpoint log in.
//
// LIMITS.md in ../graphserver says what it follows and what it does not do.
package xoauth2imap
