package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
)

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Delta passes: an unchanged folder costs one STATUS, new messages (and
// messages moved to another folder) are copied, nothing is duplicated,
// and a changed UIDVALIDITY leads to a rescan by identity, not a recopy.
func TestDeltaPasses(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "lea", pw)
	dst.AddUser(t, "lea", pw)
	folders := []string{"A", "B", "C", "D"}
	all := append([]string{"INBOX"}, folders...)
	seed(t, src, "lea", folders, realistic(200, func(i int) string { return all[i%len(all)] }))
	st := openStore(t, t.TempDir())
	opts := migrate.Options{State: st, Pair: "lea"}

	res, err := run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), opts)
	if err != nil || res.Stats.Copied != 200 {
		t.Fatalf("first pass: %v, copied %d", err, res.Stats.Copied)
	}

	// Nothing changed: every folder is skipped after its STATUS.
	var counter testenv.CommandCounter
	scfg := plainConfig(src, "lea")
	scfg.Dial = counter.Dial
	res, err = run(t, scfg, plainConfig(dst, "lea"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Folders {
		if !f.Unchanged {
			t.Errorf("folder %s not skipped on an unchanged pass", f.Source)
		}
	}
	if res.Stats.Copied != 0 {
		t.Errorf("unchanged pass copied %d", res.Stats.Copied)
	}
	// Login, namespace, capability, LIST, one STATUS per folder, logout.
	if n := counter.Commands(); n > int64(len(all))+8 {
		t.Errorf("unchanged pass sent %d commands to the source for %d folders", n, len(all))
	}
	t.Logf("unchanged pass: %d source commands for %d folders", counter.Commands(), len(all))

	// --full-rescan ignores the state and checks every message.
	rescan := opts
	rescan.FullRescan = true
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), rescan)
	if err != nil || res.Stats.Copied != 0 || res.Stats.Present != 200 {
		t.Fatalf("full rescan: %v, copied %d, present %d", err, res.Stats.Copied, res.Stats.Present)
	}
	for _, f := range res.Folders {
		if f.Unchanged {
			t.Errorf("folder %s skipped during a full rescan", f.Source)
		}
	}

	// New mail in B, a message moved from C to D, a flag change in A
	// (flags of copied messages are synced by a later change).
	c := src.Dial(t, "lea", pw)
	seed(t, src, "lea", nil, []seedMsg{
		{folder: "B", raw: []byte("Message-ID: <new1@x>\r\n\r\nnew one\r\n"), date: time.Now()},
		{folder: "B", raw: []byte("Message-ID: <new2@x>\r\n\r\nnew two\r\n"), date: time.Now()},
	})
	if _, err := c.Select("C", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(1), "D").Wait(); err != nil {
		t.Fatal(err)
	}
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 3 {
		t.Errorf("delta pass copied %d, want 3 (two new, one moved)", res.Stats.Copied)
	}
	unchanged := map[string]bool{}
	for _, f := range res.Folders {
		unchanged[f.Source] = f.Unchanged
	}
	if !unchanged["INBOX"] || !unchanged["A"] || unchanged["B"] || unchanged["D"] {
		t.Errorf("unchanged folders: %v", unchanged)
	}
	want, got := dump(t, src, "lea"), dump(t, dst, "lea")
	// The delta pass never deletes: C keeps the moved message on the
	// destination, D has it too.
	for _, f := range []string{"INBOX", "A", "B", "D"} {
		if len(got[f]) != len(want[f]) {
			t.Errorf("folder %s: %d messages, want %d", f, len(got[f]), len(want[f]))
		}
	}
	if len(got["C"]) != len(want["C"])+1 {
		t.Errorf("folder C: %d messages; a delta pass must not delete (want %d)", len(got["C"]), len(want["C"])+1)
	}

	// Flag changes on messages copied earlier are carried over (with
	// CONDSTORE: only the changed ones are even looked at).
	if _, err := c.Select("A", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "Project"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.FlagUpdates != 2 || res.Stats.Copied != 0 {
		t.Errorf("flag pass: %d flag updates, %d copied; want 2 and 0", res.Stats.FlagUpdates, res.Stats.Copied)
	}
	want, got = dump(t, src, "lea"), dump(t, dst, "lea")
	sameContent(t, map[string][]served{"A": want["A"]}, got, nil)

	// --delete-missing removes the copies of messages expunged on the
	// source, and nothing else: a message that was only ever on the
	// destination stays.
	seed(t, dst, "lea", nil, []seedMsg{{folder: "B", raw: []byte("Message-ID: <dest-only@x>\r\n\r\nmine\r\n"), date: time.Now()}})
	if _, err := c.Select("B", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	delOpts := opts
	delOpts.DeleteMissing = true
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), delOpts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Deleted != 2 {
		t.Errorf("--delete-missing deleted %d, want 2", res.Stats.Deleted)
	}
	want, got = dump(t, src, "lea"), dump(t, dst, "lea")
	if len(got["B"]) != len(want["B"])+1 {
		t.Errorf("folder B: %d on the destination, %d on the source; want the source's plus the destination-only one", len(got["B"]), len(want["B"]))
	}

	// UIDVALIDITY change: recreate folder A on the source with the same
	// messages. The pass must rescan by identity and copy nothing.
	var raws []seedMsg
	for i, m := range realistic(200, func(i int) string { return all[i%len(all)] }) {
		if i%len(all) == 1 {
			raws = append(raws, m)
		}
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("A").Wait(); err != nil {
		t.Fatal(err)
	}
	seed(t, src, "lea", []string{"A"}, raws)
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 0 || res.Stats.Present != int64(len(raws)) {
		t.Errorf("after UIDVALIDITY change: copied %d, present %d; want 0 and %d", res.Stats.Copied, res.Stats.Present, len(raws))
	}

	// Lost state: a new state file against the filled destination
	// copies nothing either.
	res, err = run(t, plainConfig(src, "lea"), plainConfig(dst, "lea"), migrate.Options{State: openStore(t, t.TempDir()), Pair: "lea"})
	if err != nil || res.Stats.Copied != 0 {
		t.Errorf("with lost state: %v, copied %d", err, res.Stats.Copied)
	}

}

// Mail copied earlier by another tool (same messages, other UIDs, no
// state of ours) is recognised: the first pass copies only the rest.
func TestDestinationAlreadyHoldsSomeMail(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutCourier})
	src.AddUser(t, "max", pw)
	dst.AddUser(t, "max", pw)
	msgs := realistic(120, func(i int) string { return []string{"INBOX", "Work"}[i%2] })
	seed(t, src, "max", []string{"Work"}, msgs)
	// The other tool copied every third message, in another order.
	var earlier []seedMsg
	for i := len(msgs) - 1; i >= 0; i-- {
		if i%3 == 0 {
			m := msgs[i]
			if m.folder == "Work" {
				m.folder = "INBOX.Work"
			}
			earlier = append(earlier, m)
		}
	}
	seed(t, dst, "max", []string{"INBOX.Work"}, earlier)
	res, err := run(t, plainConfig(src, "max"), plainConfig(dst, "max"), migrate.Options{State: openStore(t, t.TempDir()), Pair: "max"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 80 || res.Stats.Present != 40 {
		t.Errorf("copied %d, present %d; want 80 and 40", res.Stats.Copied, res.Stats.Present)
	}
	sameContent(t, dump(t, src, "max"), dump(t, dst, "max"), nil)
}
