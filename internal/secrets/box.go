package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// keySize is the length of an installation key: AES-256.
const keySize = 32

// formatV1 is the first byte of every sealed value. It lets a later key
// rotation or algorithm change recognise old values instead of guessing.
const formatV1 byte = 1

const nonceSize = 12

// Box seals and opens secrets with AES-256-GCM.
type Box struct {
	aead cipher.AEAD
}

// NewBox takes a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("set up AES: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("set up AES-GCM: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext with a random 12-byte nonce. associatedData binds
// the ciphertext to its owner record (e.g. "mailbox:<id>:source") so a
// ciphertext copied to another row fails to open. The output is the format
// version byte 1, the nonce, then the ciphertext with its tag.
//
// Random nonces are safe here because one key seals far fewer than the 2^32
// values after which GCM nonce collisions become a concern.
func (b *Box) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+b.aead.Overhead())
	out[0] = formatV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal secret: generate nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:], plaintext, additional(formatV1, associatedData)), nil
}

// Open decrypts a value made by Seal with the same key and associated data.
// Its errors never contain plaintext or key material, so callers may log
// them.
func (b *Box) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("open secret: empty value")
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("open secret: unknown format version %d", sealed[0])
	}
	if len(sealed) < 1+nonceSize+b.aead.Overhead() {
		return nil, fmt.Errorf("open secret: value too short (%d bytes)", len(sealed))
	}
	nonce, ciphertext := sealed[1:1+nonceSize], sealed[1+nonceSize:]
	plaintext, err := b.aead.Open(nil, nonce, ciphertext, additional(sealed[0], associatedData))
	if err != nil {
		// GCM does not say why; spell out the usual causes instead of
		// wrapping its opaque "message authentication failed".
		return nil, errors.New("open secret: authentication failed: " +
			"the secret key changed, the value belongs to another record, or it is corrupted")
	}
	return plaintext, nil
}

// additional authenticates the format version along with the caller's
// associated data, so a value cannot be reinterpreted under another format.
func additional(version byte, associatedData []byte) []byte {
	ad := make([]byte, 0, 1+len(associatedData))
	ad = append(ad, version)
	return append(ad, associatedData...)
}
