// Package mbox reads and writes mbox files (RFC 4155) and trees of them
// as a Mailferry source and destination.
//
// # Addresses
//
//	mbox:/backup/alice.mbox       one file: one folder, INBOX
//	mbox:/backup/alice            a directory: a folder tree
//	mbox:relative/x.mbox, mbox:~/Mail, mbox:///abs/path (as for maildir:)
//
// An existing file is one folder and an existing directory a tree. A
// destination that does not exist yet is created: a file when the path
// ends in ".mbox", else a directory. Written to a single file, every
// folder of the source lands in that one file.
//
// # Trees
//
// Read: Thunderbird's layout ("Name" holds the messages, "Name.sbd/"
// the subfolders, .msf indexes beside), Apple Mail's export ("Name.mbox/"
// holding the file "mbox" and nested "Sub.mbox/"), and plain "Name.mbox"
// files in directories. "Inbox" (any case) at the top is INBOX. A file
// is a folder when it is named *.mbox, has a .msf or .sbd sibling, is
// empty, or starts with "From "; index and metadata files (.msf, .dat,
// .json, .html, .plist, table_of_contents, …) and dot-files are not.
// Written: Thunderbird's layout, which Thunderbird opens as Local Folders
// and mutt, Apple Mail and Dovecot read as plain mbox files. Folder
// names are file names with '%' written "%25", '/' "%2F", a leading '.'
// "%2E", and a name that would look like something else (x.sbd, x.mbox,
// x.msf, mbox) has its last '.' or first letter escaped the same way.
// A directory of the tree that cannot be read fails Folders with its path
// (its folders cannot be known); Roles come from folder names.
//
// # Splitting (reading)
//
// A line starting with "From " separates two messages when it starts the
// file (after blank lines) or follows an empty line, and either carries a
// date in asctime form ("From sender Mon Jan  2 15:04:05 2006", also
// without weekday or seconds, with a numeric or named zone before or
// after the year; Thunderbird's "From - …") or is followed by a line
// that looks like a header field. Any other "From " line is part of the
// message (mboxo writers leave such body lines unquoted). Reading undoes
// mboxrd quoting: one '>' is removed from every line matching ^>+From .
// This undoes mboxo's quoting too; an mboxo file cannot tell a quoted
// "From " line from a body line that began with ">From " (mboxo's known
// ambiguity), mboxrd files can. The empty line before the next
// separator is not part of the message. The "From " line's date is the
// INTERNALDATE (UTC when it gives no zone).
//
// # Flags
//
// Read from Status (R \Seen; O "old" is no IMAP flag), X-Status
// (A \Answered, F \Flagged, T \Draft, D \Deleted), X-Keywords (mutt and
// Dovecot keywords), and Thunderbird's X-Mozilla-Status (0x1 read,
// 0x2 replied, 0x4 marked, 0x8 expunged, 0x1000 forwarded) and
// X-Mozilla-Keys. In messages other programs wrote these header fields
// are part of the message as stored and are served with it.
//
// # Writing
//
// Each message is written as
//
//	From MAILER-DAEMON <INTERNALDATE in UTC, asctime>
//	X-Mailferry-Mbox: v=1 flag-lines=N final-newline=1
//	Status: RO (or O)          \
//	X-Status: AFTD (if any)     > the N flag lines
//	X-Keywords: a b (if any)   /
//	<the message, with one '>' added to every line matching ^>*From >
//	<an empty line>
//
// The X-Mailferry-Mbox line and the N lines after it are Mailferry's:
// reading strips exactly them (only when that line directly follows the
// "From " line), so the bytes served are the bytes that were appended,
// and IMAP → mbox → IMAP is byte-exact. They use the message's own line
// end (CRLF when its first line has one). final-newline=0 says the
// message did not end with a newline, and one was added before the
// empty line. Line ends are stored as given: CRLF stays CRLF, bare LF
// stays LF (the IMAP connector turns bare LF into CRLF when it writes to
// IMAP; byte-exactness is defined on the CRLF form). Keywords that are
// not IMAP atoms cannot be written in X-Keywords and are left out.
//
// Appends hold an exclusive flock(2) on the file while the connector is
// open (another Mailferry, or a program that uses flock, is refused with
// a clear error; programs that lock only with fcntl or dot-locks must be
// closed during the copy). Before the first append a journal
// (".<file>.mailferry-journal", fsynced) records the file's size; Wait
// fsyncs the file and records the new size (one fsync for all appends
// made before it); Close removes the journal. After a crash the next
// writer cuts the file back to the recorded size, so a half-written
// message never stays (its append never returned, and the engine sends
// it again), and readers never read past it. Each append is read back
// with the reading rules before it counts, so what is stored is what will
// be served. Flags cannot be changed in place without rewriting the
// file: there is no SetFlags, and no Delete.
//
// # IDs and cursors
//
// A message's ID is "<byte offset of its From line>.<first 48 bits of
// the SHA-256 of its stored bytes, hex>". Fetch rescans the message at
// the offset and refuses (KindItem) one whose hash differs: an ID never
// silently names another message after the file changed. The cursor
// holds the file's inode, size, mtime and ctime, how far it was read,
// the last message's ID, and the message count. List with a cursor whose
// last message is unchanged and still ends where reading ended scans
// only the appended bytes (Features.CheapChanges); anything else (the
// file rewritten or cut) lists everything with Reset. Statuses says
// Unchanged for a file whose stamp equals the cursor's when the cursor
// was taken at least two seconds after it (time stamps move in coarse
// ticks), else counts by scanning.
//
// # Problems
//
// Bytes before the first "From " line, a separator without a date, and
// a last message cut in the middle of a line are listed with their IDs;
// Fetch reports them as KindItem errors "mbox <file> at byte <offset>:
// …" with a hint, and every other message is copied. A file that cannot
// be opened fails its folder's List with the file's name; a read error
// fails it with the byte offset.
//
// # Library
//
// github.com/emersion/go-mbox v1.0.4 is not used: its reader turns every
// line end into CRLF (bytes are altered), splits on every "From " line
// (no lenient rule), unquotes only ">From " (not mboxrd's ">>From "),
// reports no byte offsets and rejects a file with leading bytes as a
// whole; its writer turns CRLF into LF and quotes only "From ".
package mbox
