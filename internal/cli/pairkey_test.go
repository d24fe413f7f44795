package cli

import (
	"testing"

	"github.com/mailferry/mailferry/internal/connector/all"
)

// One admin login acting on two Exchange mailboxes (?impersonate=) makes
// two pairs with a state each: sharing one would make the second
// mailbox's pass trust the first one's records. The same mailbox is the
// same pair on every run.
func TestImpersonatedMailboxesArePairsOfTheirOwn(t *testing.T) {
	reg := all.Registry()
	addr := func(raw, user string) address {
		e, b, err := reg.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		a := address{e: e, b: b}
		a.o.Credentials.Username = user
		return a
	}
	src := addr("imaps://mail.old.example", "alice")
	ann := pairKey(src, addr("ews://mail.new.example?impersonate=ann@new.example", "admin"))
	ben := pairKey(src, addr("ews://mail.new.example?impersonate=ben@new.example", "admin"))
	own := pairKey(src, addr("ews://mail.new.example", "admin"))
	if ann == ben || ann == own || ben == own {
		t.Errorf("pairs: ann %s, ben %s, admin's own %s; want three", ann, ben, own)
	}
	if again := pairKey(src, addr("ews://mail.new.example?impersonate=ANN@new.example", "admin")); again != ann {
		t.Errorf("the same mailbox gave another pair: %s, %s", ann, again)
	}
}
