// Package gmailimap is an in-process IMAP server that behaves like
// Gmail's IMAP service (imap.gmail.com), for testing IMAP clients against
// Gmail without a Google account.
//
// It follows Google's documentation: the IMAP extensions page
// (developers.google.com/gmail/imap/imap-extensions: X-GM-EXT-1,
// X-GM-MSGID, X-GM-THRID, X-GM-LABELS, X-GM-RAW, SPECIAL-USE), the
// XOAUTH2 page (developers.google.com/gmail/imap/xoauth2-protocol), the
// help pages on how IMAP actions sync with labels
// (support.google.com/mail/answer/77657) and the bandwidth limits
// (support.google.com/a/answer/1071518), and, where Google is silent,
// Gmail's answers as captured in public client trackers. LIMITS.md says
// which behaviour follows which source, what real Gmail does that this
// server does not, and what was assumed.
//
// The model is Gmail's: one message store per account, each message with
// a set of labels, and each label a folder. A message labelled \Inbox
// and "Work" is in INBOX, in Work and in [Gmail]/All Mail, with a
// different UID in each and the same X-GM-MSGID everywhere. COPY and
// APPEND add a label, EXPUNGE in a label folder removes it, EXPUNGE in
// Trash or Spam deletes; Starred is the set of flagged messages.
//
// Logins are AUTHENTICATE XOAUTH2 and OAUTHBEARER with tokens checked by
// Options.Verify (graphserver.Server.CheckIMAPToken fits), and LOGIN and
// AUTHENTICATE PLAIN with an app password. Daily download and upload
// budgets, the per-account connection cap and APPENDLIMIT are enforced
// with Gmail's responses, on an injectable clock.
//
// The protocol code is written on the standard library: go-imap v2's
// server cannot add FETCH items such as X-GM-LABELS. Commands are parsed
// by a parser named after RFC 3501's formal syntax, fuzzed in
// fuzz_test.go.
//
// Use:
//
//	srv := gmailimap.Start(t, &gmailimap.Options{Verify: tokens.CheckIMAPToken})
//	srv.AddAccount("alice@gmail.com", &gmailimap.AccountOptions{AppPassword: "abcd efgh ijkl mnop"})
//	id, _ := srv.Seed("alice@gmail.com", gmailimap.Message{Raw: raw, Labels: []string{`\Inbox`, "Work"}})
//	// dial srv.Addr with srv.TLSConfig(); inspect with srv.Message,
//	// srv.Folder, srv.Usage, srv.Commands; misbehave with srv.InjectFault.
package gmailimap
