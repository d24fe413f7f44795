// Package connector defines how the migration engine talks to a mail
// system. The engine knows a source or destination only through these
// interfaces: messages are addressed by opaque IDs and a folder's change
// state is an opaque Cursor, both made and read back by the connector
// alone; optional abilities are small interfaces discovered into Features
// (FeaturesOf). Each protocol lives in its own sub-package (imap, pop3,
// maildir, mbox, eml; later ews and graph), registers itself with a
// Backend, is opened only through a Registry (the one list is in package
// all), and must pass the shared conformance suite in package conntest.
// Retry, connection caps and dry runs are layers (package layer) that wrap
// any connector.
package connector
