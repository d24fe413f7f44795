package store

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		// The directory is embedded at build time; a failure here is a
		// build defect, not a runtime condition.
		panic(err)
	}
	return sub
}

// PrivateSQLite makes an SQLite database file and its -wal and -shm
// companions readable by their owner only (0600), whatever the umask or
// the mode of the directory: the state database holds sealed passwords,
// message identities and folder names, the job database the queue.
//
// SQLite creates a database file with mode 0644 less the umask, and gives
// its -wal and -shm files the mode of the database file. So the database
// file is created here, empty, with 0600 before SQLite opens it (an empty
// file is a valid new database), and the files an older version left
// with a wider mode are narrowed.
func PrivateSQLite(path string) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix permission bits there
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// O_CREATE applies the umask, which can only narrow 0600.
		return f.Close()
	case !os.IsExist(err):
		return fmt.Errorf("create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("restrict %s to its owner: %w", p, err)
			}
		}
	}
	return nil
}
