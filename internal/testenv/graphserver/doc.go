// Package graphserver is an in-process stand-in for the parts of Microsoft
// 365 that Mailferry's Graph connector talks to: the Microsoft identity
// platform token endpoint (client credentials with a secret or a
// certificate assertion, refresh tokens), a Google-style token endpoint
// (refresh tokens), and Microsoft Graph's mail API (users, mailFolders,
// messages, delta, $value, MIME and JSON message creation, beta importMime,
// attachments and upload sessions, JSON batching), with Graph's throttling
// and error shapes.
//
// It follows the request and response shapes of learn.microsoft.com's
// reference pages and is strict about them: a wrong method, content type,
// unknown property or unknown $select field gets the documented error JSON,
// not a best guess. LIMITS.md lists, route by route, the page each handler
// follows and what the real service does that this one does not.
//
// Everything is served over TLS on a free loopback port with a per-instance
// self-signed certificate (internal/testenv); Server.Client trusts it.
// Tests drive the server through its test API (AddTenant, AddApp,
// AddMailbox, SeedMessage, Message, InjectFault, ...) and inspect what the
// client under test did (RequestCount, PeakConcurrency, TokenRequests).
//
// The server keeps all state in memory behind one mutex; message bodies are
// immutable byte slices, so $value streams without holding the lock.
package graphserver
