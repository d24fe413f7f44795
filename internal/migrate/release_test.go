package migrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/all"
)

// TestFolderStateFreedWhenDone checks that what a folder needs only
// while it is copied (the destination folder's index, the set of IDs
// listed, flag changes) is released once the folder is done, while the
// run goes on and still holds every folder's result: memory follows the
// folders in flight, not the mailbox (issue 14, where a 300k-message run
// kept the index of every destination folder to its end).
func TestFolderStateFreedWhenDone(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "mbox")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"Inbox.mbox", "Work", "Play", "Lists"}
	const per = 300
	for fi, name := range names {
		var b strings.Builder
		for i := 0; i < per; i++ {
			fmt.Fprintf(&b, "From a@b Mon Jan  1 00:00:00 2001\nMessage-ID: <m%d.%d@x>\nSubject: %d in %s\n\nbody %d\n\n", fi, i, i, name, i)
		}
		if err := os.WriteFile(filepath.Join(tree, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg := all.Registry()
	open := func(raw string, role connector.Role) connector.Conn {
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
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	src := open("mbox:"+tree, connector.RoleSource).(connector.Source)
	dst := open("maildir:"+filepath.Join(dir, "backup"), connector.RoleDestination).(connector.Destination)

	var (
		r      *run
		mu     sync.Mutex
		seen   []weak.Pointer[ledger]
		done   int
		stopPt = make(chan struct{})
		polled = make(chan struct{})
	)
	// Every ledger the run makes, caught while it is in use.
	watch := func() {
		defer close(polled)
		known := map[*ledger]bool{}
		for {
			r.mu.Lock()
			for _, l := range r.ledgers {
				if !known[l] {
					known[l] = true
					mu.Lock()
					seen = append(seen, weak.Make(l))
					mu.Unlock()
				}
			}
			r.mu.Unlock()
			select {
			case <-stopPt:
				return
			case <-time.After(50 * time.Microsecond):
			}
		}
	}
	opts := Options{
		inspect: func(run *run) { r = run; go watch() },
		OnEvent: func(e Event) {
			if e.Type != "folder_done" {
				return
			}
			for _, fs := range r.folders {
				if fs.res != e.Folder {
					continue
				}
				done++
				if fs.res.Copied == 0 {
					t.Errorf("%s: nothing copied, so no index was needed to begin with", e.Folder.Source)
				}
				if fs.led != nil || fs.seen.m != nil {
					t.Errorf("%s is done but still holds its destination index (%v) or its %d listed IDs",
						e.Folder.Source, fs.led != nil, len(fs.seen.m))
				}
			}
		},
	}
	res, err := Run(context.Background(), src, dst, opts)
	close(stopPt)
	<-polled
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != int64(len(names)*per) || done != len(names) {
		t.Fatalf("copied %d, %d folders done; want %d and %d", res.Stats.Copied, done, len(names)*per, len(names))
	}
	// The run (still referenced here, with every folder's state and
	// result) no longer keeps any destination index alive.
	runtime.GC()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no destination index was seen while the run went on")
	}
	for i, w := range seen {
		if w.Value() != nil {
			t.Errorf("destination index %d of %d is still reachable after its folder was done", i+1, len(seen))
		}
	}
	runtime.KeepAlive(r)
}
