//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testenv"
)

// deltaRun is one tool's incremental run after its last full copy.
type deltaRun struct {
	m measurement
	c relayCounts
}

// changeScaleSource makes the source's delta through IMAP (so Dovecot
// records it as a client's change would be): added new messages spread
// over the folders by the same weights as writeScaleMaildir, and flips
// \Seen on flips distinct existing messages. Every choice comes from
// PCG(14, 4), so the same mailbox always gets the same change.
func changeScaleSource(addr, user, password string, added, flips int) error {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return fmt.Errorf("login %s: %w", user, err)
	}
	folders := scaleFolders()
	r := rand.New(rand.NewPCG(14, 4))
	text := wordsBlock(rand.New(rand.NewPCG(14, 5)), 1<<18)

	// The flag changes first, on messages that exist now.
	type msg struct{ folder, seq int }
	var all []msg
	counts := make([]int, len(folders))
	for fi, f := range folders {
		sel, err := c.Select(f, nil).Wait()
		if err != nil {
			return fmt.Errorf("select %s: %w", f, err)
		}
		counts[fi] = int(sel.NumMessages)
		for s := 1; s <= counts[fi]; s++ {
			all = append(all, msg{fi, s})
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	chosen := make([][]uint32, len(folders))
	for _, m := range all[:min(flips, len(all))] {
		chosen[m.folder] = append(chosen[m.folder], uint32(m.seq))
	}
	for fi, seqs := range chosen {
		if len(seqs) == 0 {
			continue
		}
		if _, err := c.Select(folders[fi], nil).Wait(); err != nil {
			return fmt.Errorf("select %s: %w", folders[fi], err)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(seqs...), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil {
			return fmt.Errorf("fetch flags in %s: %w", folders[fi], err)
		}
		var seen, unseen imap.SeqSet
		for _, m := range msgs {
			if slices.Contains(m.Flags, imap.FlagSeen) {
				seen.AddNum(m.SeqNum)
			} else {
				unseen.AddNum(m.SeqNum)
			}
		}
		for _, st := range []struct {
			set imap.SeqSet
			op  imap.StoreFlagsOp
		}{{seen, imap.StoreFlagsDel}, {unseen, imap.StoreFlagsAdd}} {
			if len(st.set) == 0 {
				continue
			}
			if err := c.Store(st.set, &imap.StoreFlags{Op: st.op, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
				return fmt.Errorf("store in %s: %w", folders[fi], err)
			}
		}
	}

	weights := make([]float64, len(folders))
	weights[0] = 0.5
	var rest float64
	for i := 1; i < len(folders); i++ {
		rest += 1 / float64(i)
	}
	for i := 1; i < len(folders); i++ {
		weights[i] = 0.5 / float64(i) / rest
	}
	date := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	for i := range added {
		fi := pickWeighted(r, weights)
		date = date.Add(time.Duration(1+r.IntN(3600)) * time.Second)
		buf.Reset()
		fmt.Fprintf(&buf, "From: Sender %d <s%d@example.org>\r\nTo: scale@example.net\r\nSubject: New message %d in %s\r\n"+
			"Date: %s\r\nMessage-ID: <scale.delta.%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
			i%97, i%97, i, folders[fi], date.Format(time.RFC1123Z), i)
		writeSlice(&buf, r, text, min(max(int(4096*math.Exp(r.NormFloat64()*0.6)), 700), 30_000)-buf.Len())
		var flags []imap.Flag
		if r.Float64() < 0.3 {
			flags = append(flags, imap.FlagSeen)
		}
		ap := c.Append(folders[fi], int64(buf.Len()), &imap.AppendOptions{Flags: flags, Time: date})
		if _, err := ap.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("append to %s: %w", folders[fi], err)
		}
		if err := ap.Close(); err != nil {
			return fmt.Errorf("append to %s: %w", folders[fi], err)
		}
		if _, err := ap.Wait(); err != nil {
			return fmt.Errorf("append to %s: %w", folders[fi], err)
		}
	}
	_ = c.Logout().Wait()
	return nil
}

// deltaLine is one delta run, like runLine without the rates, which
// would divide the whole mailbox by a run that moved a fraction of it.
func deltaLine(label string, p peer, m measurement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "delta %-9s %-9s %6.1f s, RSS %6.1f MiB, CPU %5.1f s, Dovecot CPU src %4.1f s + dst %4.1f s, IMAP logins src %d + dst %d, load %s",
		label, p.name, m.wall.Seconds(), float64(m.rss)/(1<<20), m.cpu.Seconds(), m.srcCPU.Seconds(), m.dstCPU.Seconds(),
		m.srcLogins, m.dstLogins, loadAvg())
	if m.err != nil {
		b.WriteString(" FAILED")
	}
	if m.verdict.srcMsgs > 0 {
		fmt.Fprintf(&b, "\n    %s", m.verdict)
	}
	return b.String()
}

// deltaTable is every tool's two incremental runs: with nothing changed,
// and after the source's change.
func deltaTable(names []string, unchanged, changed []deltaRun) string {
	var b strings.Builder
	b.WriteString("| tool | case | wall s | peak RSS MiB | source: connections | EXAMINE | SELECT | UID FETCH + FETCH | destination: connections | SELECT | APPEND | UID STORE | delivered | byte-identical | flags |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, name := range names {
		for _, row := range []struct {
			label string
			d     deltaRun
		}{{"unchanged", unchanged[i]}, {"changed", changed[i]}} {
			m, c := row.d.m, row.d.c
			wall := fmt.Sprintf("%.1f", m.wall.Seconds())
			if m.err != nil {
				wall = "failed"
			}
			if c.src == nil {
				fmt.Fprintf(&b, "| %s | %s | not run (no full copy) | | | | | | | | | | | | |\n", name, row.label)
				continue
			}
			v := m.verdict
			fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %d | %d | %d | %d | %d | %d | %d | %d | %d/%d | %d | %d |\n",
				name, row.label, wall, float64(m.rss)/(1<<20),
				c.src.Dials(), c.src.Sent("EXAMINE"), c.src.Sent("SELECT"), c.src.Sent("UID FETCH")+c.src.Sent("FETCH"),
				c.dst.Dials(), c.dst.Sent("SELECT"), c.dst.Sent("APPEND"), c.dst.Sent("UID STORE"),
				v.dstMsgs, v.srcMsgs, v.bytesExact, v.flagsOK)
		}
	}
	b.WriteString("\n(one run each, into the destination of the tool's last full copy, with its state kept: mailferry's --data-dir, mbsync's SyncState; " +
		"\"changed\" follows the source's new messages and \\Seen flips. delivered … flags as in the tables above; dsync has no destination commands.)")
	return b.String()
}

// bigMessageMB is the size of TestScale's one large message:
// MAILFERRY_BENCH_BIG_MB (default 150; 0: no large-message case) times
// MAILFERRY_BENCH_SCALE, at least 1.
func bigMessageMB(t *testing.T, scale float64) int {
	t.Helper()
	mb := 150
	if v := os.Getenv("MAILFERRY_BENCH_BIG_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("MAILFERRY_BENCH_BIG_MB=%q: want megabytes >= 0 (0 leaves the large message out)", v)
		}
		mb = n
	}
	if mb == 0 {
		return 0
	}
	return max(1, int(math.Round(float64(mb)*scale)))
}

// writeBigMaildir writes user's INBOX: one message of about mb MB (10^6
// bytes) with a base64 attachment of random bytes, plus three small ones.
// Seeded (PCG(14, 6)), written straight as Maildir files like
// writeScaleMaildir.
func writeBigMaildir(t *testing.T, d *testenv.Dovecot, user string, mb int) seedSummary {
	t.Helper()
	start := time.Now()
	root, uid, gid := userMaildir(t, d, user)
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(root, sub), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(14, 6))
	text := wordsBlock(rand.New(rand.NewPCG(14, 7)), 1<<16)
	var sum seedSummary
	var sizes []int64
	date := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 4 {
		date = date.Add(time.Hour)
		path := filepath.Join(root, "cur", fmt.Sprintf("%d.M%dP1.big:2,S", date.Unix(), i))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		fmt.Fprintf(w, "From: Sender <big@example.org>\r\nTo: scale@example.net\r\nSubject: Big test %d\r\n"+
			"Date: %s\r\nMessage-ID: <big.%d.%d@example.org>\r\nMIME-Version: 1.0\r\n", i, date.Format(time.RFC1123Z), mb, i)
		var small bytes.Buffer
		writeSlice(&small, r, text, 3000)
		if i != 1 {
			fmt.Fprintf(w, "Content-Type: text/plain; charset=us-ascii\r\n\r\n%s", small.Bytes())
		} else {
			fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\n%s\r\n"+
				"--big\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", small.Bytes())
			raw, line := make([]byte, 57), make([]byte, 76, 78)
			for n := 0; n < mb*1_000_000; n += 78 {
				for j := range raw {
					raw[j] = byte(r.Uint32())
				}
				base64.StdEncoding.Encode(line[:76], raw)
				_, _ = w.Write(append(line[:76], '\r', '\n'))
			}
			fmt.Fprintf(w, "\r\n--big--\r\n")
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, date, date); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
		sum.account(plannedMsg{flags: []string{`\Seen`}, date: date}, fi.Size())
	}
	slices.Sort(sizes)
	sum.folders = 1
	sum.median, sum.largest = sizes[len(sizes)/2], sizes[len(sizes)-1]
	sum.elapsed = time.Since(start)
	return sum
}
