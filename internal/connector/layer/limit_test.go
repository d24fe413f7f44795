package layer_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/connector/maildir"
	"github.com/mailferry/mailferry/internal/mail"
)

// slowFolders counts Folders calls running at once.
type slowFolders struct {
	connector.Conn
	now, peak atomic.Int32
}

func (s *slowFolders) Features() connector.Features { return connector.Features{MaxConnections: 16} }

func (s *slowFolders) Folders(context.Context) ([]connector.Folder, error) {
	n := s.now.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	s.now.Add(-1)
	return nil, nil
}

// Limit runs at most n calls at once, shares its cap between connectors
// given one semaphore, and says so in MaxConnections.
func TestLimitCapsConcurrentCalls(t *testing.T) {
	in := &slowFolders{}
	c := layer.Limit(in, 3, nil)
	if got := c.Features().MaxConnections; got != 3 {
		t.Errorf("MaxConnections = %d, want the cap 3", got)
	}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = c.Folders(context.Background()) }()
	}
	wg.Wait()
	if p := in.peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, want at most 3 (and the cap used)", p)
	}
}

// DryRun never changes the destination: appends, folder creation, flag
// changes and deletions all leave the maildir as it was.
func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	e, err := maildir.Parse("maildir:" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real, err := maildir.Open(ctx, e, connector.OpenOptions{Role: connector.RoleDestination})
	if err != nil {
		t.Fatal(err)
	}
	inbox := connector.Folder{Path: mail.Path{mail.InboxName}, Name: ""}
	fs, _ := real.Folders(ctx)
	for _, f := range fs {
		if f.Path.IsInbox() {
			inbox = f
		}
	}
	raw := []byte("Subject: x\r\n\r\nbody\r\n")
	pa, err := real.Append(ctx, inbox, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pa.Wait()
	if err != nil {
		t.Fatal(err)
	}
	d := layer.DryRun(real)
	nf, err := d.CreateFolder(ctx, mail.Path{"New", "Folder"}, mail.RoleNone)
	if err != nil || nf.Name != "" {
		t.Fatalf("CreateFolder in a dry run: %+v %v; want a folder that exists only in the dry run", nf, err)
	}
	if lst, err := d.List(ctx, nf, connector.ListOptions{}, func([]connector.Message) error { t.Error("a dry-run folder listed messages"); return nil }); err != nil || lst.Cursor != "" {
		t.Errorf("List of a dry-run folder: %+v %v", lst, err)
	}
	pa, err = d.Append(ctx, inbox, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw), InternalDate: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pa.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := d.SetFlags(ctx, inbox, []connector.ID{res.ID}, []string{mail.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, inbox, []connector.ID{res.ID}); err != nil {
		t.Fatal(err)
	}
	var msgs []connector.Message
	if _, err := real.List(ctx, inbox, connector.ListOptions{}, func(ms []connector.Message) error { msgs = append(msgs, ms...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != res.ID || mail.HasFlag(msgs[0].Flags, mail.FlagFlagged) {
		t.Errorf("after a dry run the inbox holds %+v, want the one message, unflagged", msgs)
	}
	after, _ := real.Folders(ctx)
	if len(after) != len(fs) {
		t.Errorf("a dry run created folders: %d before, %d after", len(fs), len(after))
	}
}
