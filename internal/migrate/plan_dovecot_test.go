package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// runOn is run with a context of the caller's and the destination
// wrapped by wrap (nil: as is), for tests that inject faults around the
// real connector.
func runOn(ctx context.Context, t testing.TB, src, dst imapconn.Config, opts migrate.Options,
	wrap func(connector.Destination) connector.Destination) (*migrate.Result, error) {
	t.Helper()
	s, err := imapconn.Open(context.Background(), src)
	if err != nil {
		t.Fatalf("open source: %v", err)
	}
	defer s.Close()
	d, err := imapconn.Open(context.Background(), dst)
	if err != nil {
		t.Fatalf("open destination: %v", err)
	}
	defer d.Close()
	var dest connector.Destination = d
	if wrap != nil {
		dest = wrap(d)
	}
	res, err := migrate.Run(ctx, s, dest, opts)
	balanced(t, res)
	return res, err
}

// cancelOnAppend cancels a run when the nth message is appended to one
// folder: a crash in the middle of that folder, as far as the state can
// tell (intents recorded, some answers never seen).
type cancelOnAppend struct {
	connector.Destination
	folder string
	nth    int32
	cancel context.CancelFunc
	seen   atomic.Int32
}

func (c *cancelOnAppend) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	if f.Path.String() == c.folder && c.seen.Add(1) == c.nth {
		c.cancel()
	}
	return c.Destination.Append(ctx, f, req)
}

func sentMsgs(folder, tag string, n int, day int) []seedMsg {
	var out []seedMsg
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("From: me@old.example\r\nTo: you%d@x.example\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@old.example>\r\nDate: Mon, 3 Feb 2020 10:%02d:00 +0000\r\n\r\n%s body %d\r\n",
			i, tag, i, tag, i, i%60, tag, i)
		out = append(out, seedMsg{folder: folder, raw: []byte(raw), flags: []imap.Flag{imap.FlagSeen},
			date: time.Date(2020, 2, day, 10, i%60, 0, 0, time.UTC)})
	}
	return out
}

// A source with both "Sent" (SPECIAL-USE \Sent) and "Sent Items" (no
// attribute) copied into an empty destination without SPECIAL-USE: the
// first pass creates both. Every later pass (delta with new mail, a full
// rescan, the resumption of a pass killed in the middle of Sent Items)
// must keep Sent Items -> Sent Items: before the plan was recorded, they
// planned Sent Items -> Sent from the destination's folder names, which
// put new mail in the wrong folder and copied Sent Items a second time
// into Sent.
func TestFolderKeepsItsDestinationEveryPass(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "olga", pw)
	dst.AddUser(t, "olga", pw)
	dst.AddUser(t, "olga2", pw)
	msgs := append(sentMsgs("Sent", "sent", 10, 3), sentMsgs("Sent Items", "items", 6, 4)...)
	msgs = append(msgs, sentMsgs("INBOX", "inbox", 3, 5)...)
	seed(t, src, "olga", []string{"Sent Items"}, msgs)
	opts := migrate.Options{State: openStore(t, t.TempDir()), Pair: "olga"}

	check := func(when, user string) {
		t.Helper()
		want, got := dump(t, src, "olga"), dump(t, dst, user)
		for _, f := range []string{"INBOX", "Sent", "Sent Items"} {
			if len(got[f]) != len(want[f]) {
				t.Errorf("%s: destination %s has %d messages, the source's %s %d", when, f, len(got[f]), f, len(want[f]))
			}
		}
		sameContent(t, want, got, nil)
	}
	res, err := run(t, plainConfig(src, "olga"), plainConfig(dst, "olga"), opts)
	if err != nil || res.Stats.Copied != 19 || len(res.Failures) != 0 {
		t.Fatalf("first pass: %v, copied %d, failures %+v", err, res.Stats.Copied, res.Failures)
	}
	check("first pass", "olga")
	for _, f := range res.Folders {
		if f.Plan != migrate.PlanNew {
			t.Errorf("first pass: folder %s plan %q, want %q", f.Source, f.Plan, migrate.PlanNew)
		}
	}

	// New mail in Sent Items: a delta pass copies it into Sent Items.
	seed(t, src, "olga", nil, sentMsgs("Sent Items", "later", 2, 6))
	res, err = run(t, plainConfig(src, "olga"), plainConfig(dst, "olga"), opts)
	if err != nil || res.Stats.Copied != 2 {
		t.Fatalf("delta pass: %v, copied %d", err, res.Stats.Copied)
	}
	check("delta pass", "olga")
	for _, f := range res.Folders {
		if f.Plan != migrate.PlanRecorded || (f.Source == "Sent Items" && f.Dest != "Sent Items") {
			t.Errorf("delta pass: folder %s -> %s (%s, plan %q); want the recorded destination", f.Source, f.Dest, f.Why, f.Plan)
		}
	}

	// A full rescan checks every message and copies none.
	rescan := opts
	rescan.FullRescan = true
	res, err = run(t, plainConfig(src, "olga"), plainConfig(dst, "olga"), rescan)
	if err != nil || res.Stats.Copied != 0 || res.Stats.Present != 21 {
		t.Fatalf("full rescan: %v, copied %d, present %d; want 0 and 21", err, res.Stats.Copied, res.Stats.Present)
	}
	check("full rescan", "olga")

	// Killed in the middle of Sent Items, then resumed.
	opts2 := migrate.Options{State: openStore(t, t.TempDir()), Pair: "olga2", Streams: 1, PinStreams: true, FetchBatch: 2, PipelineDepth: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = runOn(ctx, t, plainConfig(src, "olga"), plainConfig(dst, "olga2"), opts2, func(d connector.Destination) connector.Destination {
		return &cancelOnAppend{Destination: d, folder: "Sent Items", nth: 4, cancel: cancel}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pass: %v, want it cancelled", err)
	}
	res, err = run(t, plainConfig(src, "olga"), plainConfig(dst, "olga2"), opts2)
	if err != nil {
		t.Fatalf("resumed pass: %v", err)
	}
	check("resumed pass", "olga2")
}

// mox creates a \Sent folder in every account. A source whose \Sent is
// "Sent" and that also has an ordinary "Sent Items" must keep them apart:
// the name guess applies only when the server does not say which folder
// is \Sent.
func TestSentItemsStaysOrdinaryBesideServerSent(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, SpecialUse: true})
	src.AddUser(t, "pia", pw)
	dst.AddUser(t, "pia", pw)
	seed(t, src, "pia", []string{"Sent Items"}, append(sentMsgs("Sent", "sent", 5, 3), sentMsgs("Sent Items", "items", 4, 4)...))
	res, err := run(t, plainConfig(src, "pia"), plainConfig(dst, "pia"), migrate.Options{})
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("%v, failures %+v", err, res.Failures)
	}
	for _, f := range res.Folders {
		if f.Source == "Sent Items" && (f.Dest != "Sent Items" || f.Why != "same path") {
			t.Errorf("Sent Items -> %s (%s); want Sent Items, an ordinary folder", f.Dest, f.Why)
		}
	}
	want, got := dump(t, src, "pia"), dump(t, dst, "pia")
	if len(got["Sent"]) != 5 || len(got["Sent Items"]) != 4 {
		t.Errorf("destination Sent has %d, Sent Items %d; want 5 and 4", len(got["Sent"]), len(got["Sent Items"]))
		for _, f := range res.Folders {
			t.Logf("engine: %+v", *f)
		}
	}
	sameContent(t, want, got, nil)
}
