package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// generateHint is appended to every key error: the admin's next step is
// almost always to make a proper key.
const generateHint = "generate one with: head -c 32 /dev/urandom | base64"

// LoadKey returns the installation key.
//
// A non-empty envValue (the value of MAILFERRY_SECRET_KEY) wins; it must be
// 32 bytes encoded as standard base64 or hex. Otherwise the key comes from
// keyFile, which must hold 32 raw bytes or their base64 and must not be
// accessible by group or others. When keyFile does not exist it is created
// with mode 0600 (its directory with 0700) holding the base64 of 32 random
// bytes, and created is true.
func LoadKey(envValue, keyFile string) (key []byte, created bool, err error) {
	if v := strings.TrimSpace(envValue); v != "" {
		key, err := decodeEnvKey(v)
		if err != nil {
			return nil, false, err
		}
		return key, false, nil
	}
	if keyFile == "" {
		return nil, false, errors.New("no secret key: set MAILFERRY_SECRET_KEY or configure a key file; " + generateHint)
	}
	key, err = readKeyFile(keyFile)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, created, err = createKeyFile(keyFile)
	if err != nil {
		return nil, false, err
	}
	return key, created, nil
}

// decodeEnvKey never puts the value into its errors: a near-miss key is
// still mostly key material.
func decodeEnvKey(v string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		if len(b) == keySize {
			return b, nil
		}
		// 64 hex digits are also valid base64 (of 48 bytes), so fall
		// through to hex before complaining about the length.
		if h, herr := hex.DecodeString(v); herr == nil && len(h) == keySize {
			return h, nil
		}
		return nil, fmt.Errorf("MAILFERRY_SECRET_KEY decodes to %d bytes, want %d; %s", len(b), keySize, generateHint)
	}
	if h, err := hex.DecodeString(v); err == nil {
		if len(h) == keySize {
			return h, nil
		}
		return nil, fmt.Errorf("MAILFERRY_SECRET_KEY decodes to %d bytes, want %d; %s", len(h), keySize, generateHint)
	}
	return nil, fmt.Errorf("MAILFERRY_SECRET_KEY is neither base64 nor hex of %d bytes; %s", keySize, generateHint)
}

// readKeyFile returns an error wrapping fs.ErrNotExist when the file is
// missing, so the caller can create it.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	defer f.Close()
	// Check the open file rather than the path, so a file swapped in
	// between the check and the read cannot slip through.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; Go reports 0666 for every file.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("secret key file %s is accessible by group or others (mode %04o); "+
			"restrict it with: chmod 600 %s", path, perm, path)
	}
	// Anything much longer than a base64 key is not a key file; do not
	// read an arbitrarily large file someone pointed us at.
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("read secret key file %s: %w", path, err)
	}
	if len(data) == keySize {
		return data, nil
	}
	b, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil || len(b) != keySize {
		return nil, fmt.Errorf("secret key file %s must hold %d raw bytes or their base64; %s",
			path, keySize, generateHint)
	}
	return b, nil
}

// createKeyFile writes a fresh key so that the file appears complete or not
// at all: a second process starting at the same moment must never read a
// half-written key, nor replace one already used to seal secrets. It writes
// a temporary file and hard-links it into place, which fails if the key file
// already exists; then the existing key is used instead.
func createKeyFile(path string) ([]byte, bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create secret key directory: %w", err)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate secret key: %w", err)
	}
	content := []byte(base64.StdEncoding.EncodeToString(key) + "\n")

	tmp, err := os.CreateTemp(dir, ".secret-key-*.tmp") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeAndSync(tmp, content); err != nil {
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}

	err = os.Link(tmp.Name(), path)
	switch {
	case errors.Is(err, fs.ErrExist):
		key, err := readKeyFile(path)
		return key, false, err
	case err != nil:
		// Some file systems have no hard links; exclusive create still
		// refuses to replace an existing key.
		f, cerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(cerr, fs.ErrExist) {
			key, err := readKeyFile(path)
			return key, false, err
		}
		if cerr != nil {
			return nil, false, fmt.Errorf("create secret key file: %w", cerr)
		}
		if err := writeAndSync(f, content); err != nil {
			os.Remove(path)
			return nil, false, fmt.Errorf("write secret key file: %w", err)
		}
	}
	// Losing the key loses every sealed secret, so make the new directory
	// entry durable before anything is sealed with it.
	if err := syncDir(dir); err != nil {
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	return key, true, nil
}

func writeAndSync(f *os.File, content []byte) error {
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
