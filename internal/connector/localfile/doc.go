// Package localfile holds what the local file connectors (maildir, mbox,
// eml) share: reading file-path addresses, keeping every file access
// inside the root the user named, reading a message's header block with
// bounded memory, and the small key=value cursor format.
//
// It knows no mailbox format; each connector package documents its own.
package localfile
