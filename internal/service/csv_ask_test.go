package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/store"
)

// A CSV of addresses only is accepted for mailboxes whose users will
// enter their own passwords, and refused otherwise with a message that
// says how to import it.
func TestParseMailboxCSVAddressesOnly(t *testing.T) {
	const addrOnly = "Source Email,Destination Email\nann@old.example,ann@new.example\nben@old.example,ben@new.example\n"
	ins, rowErrs, err := ParseMailboxCSVFor(strings.NewReader(addrOnly), true)
	if err != nil || len(rowErrs) > 0 || len(ins) != 2 {
		t.Fatalf("addresses only, asking users: %v %v %v", ins, rowErrs, err)
	}
	if !ins[0].AskUser || ins[0].SourcePassword != "" || ins[0].SourceLogin != "ann@old.example" {
		t.Errorf("row 2: %+v; want AskUser with the address as login", ins[0])
	}
	_, rowErrs, _ = ParseMailboxCSV(strings.NewReader(addrOnly))
	if len(rowErrs) != 1 || !strings.Contains(rowErrs[0].Message, "My users will enter their own passwords") {
		t.Errorf("addresses only, not asking: %v; want one header problem naming the option", rowErrs)
	}
	// Mixed: rows with both passwords stay ordinary; one password alone
	// is a mistake.
	const mixed = "Source Email,Source Password,Destination Email,Destination Password\n" +
		"ann@old.example,,ann@new.example,\nben@old.example,s3cret,ben@new.example,d3st\ncid@old.example,s3cret,cid@new.example,\n"
	ins, rowErrs, err = ParseMailboxCSVFor(strings.NewReader(mixed), true)
	if err != nil || len(rowErrs) != 1 || rowErrs[0].Row != 4 || !strings.Contains(rowErrs[0].Message, "leave both empty") {
		t.Fatalf("mixed rows: %v %v", rowErrs, err)
	}
	if strings.Contains(rowErrs[0].Message, "s3cret") {
		t.Error("a row error quotes a password")
	}
	_, rowErrs, _ = ParseMailboxCSV(strings.NewReader(mixed))
	if len(rowErrs) < 2 || !strings.Contains(rowErrs[0].Message, "My users will enter their own passwords") {
		t.Errorf("empty passwords, not asking: %v", rowErrs)
	}
}

// Imported with addresses only, the mailboxes have no passwords and can
// be sent the end-user links.
func TestImportCSVAddressesOnly(t *testing.T) { eachEngine(t, testImportCSVAddressesOnly) }

func testImportCSVAddressesOnly(t *testing.T, st *store.Store) {
	s := newService(t, st)
	ctx := context.Background()
	o, _ := s.EnsureOwner(ctx, "admin@example.com")
	p, err := s.CreateProject(ctx, o.ID, ProjectInput{Name: "p", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Source Email,Destination Email\nann@old.example,ann@new.example\n")
	if _, err := s.ImportCSV(ctx, o.ID, p.ID, body); err == nil {
		t.Fatal("addresses only were imported without asking users")
	} else if ie := (*InputError)(nil); !errors.As(err, &ie) || len(ie.Rows) != 1 {
		t.Fatalf("want one row problem: %v", err)
	}
	ms, err := s.ImportCSVFor(ctx, o.ID, p.ID, body, true)
	if err != nil || len(ms) != 1 || ms[0].HasPasswords {
		t.Fatalf("imported %+v, %v; want one mailbox without passwords", ms, err)
	}
}
