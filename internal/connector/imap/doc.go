// Package imap is the IMAP connector, built on go-imap v2. It keeps a
// small pool of sessions per mailbox, pipelines FETCH and APPEND on each,
// translates folder names between the server's delimiter and namespace
// prefix and Mailferry's mail.Path, and sorts every error into a
// connector.Kind with a hint for the user.
package imap
