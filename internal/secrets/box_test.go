package secrets

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func newTestBox(t *testing.T) (*Box, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	b, err := NewBox(key)
	if err != nil {
		t.Fatalf("NewBox: %v", err)
	}
	return b, key
}

func TestSealOpenRoundTrip(t *testing.T) {
	b, _ := newTestBox(t)
	ad := []byte("mailbox:42:source")
	for _, plain := range []string{"", "hunter2", strings.Repeat("päss", 1000)} {
		sealed, err := b.Seal([]byte(plain), ad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if sealed[0] != 1 {
			t.Errorf("version byte = %d, want 1", sealed[0])
		}
		if want := 1 + 12 + len(plain) + 16; len(sealed) != want {
			t.Errorf("sealed length = %d, want %d", len(sealed), want)
		}
		if len(plain) > 0 && bytes.Contains(sealed, []byte(plain)) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := b.Open(sealed, ad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != plain {
			t.Errorf("Open = %q, want %q", got, plain)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	b, _ := newTestBox(t)
	s1, _ := b.Seal([]byte("same"), nil)
	s2, _ := b.Seal([]byte("same"), nil)
	if bytes.Equal(s1, s2) {
		t.Fatal("sealing the same plaintext twice gave identical output")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	b, _ := newTestBox(t)
	const plain = "correct horse battery staple"
	ad := []byte("mailbox:1:source")
	sealed, err := b.Seal([]byte(plain), ad)
	if err != nil {
		t.Fatal(err)
	}
	// Every byte matters: version, nonce, ciphertext and tag.
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		got, err := b.Open(bad, ad)
		if err == nil {
			t.Fatalf("flipping byte %d: Open succeeded with %q", i, got)
		}
		if strings.Contains(err.Error(), plain) {
			t.Fatalf("error contains the plaintext: %v", err)
		}
	}
	if _, err := b.Open(sealed[:len(sealed)-1], ad); err == nil {
		t.Error("truncated value opened")
	}
	if _, err := b.Open(nil, ad); err == nil {
		t.Error("empty value opened")
	}
}

func TestOpenRejectsWrongAssociatedData(t *testing.T) {
	b, _ := newTestBox(t)
	sealed, err := b.Seal([]byte("secret"), []byte("mailbox:1:source"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range []string{"mailbox:2:source", "mailbox:1:destination", ""} {
		if _, err := b.Open(sealed, []byte(ad)); err == nil {
			t.Errorf("opened with associated data %q", ad)
		}
	}
}

func TestOpenRejectsWrongKey(t *testing.T) {
	b1, key1 := newTestBox(t)
	b2, key2 := newTestBox(t)
	const plain = "s3cr3t-password"
	sealed, err := b1.Seal([]byte(plain), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b2.Open(sealed, []byte("ad"))
	if err == nil {
		t.Fatal("opened with the wrong key")
	}
	msg := err.Error()
	for _, leak := range [][]byte{[]byte(plain), key1, key2} {
		if strings.Contains(msg, string(leak)) {
			t.Errorf("error %q leaks secret material", msg)
		}
	}
	if !strings.Contains(msg, "key") {
		t.Errorf("error %q should mention the key as a likely cause", msg)
	}
}

func TestNewBoxRejectsShortKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewBox(make([]byte, n)); err == nil {
			t.Errorf("NewBox accepted a %d-byte key", n)
		}
	}
}
