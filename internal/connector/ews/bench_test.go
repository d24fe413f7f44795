package ews

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv"
)

// BenchmarkAppend writes small (4 KB) messages the way the engine does (Append
// ahead, Wait behind, a window of 32) on a link with the given round
// trip, and reports messages per second.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		rtt      int
		batching bool
	}{{0, false}, {0, true}, {20, false}, {20, true}} {
		rtt := tc.rtt
		b.Run(fmt.Sprintf("rtt=%dms/batching=%v", rtt, tc.batching), func(b *testing.B) {
			s := server(b, nil)
			proxy := testenv.StartProxy(b, s.Host())
			if rtt > 0 {
				proxy.AddLatency(b, rtt)
			}
			e, err := Parse("ews://" + proxy.Addr)
			if err != nil {
				b.Fatal(err)
			}
			c, err := Open(context.Background(), e, options(s, alice, pw))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.batching = tc.batching
			in, err := c.CreateFolder(context.Background(), []string{"Bench"}, "")
			if err != nil {
				b.Fatal(err)
			}
			raw := msg(1, "X-Pad: "+string(bytes.Repeat([]byte("x"), 4000))+"\r\n")
			window := make(chan connector.PendingAppend, 32)
			done := make(chan error, 1)
			b.ResetTimer()
			go func() {
				for p := range window {
					if _, err := p.Wait(); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				p, err := c.Append(context.Background(), in, connector.AppendRequest{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
				if err != nil {
					b.Fatal(err)
				}
				window <- p
			}
			close(window)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
