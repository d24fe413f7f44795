package pop3

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv"
)

// BenchmarkDovecot lists (TOP n 0 per message) and fetches (RETR) a
// maildrop of 200 messages of about 4 KB from Dovecot's POP3, directly
// and through a proxy adding 10 ms of round trip, with and without
// PIPELINING. Run with:
//
//	go test -run '^$' -bench Dovecot ./internal/connector/pop3/
func BenchmarkDovecot(b *testing.B) {
	const n = 200
	d := startDovecot(b, false)
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = crlf(fmt.Sprintf("Received: from a by b; Tue, 2 Jul 2024 10:00:%02d +0200\nFrom: x@example.org\n"+
			"Message-ID: <bench-%d@example.org>\nSubject: message %d\n\n%s", i%60, i, i, strings.Repeat("some body text, line after line\n", 128)))
	}
	seed(b, d, msgs...)
	for _, rtt := range []int{0, 10} {
		addr := d.POP3Addr()
		if rtt > 0 {
			p := testenv.StartProxy(b, addr)
			p.AddLatency(b, rtt)
			addr = p.Addr
		}
		for _, pipelined := range []bool{true, false} {
			c := openPipelining(b, "pop3://"+addr, connector.OpenOptions{AllowPlaintext: true}, pipelined)
			listed, _ := listAll(b, c, connector.ListOptions{})
			name := fmt.Sprintf("rtt=%dms/pipelining=%v", rtt, pipelined)
			b.Run("List/"+name, func(b *testing.B) {
				for b.Loop() {
					if got, _ := listAll(b, c, connector.ListOptions{}); len(got) != n {
						b.Fatalf("listed %d", len(got))
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
			b.Run("Fetch/"+name, func(b *testing.B) {
				for b.Loop() {
					err := c.Fetch(context.Background(), inbox(), listed, func(body connector.Body, err error) error {
						if err != nil {
							return err
						}
						_, err = io.Copy(io.Discard, body.Reader)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
