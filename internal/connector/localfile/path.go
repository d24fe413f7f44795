package localfile

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// ParseAddress reads a local-file address of the given scheme:
//
//	scheme:/absolute/path
//	scheme:relative/path      (relative to the current directory)
//	scheme:~/path             (relative to the home directory)
//	scheme:///absolute/path   (file-URL style; a host is refused)
//
// A '?' starts parameters (key=value&key=value), which are checked
// against known. The path is returned absolute and cleaned.
func ParseAddress(scheme, raw string, known ...string) (connector.Endpoint, error) {
	rest, ok := strings.CutPrefix(raw, scheme+":")
	if !ok {
		// The registry matched the scheme case-insensitively.
		if len(raw) > len(scheme) && strings.EqualFold(raw[:len(scheme)+1], scheme+":") {
			rest = raw[len(scheme)+1:]
		} else {
			return connector.Endpoint{}, fmt.Errorf("%q is not a %s: address", raw, scheme)
		}
	}
	p, query, _ := strings.Cut(rest, "?")
	params := map[string]string{}
	if query != "" {
		// '+' is a plus here (layout=maildir++), not a space.
		vals, err := url.ParseQuery(strings.ReplaceAll(query, "+", "%2B"))
		if err != nil {
			return connector.Endpoint{}, fmt.Errorf("%s address %q: bad parameters %q: %v", scheme, raw, query, err)
		}
		for k, v := range vals {
			found := false
			for _, n := range known {
				found = found || n == k
			}
			if !found {
				if len(known) == 0 {
					return connector.Endpoint{}, fmt.Errorf("%s address %q: unknown parameter %q: %s: takes no parameters", scheme, raw, k, scheme)
				}
				return connector.Endpoint{}, fmt.Errorf("%s address %q: unknown parameter %q (known: %s)", scheme, raw, k, strings.Join(known, ", "))
			}
			params[k] = v[len(v)-1]
		}
	}
	if h, ok := strings.CutPrefix(p, "//"); ok {
		if !strings.HasPrefix(h, "/") {
			return connector.Endpoint{}, fmt.Errorf("%s address %q names a host: local files only; write %s:/path/to/mail", scheme, raw, scheme)
		}
		p = h
	}
	if p == "" {
		return connector.Endpoint{}, fmt.Errorf("%s address %q has no path: write %s:/path/to/mail", scheme, raw, scheme)
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return connector.Endpoint{}, fmt.Errorf("%s address %q: cannot find the home directory for '~': %v; give an absolute path", scheme, raw, err)
		}
		p = filepath.Join(home, p[1:])
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return connector.Endpoint{}, fmt.Errorf("%s address %q: %v", scheme, raw, err)
	}
	return connector.Endpoint{Scheme: scheme, Raw: raw, Redacted: raw, Path: abs, Params: params}, nil
}

// ErrOutsideRoot is returned when a path leads out of the root.
var ErrOutsideRoot = errors.New("the path leads outside the folder tree (a symbolic link or '..')")

// Root is a directory that every file access must stay inside.
type Root struct {
	// Dir is the root with symbolic links resolved.
	Dir string
}

// NewRoot resolves dir's symbolic links once; later checks compare
// against the resolved form.
func NewRoot(dir string) (Root, error) {
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Root{}, err
	}
	return Root{Dir: filepath.Clean(r)}, nil
}

// Contains reports whether p, with symbolic links resolved, is the root
// or lies inside it.
func (r Root) Contains(p string) bool {
	return p == r.Dir || strings.HasPrefix(p, r.Dir+string(filepath.Separator))
}

// Check resolves p's symbolic links and returns the resolved path, or
// ErrOutsideRoot when it leaves the root. p must exist.
func (r Root) Check(p string) (string, error) {
	if strings.Contains(filepath.ToSlash(p), "/../") || strings.HasSuffix(p, "/..") {
		return "", ErrOutsideRoot
	}
	res, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if !r.Contains(res) {
		return "", ErrOutsideRoot
	}
	return res, nil
}

// Open opens p for reading after checking that it stays inside the root
// and is a regular file.
func (r Root) Open(p string) (*os.File, os.FileInfo, error) {
	res, err := r.Check(p)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(res)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return f, fi, nil
}

// Describe turns a file-access error into words for the user and a hint.
func Describe(err error) (string, string) {
	switch {
	case errors.Is(err, os.ErrPermission):
		return err.Error(), "make the file readable by the user running Mailferry (chmod u+r) and run again"
	case errors.Is(err, ErrOutsideRoot):
		return err.Error(), "copy the file into the folder tree instead of linking to it, or name its real location"
	case errors.Is(err, os.ErrNotExist):
		return err.Error(), "the file was removed while the copy ran; list the folder again"
	}
	return err.Error(), ""
}

// ItemError is a KindItem error for one message; op names the file and,
// where it helps, the byte offset.
func ItemError(err error, op string, args ...any) *connector.Error {
	_, hint := Describe(err)
	return connector.Errorf(connector.KindItem, hint, err, op, args...)
}
