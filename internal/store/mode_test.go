//go:build unix

package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The state database and its -wal and -shm files are readable by their
// owner only, even with umask 0 in a directory open to everyone, and a
// database left with a wider mode is narrowed on open.
func TestDatabaseFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pair(context.Background(), "p", "a", "b"); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, dbFile, dbFile+"-wal", dbFile+"-shm")
	s.Close()

	// An older install's world-readable file is narrowed (SQLite then
	// gives the new -wal and -shm files its mode).
	if err := os.Chmod(filepath.Join(dir, dbFile), 0o666); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Pair(context.Background(), "p", "a", "b"); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, dbFile, dbFile+"-wal", dbFile+"-shm")
}

func checkPrivate(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", n, m)
		}
	}
}
