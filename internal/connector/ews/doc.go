// Package ews is the Exchange Web Services connector: a source and a
// destination for on-premises Exchange 2013 SP1, 2016 and 2019 (requests
// say RequestServerVersion Exchange2013_SP1). It speaks the SOAP subset
// in wire.go with encoding/xml over its own HTTP/1.1 connections
// (transport.go); no Go EWS library covers FindItem, GetItem and
// SyncFolderItems.
//
// # Addresses
//
//	ews://[user@]host[:port][/path][?auth=ntlm|basic][&impersonate=mailbox]
//	ews+https://[user@]host[:port]/path[?…]
//
// Both mean HTTPS; the path defaults to /EWS/Exchange.asmx, and Redacted
// is the canonical form (default port and path left out). EWS is never
// spoken without TLS, so OpenOptions.AllowPlaintext does not apply;
// certificates are checked unless InsecureSkipVerify, against RootCAs
// when given. A password in the address is refused. EndpointFromUserInput
// turns what users know into the canonical address: the Outlook on the
// web address (https://mail.example.com/owa or …/exchange, with whatever
// OWA appends), a bare host or IP address, or the EWS URL itself — all
// give ews://mail.example.com, i.e. https://mail.example.com/EWS/Exchange.asmx.
// A path ending in .asmx other than the default is kept
// (ews+https://proxy.example/mail/EWS/Exchange.asmx); http:// means the
// same server over TLS.
//
// # Logging in
//
// NTLM (NTLMv2, github.com/Azure/go-ntlmssp) or Basic, both over TLS.
// Without auth= the first connection asks the server which schemes it
// offers and uses NTLM when it can (also under the scheme name
// Negotiate), else Basic. NTLM authenticates a TCP connection, not a
// request, so each new connection is authenticated once with a small
// GetFolder before anything else is sent on it: a large CreateItem is
// never sent twice for a handshake, and never buffered for one. The login
// (OpenOptions.Credentials.Username, else the user in the address) may be
// DOMAIN\user, the user principal name or the email address, as the
// server accepts; a refusal is KindAuth with a hint that says so. A 401
// on a connection that was logged in is answered by logging in again on
// a new connection; only if that fails is it KindAuth.
//
// # Impersonation: one admin account for every mailbox
//
// An account with the ApplicationImpersonation role works on other
// mailboxes: OpenOptions.Credentials.Username/Password are the admin's,
// Credentials.Mailbox (or ?impersonate= in the address, for the command
// line) is the mailbox's primary SMTP address. Every request then carries
// the SOAP header t:ExchangeImpersonation/t:ConnectingSID/
// t:PrimarySmtpAddress and the HTTP header X-AnchorMailbox, which routes
// it to the mailbox's server (exchange-web-services/
// how-to-identify-the-account-to-impersonate). Grant the role with
//
//	New-ManagementRoleAssignment -Name MailferryImpersonation -Role ApplicationImpersonation -User <admin account>
//
// Without it Exchange answers ErrorImpersonateUserDenied (KindPermission,
// with that command as the hint); a mailbox that does not exist is
// ErrorNonExistentMailbox (KindNoAccount). Since Exchange 2010 SP2 RU4
// the service account has its own EWSMaxConcurrency budget, separate from
// the user's (ews-throttling-in-exchange), so impersonation also spreads
// throttling. Open reads the mailbox's well-known folders in one
// GetFolder, so a wrong login, a missing right or a missing mailbox is
// reported at once.
//
// # Connections, throttling and errors
//
// At most OpenOptions.MaxConnections requests (default 4, well under
// Exchange's EWSMaxConcurrency of 27) are in flight per Conn, one per
// connection; every connection is dialled through OpenOptions.Dial when
// set; one on which nothing moves for StallTimeout (default 2 minutes) is
// dropped. ErrorServerBusy (with BackOffMilliseconds as
// connector.Error.RetryAfter), HTTP 503 (Retry-After),
// ErrorExceededConnectionCount, ErrorTooManyObjectsOpened and the other
// busy and unavailable codes are KindTransient; nothing here sleeps or
// retries on its own beyond one resend of a request whose connection was
// found closed before any answer, or that was refused with a 401 (the
// retry layer owns backoff). ErrorMessageSizeExceeded, ErrorItemSave and
// MIME conversion failures are KindItem for that one message, with the
// folder and the server's words; ErrorQuotaExceeded is KindQuota (the
// rest of a batch then gets ErrorBatchProcessingStopped, transient);
// HTTP 403 (EWS switched off for the user) is KindPermission, 404 or a
// non-EWS answer KindConfig. Errors never hold a password.
//
// # Folders
//
// Folders lists FindFolder Deep from msgfolderroot, paged
// (IndexedPageFolderView) until IncludesLastItemInRange. Paths are made
// of DisplayNames, which may hold any character: a mail.Path keeps
// segments apart, so "a/b" stays one folder both ways (Delimiter is 0).
// The inbox is {"INBOX"} whatever its language; a top-level folder that
// is itself called Inbox in a mailbox whose inbox has another name is
// listed as "Inbox (folder)". Roles come from GetFolder of the
// distinguished ids inbox, sentitems, drafts, deleteditems and junkemail
// (RoleFromServer); Exchange 2013 SP1's schema has no "archive" id, so
// Archive is recognised by name. Calendars, contacts, tasks, notes,
// journals and other non-mail folders (FolderClass not IPF.Note…) are
// listed with Class set; search folders as Class "SearchFolder".
// CreateFolder makes missing parents; an existing name (Exchange compares
// without regard to case) is found, not an error.
//
// # IDs, cursors and listings
//
// A message's ID is its ItemId (without ChangeKey). A folder's cursor is
// "e1.<count>.<SyncState>". List uses SyncFolderItems both for the full
// listing (no SyncState) and for deltas, at most 512 changes per call,
// until IncludesLastItemInRange: the SyncState then covers exactly what
// was listed, mail arriving during a long listing is never lost between
// a FindItem snapshot and a later sync, and a folder in which nothing
// changed costs one call. Create is ChangeNew, Update and ReadFlagChange
// ChangeFlags, Delete ChangeRemoved (Features.ReportsRemovals); a moved
// message is removed from one folder and new in the other, with a new
// ItemId. A SyncState the server refuses (ErrorInvalidSyncStateData) or
// a cursor of another connector gives a full listing with Reset, or,
// under ListOptions.StrictSince (which the engine always sets), an error
// wrapping connector.ErrCursorInvalid before anything is delivered.
// Features.ExactNew holds: what SyncFolderItems reports as created since
// a SyncState arrived after it.
// ListOptions.AllOld reads the other messages, flags only, with FindItem
// pages (IndexedPageItemView, oldest first) that follow
// IndexedPagingOffset under the server's EWSFindCountLimit. Statuses
// reads TotalCount and PR_MESSAGE_SIZE_EXTENDED of up to a hundred
// folders per GetFolder; it never says Unchanged (EWS has no counter that
// moves with every flag change).
//
// Listed messages carry the identity (mail.ComputeIdentity) of their
// header block's raw Message-ID, Date, From, To and Subject, as the IMAP
// connector computes it for the same MIME: the block comes from
// PR_TRANSPORT_MESSAGE_HEADERS, which this connector writes on every
// message it stores and Exchange keeps for delivered mail, read a hundred
// items per GetItem; items without it (sent items, drafts, imports by
// other tools) are read with GetItem's MIME, keeping the header block and
// counting the rest, which costs a download of those items. Size is
// item:Size, or the exact MIME length where the MIME was read.
//
// # Flags
//
// IsRead ↔ \Seen; the follow-up flag (t:Flag, FlagStatus Flagged) ↔
// \Flagged (Complete is not \Flagged); PR_LAST_VERB_EXECUTED 102/103 ↔
// \Answered and 104 ↔ $Forwarded (read from PR_ICON_INDEX where the verb
// is missing; both are written); IsDraft → \Draft when reading. Keywords
// (Categories) are not copied (Features.Keywords is false); ForAppend
// listings accept \Seen, \Answered, \Flagged and $Forwarded.
//
// # Writing
//
// CreateItem with MessageDisposition="SaveOnly" and SavedItemFolderId,
// always: nothing is ever sent. The MIME is base64-encoded as it is sent.
// PR_MESSAGE_FLAGS 0x0E07 is 1 (read) or 0 (unread), never with the
// unsent bit, so no imported message is a draft
// (how-to-import-items-by-using-ews-in-exchange). A \Draft source message
// is stored as an ordinary message: Exchange fixes the draft state when
// an item is created and cannot change it afterwards, and a normal
// message must never come out as a draft. PR_MESSAGE_DELIVERY_TIME
// 0x0E06 is the received date. Messages up to 128 KiB go ten to a
// CreateItem request (batch.go: about 4× the throughput on a 20 ms round
// trip); larger ones, and retries, are streamed one per request. Append
// returns once the request is written; Wait returns the new ItemId
// (Features.AppendIDs). An answer lost after the request went out is
// Uncertain. SetFlags uses UpdateItem (AlwaysOverwrite, SaveOnly); Delete
// uses DeleteItem SoftDelete, so deleted copies stay recoverable in
// Recoverable Items for the retention period.
//
// # Reading bodies
//
// Fetch asks GetItem for IncludeMimeContent, up to ten messages or 8 MiB
// per call. splice.go takes each t:MimeContent's base64 text out of the
// answer as it arrives and decodes it into the spool (memory up to 1 MiB
// within an 8 MiB budget per Conn, a temporary file in
// OpenOptions.SpoolDir beyond), so neither a message nor a batch is held
// in memory and Body.Size is exact before the body is handed on (a 30 MB
// message grows the heap by about 1-2 MB).
//
// # What Exchange does to MIME
//
// Exchange does not store MIME: CreateItem converts it into MAPI
// properties, and GetItem writes new MIME from them ("test your MIME
// content to see how the Exchange MIME parser handles the content of your
// MIME stream", how-to-import-items-by-using-ews-in-exchange). Expect, on
// a real server: re-folded, re-encoded and re-ordered headers, new MIME
// boundaries and Content-Transfer-Encodings, added headers
// (X-MS-Has-Attach, X-MS-TNEF-Correlator, Content-Language), TNEF and
// winmail.dat handling, and an item:Size that is the store's size rather
// than the MIME's length. Features.ByteExact is therefore false: a copy
// from Exchange has the bytes Exchange serves, and a copy to Exchange has
// what Exchange makes of the bytes given. The identity survives because
// it normalises the header values it reads (and, for what this connector
// wrote, reads the original header block); for a message without a
// Message-ID it includes the size, which on a real server is the store
// size, so such a message may not be recognised as already copied in a
// later full pass (delta passes do not need it).
//
// # Verified against documentation only
//
// No Exchange server runs in CI. The tests run against
// internal/testenv/ewsserver, written from Microsoft's documentation by
// another author; its LIMITS.md says what it checks. These behaviours of
// a real Exchange are taken from documentation or reports and were not
// seen: that PR_TRANSPORT_MESSAGE_HEADERS can be set on CreateItem (if a
// server refuses it, the connector stops sending it and resends the
// message without it) and is present on delivered mail; t:Flag on
// CreateItem; the quota properties on the root folder (their absence
// means "unknown"); that PR_MAX_SUBMIT_MESSAGE_SIZE is the limit that
// applies to a SaveOnly CreateItem; the case-insensitive ErrorFolderExists;
// IIS accepting NTLM tokens under Negotiate and keeping the handshake's
// connection; how Exchange handles a batch of CreateItem items; the MIME
// changes listed above; X-AnchorMailbox routing in a multi-server site.
package ews
