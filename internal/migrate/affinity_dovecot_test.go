package migrate_test

import (
	"testing"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// TestSourceFolderStaysSelected checks folder affinity on the source: a
// fetch session keeps the folder it reads selected until that folder is
// done, instead of moving between folders and opening one again before
// most batches. On Dovecot's Maildir every EXAMINE of a large folder
// costs the server far more than the FETCH after it (issue 14: 1,268
// EXAMINEs for 1,583 batches at 100k messages).
//
// Small batches make many fetches per folder. With affinity a folder is
// opened once to list it and at most once per fetch stream that reads
// it; without, nearly once per batch.
func TestSourceFolderStaysSelected(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "aff", pw)
	dst.AddUser(t, "aff", pw)
	folders := []string{"A", "B", "C", "D", "E", "F", "G"}
	all := append([]string{"INBOX"}, folders...)
	const n = 2400
	// In runs of 50 per folder, as mail arrives: the engine lists the
	// folders at once and their batches interleave.
	msgs := realistic(n, func(i int) string { return all[(i/50)%len(all)] })
	seed(t, src, "aff", folders, msgs)
	want := dump(t, src, "aff")

	var sc testenv.CommandCounter
	scfg, dcfg := plainConfig(src, "aff"), plainConfig(dst, "aff")
	scfg.MaxConnections, dcfg.MaxConnections = 6, 6
	scfg.Dial = sc.Dial
	const batch = 8
	res, err := run(t, scfg, dcfg, migrate.Options{FetchBatch: batch})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != n || len(res.Failures) != 0 {
		t.Fatalf("copied %d of %d, failures %+v", res.Stats.Copied, n, res.Failures)
	}
	sameContent(t, want, dump(t, dst, "aff"), nil)

	opens := sc.Sent("EXAMINE") + sc.Sent("SELECT")
	fetches := sc.Sent("UID FETCH")
	batches := int64(n / batch)
	// One open per folder for its listing, and one per fetch session
	// and folder it reads: at most 6 sessions.
	limit := int64(len(all) * (1 + 6))
	t.Logf("source: %d EXAMINE, %d SELECT, %d UID FETCH for %d batches in %d folders (limit %d opens)",
		sc.Sent("EXAMINE"), sc.Sent("SELECT"), fetches, batches, len(all), limit)
	if fetches < batches {
		t.Fatalf("only %d UID FETCH counted for %d batches: the counter is not reading the commands", fetches, batches)
	}
	if opens > limit {
		t.Errorf("the source folders were opened %d times for %d fetch batches in %d folders; "+
			"with fetch sessions keeping their folder selected at most %d", opens, batches, len(all), limit)
	}
	if sc.Sent("SELECT") != 0 {
		t.Errorf("%d SELECTs on the source: reading must use EXAMINE, which cannot change it", sc.Sent("SELECT"))
	}
}
