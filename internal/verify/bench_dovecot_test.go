package verify_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
	"github.com/mailferry/mailferry/internal/verify"
)

const pw = "bench-secret"

// BenchmarkVerifyVsCopy copies a 6,000-message mailbox (8 folders, text
// and attachments, 4 KB on average) between two Dovecot instances into a
// fresh account, then verifies that copy, alternately, and reports the
// medians of both and their ratio:
//
//	go test -run '^$' -bench VerifyVsCopy -benchtime 5x ./internal/verify/
//
// The mail is on tmpfs (/dev/shm) when there is one, as in bench/ (see
// docs/BENCHMARKS.md, "Why the mail is on tmpfs").
func BenchmarkVerifyVsCopy(b *testing.B) {
	opts := testenv.DovecotOptions{Layout: testenv.LayoutSlash}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		opts.ParentDir = "/dev/shm"
	}
	src, dst := testenv.StartDovecot(b, opts), testenv.StartDovecot(b, opts)
	src.AddUser(b, "bench", pw)
	const n = 6000
	folders := []string{"INBOX", "Archive", "Archive/2019", "Clients", "Clients/Acme", "Lists", "Sent", "Trash"}
	seedBench(b, src.Dial(b, "bench", pw), folders, n)
	ctx := context.Background()
	open := func(d *testenv.Dovecot, user string) *imapconn.Conn {
		c, err := imapconn.Open(ctx, imapconn.Config{Host: d.Host, Port: d.Port, Security: imapconn.SecurityNone,
			AllowPlaintext: true, Username: user, Password: pw, MaxConnections: 6})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	var copies, verifies []time.Duration
	for i := 0; i < b.N; i++ {
		user := fmt.Sprintf("dst-%d", i)
		dst.AddUser(b, user, pw)
		s, d := open(src, "bench"), open(dst, user)
		start := time.Now()
		res, err := migrate.Run(ctx, s, d, migrate.Options{})
		copies = append(copies, time.Since(start))
		if err != nil || res.Stats.Copied != n {
			b.Fatalf("copy: %v (copied %d)", err, res.Stats.Copied)
		}
		s.Close()
		d.Close()
		s, d = open(src, "bench"), open(dst, user)
		start = time.Now()
		rep, err := verify.Run(ctx, s, d, verify.Options{})
		verifies = append(verifies, time.Since(start))
		if err != nil || !rep.Exact || rep.Totals.Exact != n {
			b.Fatalf("verify: %v, %+v", err, rep)
		}
		s.Close()
		d.Close()
	}
	mc, mv := median(copies), median(verifies)
	b.ReportMetric(mc.Seconds(), "copy-s")
	b.ReportMetric(mv.Seconds(), "verify-s")
	b.ReportMetric(mv.Seconds()/mc.Seconds(), "verify/copy")
	b.ReportMetric(float64(n)/mv.Seconds(), "verified-msgs/s")
	b.Logf("copies %v, verifies %v", copies, verifies)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// seedBench appends n messages round robin over folders, pipelined.
func seedBench(b *testing.B, c *imapclient.Client, folders []string, n int) {
	b.Helper()
	for _, f := range folders[1:] {
		if err := c.Create(f, nil).Wait(); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	var cmds []*imapclient.AppendCommand
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("Hello %d\r\n", i)
		switch i % 4 {
		case 1:
			body = strings.Repeat("lorem ipsum dolor sit amet ", 300) + "\r\n"
		case 2:
			body = strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", 300)
		}
		raw := fmt.Sprintf("From: alice@old.example\r\nTo: bob@old.example\r\nSubject: message %d\r\nMessage-ID: <b%d@old.example>\r\nDate: %s\r\n\r\n%s",
			i, i, base.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z), body)
		var flags []imap.Flag
		if i%3 == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		cmd := c.Append(folders[i%len(folders)], int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: base.Add(time.Duration(i) * time.Minute)})
		if _, err := cmd.Write([]byte(raw)); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
