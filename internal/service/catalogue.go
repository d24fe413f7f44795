package service

import "strings"

// ErrorClass names why a mailbox failed, in terms the user can act on. The
// values are stored and sent to the browser, so they must not change.
type ErrorClass string

const (
	ClassAuth            ErrorClass = "authentication"              // wrong password, IMAP disabled, app password needed
	ClassHost            ErrorClass = "host-not-found"              // the server name does not resolve
	ClassConnect         ErrorClass = "connection"                  // refused or timed out: port, firewall
	ClassTLS             ErrorClass = "tls"                         // handshake or certificate
	ClassMailboxMissing  ErrorClass = "destination-mailbox-missing" // the tool does not create mailboxes
	ClassQuota           ErrorClass = "quota"                       // quota would be exceeded / destination full
	ClassTooLarge        ErrorClass = "message-too-large"           // the destination refuses a message for its size
	ClassThrottled       ErrorClass = "throttled"                   // the server asks us to slow down
	ClassPasswordChanged ErrorClass = "password-changed"            // worked before, now refused during the migration
	ClassConfig          ErrorClass = "configuration"               // e.g. plaintext login refused
	ClassSecretKey       ErrorClass = "secret-key-changed"          // the stored passwords cannot be decrypted
	ClassPermission      ErrorClass = "permission"                  // logged in, but the app or account lacks a right (Microsoft 365 Mail.ReadWrite, Exchange ApplicationImpersonation)
	ClassOther           ErrorClass = "other"                       // anything we could not recognise
)

// Solution is what the "Solve Issue" button shows: written for an office
// manager moving company mail, not for a mail administrator.
type Solution struct {
	Class       ErrorClass `json:"class"`
	Title       string     `json:"title"`
	Explanation string     `json:"explanation"`
	Steps       []string   `json:"steps"`
}

// Solve returns the solution for a class (ClassOther for unknown ones). The
// wording names no side, except for classes that only ever concern the
// destination (missing mailbox, quota, message too large).
func Solve(c ErrorClass) Solution {
	return SolveFor(c, "")
}

// Classes returns every class in a stable order (for docs and tests).
func Classes() []ErrorClass {
	return []ErrorClass{
		ClassAuth, ClassHost, ClassConnect, ClassTLS, ClassMailboxMissing, ClassQuota,
		ClassTooLarge, ClassThrottled, ClassPasswordChanged, ClassConfig, ClassSecretKey, ClassPermission, ClassOther,
	}
}

// Side says which server a failure concerns, used to tailor the steps ("the
// source server" vs "the destination server").
type Side string

const (
	SideSource      Side = "source"
	SideDestination Side = "destination"
)

// SolveFor is Solve with steps naming the side. Any other side, including "",
// gives the neutral wording of Solve. Each call returns fresh slices, so
// callers may change the result.
func SolveFor(c ErrorClass, side Side) Solution {
	// These failures can only come from the server that receives the mail,
	// so naming it helps even when the caller does not know the side.
	if side != SideSource && side != SideDestination {
		switch c {
		case ClassMailboxMissing, ClassQuota, ClassTooLarge:
			side = SideDestination
		}
	}
	// The texts are written once with placeholders rather than twice, so the
	// source and destination versions cannot drift apart.
	server, mailbox := "the mail server", "the mailbox"
	switch side {
	case SideSource:
		server, mailbox = "the source server", "the source mailbox"
	case SideDestination:
		server, mailbox = "the destination server", "the destination mailbox"
	}
	fill := strings.NewReplacer(
		"{server}", server,
		"{Server}", strings.ToUpper(server[:1])+server[1:],
		"{mailbox}", mailbox,
		"{Mailbox}", strings.ToUpper(mailbox[:1])+mailbox[1:],
	).Replace

	var s Solution
	switch c {
	case ClassAuth:
		s = Solution{
			Title:       "The password was not accepted",
			Explanation: "{Server} refused to log in to {mailbox}. Usually the login name or password is wrong, IMAP access is turned off, or the provider wants an app password instead of the normal one.",
			Steps: []string{
				"Check the email address, login name and password entered for {mailbox}: log in to its webmail with exactly the same login name and password. If webmail uses a login name other than the full email address, enter that login name.",
				"Make sure IMAP access is turned on for {mailbox} in the mail provider's settings (in Gmail: Settings, See all settings, Forwarding and POP/IMAP). Some company administrators turn it off for everyone.",
				"If the account uses two-step verification (Gmail, Yahoo, iCloud, Microsoft 365 with multi-factor authentication), create an app password in the account's security settings and enter it instead of the normal password.",
				"Enter the corrected details for {mailbox} and run the trial migration again.",
			},
		}
		if side == SideDestination {
			// Most servers answer a login to a mailbox that does not
			// exist yet exactly like a wrong password.
			s.Steps = append(s.Steps[:3:3], "If {mailbox} is new, make sure it exists: the migration does not create mailboxes. "+
				"Create the mailbox on the new service first, in your new provider's admin panel, with exactly the email address entered here.",
				s.Steps[3])
		}
	case ClassHost:
		s = Solution{
			Title:       "The server name could not be found",
			Explanation: "The address entered for {server} does not exist on the internet. It is most likely misspelled.",
			Steps: []string{
				"Check the spelling of the address entered for {server}. It usually looks like imap.yourdomain.com or mail.yourdomain.com, without https:// in front and without anything after it.",
				"If you are not sure of the address, look it up in Outlook's account settings (the incoming mail server), or take it from your webmail address: for https://webmail.yourdomain.com it is webmail.yourdomain.com.",
				"If the name still is not found, enter the server's IP address instead; your provider or IT contact can tell you what it is.",
				"Save the corrected address and run the trial migration again.",
			},
		}
	case ClassConnect:
		s = Solution{
			Title:       "The server could not be reached",
			Explanation: "{Server} was found but did not answer, or refused the connection. Usually the port number is wrong, the server is down, or a firewall blocks the connection.",
			Steps: []string{
				"Check the port entered for {server}: IMAP uses 993 with SSL/TLS or 143 without it. Your provider's help pages list the right one.",
				"If {server} is in your office or run by your IT company, ask them to allow connections from the migration service to that port through the firewall.",
				"Enter the server's public name or address: the migration service does not connect to addresses inside a private network (such as 192.168.x.x or 10.x.x.x) unless its operator allows them.",
				"The server may have been down for a moment: wait a few minutes and run the trial migration again.",
			},
		}
	case ClassTLS:
		s = Solution{
			Title:       "A secure connection could not be set up",
			Explanation: "The encrypted connection to {server} failed. Usually its certificate has expired or is for a different name, or the security setting does not match the port.",
			Steps: []string{
				"Use the server name that your mail program uses for {server}; the certificate is often issued for the provider's own name (for example imap.provider.com) rather than mail.yourdomain.com.",
				"Check that the security setting matches the port: port 993 with SSL/TLS, port 143 with STARTTLS.",
				"If the certificate has expired, ask whoever runs {server} to renew it.",
				"Run the trial migration again.",
			},
		}
	case ClassMailboxMissing:
		if side == SideSource {
			s = Solution{
				Title:       "The mailbox does not exist",
				Explanation: "{Server} has no mailbox with the address entered for {mailbox}.",
				Steps: []string{
					"Check the spelling of the email address and login name entered for {mailbox}.",
					"Make sure the mailbox still exists on {server}: log in to its webmail. Do not cancel the old mail service until everyone has their mail.",
					"Correct the details and run the trial migration again.",
				},
			}
			break
		}
		s = Solution{
			Title:       "The mailbox does not exist",
			Explanation: "The migration copies mail into mailboxes that already exist; it never creates them. {Server} has no mailbox with the address entered for {mailbox}.",
			Steps: []string{
				"Create the mailbox on the new service first, in your new provider's admin panel ({server}), with exactly the email address entered here.",
				"If the mailbox already exists, check the spelling of the email address and login name entered for {mailbox}.",
				"A new mailbox can take a few minutes to become active (sometimes longer with Microsoft 365). Log in to its webmail to check that it works.",
				"Run the trial migration again.",
			},
		}
	case ClassQuota:
		s = Solution{
			Title:       "There is not enough space",
			Explanation: "{Mailbox} is full, or the mail would take it over its size limit. Messages that do not fit are not copied.",
			Steps: []string{
				"Compare the sizes: the old mailbox should use no more than 70% of the space of the new one, which leaves room for new mail and for servers counting sizes differently.",
				"Ask the provider or administrator of {server} for more space for {mailbox}, for example a larger plan or licence.",
				"Or make the old mailbox smaller: empty its Trash and Junk folders and delete large old messages you do not need.",
				"Then run the migration again. Messages already copied are not copied a second time.",
			},
		}
	case ClassTooLarge:
		s = Solution{
			Title:       "A message is too large",
			Explanation: "Some messages are bigger than {server} accepts (Microsoft 365, for example, takes at most 35 MB per message). Those messages were skipped; everything else was copied.",
			Steps: []string{
				"Open More info to see which messages were skipped.",
				"Ask the administrator of {server} whether the largest allowed message size can be raised for {mailbox}.",
				"Otherwise, save the large attachments from the old mailbox to your computer or shared storage, so nothing is lost.",
				"If the limit was raised, run Retry errors to copy only the messages that failed.",
			},
		}
	case ClassThrottled:
		s = Solution{
			Title:       "The server asked to slow down",
			Explanation: "{Server} limits how much can be copied in a given time. The migration waits and retries by itself, so it takes longer but nothing is lost.",
			Steps: []string{
				"Nothing needs fixing: let the migration keep running.",
				"If it stays slow, migrate fewer mailboxes at the same time (lower the concurrency in the project settings), since {server} counts them together.",
				"Run big migrations at night or over the weekend, when {server} is less busy.",
				"Very large Gmail mailboxes take days: Google lets about 2.5 GB a day be downloaded from one account.",
			},
		}
	case ClassPasswordChanged:
		s = Solution{
			Title:       "The password changed during the migration",
			Explanation: "Logging in to {mailbox} worked earlier, but {server} now refuses the password. Most likely it was changed or expired while the migration was running.",
			Steps: []string{
				"Ask the person who uses {mailbox} for the new password, and ask everyone not to change passwords until the migration is finished.",
				"Enter the new password for {mailbox}.",
				"Resume the migration (Migrate new items). Messages already copied are not copied again.",
				"If the password was not changed, the account may be locked after failed attempts: log in to its webmail to unlock it, then resume.",
			},
		}
	case ClassConfig:
		s = Solution{
			Title:       "The connection settings need changing",
			Explanation: "{Server} refused the way the migration tried to connect, for example because it does not allow logging in over an unencrypted connection.",
			Steps: []string{
				"Use an encrypted connection to {server}: port 993 with SSL/TLS, or port 143 with STARTTLS.",
				"Check that the server type chosen for {server} (IMAP, POP or Exchange) is the one your provider offers.",
				"Read the server's answer under More info: it often names the setting it wants.",
				"Save the settings and run the trial migration again.",
			},
		}
	case ClassPermission:
		// Microsoft Graph application permissions (Mail.Read reads
		// mailboxes, Mail.ReadWrite writes them); the grant named is
		// the one this side needs.
		grant := "Mail.ReadWrite"
		if side == SideSource {
			grant = "Mail.Read (or Mail.ReadWrite)"
		}
		s = Solution{
			Title:       "A permission is missing",
			Explanation: "The login to {server} worked, but the app or account used for {mailbox} is not allowed to do what the migration needs. For Microsoft 365 this is an application permission of the app registration that an administrator must grant; for Exchange with one admin account, the ApplicationImpersonation role.",
			Steps: []string{
				"For Microsoft 365: sign in to the Microsoft Entra admin center as an administrator, open App registrations, choose the app whose client id was entered for {mailbox}, and open API permissions.",
				"Click Add a permission, Microsoft Graph, Application permissions, and add " + grant + ". For copies that keep every message byte for byte, also add Mail-Advanced.ReadWrite.All.",
				"Click \"Grant admin consent\" and check that the status column shows a green tick. If an application access policy limits the app to some mailboxes, add {mailbox} to it.",
				"For Exchange with an admin account: ask your Exchange administrator to give it the ApplicationImpersonation role. In the Exchange Management Shell: " +
					"New-ManagementRoleAssignment -Name MailferryImpersonation -Role ApplicationImpersonation -User <admin account>; " +
					"if the role has a management scope, {mailbox} must be in it.",
				"Run the trial migration again (new permissions can take a few minutes to apply, Exchange roles up to about 15 minutes).",
			},
		}
	case ClassSecretKey:
		s = Solution{
			Title: "The stored passwords can no longer be read",
			Explanation: "The server's secret key changed: the passwords stored for {mailbox} were encrypted with another key, so they cannot be read " +
				"and nothing was copied. This happens when the service is moved or restored without its key file, or its key setting is changed.",
			Steps: []string{
				"Re-enter the passwords: open Edit for {mailbox} and type both passwords again, the old service's and the new one's.",
				"If you run this service yourself, you can instead put back the original secret key (the file secret.key in the data directory, or the MAILFERRY_SECRET_KEY setting): then every stored password works again.",
				"Run the trial migration or the migration again. Messages already copied are not copied a second time.",
			},
		}
	default:
		c = ClassOther
		s = Solution{
			Title:       "Something unexpected went wrong",
			Explanation: "The migration could not tell what went wrong with {mailbox}. The message under More info is the server's own answer.",
			Steps: []string{
				"Read the message under More info; it may point to the problem.",
				"Run the trial migration or the migration again: short problems on {server} often go away by themselves.",
				"If it keeps failing, send the message from More info to your support contact. Never send your password.",
			},
		}
	}
	s.Class = c
	s.Title = fill(s.Title)
	s.Explanation = fill(s.Explanation)
	for i, step := range s.Steps {
		s.Steps[i] = fill(step)
	}
	return s
}
