package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// BenchmarkDeltaUnchanged measures a delta pass over an unchanged
// mailbox: its wall time and the IMAP commands it sends must grow with
// the number of folders, not of messages. Sizes: 10 folders x 1,000
// messages and 50 x 1,000 (50,000 messages).
//
//	go test -run '^$' -bench DeltaUnchanged -benchtime 5x ./internal/migrate/
func BenchmarkDeltaUnchanged(b *testing.B) {
	for _, size := range []struct{ folders, perFolder int }{{10, 1000}, {50, 1000}} {
		b.Run(fmt.Sprintf("folders=%d/messages=%d", size.folders, size.folders*size.perFolder), func(b *testing.B) {
			src := testenv.StartDovecot(b, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
			dst := testenv.StartDovecot(b, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
			src.AddUser(b, "big", pw)
			dst.AddUser(b, "big", pw)
			fillFast(b, src, "big", size.folders, size.perFolder)
			st := openStore(b, b.TempDir())
			opts := migrate.Options{State: st, Pair: "big"}
			start := time.Now()
			res, err := run(b, plainConfig(src, "big"), plainConfig(dst, "big"), opts)
			if err != nil || res.Stats.Copied != int64(size.folders*size.perFolder) {
				b.Fatalf("first pass: %v, copied %d", err, res.Stats.Copied)
			}
			b.Logf("first pass: %d messages in %v (%.0f msgs/s)", res.Stats.Copied, time.Since(start), float64(res.Stats.Copied)/time.Since(start).Seconds())
			var commands int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var counter testenv.CommandCounter
				scfg, dcfg := plainConfig(src, "big"), plainConfig(dst, "big")
				scfg.Dial, dcfg.Dial = counter.Dial, counter.Dial
				res, err := run(b, scfg, dcfg, opts)
				if err != nil || res.Stats.Copied != 0 {
					b.Fatalf("delta pass: %v, copied %d", err, res.Stats.Copied)
				}
				commands += counter.Commands()
			}
			b.ReportMetric(float64(commands)/float64(b.N), "imap-commands/op")
		})
	}
}

// fillFast seeds folders with MULTIAPPEND through the connector; go-imap's
// own Append would take a round trip per message.
func fillFast(b *testing.B, d *testenv.Dovecot, user string, folders, perFolder int) {
	b.Helper()
	ctx := context.Background()
	c, err := imapconn.Open(ctx, plainConfig(d, user))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for f := 0; f < folders; f++ {
		p := mail.Path{fmt.Sprintf("Folder%02d", f)}
		if f == 0 {
			p = mail.Path{"INBOX"}
		}
		fo, err := c.CreateFolder(ctx, p, mail.RoleNone)
		if err != nil {
			b.Fatal(err)
		}
		var pending []connector.PendingAppend
		for i := 0; i < perFolder; i++ {
			raw := []byte(fmt.Sprintf("Message-ID: <%d.%d@bench>\r\nFrom: x@bench\r\nSubject: %d\r\n\r\nbody %d %d\r\n", f, i, i, f, i))
			pa, err := c.Append(ctx, fo, connector.AppendRequest{Flags: []string{mail.FlagSeen}, InternalDate: time.Unix(int64(1e9+i), 0),
				Size: int64(len(raw)), Body: bytes.NewReader(raw)})
			if err != nil {
				b.Fatal(err)
			}
			pending = append(pending, pa)
		}
		for _, pa := range pending {
			if _, err := pa.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
