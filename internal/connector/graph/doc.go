// Package graph is the Microsoft 365 connector: a source and a
// destination reached through Microsoft Graph's mail API
// (learn.microsoft.com/graph/api/resources/mail-api-overview), logged in
// as an app with OAuth 2.0 client credentials (package oauth). EWS in
// Exchange Online is switched off tenant by tenant from 2026-10-01 and
// goes away on 2027-04-01, so this is the way to Microsoft 365 mailboxes.
//
// # Addresses
//
//	graph://TENANT/MAILBOX   e.g. graph://contoso.onmicrosoft.com/alice@contoso.com
//	graph://MAILBOX          e.g. graph://alice@contoso.com
//
// TENANT is the Directory (tenant) ID or one of the tenant's domains;
// without it the credentials' tenant is used, else the mailbox's domain
// (every accepted domain of Exchange Online is a verified domain of its
// tenant). MAILBOX is the user principal name or object id. Nothing else
// comes from the address: the app credentials (Credentials.OAuth), the
// token endpoint (OAuth.TokenURL) and the Graph service root
// (OpenOptions.ServiceURL, for national clouds and tests) are operator
// settings, because secrets and tokens are sent to them. Every
// connection goes through OpenOptions.Dial.
//
// # App registration
//
//  1. Microsoft Entra admin center, App registrations, New registration:
//     any name, "Accounts in this organizational directory only", no
//     redirect URI. Note the Application (client) ID and the Directory
//     (tenant) ID.
//  2. Certificates & secrets: a new client secret (give its Value, not
//     its Secret ID), or upload a certificate's public part and give
//     Mailferry the certificate with its unencrypted RSA key in one PEM
//     file.
//  3. API permissions, Add a permission, Microsoft Graph, Application
//     permissions:
//     - to read a mailbox (source): Mail.Read;
//     - to write one (destination): Mail.ReadWrite;
//     - for byte-exact imports, optionally: Mail-Advanced.ReadWrite.All
//     (the beta importMime action);
//     then "Grant admin consent for <tenant>".
//  4. Optionally limit the app to the mailboxes being migrated with an
//     application access policy or RBAC for Applications in Exchange
//     Online; a mailbox outside it answers 403 like a missing permission.
//
// Open checks the token, that the mailbox exists (404 ErrorInvalidUser or
// MailboxNotEnabledForRESTAPI: KindNoAccount) and that the app may read
// it; a destination also checks that it may write (an empty PATCH of an
// id that cannot exist: 403 is KindPermission naming Mail.ReadWrite) and
// whether importMime is usable (a POST of a body that is not base64: a
// content error means yes, 403 or "Resource not found for the segment"
// no; nothing is stored either way).
//
// # Reading
//
// Folders are mailFolders and their childFolders (paged, the first page
// of up to 20 parents per JSON batch). Roles come from comparing ids with
// the well-known folders inbox, sentitems, drafts, deleteditems,
// junkemail and archive, never from display names, which follow the
// mailbox's language; the inbox's path is always INBOX. Hidden folders
// are not listed, as Outlook does not show them.
//
// A folder's cursor holds three per-folder delta queries
// (messages/delta with changeType=created, updated and deleted), each
// followed through @odata.nextLink to its @odata.deltaLink: a plain delta
// query returns new and changed messages alike, and the engine must not
// copy a changed message again. A full listing starts all three (updated
// and deleted first, so that no change made meanwhile is missed) and
// lists the created query's messages. A delta listing lists created
// messages as ChangeNew and, with Changes, updated ones as ChangeFlags
// and deleted or moved-out ones (@removed) as ChangeRemoved. 410
// SyncStateNotFound on the first page of a query makes the listing a
// full one with Reset, or, with ListOptions.StrictSince (the engine's
// delta passes), an error wrapping connector.ErrCursorInvalid before
// anything is delivered; after messages were handed out it fails the
// listing with a transient error, and the retry from the same cursor is
// then a clean full listing. Links from Graph or from a stored cursor are
// followed only on the service root's host.
//
// Listed per message: receivedDateTime as the internal date; flags
// (\Seen from isRead, \Flagged from flag.flagStatus "flagged", \Answered
// from PidTagLastVerbExecuted 102/103, \Draft from isDraft, keywords
// from categories whose names are IMAP atoms, since keywords are written
// as Outlook categories); the identity, taken from the
// property this connector stores on every copy it writes, else from
// internetMessageHeaders when they hold Message-ID and From, else from
// the MIME's own header block and exact size read from the start of
// $value ("peek", up to four at once); the size: the MIME's size kept
// with the identity for copies this connector wrote from MIME, exact
// when peeked, otherwise PidTagMessageSize where Graph gives it
// (Exchange's size, not the MIME's). Body.Size is always exact.
//
// Fetch downloads messages/{id}/$value and reads each body completely
// into the spool (1 MiB in memory, larger ones in a temporary file in
// OpenOptions.SpoolDir) before handing it on, so its size is exact even
// without a Content-Length, memory stays bounded, and no concurrency slot
// is held while the callback runs (the slots are shared by every mailbox
// of the app; a callback writing to a Graph destination of the same app
// would otherwise wait for itself).
//
// # Writing, and what each path keeps
//
// A copy is never a draft unless the source's copy is one (\Draft). Per
// message, one of:
//
//   - \Draft: POST of the base64 MIME to the folder's messages, which
//     always makes a draft (user-post-messages); the bytes are kept.
//   - importMime (beta, mailfolder-importmime) where the tenant offers it
//     and the app holds Mail-Advanced.ReadWrite.All, for MIME whose
//     base64 fits one request (about 3 MB of MIME): the bytes as given,
//     not a draft, followed by one PATCH of isRead, flag, the received
//     time (PidTagMessageDeliveryTime), \Answered and the identity
//     property, which the action does not take from the MIME. If the
//     action later answers 403, 404 or "Resource not found", this Conn
//     stops using it. Beta APIs are "not supported in production", and
//     the page lists importMime for the global service only, not for the
//     national clouds.
//   - JSON, otherwise: the message rebuilt from its MIME (go-message) and
//     created in one request with PidTagMessageFlags (read or unread,
//     never mfUnsent), PidTagMessageDeliveryTime (the internal date) and
//     PidTagClientSubmitTime (the Date header) set in that request, which
//     is what makes it a received message. It keeps subject, From,
//     Sender, To, Cc, Bcc, Reply-To, Message-ID, the sent and received
//     times, read state, flag, \Answered, importance (Importance,
//     X-Priority, Priority), a read-receipt request
//     (Disposition-Notification-To), up to 40 X- headers (8 KiB; Graph
//     takes only x- headers), the HTML body (else the text body) decoded
//     to UTF-8, and every other part as a file attachment: inline images
//     with their Content-ID, small ones in the creating request or one
//     POST each, large ones (up to 150 MB) through an upload session in
//     3.75 MiB ranges. It loses the bytes (Exchange writes its own MIME),
//     every other header (Received, DKIM and ARC signatures,
//     Authentication-Results, List-*, In-Reply-To and References, so
//     header threading), the plain-text alternative of an HTML body
//     (Exchange makes its own), the MIME structure and encodings, valid
//     S/MIME or PGP/MIME signatures (the signature becomes an attachment),
//     message/rfc822 parts as items (they become .eml files), addresses
//     that do not parse, and bodies over 3 MB (refused as KindItem).
//     AppendResult.Rebuilt is set: the copy is content-equivalent, not
//     byte-exact.
//
// Features.ByteExact is true while importMime is used; messages that went
// the JSON path all the same say so with AppendResult.Rebuilt. A failure
// after the JSON path created a message (an attachment refused) deletes
// it again; only if that fails too is the error uncertain.
//
// SetFlags PATCHes isRead, flag and (for \Answered) PidTagLastVerbExecuted,
// 20 messages per JSON batch; removing \Answered and changing \Draft are
// not possible. Delete is DELETE, which moves a message to Deleted Items
// (and deletes it for good there), 20 per batch. Statuses reads
// totalItemCount, 20 folders per batch, and never claims Unchanged.
//
// # Throttling
//
// Graph's Outlook limits (throttling-limits) are kept on the client's
// side: at most 4 requests in flight per app across all mailboxes opened
// through one Backend (the page says per app and mailbox, a later change
// to it says per app; the stricter reading is used, and a JSON batch
// takes as many slots as the server runs of it at once, up to 4);
// 10,000 requests per 10 minutes per app and mailbox, and 150 MB of
// request bodies per 5 minutes per mailbox, each through a token bucket
// that keeps every window, not only the average, under the budget. A 429
// is sent again after Retry-After (also inside a JSON batch), and so are
// 502, 503 and 504 for requests that are safe to resend; a creating POST
// that meets a 5xx or a lost answer fails as uncertain. Throttling that
// outlasts the retries is a KindTransient error carrying RetryAfter. A
// 401 gets one new token; a second one is KindAuth.
//
// # Verified against documentation only
//
// No Microsoft 365 tenant was reachable. The tests run against
// internal/testenv/graphserver, written from Microsoft's pages by another
// helper who had not seen this package; where that server is silent or
// differs, this package follows the documentation. Not confirmed against
// the real service: that importMime keeps the bytes on $value (Exchange
// is reported to rewrite MIME), its size limit and received date, and its
// answer to the probe; that PidTagMessageDeliveryTime may be PATCHed after
// an import; that attachments may be added to a non-draft message made
// with PidTagMessageFlags; that Graph checks the write permission before
// it looks up an item; that an initial changeType=created/updated/deleted
// round lists every message; that a named extended property comes back
// in a delta query's $expand; that PidTagMessageSize is given; the
// 4 MB request limit; and which headers internetMessageHeaders holds for
// received mail (the test server returns none, so tests exercise the
// peek).
package graph
