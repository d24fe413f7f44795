package mbox

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/localfile/filetest"
	"github.com/mailferry/mailferry/internal/mail"
)

// FuzzSplit: any bytes split into contiguous messages that rescan alike
// from their own offsets (what Fetch does with an ID) and serve exactly
// their Size.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"From a@b Mon Jan  1 00:00:00 2001\nSubject: x\n\nbody\n\nFrom b@c Tue Jan  2 00:00:00 2001\n\n>From y\n",
		"junk first\n\nFrom - Mon Jan 01 10:00:00 2018\nX-Mozilla-Status: 0001\n\nx\n",
		"From bad line\nSubject: header next\n\nFrom not a separator\n\nFrom c Wed Jan  3 00:00:00 2001 +0100\r\n\r\ncut",
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2019\nX-Mailferry-Mbox: v=1 flag-lines=2 final-newline=0\nStatus: RO\nX-Status: A\nSubject: t\n\nno newline\n\n",
		"\n\n\r\n", "", "From ", ">>>From x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		limit := int64(len(data))
		var prev *msgInfo
		err := scan(r, 0, limit, false, func(m *msgInfo) error {
			if prev != nil && m.Offset != prev.End {
				t.Fatalf("message at %d does not start where the one before ended (%d)", m.Offset, prev.End)
			}
			if m.ContentStart < m.Offset || m.ContentStart > m.End || m.Served < 0 || m.Served > m.End-m.ContentStart {
				t.Fatalf("bad extents %+v", m)
			}
			one, err := scanOne(r, m.Offset, limit)
			if err != nil || one.ID() != m.ID() || one.End != m.End || one.Served != m.Served || one.Problem != m.Problem {
				t.Fatalf("rescan at %d: %+v %v, listed %+v", m.Offset, one, err, m)
			}
			got, err := io.ReadAll(newUnquoter(io.NewSectionReader(r, m.ContentStart, m.End-m.ContentStart), m.Served))
			if err != nil || int64(len(got)) != m.Served {
				t.Fatalf("served %d bytes (%v), Size %d", len(got), err, m.Served)
			}
			prev = m
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && prev.End != limit {
			t.Fatalf("the last message ends at %d of %d", prev.End, limit)
		}
	})
}

// FuzzAppendRoundTrip: any message bytes and flags written to an mbox
// read back the same, next to other messages.
func FuzzAppendRoundTrip(f *testing.F) {
	for i, b := range bodies() {
		f.Add(b, byte(i))
	}
	f.Fuzz(func(t *testing.T, body []byte, fl byte) {
		c, err := Open(context.Background(), connector.Endpoint{Path: filepath.Join(t.TempDir(), "f.mbox")}, connector.OpenOptions{Role: connector.RoleDestination})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var flags []string
		for i, f := range []string{mail.FlagSeen, mail.FlagAnswered, mail.FlagFlagged, mail.FlagDraft, mail.FlagDeleted, "$Forwarded", "Work"} {
			if fl&(1<<i) != 0 {
				flags = append(flags, f)
			}
		}
		inbox := c.inbox()
		raws := [][]byte{body, []byte("Subject: after\n\nafter\n"), body}
		for _, raw := range raws {
			filetest.Append(t, c, inbox, raw, flags, date)
		}
		msgs, _ := filetest.List(t, c, inbox, connector.ListOptions{})
		if len(msgs) != len(raws) {
			t.Fatalf("%d messages listed, want %d", len(msgs), len(raws))
		}
		got, errs := filetest.Fetch(t, c, inbox, msgs)
		for i, m := range msgs {
			if errs[m.ID] != nil || !bytes.Equal(got[m.ID], raws[i]) {
				t.Fatalf("message %d: %q (%v), want %q", i, got[m.ID], errs[m.ID], raws[i])
			}
			if i != 1 && !filetest.SameFlags(m.Flags, flags) {
				t.Fatalf("flags %v, want %v", m.Flags, flags)
			}
		}
	})
}
