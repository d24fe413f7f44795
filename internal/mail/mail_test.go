package mail

import (
	"reflect"
	"testing"
)

func TestRoleFromName(t *testing.T) {
	cases := []struct {
		path string
		want Role
	}{
		{"INBOX", RoleInbox},
		{"inbox", RoleInbox},
		{"Sent Items", RoleSent},
		{"Sent", RoleSent},
		{"Sent Messages", RoleSent},
		{"[Gmail]/Sent Mail", RoleSent},
		{"[Google Mail]/Sent Mail", RoleSent},
		{"Deleted Items", RoleTrash},
		{"Junk E-mail", RoleJunk},
		{"Spam", RoleJunk},
		{"Drafts", RoleDrafts},
		{"Archive", RoleArchive},
		{"[Gmail]/All Mail", RoleAll},
		{"Projects/Sent", RoleNone},
		{"Sentinel", RoleNone},
	}
	for _, c := range cases {
		if got := RoleFromName(ParsePath(c.path)); got != c.want {
			t.Errorf("RoleFromName(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestCopyableFlags(t *testing.T) {
	in := []string{"\\seen", "\\Deleted", "\\Recent", "\\Flagged", "$Label1", "Work"}
	if got, want := CopyableFlags(in, true, nil), []string{"\\Seen", "\\Flagged", "$Label1", "Work"}; !reflect.DeepEqual(got, want) {
		t.Errorf("any keyword: got %v want %v", got, want)
	}
	if got, want := CopyableFlags(in, false, []string{"work"}), []string{"\\Seen", "\\Flagged", "Work"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed keywords only: got %v want %v", got, want)
	}
}

func TestIdentity(t *testing.T) {
	block := []byte("Message-ID: <ABC@example.org>\r\nDate: Tue, 1 Nov 2016 10:00:00 +0100\r\nFrom: Alice <a@example.org>\r\nSubject: hi\r\n\r\n")
	h := ParseHeaders(block)
	if h.MessageID != "<ABC@example.org>" || h.Subject != "hi" {
		t.Fatalf("ParseHeaders: %+v", h)
	}
	a := ComputeIdentity(h, 100)
	// Same instant written in another zone, refolded Message-ID, other size:
	// a server that re-encodes headers or counts size differently must not
	// make the message look new.
	h2 := Headers{MessageID: " <abc@example.org> ", Date: "Tue, 01 Nov 2016 09:00:00 +0000", From: "Alice  <a@example.org>", Subject: "other"}
	if b := ComputeIdentity(h2, 250); a != b {
		t.Errorf("identity differs for the same message: %s vs %s", a, b)
	}
	h3 := h2
	h3.From = "Bob <b@example.org>"
	if ComputeIdentity(h3, 100) == a {
		t.Error("a reused Message-ID from another sender must be a different identity")
	}
	// Without Message-ID the size and subject take part.
	n1 := ComputeIdentity(Headers{Date: h.Date, From: h.From, Subject: "x"}, 10)
	n2 := ComputeIdentity(Headers{Date: h.Date, From: h.From, Subject: "x"}, 11)
	n3 := ComputeIdentity(Headers{Date: h.Date, From: h.From, Subject: "y"}, 10)
	if n1 == n2 || n1 == n3 {
		t.Error("messages without Message-ID must differ by size and subject")
	}
	// Cyrus IMAP stores raw 8-bit header bytes as 'X': the copy it
	// serves must be the same message.
	raw := Headers{MessageID: "<m@x>", From: "\xe9t\xe9 <\xc3\xa9@example.org>", Subject: "caf\xe9"}
	munged := Headers{MessageID: "<m@x>", From: "XtX <XX@example.org>", Subject: "cafX"}
	if ComputeIdentity(raw, 10) != ComputeIdentity(munged, 10) {
		t.Error("8-bit header bytes rewritten as X must keep the identity")
	}
	if ParseHeaders([]byte("\x00garbage")) != (Headers{}) && ComputeIdentity(ParseHeaders([]byte("\x00garbage")), 5) == (Identity{}) {
		t.Error("malformed headers must still give an identity")
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\nDate: Tue, 1 Nov 2016 10:00:00 +0100\r\n\r\n"))
	f.Add([]byte("From: =?utf-8?q?=C3=84rger?= <x@y>\r\n continued\r\n\r\n"))
	f.Add([]byte("no colon here\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ComputeIdentity(ParseHeaders(b), int64(len(b)))
	})
}

func TestPath(t *testing.T) {
	p := ParsePath("/Archive//2019/")
	if !reflect.DeepEqual(p, Path{"Archive", "2019"}) || p.String() != "Archive/2019" {
		t.Fatalf("ParsePath: %#v", p)
	}
	if !ParsePath("Inbox/x").Equal(Path{"INBOX", "x"}) || ParsePath("a/X").Equal(Path{"a", "x"}) {
		t.Error("Equal: inbox is case-insensitive, other segments are not")
	}
	if (Path{"a/b"}).Key() == (Path{"a", "b"}).Key() {
		t.Error("Key must keep segment boundaries")
	}
}
