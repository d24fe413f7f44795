// Package connector defines how the migration engine talks to a mail
// system. The engine knows a source or destination only through these
// interfaces; each protocol lives in its own sub-package (imap today; pop3,
// ews, graph, mbox and maildir later) and must pass the shared conformance
// suite in package conntest.
package connector
