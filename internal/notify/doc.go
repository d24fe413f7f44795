// Package notify sends email on mailferry's behalf: pass reports now, login
// links later.
//
// Sender is the only thing callers see. NewSMTP delivers through the
// installation's mail server; NewOutbox is for installs without one and
// writes each message to a directory and to the log, so that a local admin
// can still read reports and follow login links.
package notify
