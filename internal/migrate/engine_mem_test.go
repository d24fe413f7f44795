package migrate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
)

func memConfig(t *testing.T, addr, user string) imapconn.Config {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return imapconn.Config{Host: host, Port: p, Security: imapconn.SecurityNone, AllowPlaintext: true, Username: user, Password: "pw", MaxConnections: 3}
}

func msg(i int) []byte {
	return []byte(fmt.Sprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: m%d\r\nMessage-ID: <m%d@example.org>\r\nDate: Tue, 1 Nov 2016 10:00:%02d +0000\r\n\r\nbody %d\r\n", i, i, i%60, i))
}

func appendRaw(t *testing.T, c *imapclient.Client, mbox string, body []byte, flags []imap.Flag, date time.Time) {
	t.Helper()
	cmd := c.Append(mbox, int64(len(body)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestRunAgainstMemoryServer(t *testing.T) {
	srv := testenv.StartMemServer(t)
	srv.AddUser(t, "src", "pw")
	srv.AddUser(t, "dst", "pw")
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("src", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	want := map[[32]byte]bool{}
	for i := 0; i < 150; i++ {
		mb := "INBOX"
		if i%3 == 0 {
			mb = "Work"
		}
		b := msg(i)
		want[sha256.Sum256(b)] = true
		appendRaw(t, c, mb, b, []imap.Flag{imap.FlagSeen}, time.Date(2015, 1, 1, 0, 0, i, 0, time.UTC))
	}
	ctx := context.Background()
	src, err := imapconn.Open(ctx, memConfig(t, srv.Addr, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := imapconn.Open(ctx, memConfig(t, srv.Addr, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	res, err := migrate.Run(ctx, src, dst, migrate.Options{FetchBatch: 7})
	balanced(t, res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 150 || len(res.Failures) != 0 {
		t.Fatalf("copied %d, failures %v", res.Stats.Copied, res.Failures)
	}
	// A second run finds everything present and copies nothing.
	res, err = migrate.Run(ctx, src, dst, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 0 || res.Stats.Present != 150 {
		t.Fatalf("second run: copied %d present %d", res.Stats.Copied, res.Stats.Present)
	}
	// Check contents on the destination.
	d, _ := imapclient.DialInsecure(srv.Addr, nil)
	defer d.Close()
	if err := d.Login("dst", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, mb := range []string{"INBOX", "Work"} {
		if _, err := d.Select(mb, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := d.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			if !want[sha256.Sum256(body)] {
				t.Errorf("%s: unexpected message %q", mb, bytes.SplitN(body, []byte("\r\n"), 2)[0])
			}
			got++
		}
	}
	if got != 150 {
		t.Errorf("destination holds %d messages, want 150", got)
	}
}

// Without CONDSTORE nothing vouches for an unchanged folder, so each pass
// lists flags (a flags-only FETCH) and still carries changes over.
func TestFlagSyncWithoutCondstore(t *testing.T) {
	srv := testenv.StartMemServer(t)
	srv.AddUser(t, "src", "pw")
	srv.AddUser(t, "dst", "pw")
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("src", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		appendRaw(t, c, "INBOX", msg(i), []imap.Flag{imap.FlagSeen}, time.Date(2015, 1, 1, 0, 0, i, 0, time.UTC))
	}
	ctx := context.Background()
	src, err := imapconn.Open(ctx, memConfig(t, srv.Addr, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := imapconn.Open(ctx, memConfig(t, srv.Addr, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	st, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opts := migrate.Options{State: st, Pair: "mem"}
	if res, err := migrate.Run(ctx, src, dst, opts); err != nil || res.Stats.Copied != 5 {
		t.Fatalf("first pass: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{imap.FlagAnswered, "Later"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err := migrate.Run(ctx, src, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.FlagUpdates != 1 || res.Stats.Copied != 0 || res.Folders[0].Unchanged {
		t.Fatalf("second pass: %+v unchanged=%v", res.Stats, res.Folders[0].Unchanged)
	}
	d, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Login("dst", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Parallel appends may store messages in another order: find the
	// copy of source UID 3 (message m2) by its subject.
	msgs, err := d.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil || len(msgs) != 5 {
		t.Fatalf("fetch: %v (%d messages)", err, len(msgs))
	}
	got := ""
	for _, m := range msgs {
		if m.Envelope.Subject == "m2" {
			got = fmt.Sprint(m.Flags)
		} else if len(m.Flags) != 1 {
			t.Errorf("message %q flags changed to %v", m.Envelope.Subject, m.Flags)
		}
	}
	// go-imap's memory server lower-cases keywords; flags are
	// case-insensitive anyway.
	if got = strings.ToLower(got); !strings.Contains(got, `\answered`) || !strings.Contains(got, "later") || strings.Contains(got, `\seen`) {
		t.Errorf("destination flags %s, want \\Answered Later", got)
	}
}

// One connection per side must still make progress: listings may not
// hold the only session while waiting for the fetchers that need it.
func TestSingleConnectionPerSide(t *testing.T) {
	srv := testenv.StartMemServer(t)
	srv.AddUser(t, "src", "pw")
	srv.AddUser(t, "dst", "pw")
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("src", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"A", "B", "C"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ {
		appendRaw(t, c, []string{"INBOX", "A", "B", "C"}[i%4], msg(i), nil, time.Date(2015, 1, 1, 0, 0, i%60, 0, time.UTC))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scfg, dcfg := memConfig(t, srv.Addr, "src"), memConfig(t, srv.Addr, "dst")
	scfg.MaxConnections, dcfg.MaxConnections = 1, 1
	src, err := imapconn.Open(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := imapconn.Open(ctx, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	res, err := migrate.Run(ctx, src, dst, migrate.Options{FetchBatch: 5})
	if err != nil || res.Stats.Copied != 300 {
		t.Fatalf("one connection per side: %v, copied %d", err, res.Stats.Copied)
	}
}
