package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

// A started sign-in is taken once and not after it expired; storing a
// sign-in's secret needs the link still usable, touches only its side of
// its mailbox, and uses the link up only once both sides have their
// credentials (here the other side's password came later, through
// UsePasswordLink, which keeps the signed-in side's secret).
func TestSignInRequests(t *testing.T) { eachEngine(t, testSignInRequests) }

func testSignInRequests(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	project, ms := seedProject(t, s, 2)
	if _, err := s.q().exec(ctx, `UPDATE mailboxes SET source_secret = '' WHERE id = $1`, ms[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.q().exec(ctx, `UPDATE mailboxes SET dest_secret = '' WHERE id = $1`, ms[1]); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if err := s.AskForPasswords(ctx, PasswordRequest{TokenHash: "link" + m, MailboxID: m, ProjectID: project, SentTo: "x", CreatedAt: 100, ExpiresAt: 1000}); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := s.AddSignIn(ctx, SignInRequest{StateHash: "s1", TokenHash: "link" + ms[0], NonceHash: "n1", Side: "source", Sealed: "sealed", CreatedAt: 100, ExpiresAt: 200}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSignIn(ctx, "s1", 200); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("an expired sign-in: %v", err)
	}
	if err := s.AddSignIn(ctx, SignInRequest{StateHash: "s2", TokenHash: "link" + ms[0], NonceHash: "n2", Side: "source", Sealed: "sealed", CreatedAt: 150, ExpiresAt: 300}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SignInsSince(ctx, "link"+ms[0], 99); err != nil || n != 2 {
		t.Errorf("sign-ins since 99: %d %v", n, err)
	}
	r, err := s.TakeSignIn(ctx, "s2", 160)
	if err != nil || r.NonceHash != "n2" || r.Sealed != "sealed" || r.Side != "source" {
		t.Fatalf("take: %+v %v", r, err)
	}
	if _, err := s.TakeSignIn(ctx, "s2", 161); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("taken twice: %v", err)
	}
	// Mailbox 0 lacked only its source: the sign-in completes it.
	done, err := s.StoreSignIn(ctx, "link"+ms[0], ms[0], "source", "refresh-sealed", 170)
	if err != nil || !done {
		t.Fatalf("store the sign-in of mailbox 0: %v %v", done, err)
	}
	if _, err := s.PasswordLinkByHash(ctx, "link"+ms[0], 171); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("the completed mailbox's link: %v; want used up", err)
	}
	if _, err := s.StoreSignIn(ctx, "link"+ms[0], ms[0], "source", "again", 172); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("a sign-in through a used link: %v", err)
	}
	// A link does not reach another mailbox.
	if _, err := s.StoreSignIn(ctx, "link"+ms[0], ms[1], "destination", "x", 172); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("mailbox 0's link for mailbox 1: %v", err)
	}
	// Mailbox 1: the destination is signed in to while its source
	// password is replaced later through the form.
	if _, err := s.q().exec(ctx, `UPDATE mailboxes SET source_secret = '' WHERE id = $1`, ms[1]); err != nil {
		t.Fatal(err)
	}
	done, err = s.StoreSignIn(ctx, "link"+ms[1], ms[1], "destination", "dest-refresh", 180)
	if err != nil || done {
		t.Fatalf("store the sign-in of mailbox 1: %v %v; want not complete", done, err)
	}
	l, err := s.PasswordLinkByHash(ctx, "link"+ms[1], 181)
	if err != nil || l.HasSourceSecret || !l.HasDestSecret {
		t.Fatalf("mailbox 1's link: %+v %v", l, err)
	}
	if err := s.UsePasswordLink(ctx, "link"+ms[1], ms[1], "src-sealed", "", 190); err != nil {
		t.Fatal(err)
	}
	var src, dst, status string
	if err := s.q().queryRow(ctx, `SELECT source_secret, dest_secret, status FROM mailboxes WHERE id = $1`, ms[1]).Scan(&src, &dst, &status); err != nil {
		t.Fatal(err)
	}
	if src != "src-sealed" || dst != "dest-refresh" || status != "not_started" {
		t.Errorf("mailbox 1: %q %q %s", src, dst, status)
	}
	if err := s.q().queryRow(ctx, `SELECT source_secret, dest_secret FROM mailboxes WHERE id = $1`, ms[0]).Scan(&src, &dst); err != nil || src != "refresh-sealed" || dst != "y" {
		t.Errorf("mailbox 0: %q %q %v", src, dst, err)
	}
	// A rotated token replaces a stored one, never an erased one.
	if _, err := s.q().exec(ctx, `UPDATE mailboxes SET dest_secret = '' WHERE id = $1`, ms[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceSideSecret(ctx, ms[0], "source", "rotated"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceSideSecret(ctx, ms[0], "destination", "resurrected"); err != nil {
		t.Fatal(err)
	}
	if err := s.q().queryRow(ctx, `SELECT source_secret, dest_secret FROM mailboxes WHERE id = $1`, ms[0]).Scan(&src, &dst); err != nil || src != "rotated" || dst != "" {
		t.Errorf("after replacing: %q %q %v", src, dst, err)
	}
}
