package migrate_test

import (
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// BenchmarkCopyDovecot copies a 2,000-message mailbox (8 folders, mixed
// sizes) between two Dovecot instances, into a fresh account each
// iteration, directly and through a proxy adding round-trip latency.
// It reports msgs/s and MB/s:
//
//	go test -run '^$' -bench CopyDovecot -benchtime 3x ./internal/migrate/
func BenchmarkCopyDovecot(b *testing.B) {
	src := testenv.StartDovecot(b, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(b, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(b, "bench", pw)
	folders := []string{"Archive", "Archive/2019", "Clients", "Clients/Acme", "Lists", "Sent", "Trash"}
	all := append([]string{"INBOX"}, folders...)
	const n = 2000
	seed(b, src, "bench", folders, realistic(n, func(i int) string { return all[i%len(all)] }))

	accounts := 0
	for _, rtt := range []int{0, 20, 50} {
		b.Run(fmt.Sprintf("rtt=%dms", rtt), func(b *testing.B) {
			scfg, dcfg := plainConfig(src, "bench"), plainConfig(dst, "")
			if rtt > 0 {
				ps, pd := testenv.StartProxy(b, src.Addr()), testenv.StartProxy(b, dst.Addr())
				ps.AddLatency(b, rtt)
				pd.AddLatency(b, rtt)
				scfg.Host, scfg.Port = splitAddr(b, ps.Addr)
				dcfg.Host, dcfg.Port = splitAddr(b, pd.Addr)
			}
			var msgs, bytes int64
			var secs float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				accounts++
				user := fmt.Sprintf("dst-%d", accounts)
				dst.AddUser(b, user, pw)
				dcfg.Username = user
				b.StartTimer()
				res, err := run(b, scfg, dcfg, migrate.Options{})
				if err != nil || res.Stats.Copied != n {
					b.Fatalf("copy: %v (copied %d)", err, res.Stats.Copied)
				}
				msgs += res.Stats.Copied
				bytes += res.Stats.CopiedBytes
				secs += res.Stats.Elapsed.Seconds()
			}
			b.ReportMetric(float64(msgs)/secs, "msgs/s")
			b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
		})
	}
}
