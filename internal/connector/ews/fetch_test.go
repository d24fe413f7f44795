package ews

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// fetchAll fetches msgs and returns bodies and errors by ID.
func fetchAll(t testing.TB, c *Conn, f connector.Folder, msgs []connector.Message) (map[connector.ID][]byte, map[connector.ID]error, error) {
	t.Helper()
	bodies := map[connector.ID][]byte{}
	errs := map[connector.ID]error{}
	err := c.Fetch(context.Background(), f, msgs, func(b connector.Body, err error) error {
		if err != nil {
			if b.Reader != nil {
				t.Errorf("%s: a failed message came with a reader", b.Message.ID)
			}
			errs[b.Message.ID] = err
			return nil
		}
		data, rerr := io.ReadAll(b.Reader)
		if rerr != nil {
			return rerr
		}
		if int64(len(data)) != b.Size {
			t.Errorf("%s: Size %d but %d bytes", b.Message.ID, b.Size, len(data))
		}
		bodies[b.Message.ID] = data
		return nil
	})
	return bodies, errs, err
}

// Bodies come back byte for byte, several per GetItem; one that vanished
// since the listing is a KindItem failure for that message alone.
func TestFetch(t *testing.T) {
	s := server(t, nil)
	var raws [][]byte
	for i := range 23 {
		raws = append(raws, msg(i, fmt.Sprintf("X-Pad: %s\r\n", bytes.Repeat([]byte("p"), i*997))))
	}
	raws = append(raws, []byte{}) // an empty message
	ids := seed(t, s, inboxID(s), raws...)
	c := open(t, s, "", func(o *connector.OpenOptions) { o.SpoolDir = t.TempDir() })
	in := folderByPath(t, c, "INBOX")
	ms, _ := listAll(t, c, in, connector.ListOptions{})
	if err := s.Mailbox(alice).DeleteItem(ids[5]); err != nil {
		t.Fatal(err)
	}
	before := s.Count("GetItem")
	bodies, errs, err := fetchAll(t, c, in, ms)
	if err != nil {
		t.Fatal(err)
	}
	if calls := s.Count("GetItem") - before; calls > 3 {
		t.Errorf("24 messages fetched in %d GetItem calls", calls)
	}
	for i, id := range ids {
		if i == 5 {
			if connector.KindOf(errs[connector.ID(id)]) != connector.KindItem {
				t.Errorf("vanished message: %v", errs[connector.ID(id)])
			}
			continue
		}
		if !bytes.Equal(bodies[connector.ID(id)], raws[i]) {
			t.Errorf("message %d: %d bytes, want %d", i, len(bodies[connector.ID(id)]), len(raws[i]))
		}
	}
}

// A transient per-message error (ErrorTooManyObjectsOpened) is not a
// failed message: the others of the call are delivered and Fetch ends
// with a transient error to be retried.
func TestFetchTransientItem(t *testing.T) {
	s := server(t, nil)
	seed(t, s, inboxID(s), msg(1, ""), msg(2, ""), msg(3, ""))
	c := open(t, s, "")
	in := folderByPath(t, c, "INBOX")
	ms, _ := listAll(t, c, in, connector.ListOptions{})
	s.Inject(ewsserver.Fault{Op: "GetItem", Scope: ewsserver.FaultItems, Code: "ErrorTooManyObjectsOpened", Count: 1})
	bodies, errs, err := fetchAll(t, c, in, ms)
	if connector.KindOf(err) != connector.KindTransient {
		t.Fatalf("Fetch: %v (kind %v), want transient", err, connector.KindOf(err))
	}
	if len(errs) != 0 || len(bodies) != 2 {
		t.Errorf("%d delivered, %d failed; want 2 delivered and none failed", len(bodies), len(errs))
	}
}

// Spool files are gone once Fetch returns.
func TestFetchLeavesNoSpool(t *testing.T) {
	s := server(t, nil)
	big := append(msg(1, ""), bytes.Repeat([]byte("0123456789abcdef\r\n"), 200000)...)
	seed(t, s, inboxID(s), big, msg(2, ""))
	dir := t.TempDir()
	c := open(t, s, "", func(o *connector.OpenOptions) { o.SpoolDir = dir })
	in := folderByPath(t, c, "INBOX")
	ms, _ := listAll(t, c, in, connector.ListOptions{})
	var during int
	err := c.Fetch(context.Background(), in, ms, func(b connector.Body, err error) error {
		if err != nil {
			return err
		}
		if b.Size == int64(len(big)) {
			left, _ := os.ReadDir(dir)
			during = len(left)
		}
		_, err = io.Copy(io.Discard, b.Reader)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if during != 1 {
		t.Errorf("%d spool files while the 3.6 MB message was handed on, want 1", during)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}
