// Package maildir reads and writes Maildir trees (cr.yp.to/proto/maildir.html)
// as a Mailferry source and destination.
//
// # Addresses
//
//	maildir:/home/alice/Maildir          absolute path
//	maildir:Maildir                      relative to the current directory
//	maildir:~/Maildir                    relative to the home directory
//	maildir:///home/alice/Maildir        file-URL style (no host)
//	maildir:/backup/alice?layout=fs      how new subfolders are written
//
// A source must exist; a destination is created when missing. A '?'
// starts the parameters, so a path cannot contain one.
//
// # Folders
//
// The root maildir (its cur/, new/, tmp/) is INBOX. Subfolders are read
// in both layouts Dovecot knows, and both may be present:
//   - Maildir++ (Courier, Dovecot's default): ".Archive.2019" beside the
//     root's cur/ is the folder Archive/2019;
//   - fs (Dovecot's LAYOUT=fs): "Archive/2019", each directory a maildir.
//
// New folders are written in the layout given by ?layout=maildir++ or
// ?layout=fs; without it, in the layout the tree already uses, else in
// Maildir++, which most tools read (mutt, Courier, Dovecot's default,
// offlineimap). Parents are created as (empty) maildirs too. Names are
// stored as Dovecot stores them: modified UTF-7 ("Ärger" is "&AMQ-rger")
// with '\' and two hex digits for what the layout cannot hold ('.' in
// Maildir++ names, '/' always). Roles (Sent, Trash, …) come from folder
// names only. Directories without cur/ or new/ and without such
// subdirectories are not folders.
//
// # Messages
//
// Every file in new/ and cur/ (not starting with '.') is a message. Its
// ID is the unique part of its name, before ":2,", which stays the same
// when the flags change. Its bytes are served exactly as stored (bare LF
// line ends included: the IMAP connector turns them into CRLF when it
// writes to IMAP, so byte-exactness is defined on the CRLF form), and a
// destination stores exactly the bytes it is given. INTERNALDATE is the
// file's mtime (Dovecot's convention; the time zone is not kept), and
// writing sets the mtime to it. The size is the file's size; Dovecot's
// ",S=<size>" in a name is checked against it (a mismatch means the
// file was cut short and is reported), ",W=" is ignored.
//
// Flags are the letters of the ":2," part: D \Draft, F \Flagged,
// R \Answered, S \Seen, T \Deleted, and P (passed) as the $Forwarded
// keyword, as mutt and mbsync map it. Dovecot's letters a–z are keywords
// named in the folder's dovecot-keywords file; writing a keyword adds it
// there under Dovecot's dovecot-uidlist.lock. A folder holds at most 26
// keywords; a message with a 27th is refused (KindItem) rather than
// stored without it. Messages in new/ are read where they are: a source
// is never changed (go-maildir's Unseen would move them to cur/).
//
// # Writing
//
// Append writes to tmp/, fsyncs, sets the mtime and renames into cur/
// (go-maildir's Dir.Create), then fsyncs cur/. A crash before the rename
// leaves only a file in tmp/, which no reader lists and go-maildir's
// Clean removes after 36 hours; a message is never half in cur/.
// SetFlags renames files (keeping Dovecot's non-standard ",…" fields
// after the flags), Delete removes them.
//
// # Changes
//
// The cursor holds the inode, size, mtime and ctime of cur/, new/ and
// dovecot-keywords, and when it was taken. Statuses says Unchanged when
// they are all equal and the cursor was taken at least two seconds after
// the newest of them (time stamps advance in coarse ticks, so a change
// in the same tick could go unseen); List with such a cursor lists
// nothing. Otherwise List lists every message as ChangeNew and the
// engine recognises what it copied before by ID (Features.CheapChanges
// is false).
//
// # Problems
//
// Files that cannot be read (permissions, a symbolic link out of the
// tree or in a loop, a directory where a message should be, a size that
// does not match ",S=") are listed with their ID and size; Fetch then
// reports a KindItem error that names the file. A folder directory that
// cannot be read fails its List with the path and the reason. Nothing
// outside the root is read: symbolic links leading out are refused.
//
// # Library
//
// go-maildir v0.6.0 makes the directories (Dir.Init) and delivers new
// messages (Dir.Create: unique name, tmp/, rename). Reading is done here
// because its Walk lists only cur/ (Unseen moves new/ messages, which a
// source must not do), stops naming the file at the first malformed
// name, and drops Dovecot's ",…" fields when it renames.
package maildir
