package migrate_test

import (
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// TestConnectionCapPerSide checks that MaxConnections bounds everything a
// run opens to one server, listing sessions and append connections
// together: a provider's per-user limit counts both.
func TestConnectionCapPerSide(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "cap", pw)
	folders := []string{"A", "B", "C", "D", "E"}
	all := append([]string{"INBOX"}, folders...)
	msgs := realistic(1200, func(i int) string { return all[i%len(all)] })
	seed(t, src, "cap", folders, msgs)

	want := dump(t, src, "cap")
	for _, limit := range []int{1, 2, 3} {
		user := fmt.Sprintf("cap%d", limit) // a fresh destination each time
		dst.AddUser(t, user, pw)
		var sc, dc testenv.CommandCounter
		scfg, dcfg := plainConfig(src, "cap"), plainConfig(dst, user)
		scfg.MaxConnections, dcfg.MaxConnections = limit, limit
		scfg.Dial, dcfg.Dial = sc.Dial, dc.Dial
		res, err := run(t, scfg, dcfg, migrate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stats.Copied != 1200 || len(res.Failures) != 0 {
			t.Fatalf("limit %d: copied %d, failures %+v", limit, res.Stats.Copied, res.Failures)
		}
		sameContent(t, want, dump(t, dst, user), nil)
		if sp, dp := sc.PeakConnections(), dc.PeakConnections(); sp > int64(limit) || dp > int64(limit) {
			t.Errorf("limit %d: up to %d source and %d destination connections open at once (%d and %d opened)", limit, sp, dp, sc.Dials(), dc.Dials())
		} else {
			t.Logf("limit %d: at most %d source and %d destination connections", limit, sp, dp)
		}
	}
}
