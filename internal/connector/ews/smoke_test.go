package ews

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

func TestSmoke(t *testing.T) {
	s := server(t, nil)
	seed(t, s, inboxID(s), msg(1, ""), msg(2, ""))
	c := open(t, s, "")
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Logf("%q role=%s class=%q", f.Path, f.Role, f.Class)
	}
	in := folderByPath(t, c, "INBOX")
	ms, lst := listAll(t, c, in, connector.ListOptions{})
	t.Logf("listed %d, cursor %q", len(ms), lst.Cursor)
	err = c.Fetch(context.Background(), in, ms, func(b connector.Body, err error) error {
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(b.Reader)
		t.Logf("%s: %d bytes %v", b.Message.ID, b.Size, bytes.Equal(data, msg(1, "")) || bytes.Equal(data, msg(2, "")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.CreateFolder(context.Background(), mail.Path{"Archive", "2020"}, "")
	if err != nil {
		t.Fatal(err)
	}
	id := appendMsg(t, c, f, msg(3, ""), []string{mail.FlagSeen, mail.FlagFlagged}, time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Logf("appended %s", id)
	info, _ := s.Mailbox(alice).Item(string(id))
	t.Logf("%+v", info)
}
