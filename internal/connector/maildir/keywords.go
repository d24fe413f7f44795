package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connector/localfile"
)

// Dovecot keeps the names of a folder's keywords in the file
// dovecot-keywords: one "<index> <name>" line per keyword, index 0 being
// the letter 'a' in file names, up to 25 ('z'). The file is replaced
// with rename(), never edited in place, and written only while
// dovecot-uidlist.lock is held (Dovecot's Maildir documentation,
// "IMAP Keywords").
const (
	keywordsFile = "dovecot-keywords"
	uidlistLock  = "dovecot-uidlist.lock"
	maxKeywords  = 26
)

// readKeywords returns the folder's keyword names by letter index; a
// missing file is no keywords.
func readKeywords(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, keywordsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseKeywords(data), nil
}

// parseKeywords reads the file's lines; bad lines are skipped (they
// name no letter that could be resolved).
func parseKeywords(data []byte) []string {
	var kws []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		idx, name, ok := strings.Cut(strings.TrimRight(sc.Text(), "\r"), " ")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= maxKeywords || name == "" {
			continue
		}
		for len(kws) <= n {
			kws = append(kws, "")
		}
		kws[n] = name
	}
	return kws
}

func formatKeywords(kws []string) []byte {
	var b bytes.Buffer
	for i, k := range kws {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	return b.Bytes()
}

// keywordLetter finds kw's letter in kws, case-insensitively as RFC
// 3501 compares flags.
func keywordLetter(kws []string, kw string) (byte, bool) {
	for i, k := range kws {
		if k != "" && strings.EqualFold(k, kw) {
			return byte('a' + i), true
		}
	}
	return 0, false
}

// ensureKeywords returns the letters for every keyword among flags,
// adding missing names to dovecot-keywords under Dovecot's lock. The
// caller holds the folder's in-process lock.
func ensureKeywords(dir string, flags []string) ([]string, error) {
	kws, err := readKeywords(dir)
	if err != nil {
		return nil, err
	}
	missing := false
	for _, f := range flags {
		if isKeyword(f) {
			if _, ok := keywordLetter(kws, f); !ok {
				missing = true
			}
		}
	}
	if !missing {
		return kws, nil
	}
	unlock, err := dotlock(filepath.Join(dir, uidlistLock))
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Read again under the lock: Dovecot may have added names.
	if kws, err = readKeywords(dir); err != nil {
		return nil, err
	}
	changed := false
	for _, f := range flags {
		if !isKeyword(f) {
			continue
		}
		if _, ok := keywordLetter(kws, f); ok {
			continue
		}
		slot := -1
		for i, k := range kws {
			if k == "" {
				slot = i
				break
			}
		}
		if slot < 0 && len(kws) < maxKeywords {
			kws = append(kws, "")
			slot = len(kws) - 1
		}
		if slot < 0 {
			continue // lettersOf reports it
		}
		kws[slot] = f
		changed = true
	}
	if changed {
		if err := writeFileAtomic(filepath.Join(dir, keywordsFile), formatKeywords(kws)); err != nil {
			return nil, err
		}
	}
	return kws, nil
}

// isKeyword: a flag stored as a keyword letter (not a system flag, and
// not $Forwarded, which has the letter P).
func isKeyword(f string) bool {
	return !strings.HasPrefix(f, "\\") && !strings.EqualFold(f, forwarded)
}

// writeFileAtomic replaces name with data through a temporary file and
// rename(), fsynced, so that readers see the old or the new file whole.
func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".mailferry-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return localfile.SyncDir(filepath.Dir(name))
}

// dotlock takes a lock file the way Dovecot does (created exclusively);
// one older than two minutes is left over from a crash and is taken
// over.
func dotlock(name string) (func(), error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if fi, serr := os.Stat(name); serr == nil && time.Since(fi.ModTime()) > 2*time.Minute {
			os.Remove(name)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is held by another program for more than 30 seconds", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
