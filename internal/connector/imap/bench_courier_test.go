package imap_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// BenchmarkCopyToCourier copies a mailbox from Dovecot into Courier-IMAP
// (no LITERAL+, no MULTIAPPEND) through the engine, with each way the
// connector can append to such a server, into one folder and into four,
// on loopback and with 20 ms of added round trip to the destination
// (docs/PERFORMANCE.md):
//
//   - before: pipelined APPENDs with Linux's delayed ACKs, spread over
//     the sessions (what the connector did);
//   - pipelined: the same with quick ACKs;
//   - pipelined+affinity: and a folder's appends on one session (what
//     the connector does now);
//   - sequential+affinity: each answer awaited before the next APPEND.
//
// Both servers run on /dev/shm where there is one, so that fsyncs do not
// dominate (MAILFERRY_BENCH_ON_DISK=1 puts them in the temp dir). The added latency comes from LatencyProxy, which ACKs like
// the client it stands for. Run with
//
//	go test -run '^$' -bench CopyToCourier -benchtime 2x ./internal/connector/imap/
func BenchmarkCopyToCourier(b *testing.B) {
	parent := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && os.Getenv("MAILFERRY_BENCH_ON_DISK") != "1" {
		parent = "/dev/shm"
	}
	src := testenv.StartDovecot(b, testenv.DovecotOptions{Layout: testenv.LayoutSlash, ParentDir: parent})
	dst := testenv.StartCourier(b, testenv.CourierOptions{ParentDir: parent})
	type strategy struct {
		name                 string
		delayedACKs          bool
		sequential, affinity bool
	}
	strategies := []strategy{
		{"before", true, false, false},
		{"pipelined", false, false, false},
		{"pipelined+affinity", false, false, true},
		{"sequential+affinity", false, true, true},
	}
	users := 0
	for _, rtt := range []int{0, 20} {
		n := 400
		if rtt > 0 {
			n = 120
		}
		for _, folders := range []int{1, 4} {
			users++
			srcUser := "src" + strconv.Itoa(users)
			src.AddUser(b, srcUser, "secret")
			var names []string
			for i := range folders {
				names = append(names, "F"+strconv.Itoa(i))
			}
			var msgs []e2eMsg
			for i := range n {
				msgs = append(msgs, e2eMsg{folder: names[i%folders], date: time.Unix(1e9+int64(i), 0),
					raw: fmt.Sprintf("Message-ID: <copy-%d@bench>\r\nSubject: %d\r\n\r\n%s\r\n", i, i, bytes.Repeat([]byte("x"), 2000))})
			}
			seedServer(b, src, srcUser, names, msgs)
			for _, st := range strategies {
				b.Run(fmt.Sprintf("rtt=%dms/folders=%d/%s", rtt, folders, st.name), func(b *testing.B) {
					var took time.Duration
					for range b.N {
						users++
						user := "dst" + strconv.Itoa(users)
						dst.AddUser(b, user, "secret")
						dcfg := plainConfig(dst.Host, dst.Port, user)
						dcfg.MaxConnections = 4
						if rtt > 0 {
							addr := imapconn.LatencyProxy(b, dst.Addr(), time.Duration(rtt)*time.Millisecond, !st.delayedACKs)
							dcfg.Dial = func(network, _ string) (net.Conn, error) { return net.Dial(network, addr) }
						}
						scfg := plainConfig(src.Host, src.Port, srcUser)
						scfg.MaxConnections = 4
						s, d, serr, derr := imapconn.OpenBoth(context.Background(), scfg, dcfg)
						if serr != nil || derr != nil {
							b.Fatal(serr, derr)
						}
						if st.delayedACKs {
							imapconn.DelayedACKs(d)
						}
						imapconn.AppendStrategy(d, st.sequential, st.affinity)
						start := time.Now()
						res, err := migrate.Run(context.Background(), s, d, migrate.Options{})
						took += time.Since(start)
						s.Close()
						d.Close()
						if err != nil || res.Stats.Copied != int64(n) {
							b.Fatalf("copied %d of %d: %v %+v", res.Stats.Copied, n, err, res.Failures)
						}
					}
					b.ReportMetric(float64(b.N*n)/took.Seconds(), "msgs/s")
				})
			}
		}
	}
}
