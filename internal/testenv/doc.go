// Package testenv starts throwaway real mail servers for tests.
//
// Mailferry's correctness depends on how real servers treat hierarchy
// separators, namespaces, modified UTF-7 names, quotas and size limits, so
// tests run against real Dovecot 2.3 instances rather than an in-process
// fake. Each call to StartDovecot gets its own configuration, directories and
// free loopback ports, so tests (and packages, which go test runs in
// parallel) can start as many instances as they like; one starts in about
// 0.1 s and stops in a few milliseconds.
//
// When Dovecot is not installed the tests that need it are skipped, unless
// MAILFERRY_REQUIRE_SERVERS=1 is set (as scripts/test does in CI), in which
// case they fail: a CI run must never go green by silently skipping.
//
// Instances are supported on Linux only; they run as root (as in CI) or as an
// unprivileged user.
//
// StartCourier and StartCyrus start Courier-IMAP 5 and Cyrus IMAP 3.6 the
// same way, from Debian packages that scripts/test unpacks (they conflict
// with dovecot-imapd as packages; see servers.go). They need root: both
// switch to the mail user, and Courier's authentication library reads
// /etc/courier and /run/courier at compiled-in paths, so every Courier
// instance runs in a private mount namespace with its own directories
// bind-mounted over those two (created empty on the host as mount
// points). Their documentation lists how they answer and store
// differently from Dovecot.
//
// Server behaviour that tests written against these instances run into:
//
//   - An APPEND over MaxMailSize is refused with "NO [LIMIT] ...", not
//     [TOOBIG]. go-imap sends literals over 4096 bytes synchronously (it
//     ignores Dovecot's LITERAL+), so the refusal comes instead of the
//     continuation request and go-imap then closes the connection: expect
//     to reconnect.
//   - GETQUOTAROOT reports STORAGE in KiB, rounded up.
//   - User names are case-insensitive; Dovecot lowercases them at login.
//   - Dovecot's maildir storage turns "\r\r\n" into "\r\n", and keeps only
//     the instant of INTERNALDATE, not its time zone.
//   - In the Courier layout '.' is the separator, so a name such as
//     "Co.2019" is two levels there; the slash layout allows it as is.
package testenv
