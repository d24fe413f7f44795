package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeyCreatesFileOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	path := filepath.Join(dir, "secret.key")

	key1, created, err := LoadKey("", path)
	if err != nil {
		t.Fatalf("first LoadKey: %v", err)
	}
	if !created {
		t.Error("first LoadKey: created = false, want true")
	}
	if len(key1) != 32 {
		t.Fatalf("key length = %d, want 32", len(key1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || !bytes.Equal(decoded, key1) {
		t.Errorf("key file holds %q, want base64 of the returned key", data)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".secret-key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	key2, created, err := LoadKey("", path)
	if err != nil {
		t.Fatalf("second LoadKey: %v", err)
	}
	if created {
		t.Error("second LoadKey: created = true, want false")
	}
	if !bytes.Equal(key1, key2) {
		t.Error("second LoadKey returned a different key")
	}
	if _, err := NewBox(key2); err != nil {
		t.Errorf("NewBox with loaded key: %v", err)
	}
}

func TestLoadKeyReadsRawFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	raw := bytes.Repeat([]byte{0x0a}, 32) // newlines: must not be trimmed
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	key, created, err := LoadKey("", path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if created || !bytes.Equal(key, raw) {
		t.Errorf("LoadKey = %x, %v; want the raw file contents, false", key, created)
	}
}

func TestLoadKeyEnvOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	fileKey, _, err := LoadKey("", path)
	if err != nil {
		t.Fatal(err)
	}
	envKey := bytes.Repeat([]byte{0x5a}, 32)
	for name, v := range map[string]string{
		"base64": base64.StdEncoding.EncodeToString(envKey),
		"hex":    hex.EncodeToString(envKey),
		"spaces": " " + base64.StdEncoding.EncodeToString(envKey) + "\n",
	} {
		key, created, err := LoadKey(v, path)
		if err != nil {
			t.Fatalf("%s: LoadKey: %v", name, err)
		}
		if created || !bytes.Equal(key, envKey) || bytes.Equal(key, fileKey) {
			t.Errorf("%s: LoadKey = %x, %v; want the env key, false", name, key, created)
		}
	}

	// The environment alone is enough: no file is created.
	other := filepath.Join(t.TempDir(), "unused.key")
	if _, _, err := LoadKey(hex.EncodeToString(envKey), other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("key file created although the env value was set (stat: %v)", err)
	}
}

func TestLoadKeyBadEnvValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	for _, v := range []string{
		"not a key!",
		base64.StdEncoding.EncodeToString([]byte("only sixteen byt")),
		hex.EncodeToString([]byte("sixteen-byte-key")),
		"c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==",
	} {
		_, _, err := LoadKey(v, path)
		if err == nil {
			t.Fatalf("LoadKey(%q) succeeded", v)
		}
		msg := err.Error()
		if !strings.Contains(msg, "MAILFERRY_SECRET_KEY") || !strings.Contains(msg, "head -c 32 /dev/urandom | base64") {
			t.Errorf("error %q should name the variable and say how to generate a key", msg)
		}
		if strings.Contains(msg, v) {
			t.Errorf("error %q repeats the env value", msg)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a bad env value must not fall back to creating a key file (stat: %v)", err)
	}
}

func TestLoadKeyRefusesLooseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadKey("", path)
	if err == nil {
		t.Fatal("LoadKey accepted a 0644 key file")
	}
	if !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("error %q should say to chmod 600", err)
	}
}

func TestLoadKeyRejectsGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	const content = "this is not a key\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadKey("", path)
	if err == nil {
		t.Fatal("LoadKey accepted a malformed key file")
	}
	if strings.Contains(err.Error(), strings.TrimSpace(content)) {
		t.Errorf("error %q repeats the file contents", err)
	}
	// A malformed key must never be silently replaced: secrets sealed
	// with the real key would be lost.
	if data, _ := os.ReadFile(path); string(data) != content {
		t.Errorf("key file was modified to %q", data)
	}
}

func TestLoadKeyNeedsASource(t *testing.T) {
	if _, _, err := LoadKey("", ""); err == nil {
		t.Fatal("LoadKey with neither env value nor key file succeeded")
	}
}
