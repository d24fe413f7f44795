//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestScale times mailferry, dsync and mbsync on mailboxes of 100k and
// 300k messages (issue 14), interleaved round by round, with medians.
// The mailboxes are written as Maildir files straight into the source
// Dovecot's mail store, which Dovecot then indexes when first read:
// thousands of times faster than APPEND, and deterministic (seeded).
//
//	MAILFERRY_BENCH_TESTS=TestScale scripts/bench
//	MAILFERRY_BENCH_TESTS=TestScale MAILFERRY_BENCH_MESSAGES=100000 MAILFERRY_BENCH_RUNS=2 \
//	  MAILFERRY_BENCH_PEERS=mailferry,mailferry-before,dsync,mbsync \
//	  MAILFERRY_BENCH_BEFORE_BIN=/tmp/mailferry-old scripts/bench
//	MAILFERRY_BENCH_TESTS=TestScale MAILFERRY_BENCH_SCALE=0.01 MAILFERRY_BENCH_RUNS=1 scripts/bench  # smoke (CI)
//
// MAILFERRY_BENCH_MESSAGES lists the mailbox sizes (default
// 100000,300000), each multiplied by MAILFERRY_BENCH_SCALE. After each
// size's rounds, every tool runs again into its last complete copy, its
// state kept: once with nothing changed, once after 500 new messages and
// 1,000 \Seen flips on the source (the delta table). Last, a mailbox with
// one message of MAILFERRY_BENCH_BIG_MB MB (default 150, times the scale,
// at least 1; 0: not run) is copied by each tool once per round. Only
// loopback: MAILFERRY_BENCH_RTTS does not apply. Every source connection
// of every tool goes through a counting relay (and every destination
// connection, except dsync's, which has none), so the commands each tool
// sends are reported.
func TestScale(t *testing.T) {
	if os.Getenv("MAILFERRY_BENCH") != "1" {
		t.Skip("set MAILFERRY_BENCH=1 (scripts/bench)")
	}
	cfg := readBenchConfig(t)
	sizes := []int{100000, 300000}
	if v := os.Getenv("MAILFERRY_BENCH_MESSAGES"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				t.Fatalf("MAILFERRY_BENCH_MESSAGES=%q: want positive message counts, comma-separated", v)
			}
			sizes = append(sizes, n)
		}
	}
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	started := time.Now()
	out("# Mailferry vs peers at scale (TestScale)")
	out("settings: MAILFERRY_BENCH_MESSAGES=%v MAILFERRY_BENCH_SCALE=%g MAILFERRY_BENCH_RUNS=%d MAILFERRY_BENCH_PEERS=%s MAILFERRY_BENCH_STORE=%s",
		sizes, cfg.scale, cfg.runs, strings.Join(cfg.peers, ","), cfg.store)
	out("machine: %d CPUs, %s, load %s", runtime.NumCPU(), machineInfo(), loadAvg())
	mf := "built from this checkout, " + gitDescribe()
	if bin := os.Getenv("MAILFERRY_BENCH_BIN"); bin != "" {
		mf = bin + " (MAILFERRY_BENCH_BIN)"
	}
	before := os.Getenv("MAILFERRY_BENCH_BEFORE_BIN")
	out("versions: dovecot %s; mbsync %s; Go %s; mailferry %s; mailferry-before %s",
		toolVersion(dovecotPath(), "--version"), toolVersion("mbsync", "--version"), runtime.Version(), mf, before)
	var mailferryBin string
	if slices.Contains(cfg.peers, "mailferry") || slices.Contains(cfg.peers, "mailferry-before") {
		mailferryBin = buildMailferry(t)
	}
	if slices.Contains(cfg.peers, "mailferry-before") {
		if before == "" {
			t.Fatal("MAILFERRY_BENCH_PEERS has mailferry-before: set MAILFERRY_BENCH_BEFORE_BIN to a binary built from the older commit")
		}
		abs, err := filepath.Abs(before)
		if err != nil {
			t.Fatal(err)
		}
		before = abs
	}

	const password = "bench-Secret-1"
	for _, size := range sizes {
		n := max(1, int(math.Round(float64(size)*cfg.scale)))
		src := testenv.StartDovecot(t, cfg.dovecotOptions())
		dst := testenv.StartDovecot(t, cfg.dovecotOptions())
		srcUser := "scale"
		src.AddUser(t, srcUser, password)
		sum := writeScaleMaildir(t, src, srcUser, n)
		out("\n## %d messages\n%s", n, sum)

		// The first read makes Dovecot index the new files, which is not
		// charged to any tool.
		t0 := time.Now()
		cpu0 := groupCPU(masterPID(src.Dir))
		srcPrint, err := fingerprint(src.Addr(), srcUser, password, nil)
		if err != nil {
			t.Fatalf("reading the source: %v", err)
		}
		if got := srcPrint.count(); got != sum.messages || len(srcPrint) != sum.folders {
			t.Fatalf("the source serves %d messages in %d folders; %d in %d were written", got, len(srcPrint), sum.messages, sum.folders)
		}
		out("source indexed, read back and hashed in %v (source Dovecot CPU %.1f s)", time.Since(t0).Round(100*time.Millisecond),
			(groupCPU(masterPID(src.Dir)) - cpu0).Seconds())

		srcRelay, dstRelay := startRelay(t, src.Addr()), startRelay(t, dst.Addr())
		results := make([][]measurement, len(cfg.peers))
		counts := make([][]relayCounts, len(cfg.peers))
		last := make([]*runEnv, len(cfg.peers))
		for run := range cfg.runs {
			for k := range cfg.peers {
				pi := (k + run) % len(cfg.peers)
				p := peers[cfg.peers[pi]]
				dstUser := fmt.Sprintf("%s-%d-run%d", p.name, n, run+1)
				dst.AddUser(t, dstUser, password)
				work, err := os.MkdirTemp(t.TempDir(), p.name)
				if err != nil {
					t.Fatal(err)
				}
				e := runEnv{src: src, dst: dst, srcAddr: srcRelay.addr, dstAddr: dstRelay.addr, srcUser: srcUser,
					dstUser: dstUser, password: password, work: work, mailferryBin: mailferryBin, beforeBin: before}
				if p.dstLocal {
					e.dstAddr = ""
				}
				sc, dc := srcRelay.reset(), dstRelay.reset()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
				m := timeRun(ctx, p, e, srcPrint)
				cancel()
				c := relayCounts{src: sc, dst: dc}
				results[pi] = append(results[pi], m)
				counts[pi] = append(counts[pi], c)
				out("%s\n    commands: %s", runLine(0, run, cfg.runs, p, m, sum.seedSummary), c)
				if m.err != nil {
					t.Errorf("%d messages, run %d, %s: %v", n, run+1, p.name, m.err)
				} else if !m.verdict.complete() {
					t.Errorf("%d messages, run %d, %s: incomplete copy: %s", n, run+1, p.name, m.verdict)
				}
				// The last round's destination and state stay for the
				// delta runs, if the copy was complete.
				if run == cfg.runs-1 && m.ok() {
					last[pi] = &e
					continue
				}
				for _, sub := range []string{"mail", "home"} {
					_ = os.RemoveAll(filepath.Join(dst.Dir, sub, dstUser))
				}
				_ = os.RemoveAll(work)
			}
		}
		out("\n### %d messages: medians of %d round(s), tools interleaved\n\n%s\n\n%s", n, cfg.runs,
			rttTable(0, cfg.peers, results, sum.seedSummary), countsTable(cfg.peers, counts))

		// Delta: each tool again into its last full copy, first with
		// nothing changed, then after the source changed.
		const added, flips = 500, 1000
		unchanged, changed := make([]deltaRun, len(cfg.peers)), make([]deltaRun, len(cfg.peers))
		delta := func(label string, into []deltaRun, print mailboxPrint) {
			for pi, name := range cfg.peers {
				e := last[pi]
				if e == nil {
					continue
				}
				p := peers[name]
				sc, dc := srcRelay.reset(), dstRelay.reset()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
				m := timeRun(ctx, p, *e, print)
				cancel()
				into[pi] = deltaRun{m: m, c: relayCounts{src: sc, dst: dc}}
				out("%s\n    commands: %s", deltaLine(label, p, m), into[pi].c)
				// Every tool copies system flags, so a flip that did not
				// arrive is a failed delta, not a difference in features.
				if v := m.verdict; m.err != nil {
					t.Errorf("%d messages, %s delta, %s: %v", n, label, p.name, m.err)
				} else if !v.complete() || v.bytesExact != v.srcMsgs || v.flagsOK != v.srcMsgs {
					t.Errorf("%d messages, %s delta, %s: the destination does not match the source: %s", n, label, p.name, v)
				}
			}
		}
		out("\n### %d messages: delta runs\n", n)
		delta("unchanged", unchanged, srcPrint)
		t0 = time.Now()
		if err := changeScaleSource(src.Addr(), srcUser, password, added, flips); err != nil {
			t.Fatalf("changing the source for the delta: %v", err)
		}
		changedPrint, err := fingerprint(src.Addr(), srcUser, password, nil)
		if err != nil {
			t.Fatalf("reading the changed source: %v", err)
		}
		if got := changedPrint.count(); got != sum.messages+added {
			t.Fatalf("the changed source serves %d messages, want %d", got, sum.messages+added)
		}
		out("source changed (%d new messages over the folders, \\Seen flipped on %d existing ones, through IMAP, seeded) and read back in %v",
			added, min(flips, sum.messages), time.Since(t0).Round(100*time.Millisecond))
		delta("changed", changed, changedPrint)
		out("\n### %d messages: delta (unchanged, then %d new + %d flag changes)\n\n%s", n, added, min(flips, sum.messages),
			deltaTable(cfg.peers, unchanged, changed))
		for _, e := range last {
			if e == nil {
				continue
			}
			for _, sub := range []string{"mail", "home"} {
				_ = os.RemoveAll(filepath.Join(dst.Dir, sub, e.dstUser))
			}
			_ = os.RemoveAll(e.work)
		}
		src.Stop(t)
		dst.Stop(t)
		_ = os.RemoveAll(src.Dir)
		_ = os.RemoveAll(dst.Dir)
	}
	if mb := bigMessageMB(t, cfg.scale); mb > 0 {
		scaleBigMessage(t, cfg, mb, mailferryBin, before, password, out)
	}
	out("\nnotes:")
	for _, name := range cfg.peers {
		out("- %s: %s", name, peers[name].note)
	}
	out("- every tool's IMAP connections pass through a relay in the test process that counts the commands; its CPU is not charged to the tool.")
	out("total benchmark time %v", time.Since(started).Round(time.Second))
}

// scaleSummary describes a generated mailbox.
type scaleSummary struct {
	seedSummary
	classes [3]int // ~4 KB, ~50 KB, ~500 KB
}

func (s scaleSummary) String() string {
	return fmt.Sprintf("%d messages, %.1f MB, median %.1f KB, largest %.1f KB, %d folders two levels deep; sizes: %d around 4 KB, %d around 50 KB, %d around 500 KB\n"+
		"  flags: \\Seen %d, \\Answered %d, \\Flagged %d; keywords: $Label1 %d, Work %d; written as Maildir files in %v",
		s.messages, float64(s.bytes)/1e6, float64(s.median)/1e3, float64(s.largest)/1e3, s.folders,
		s.classes[0], s.classes[1], s.classes[2], s.seen, s.answered, s.flagged, s.label1, s.work, s.elapsed.Round(100*time.Millisecond))
}

// scaleFolders are 50 folders, two levels deep: INBOX, 7 top-level
// folders and 6 below each.
func scaleFolders() []string {
	tops := []string{"Archive", "Clients", "Lists", "Projects", "Receipts", "Sent", "Travel"}
	subs := []string{"2019", "2020", "2021", "2022", "Old", "Misc"}
	out := []string{"INBOX"}
	for _, top := range tops {
		out = append(out, top)
		for _, s := range subs {
			out = append(out, top+"/"+s)
		}
	}
	return out
}

// userMaildir is where user's mail is in d's store, and the owner the
// mail processes run as, whom files written there must belong to.
func userMaildir(t *testing.T, d *testenv.Dovecot, user string) (root string, uid, gid int) {
	t.Helper()
	st, err := os.Stat(filepath.Join(d.Dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return filepath.Join(d.Dir, "mail", strings.ToLower(user)), int(sys.Uid), int(sys.Gid)
}

// writeScaleMaildir writes n messages into user's Maildir (LAYOUT=fs, as
// testenv configures it: INBOX in the root, folder A/B in A/B). About
// half the messages are in INBOX, the rest spread over the other 49
// folders by a Zipf-like weight. Sizes: 89 % around 4 KB (log-normal,
// median 4 KB), 10 % around 50 KB, 1 % around 500 KB, the larger ones
// with a base64 attachment. Every choice comes from PCG(14, 1), so the
// same n always gives the same mailbox.
func writeScaleMaildir(t *testing.T, d *testenv.Dovecot, user string, n int) scaleSummary {
	t.Helper()
	start := time.Now()
	root, uid, gid := userMaildir(t, d, user)
	folders := scaleFolders()
	weights := make([]float64, len(folders))
	weights[0] = 0.5
	var rest float64
	for i := 1; i < len(folders); i++ {
		rest += 1 / float64(i)
	}
	for i := 1; i < len(folders); i++ {
		weights[i] = 0.5 / float64(i) / rest
	}
	dirs := make([]string, len(folders))
	for i, f := range folders {
		dirs[i] = root
		if f != "INBOX" {
			dirs[i] = filepath.Join(root, filepath.FromSlash(f))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dirs[i], sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		// Keyword letters a and b (Dovecot's Maildir keywords).
		if err := os.WriteFile(filepath.Join(dirs[i], "dovecot-keywords"), []byte("0 $Label1\n1 Work\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The mail processes run as the owner of the mail directory.
	if err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}

	r := rand.New(rand.NewPCG(14, 1))
	text := wordsBlock(rand.New(rand.NewPCG(14, 2)), 1<<20)
	b64 := base64Block(rand.New(rand.NewPCG(14, 3)), 1<<20)
	var sum scaleSummary
	sizes := make([]int64, 0, n)
	base := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		fi := pickWeighted(r, weights)
		var target, class int
		switch u := r.Float64(); {
		case u < 0.01:
			target, class = 400_000+r.IntN(200_000), 2
		case u < 0.11:
			target, class = 35_000+r.IntN(30_000), 1
		default:
			target = int(4096 * math.Exp(r.NormFloat64()*0.6))
			target = min(max(target, 700), 30_000)
		}
		sum.classes[class]++
		date := base.Add(time.Duration(i)*(8*365*24*time.Hour/time.Duration(n)) + time.Duration(r.IntN(3600))*time.Second)
		buf.Reset()
		fmt.Fprintf(&buf, "From: Sender %d <s%d@example.org>\r\nTo: scale@example.net\r\nSubject: Message %d in %s\r\n"+
			"Date: %s\r\nMessage-ID: <scale.%d.%d@example.org>\r\nMIME-Version: 1.0\r\n",
			i%977, i%977, i, folders[fi], date.Format(time.RFC1123Z), n, i)
		if class == 0 {
			buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
			writeSlice(&buf, r, text, target-buf.Len())
		} else {
			fmt.Fprintf(&buf, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\nContent-Type: text/plain\r\n\r\n", i, i)
			writeSlice(&buf, r, text, 1500)
			fmt.Fprintf(&buf, "\r\n--b%d\r\nContent-Type: application/pdf; name=\"doc%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i, i)
			writeSlice(&buf, r, b64, target-buf.Len()-16)
			fmt.Fprintf(&buf, "\r\n--b%d--\r\n", i)
		}
		var fl []byte
		var flags []string
		u := r.Float64()
		if r.Float64() < 0.03 {
			fl, flags = append(fl, 'F'), append(flags, `\Flagged`)
		}
		if u < 0.05 {
			fl, flags = append(fl, 'R'), append(flags, `\Answered`)
		}
		if u < 0.7 {
			fl, flags = append(fl, 'S'), append(flags, `\Seen`)
		}
		switch k := r.Float64(); {
		case k < 0.02:
			fl, flags = append(fl, 'a'), append(flags, "$Label1")
		case k < 0.03:
			fl, flags = append(fl, 'b'), append(flags, "Work")
		}
		size := buf.Len()
		// S= and W= (the size with CRLF, which these files have) save
		// Dovecot from reading a file to learn its size.
		name := fmt.Sprintf("%d.M%dP1.scale,S=%d,W=%d:2,%s", date.Unix(), i, size, size, fl)
		path := filepath.Join(dirs[fi], "cur", name)
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
		// A Maildir message's INTERNALDATE is its file's mtime.
		if err := os.Chtimes(path, date, date); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, int64(size))
		sum.account(plannedMsg{flags: flags, date: date}, int64(size))
	}
	slices.Sort(sizes)
	sum.folders = len(folders)
	sum.median, sum.largest = sizes[len(sizes)/2], sizes[len(sizes)-1]
	sum.elapsed = time.Since(start)
	return sum
}

func pickWeighted(r *rand.Rand, w []float64) int {
	u := r.Float64()
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// wordsBlock is n bytes of text lines (CRLF, under 80 characters).
func wordsBlock(r *rand.Rand, n int) []byte {
	words := strings.Fields("the of and to in is that for it as with was on be by at this have from or an they which one you had not but what all were when we there can more if out so said about")
	var b bytes.Buffer
	line := 0
	for b.Len() < n {
		w := words[r.IntN(len(words))]
		if line+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		line += len(w) + 1
	}
	return b.Bytes()
}

// base64Block is n bytes of base64 in 76-character lines.
func base64Block(r *rand.Rand, n int) []byte {
	raw := make([]byte, n*3/4)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	return b.Bytes()
}

// writeSlice writes about n bytes of block, from a random line start,
// ending with CRLF.
func writeSlice(b *bytes.Buffer, r *rand.Rand, block []byte, n int) {
	n = max(n, 2)
	for n > 0 {
		off := r.IntN(len(block) / 2)
		if i := bytes.Index(block[off:], []byte("\r\n")); i >= 0 {
			off += i + 2
		}
		chunk := block[off:min(len(block), off+n)]
		if i := bytes.LastIndex(chunk, []byte("\r\n")); i > 0 {
			chunk = chunk[:i+2]
		} else {
			chunk = []byte("x\r\n")
		}
		b.Write(chunk)
		n -= len(chunk)
	}
}

// relay is a TCP relay in front of a server that counts the commands its
// clients send (testenv.CommandCounter), per run.
type relay struct {
	addr    string
	counter atomic.Pointer[testenv.CommandCounter]
}

func startRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &relay{addr: ln.Addr().String()}
	rl.counter.Store(&testenv.CommandCounter{})
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := rl.counter.Load().Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return rl
}

// reset starts counting anew and returns the counter of the coming run.
func (rl *relay) reset() *testenv.CommandCounter {
	c := &testenv.CommandCounter{}
	rl.counter.Store(c)
	return c
}

type relayCounts struct{ src, dst *testenv.CommandCounter }

var countedCommands = []string{"EXAMINE", "SELECT", "UID FETCH", "FETCH", "APPEND", "UID STORE", "STATUS", "LIST"}

func (c relayCounts) String() string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		c    *testenv.CommandCounter
	}{{"source", c.src}, {"destination", c.dst}} {
		fmt.Fprintf(&b, "%s (%d connections):", side.name, side.c.Dials())
		for _, name := range countedCommands {
			if v := side.c.Sent(name); v > 0 {
				fmt.Fprintf(&b, " %s %d", name, v)
			}
		}
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// countsTable is the median number of commands each tool sent.
func countsTable(names []string, counts [][]relayCounts) string {
	var b strings.Builder
	b.WriteString("| tool | source: connections | EXAMINE | SELECT | UID FETCH + FETCH | destination: connections | SELECT | APPEND | UID STORE |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for i, name := range names {
		med := func(f func(relayCounts) int64) int64 {
			var xs []int64
			for _, c := range counts[i] {
				xs = append(xs, f(c))
			}
			if len(xs) == 0 {
				return 0
			}
			return median(xs)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d |\n", name,
			med(func(c relayCounts) int64 { return c.src.Dials() }),
			med(func(c relayCounts) int64 { return c.src.Sent("EXAMINE") }),
			med(func(c relayCounts) int64 { return c.src.Sent("SELECT") }),
			med(func(c relayCounts) int64 { return c.src.Sent("UID FETCH") + c.src.Sent("FETCH") }),
			med(func(c relayCounts) int64 { return c.dst.Dials() }),
			med(func(c relayCounts) int64 { return c.dst.Sent("SELECT") }),
			med(func(c relayCounts) int64 { return c.dst.Sent("APPEND") }),
			med(func(c relayCounts) int64 { return c.dst.Sent("UID STORE") }))
	}
	b.WriteString("\n(medians over the rounds; dsync writes the destination itself, so it has no destination commands. APPEND counts commands: one MULTIAPPEND carries many messages.)")
	return b.String()
}

// scaleBigMessage copies a small mailbox with one message of mb MB with
// every tool once per round, interleaved, and checks it arrived byte for
// byte: the tools' memory with a message far larger than their buffers.
func scaleBigMessage(t *testing.T, cfg benchConfig, mb int, mailferryBin, before, password string, out func(string, ...any)) {
	t.Helper()
	src := testenv.StartDovecot(t, cfg.dovecotOptions())
	dst := testenv.StartDovecot(t, cfg.dovecotOptions())
	defer func() {
		src.Stop(t)
		dst.Stop(t)
		_ = os.RemoveAll(src.Dir)
		_ = os.RemoveAll(dst.Dir)
	}()
	const srcUser = "big"
	src.AddUser(t, srcUser, password)
	sum := writeBigMaildir(t, src, srcUser, mb)
	out("\n## One %d MB message (MAILFERRY_BENCH_BIG_MB × MAILFERRY_BENCH_SCALE, at least 1)\n"+
		"%d messages in INBOX, %.1f MB: one of %.1f MB with a base64 attachment of random bytes and %d of about 3 KB; written as Maildir files in %v",
		mb, sum.messages, float64(sum.bytes)/1e6, float64(sum.largest)/1e6, sum.messages-1, sum.elapsed.Round(100*time.Millisecond))
	srcPrint, err := fingerprint(src.Addr(), srcUser, password, nil)
	if err != nil {
		t.Fatalf("reading the large-message source: %v", err)
	}
	if srcPrint.count() != sum.messages {
		t.Fatalf("the large-message source serves %d messages; %d were written", srcPrint.count(), sum.messages)
	}
	srcRelay, dstRelay := startRelay(t, src.Addr()), startRelay(t, dst.Addr())
	results := make([][]measurement, len(cfg.peers))
	for run := range cfg.runs {
		for k := range cfg.peers {
			pi := (k + run) % len(cfg.peers)
			p := peers[cfg.peers[pi]]
			dstUser := fmt.Sprintf("%s-big-run%d", p.name, run+1)
			dst.AddUser(t, dstUser, password)
			work, err := os.MkdirTemp(t.TempDir(), p.name)
			if err != nil {
				t.Fatal(err)
			}
			e := runEnv{src: src, dst: dst, srcAddr: srcRelay.addr, dstAddr: dstRelay.addr, srcUser: srcUser,
				dstUser: dstUser, password: password, work: work, mailferryBin: mailferryBin, beforeBin: before}
			if p.dstLocal {
				e.dstAddr = ""
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			m := timeRun(ctx, p, e, srcPrint)
			cancel()
			results[pi] = append(results[pi], m)
			out("%s", runLine(0, run, cfg.runs, p, m, sum))
			if m.err != nil {
				t.Errorf("%d MB message, run %d, %s: %v", mb, run+1, p.name, m.err)
			} else if !m.verdict.complete() || m.verdict.bytesExact != m.verdict.srcMsgs {
				t.Errorf("%d MB message, run %d, %s: not copied byte for byte: %s", mb, run+1, p.name, m.verdict)
			}
			for _, sub := range []string{"mail", "home"} {
				_ = os.RemoveAll(filepath.Join(dst.Dir, sub, dstUser))
			}
			_ = os.RemoveAll(work)
		}
	}
	table := strings.TrimPrefix(rttTable(0, cfg.peers, results, sum), "### Loopback (no added latency)\n\n")
	out("\n### One %d MB message: medians of %d round(s), tools interleaved\n\n%s", mb, cfg.runs, table)
}
