// Package eml reads a directory tree of .eml files (one RFC 5322
// message per file, as mail clients save or export them) as a Mailferry
// source. It cannot be a destination: write backups with maildir: or
// mbox:.
//
// # Addresses
//
//	eml:/exports/alice           a tree
//	eml:/exports/alice/one.eml   one file (INBOX with one message)
//	eml:relative/dir, eml:~/dir, eml:///abs/dir (as for maildir:)
//
// # Folders
//
// The files directly in the root are INBOX, together with those of a
// top-level directory named Inbox (any case), whose subdirectories are
// INBOX's subfolders. Every other directory is a folder named by its
// path below the root ("Work/2019"); a directory holding no .eml files
// but subfolders that do is a NoSelect parent; directories with no .eml
// files anywhere below are not folders. Names are taken as they are on
// disk. Dot-files and dot-directories are skipped, symbolic links to
// directories are not followed (no loops), and roles come from names.
//
// # Messages
//
// Every file whose name ends in .eml (any case) is a message; other
// files (.txt, attachments saved beside, .DS_Store) are not. Its ID is
// its path relative to the root ('/'-separated), so a file edited in
// place keeps its ID and is not copied again: files are taken as
// immutable. Bytes are served exactly as stored (bare LF included; the
// IMAP connector writes them to IMAP with CRLF, and byte-exactness is
// defined on the CRLF form). There are no flags. INTERNALDATE is the
// newest date among the Received: fields (the last hop's delivery time,
// as for POP3), else the Date: field, else the file's mtime: exported
// files' mtimes are usually the export time.
//
// # Changes
//
// The cursor is a digest of every file's name, inode, size, mtime and
// ctime, and the time it was taken. Statuses says Unchanged when the
// digest is equal and the cursor was taken at least two seconds after
// the newest time stamp (time stamps move in coarse ticks); List with
// such a cursor lists nothing, otherwise everything as ChangeNew
// (Features.CheapChanges is false).
//
// # Problems
//
// A file that cannot be read (permissions, a symbolic link out of the
// tree or in a loop) is listed with its ID; Fetch reports a KindItem
// error naming the file. A directory that cannot be read is listed as a
// folder whose List fails with its path and the reason.
package eml
