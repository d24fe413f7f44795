package mbox_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/eml"
	"github.com/mailferry/mailferry/internal/connector/localfile/filetest"
	"github.com/mailferry/mailferry/internal/connector/maildir"
	"github.com/mailferry/mailferry/internal/connector/mbox"
	"github.com/mailferry/mailferry/internal/mail"
)

func registry(t *testing.T) *connector.Registry {
	t.Helper()
	r, err := connector.NewRegistry(maildir.Backend(), mbox.Backend(), eml.Backend())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openBoth(t *testing.T, r *connector.Registry, raw string) (connector.Source, connector.Destination) {
	t.Helper()
	e, _, err := r.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.OpenDestination(filetest.Ctx(t), e, connector.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := r.OpenSource(filetest.Ctx(t), e, connector.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

// copyAll copies every folder of src to dst through the connector
// interfaces, as the engine would (flags filtered by the destination's
// FlagAcceptance).
func copyAll(t *testing.T, src connector.Source, dst connector.Destination) {
	t.Helper()
	fs, err := src.Folders(filetest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.NoSelect {
			continue
		}
		df, err := dst.CreateFolder(filetest.Ctx(t), f.Path, f.Role)
		if err != nil {
			t.Fatal(err)
		}
		_, dl := filetest.List(t, dst, df, connector.ListOptions{ForAppend: true})
		msgs, _ := filetest.List(t, src, f, connector.ListOptions{})
		err = src.Fetch(filetest.Ctx(t), f, msgs, func(b connector.Body, err error) error {
			if err != nil {
				return err
			}
			pa, err := dst.Append(filetest.Ctx(t), df, connector.AppendRequest{
				Flags: mail.CopyableFlags(b.Message.Flags, dl.Accept.AnyKeyword, dl.Accept.Flags), InternalDate: b.Message.InternalDate, Size: b.Size, Body: b.Reader})
			if err != nil {
				return err
			}
			_, err = pa.Wait()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

type snap struct {
	raw   string
	flags []string
	date  time.Time
}

// dump reads every message of every folder, keyed by folder and identity.
func dump(t *testing.T, src connector.Source) map[string]snap {
	t.Helper()
	out := map[string]snap{}
	fs, _ := src.Folders(filetest.Ctx(t))
	for _, f := range fs {
		msgs, _ := filetest.List(t, src, f, connector.ListOptions{})
		got, errs := filetest.Fetch(t, src, f, msgs)
		for _, m := range msgs {
			if errs[m.ID] != nil {
				t.Fatalf("%s %s: %v", f.Path, m.ID, errs[m.ID])
			}
			out[f.Path.String()+"|"+m.Identity.String()] = snap{string(got[m.ID]), m.Flags, m.InternalDate}
		}
	}
	return out
}

// TestMaildirToMboxToMaildir carries hostile folders and awkward
// messages maildir → mbox tree → maildir and compares the ends: same
// folders, bytes, flags (those both keep) and dates. It stands in for
// IMAP → mbox → IMAP, which the lead's suite runs against Dovecot.
func TestMaildirToMboxToMaildir(t *testing.T) {
	r := registry(t)
	base := t.TempDir()
	a, ad := openBoth(t, r, "maildir:"+filepath.Join(base, "a"))
	date := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	for i, p := range append(filetest.HostileNames(), mail.Path{"INBOX"}) {
		f, err := ad.CreateFolder(filetest.Ctx(t), p, mail.RoleNone)
		if err != nil {
			t.Fatal(err)
		}
		bodies := [][]byte{
			filetest.Message(i, "From here\r\n>From there\r\n"),
			[]byte(fmt.Sprintf("Message-ID: <lf-%d@x>\nSubject: lf\n\nFrom a@b Mon Jan  1 00:00:00 2001\n\nno final newline", i)),
		}
		for j, raw := range bodies {
			filetest.Append(t, ad, f, raw, [][]string{{mail.FlagSeen, "$Forwarded"}, {mail.FlagFlagged, mail.FlagAnswered, "Work"}}[j], date.Add(time.Duration(i)*time.Hour))
		}
	}
	b, bd := openBoth(t, r, "mbox:"+filepath.Join(base, "b"))
	copyAll(t, a, bd)
	if err := bd.Close(); err != nil {
		t.Fatal(err)
	}
	c, cd := openBoth(t, r, "maildir:"+filepath.Join(base, "c")+"?layout=fs")
	copyAll(t, b, cd)
	want, got := dump(t, a), dump(t, c)
	if len(want) != len(got) || len(want) != 2*(len(filetest.HostileNames())+1) {
		t.Fatalf("%d messages at the start, %d at the end", len(want), len(got))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.raw != w.raw || !filetest.SameFlags(g.flags, w.flags) || !g.date.Equal(w.date) {
			t.Errorf("%s: got %+v, want %+v", k, g, w)
		}
	}
}

// TestConcurrentAppends: appends from many goroutines to one folder
// each store one intact copy with its own ID (maildir and mbox).
func TestConcurrentAppends(t *testing.T) {
	r := registry(t)
	for _, raw := range []string{"maildir:" + filepath.Join(t.TempDir(), "m"), "mbox:" + filepath.Join(t.TempDir(), "x.mbox")} {
		src, dst := openBoth(t, r, raw)
		inbox := filetest.Folder(t, dst, mail.Path{"INBOX"})
		const n = 40
		ids := make([]connector.ID, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := filetest.Message(i, "From concurrent\r\n")
				pa, err := dst.Append(filetest.Ctx(t), inbox, connector.AppendRequest{Size: int64(len(m)), Body: bytes.NewReader(m), InternalDate: time.Now()})
				if err == nil {
					var res connector.AppendResult
					res, err = pa.Wait()
					ids[i] = res.ID
				}
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		msgs, _ := filetest.List(t, src, inbox, connector.ListOptions{})
		got, errs := filetest.Fetch(t, src, inbox, msgs)
		seen := map[connector.ID]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		if len(msgs) != n || len(seen) != n || len(errs) != 0 {
			t.Fatalf("%s: %d listed, %d distinct IDs, errors %v", raw, len(msgs), len(seen), errs)
		}
		for _, m := range msgs {
			if !seen[m.ID] || !bytes.Contains(got[m.ID], []byte("From concurrent\r\n")) {
				t.Errorf("%s: %s not intact", raw, m.ID)
			}
		}
	}
}
