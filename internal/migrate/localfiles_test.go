package migrate_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/migrate"
)

func openAddr(t *testing.T, raw string, role connector.Role) connector.Conn {
	t.Helper()
	reg := all.Registry()
	e, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var c connector.Conn
	if role == connector.RoleSource {
		c, err = reg.OpenSource(context.Background(), e, connector.OpenOptions{})
	} else {
		c, err = reg.OpenDestination(context.Background(), e, connector.OpenOptions{})
	}
	if err != nil {
		t.Fatalf("open %s: %v", raw, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Corrupt local files through the engine: what can be read is copied,
// each bad message is a failure naming its folder, its ID and, in the
// reason, its file and byte offset; a directory of an mbox tree that
// cannot be read is reported with its path, the rest copied; the counts
// balance. A second pass copies nothing more and reports the same.
func TestCorruptLocalFilesAreReported(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "mbox")
	must(t, os.MkdirAll(filepath.Join(tree, "Work.sbd"), 0o755))
	good1 := "From a@b Mon Jan  1 00:00:00 2001\nMessage-ID: <g1@x>\nSubject: good one\n\nok\n\n"
	junk := "Subject: no From line\n\nlost\n\n"
	good2 := "From a@b Tue Jan  2 00:00:00 2001\nMessage-ID: <g2@x>\nSubject: good two\n\nok\n\n"
	cut := "From a@b Wed Jan  3 00:00:00 2001\nMessage-ID: <cut@x>\nSubject: cut\n\nthe disk filled up in the mid"
	inbox := filepath.Join(tree, "Inbox.mbox")
	must(t, os.WriteFile(inbox, []byte(junk+good1+good2+cut), 0o644))
	must(t, os.WriteFile(filepath.Join(tree, "Work"), []byte("From a@b Mon Jan  1 00:00:00 2001\nMessage-ID: <w@x>\nSubject: work\n\nw\n"), 0o644))
	// A directory of the tree that cannot be read. Root reads every
	// directory, so there the mbox connector's note (its own test makes
	// a real one, as another user) is added by a wrapper.
	oldDir := filepath.Join(tree, "Work.sbd", "Old.sbd")
	must(t, os.MkdirAll(oldDir, 0o755))
	var src connector.Source = openAddr(t, "mbox:"+tree, connector.RoleSource).(connector.Source)
	if os.Geteuid() != 0 {
		must(t, os.Chmod(oldDir, 0o000))
		t.Cleanup(func() { _ = os.Chmod(oldDir, 0o755) })
	} else {
		src = notedSource{Source: src, note: connector.FolderNote{Path: mail.Path{"Work", "Old"},
			Err: connector.Errorf(connector.KindItem, "make the directory readable (chmod -R u+rX) and run again", os.ErrPermission, "mbox directory %s", oldDir)}}
	}

	dst := openAddr(t, "maildir:"+filepath.Join(dir, "backup"), connector.RoleDestination).(connector.Destination)
	for pass := 1; pass <= 2; pass++ {
		res, err := migrate.Run(context.Background(), src, dst, migrate.Options{})
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		if err := res.Balance(); err != nil {
			t.Errorf("pass %d: %v", pass, err)
		}
		copied := int64(0)
		if pass == 1 {
			copied = 3 // good one, good two, work
		}
		if res.Stats.Copied != copied || res.Stats.Failed != 2 {
			t.Errorf("pass %d: copied %d failed %d; want %d copied and the 2 bad messages failed", pass, res.Stats.Copied, res.Stats.Failed, copied)
		}
		offsets := map[string]int{"junk": 0, "cut": len(junk + good1 + good2)}
		var notes int
		for _, f := range res.Failures {
			switch {
			case f.Messages == 0:
				// The unreadable directory: named, no messages claimed.
				notes++
				if !strings.Contains(f.Reason, oldDir) || !strings.HasPrefix(f.Folder, "Work") || f.Hint == "" {
					t.Errorf("pass %d: directory note %+v; want the folder, the path and a hint", pass, f)
				}
			case f.Folder != "INBOX" || f.ID == "" || f.Kind != "item":
				t.Errorf("pass %d: failure %+v does not name its folder, ID and kind", pass, f)
			case strings.Contains(f.Reason, inbox+" at byte "+strconv.Itoa(offsets["junk"])+":"):
				delete(offsets, "junk")
			case strings.Contains(f.Reason, inbox+" at byte "+strconv.Itoa(offsets["cut"])+":"):
				delete(offsets, "cut")
			default:
				t.Errorf("pass %d: failure %+v does not name the file and byte offset", pass, f)
			}
		}
		if len(offsets) != 0 || notes != 1 {
			t.Errorf("pass %d: not reported: %v; %d directory notes, want 1\n%+v", pass, offsets, notes, res.Failures)
		}
	}
	// What was readable arrived, once.
	b := openAddr(t, "maildir:"+filepath.Join(dir, "backup"), connector.RoleSource)
	fs, err := b.Folders(context.Background())
	must(t, err)
	n := 0
	for _, f := range fs {
		_, err := b.List(context.Background(), f, connector.ListOptions{}, func(ms []connector.Message) error {
			for _, m := range ms {
				if !strings.HasPrefix(m.Headers.Subject, "good") && m.Headers.Subject != "work" {
					t.Errorf("%s holds %q", f.Path, m.Headers.Subject)
				}
			}
			n += len(ms)
			return nil
		})
		must(t, err)
	}
	if n != 3 {
		t.Errorf("the backup holds %d messages, want the 3 readable ones", n)
	}
}

// notedSource adds a FolderNote to a source's folder listing.
type notedSource struct {
	connector.Source
	note connector.FolderNote
}

func (n notedSource) FoldersNoted(ctx context.Context) ([]connector.Folder, []connector.FolderNote, error) {
	fs, err := n.Folders(ctx)
	return fs, []connector.FolderNote{n.note}, err
}
