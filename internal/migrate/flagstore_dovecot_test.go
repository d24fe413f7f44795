package migrate_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// TestFlagChangesReuseSelectedFolder checks that a delta pass carries
// flag changes over with one UID STORE per destination folder and flag
// set, on the session that opened the folder for the pass: no second
// SELECT of a folder before its STOREs (issue 14: 1,000 flag changes cost
// 324 UID STORE and 208 SELECT).
func TestFlagChangesReuseSelectedFolder(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "fl", pw)
	dst.AddUser(t, "fl", pw)
	folders := []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K"}
	all := append([]string{"INBOX"}, folders...)
	const n = 600
	seed(t, src, "fl", folders, realistic(n, func(i int) string { return all[i%len(all)] }))
	st := openStore(t, t.TempDir())
	opts := migrate.Options{State: st, Pair: "fl"}
	scfg, dcfg := plainConfig(src, "fl"), plainConfig(dst, "fl")
	scfg.MaxConnections, dcfg.MaxConnections = 6, 6
	if res, err := run(t, scfg, dcfg, opts); err != nil || res.Stats.Copied != n {
		t.Fatalf("first pass: %v", err)
	}

	// Every folder: some messages read, some flagged.
	c := src.Dial(t, "fl", pw)
	for _, f := range all {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		for _, op := range []struct {
			lo, hi uint32
			flag   imap.Flag
		}{{1, 10, imap.FlagSeen}, {11, 15, imap.FlagFlagged}} {
			var set imap.SeqSet
			set.AddRange(op.lo, op.hi)
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{op.flag}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	want := dump(t, src, "fl")

	var dc testenv.CommandCounter
	dcfg.Dial = dc.Dial
	res, err := run(t, scfg, dcfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 0 || res.Stats.FlagUpdates == 0 {
		t.Fatalf("delta pass: copied %d, %d flag updates", res.Stats.Copied, res.Stats.FlagUpdates)
	}
	sameContent(t, want, dump(t, dst, "fl"), nil)
	selects, stores := dc.Sent("SELECT"), dc.Sent("UID STORE")
	t.Logf("destination: %d SELECT, %d UID STORE for %d flag updates in %d folders", selects, stores, res.Stats.FlagUpdates, len(all))
	// One per folder, plus a few where another planner took the session
	// that had a folder open before its STOREs came (51 for 12 folders
	// when STOREs took any session).
	if limit := int64(len(all)) * 3 / 2; selects > limit {
		t.Errorf("%d SELECTs on the destination for %d folders (limit %d): the STOREs did not use the session that had the folder open", selects, len(all), limit)
	}
}
