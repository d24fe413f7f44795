package imap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/testenv"
)

// Where the server tells (here Dovecot with a passdb reason, answering
// NO [CONTACTADMIN] "Mailbox does not exist yet"), a login to a mailbox
// that does not exist is told apart from a wrong password, and the hint
// says to create the mailbox; where it does not (Dovecot's default, the
// same [AUTHENTICATIONFAILED] for both), it stays an authentication error.
func TestLoginTellsMissingMailboxFromWrongPassword(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	d.AddUser(t, "ann", "right")
	d.RefuseLogin(t, "newbie", "Mailbox does not exist yet")
	open := func(user, password string) error {
		_, err := imapconn.Open(context.Background(), imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityNone,
			AllowPlaintext: true, Username: user, Password: password})
		if err == nil {
			t.Fatalf("%s logged in", user)
		}
		return err
	}
	if err := open("ann", "wrong"); connector.KindOf(err) != connector.KindAuth {
		t.Errorf("wrong password: %s (%v)", connector.KindOf(err), err)
	}
	if err := open("nobody", "any"); connector.KindOf(err) != connector.KindAuth {
		t.Errorf("unknown user on a server that does not tell: %s (%v)", connector.KindOf(err), err)
	}
	err := open("newbie", "any")
	if connector.KindOf(err) != connector.KindNoAccount || !connector.KindNoAccount.Fatal() {
		t.Fatalf("missing mailbox: %s (%v)", connector.KindOf(err), err)
	}
	if !strings.Contains(err.Error(), "Mailbox does not exist yet") || !strings.Contains(connector.HintOf(err), "create it") {
		t.Errorf("missing mailbox: %v — %s", err, connector.HintOf(err))
	}
}
