// Package pop3 is the POP3 source connector (RFC 1939, with CAPA,
// PIPELINING and response codes from RFC 2449, STLS from RFC 2595 and
// AUTH PLAIN from RFC 5034/4616). It reads a maildrop as one folder,
// INBOX, and never removes anything from it.
//
// # Addresses
//
//	pop3s://[user@]host[:port]          implicit TLS, port 995 by default
//	pop3+starttls://[user@]host[:port]  STLS on port 110 by default
//	pop3://[user@]host[:port]           no encryption: needs AllowPlaintext
//
// Certificates are verified unless InsecureSkipVerify; a password in the
// URL is refused. Every TCP connection goes through OpenOptions.Dial when
// it is set.
//
// # What is copied
//
// POP3 has one folder and no flags, keywords or dates, so every message
// lands in the destination's inbox, unflagged, with the date of its
// newest (topmost) Received: header as its received date, or its Date:
// header when it has no readable Received: header.
//
// A message's ID is its UIDL unique-id (RFC 1939 §7). On a server without
// UIDL it is a hash of its header block and size (see contentID). A
// folder cursor is the set of IDs seen, hashed to 8 bytes each (see
// cursor.go), so a delta pass lists only messages whose ID is new.
//
// Bodies are the bytes of RETR with byte-stuffing undone, nothing else
// changed (see Fetch and dotReader); a message stored without a final
// line break arrives with one, since POP3 cannot carry that. Bodies
// stream through a bounded spool (1 MiB in memory, then a temporary
// file) so that their exact size is known before they are handed on.
//
// # Never deleting
//
// This connector has no code path that sends DELE. Sessions end with
// QUIT, which in the TRANSACTION state enters UPDATE (RFC 1939 §6), and
// UPDATE removes only messages marked by DELE; an aborted session
// (cancellation, a stall) ends without QUIT, and then the server does not
// even enter UPDATE.
//
// # Sessions
//
// Most POP3 servers lock the maildrop while a session is logged in and
// refuse a second one with -ERR [IN-USE], so one session is the default
// (Features.MaxConnections is 1); OpenOptions.MaxConnections raises it
// for servers that allow more (Dovecot does by default). A session sees
// the maildrop as it was when it logged in (RFC 1939 §8); a Conn opened
// later sees later mail. A connection on which no byte arrives for
// StallTimeout (default 60 s) while an answer is awaited is dropped with
// a transient error.
//
// # Why not github.com/migadu/go-pop3
//
// Its client (pop3client, v0.1.4) was evaluated and not used:
//   - it dials with a *net.Dialer only, so OpenOptions.Dial (the
//     operator's outbound policy, test proxies) cannot be used;
//   - it reads replies line by line with bufio.Reader.ReadLine and rebuilds
//     each line with CRLF, so a bare LF a server passes through becomes
//     CRLF (the bytes are altered), and it refuses any line longer than
//     MaxLineLength (4096 by default) or else holds the whole line in
//     memory;
//   - it sends one command at a time (no PIPELINING), and has no stall
//     detection beyond the caller's context deadline.
//
// Its RETR reader does stream and undo dot-stuffing, but the points above
// are what a byte-exact, bounded-memory migration needs, and the client
// here is small: wire.go (status lines, the multi-line reader), session.go
// (login, STLS, pipelined exchanges).
//
// # README section (proposed)
//
// ### POP3 sources
//
//	mailferry copy --from pop3s://pop.old.example --from-user alice@old.example --to imaps://mail.new.example …
//
// | server URL | meaning |
// |---|---|
// | `pop3s://host[:port]` | implicit TLS, port 995 by default |
// | `pop3+starttls://host[:port]` | STLS, port 110 by default |
// | `pop3://host[:port]` | no encryption; logging in also needs `--allow-plaintext` |
//
// POP3 serves only the inbox, so everything lands in the destination's
// INBOX. Messages are never deleted from the POP3 server (Mailferry never
// sends DELE). POP3 has no flags: copies arrive unread and unflagged, and
// their received date is taken from the newest `Received:` header, else
// from `Date:`. A delta pass copies only messages whose UIDL is new; on a
// server without UIDL, messages are recognised by a hash of their headers
// and size. A message stored without a final line break gets one (POP3
// cannot transmit it otherwise). Most POP3 servers allow only one session
// per mailbox, so Mailferry uses one connection unless `--connections`
// says more; close other mail programs that poll the mailbox during the
// migration. Logging in uses AUTH PLAIN where the server offers it, else
// USER/PASS; APOP is not supported.
package pop3
