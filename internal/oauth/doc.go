// Package oauth gets OAuth 2.0 access tokens for connectors: app-only
// tokens from the Microsoft identity platform (client credentials with a
// client secret or a certificate), and user tokens from a supplied
// refresh token (Microsoft delegated access, Gmail).
//
// # Grants
//
//   - Client credentials (RFC 6749 §4.4) through
//     golang.org/x/oauth2/clientcredentials, at
//     https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token, with
//     scope ScopeGraph (https://graph.microsoft.com/.default) for Graph or
//     ScopeOutlook (https://outlook.office365.com/.default) for Microsoft
//     365 IMAP app-only access (v2-oauth2-client-creds-grant-flow on
//     learn.microsoft.com). The credential is the secret's value, or a
//     certificate: then a client assertion is signed (RFC 7523), shaped as
//     learn.microsoft.com/entra/identity-platform/certificate-credentials
//     now documents it: PS256, x5t#S256 thumbprint, aud = the token URL,
//     iss = sub = client id, jti, nbf, iat, exp ten minutes on. A new
//     assertion is signed for every request.
//   - Refresh token (RFC 6749 §6): Microsoft's endpoint with the scopes
//     asked for (v2-oauth2-auth-code-flow calls scope required on
//     refresh; x/oauth2's own refresher does not send it, so the refresh
//     goes through clientcredentials with grant_type replaced, which that
//     package allows), or Google's https://oauth2.googleapis.com/token
//     without a scope (developers.google.com/identity/protocols/oauth2/
//     web-server#offline). Microsoft returns a new refresh token each time;
//     the newest is used from then on and handed to Config.OnRefreshToken.
//
// # What to register, per use
//
//   - Graph (connector graph): a Microsoft Entra app registration with a
//     client secret or certificate and the Microsoft Graph application
//     permissions Mail.Read (reading) or Mail.ReadWrite (writing), plus
//     Mail-Advanced.ReadWrite.All for byte-exact imports, with admin
//     consent; scope ScopeGraph. The steps are in the graph package.
//   - Microsoft 365 IMAP, app-only: the same kind of app with the
//     application permission IMAP.AccessAsApp of "Office 365 Exchange
//     Online" (API permissions, APIs my organization uses) and admin
//     consent; then, in Exchange Online PowerShell, New-ServicePrincipal
//     -AppId <client id> -ObjectId <the enterprise application's object
//     id> and Add-MailboxPermission -Identity <mailbox> -User <that
//     service principal> -AccessRights FullAccess for each mailbox; scope
//     ScopeOutlook.
//   - Microsoft 365 IMAP, delegated: a refresh token for the user, issued
//     for ScopeOutlookIMAPUser and ScopeOfflineAccess (asked for again on
//     every refresh); public clients need no secret.
//   - Gmail: an OAuth client of a Google Cloud project with the Gmail
//     scope ScopeGoogleMail (https://mail.google.com/) and a refresh token
//     the user granted; Google's refresh requests carry no scope. Refresh
//     tokens of a project in "Testing" status end after 7 days.
//
// Credentials are sent in the form body (AuthStyleInParams), as both
// providers document; never in a URL.
//
// # Lifetime
//
// A Source caches its token and fetches a new one when it has none, when
// the held one expires within the refresh margin (five minutes by
// default, measured from before the request was sent), or after
// Invalidate: a connector calls Invalidate when a server refuses the
// token (HTTP 401, IMAP AUTHENTICATIONFAILED) and then asks once more
// ("refresh on reconnect"). Invalidating a token that was already
// replaced does nothing, so many refused requests cause one fetch. While
// the endpoint fails, a token that has not yet expired is still handed
// out.
//
// # Errors
//
// The endpoint's error JSON (error, error_description, error_codes) is
// turned into a connector.Error: the message keeps the first line of the
// description (the AADSTS code and text, plus the correlation id), never
// the request; any secret the endpoint might echo is replaced by ***.
// The kind follows the AADSTS code (reference-error-codes), else the
// RFC 6749 error: a wrong or expired secret, an unknown certificate and
// an expired or revoked refresh token are KindAuth; an unknown tenant or
// app, a bad scope or a missing credential KindConfig; missing admin
// consent KindPermission; 429 and 5xx KindTransient with Retry-After.
// Each carries a hint saying what to change and where.
//
// # Network
//
// HTTPClient builds the client that every request goes through: it dials
// only with OpenOptions.Dial (the outbound policy), trusts
// OpenOptions.RootCAs or the system roots, never follows redirects and
// ignores InsecureSkipVerify and proxy environment variables.
//
// # Verified against documentation only
//
// The tests run against internal/testenv/graphserver, written from
// Microsoft's and Google's pages by someone who had not seen this code.
// No real tenant or Google project was used: the PS256 assertion, the
// scope on refresh, the AADSTS codes of assertion failures (700027,
// 700024, 700021, 700212, 50027) and Retry-After on the token endpoint
// are as documented or reported, not observed.
package oauth
