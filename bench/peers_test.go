//go:build linux

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestPeers times `mailferry copy`, mbsync and dsync copying the same
// mailbox between two Dovecot instances, at several round-trip times, and
// checks what each of them delivered. See docs/BENCHMARKS.md.
//
//	scripts/bench                                                  # the full run
//	MAILFERRY_BENCH_SCALE=0.2 MAILFERRY_BENCH_RUNS=1 scripts/bench # a quick smoke run
func TestPeers(t *testing.T) {
	if os.Getenv("MAILFERRY_BENCH") != "1" {
		t.Skip("set MAILFERRY_BENCH=1 (scripts/bench)")
	}
	cfg := readBenchConfig(t)
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	started := time.Now()

	out("# Mailferry vs peers")
	out("settings: MAILFERRY_BENCH_RUNS=%d MAILFERRY_BENCH_RTTS=%s MAILFERRY_BENCH_SCALE=%g MAILFERRY_BENCH_PEERS=%s MAILFERRY_BENCH_STORE=%s",
		cfg.runs, joinInts(cfg.rtts), cfg.scale, strings.Join(cfg.peers, ","), cfg.store)
	out("machine: %d CPUs, %s", runtime.NumCPU(), machineInfo())
	mf := "built from this checkout, " + gitDescribe()
	if bin := os.Getenv("MAILFERRY_BENCH_BIN"); bin != "" {
		mf = bin + " (MAILFERRY_BENCH_BIN)"
	}
	out("versions: dovecot %s (doveadm from the same package); mbsync %s; Go %s; mailferry %s",
		toolVersion(dovecotPath(), "--version"), toolVersion("mbsync", "--version"), runtime.Version(), mf)

	for _, name := range cfg.peers {
		if bin := toolOf(name); bin != "" {
			if _, err := exec.LookPath(bin); err != nil {
				t.Fatalf("%s needs %s, which is not installed (scripts/bench installs it as root): %v", name, bin, err)
			}
		}
	}
	var mailferryBin string
	if slices.Contains(cfg.peers, "mailferry") {
		mailferryBin = buildMailferry(t)
	}

	const password = "bench-Secret-1"
	const srcUser = "source"
	src := testenv.StartDovecot(t, cfg.dovecotOptions())
	dst := testenv.StartDovecot(t, cfg.dovecotOptions())
	src.AddUser(t, srcUser, password)

	ds := planDataset(cfg.scale)
	seedCPU0 := groupCPU(masterPID(src.Dir))
	sum := seedSource(t, src, srcUser, password, ds)
	time.Sleep(100 * time.Millisecond) // for the imap processes to exit
	out("\n## Data set (seed PCG(1,2), scale %g)\n%s (the source Dovecot used %.1f s of CPU storing it)",
		cfg.scale, sum, (groupCPU(masterPID(src.Dir)) - seedCPU0).Seconds())

	// Reading everything once also warms the source's indexes and the
	// page cache, so that the first tool timed is not at a disadvantage.
	t0 := time.Now()
	srcPrint, err := fingerprint(src.Addr(), srcUser, password, nil)
	if err != nil {
		t.Fatalf("reading the source: %v", err)
	}
	if n := srcPrint.count(); n != sum.messages {
		t.Fatalf("the source serves %d messages, %d were seeded", n, sum.messages)
	}
	out("source read back and hashed in %v: %d messages in %d folders", time.Since(t0).Round(100*time.Millisecond), srcPrint.count(), len(srcPrint))

	results := make([][][]measurement, len(cfg.rtts)) // [rtt][peer][run]
	for ri, rtt := range cfg.rtts {
		results[ri] = make([][]measurement, len(cfg.peers))
		srcAddr, dstAddr := src.Addr(), dst.Addr()
		if rtt > 0 {
			ps, pd := testenv.StartProxy(t, src.Addr()), testenv.StartProxy(t, dst.Addr())
			ps.AddLatency(t, rtt)
			pd.AddLatency(t, rtt)
			srcAddr, dstAddr = ps.Addr, pd.Addr
		}
		out("\n## RTT %d ms", rtt)
		for run := range cfg.runs {
			// The order rotates from run to run, so that no tool always
			// follows the same one (page cache, the servers' state).
			for k := range cfg.peers {
				pi := (k + run) % len(cfg.peers)
				p := peers[cfg.peers[pi]]
				dstUser := fmt.Sprintf("%s-rtt%d-run%d", p.name, rtt, run+1)
				dst.AddUser(t, dstUser, password)
				work, err := os.MkdirTemp(t.TempDir(), p.name)
				if err != nil {
					t.Fatal(err)
				}
				e := runEnv{src: src, dst: dst, srcAddr: srcAddr, dstAddr: dstAddr, srcUser: srcUser,
					dstUser: dstUser, password: password, work: work, mailferryBin: mailferryBin}
				if p.dstLocal {
					e.dstAddr = "" // dsync writes the destination's files itself
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				m := timeRun(ctx, p, e, srcPrint)
				cancel()
				results[ri][pi] = append(results[ri][pi], m)
				out("%s", runLine(rtt, run, cfg.runs, p, m, sum))
				if m.err != nil {
					t.Errorf("RTT %d ms, run %d, %s: %v", rtt, run+1, p.name, m.err)
				} else if !m.verdict.complete() {
					t.Errorf("RTT %d ms, run %d, %s: incomplete copy: %s", rtt, run+1, p.name, m.verdict)
				}
				// On tmpfs, give the memory back: the next run uses a
				// fresh account anyway. On the disk the accounts stay
				// until the end (about 2 GB for a full run), because
				// deleting them made creating the next tool's files
				// dearer (see dovecotOptions).
				if cfg.store == "tmpfs" {
					for _, sub := range []string{"mail", "home"} {
						_ = os.RemoveAll(filepath.Join(dst.Dir, sub, dstUser))
					}
				}
				_ = os.RemoveAll(work)
			}
		}
		out("\n%s", rttTable(rtt, cfg.peers, results[ri], sum))
	}

	out("\n## Results (medians of %d run(s); MB = 10^6 bytes, RSS in MiB)", cfg.runs)
	for ri, rtt := range cfg.rtts {
		out("\n%s", rttTable(rtt, cfg.peers, results[ri], sum))
	}
	out("\n%s", targets(cfg, results))
	out("\nnotes:")
	for _, name := range cfg.peers {
		out("- %s: %s", name, peers[name].note)
	}
	out("- msgs/s and MB/s are the data set's messages and bytes over the median wall time; CPU is the tool's own user+system time;")
	out("  \"Dovecot CPU\" is each Dovecot instance's CPU during the run (its imap processes; dsync's doveadm is the tool's own CPU).")
	out("- the latency proxies run inside the test process, on the same CPUs as the tools and both servers.")
	out("total benchmark time %v", time.Since(started).Round(time.Second))
}

type benchConfig struct {
	runs  int
	rtts  []int
	scale float64
	peers []string
	// store is where both Dovecot instances keep their mail: "tmpfs"
	// (/dev/shm) or "disk" (os.TempDir()).
	store string
}

// dovecotOptions places an instance according to MAILFERRY_BENCH_STORE.
// On tmpfs the tools are compared rather than the disk: on this ext4 disk
// creating files got several times slower in the minutes after a run's
// destination was deleted (the kernel scans past recently freed inodes in
// ext4_create), which charged one tool for the files of the one before.
func (c benchConfig) dovecotOptions() testenv.DovecotOptions {
	o := testenv.DovecotOptions{Layout: testenv.LayoutSlash}
	if c.store == "tmpfs" {
		o.ParentDir = "/dev/shm"
	}
	return o
}

func readBenchConfig(t *testing.T) benchConfig {
	t.Helper()
	cfg := benchConfig{runs: 3, rtts: []int{0, 20, 50}, scale: 1, peers: []string{"mailferry", "mbsync", "dsync"}, store: "tmpfs"}
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		cfg.store = "disk"
	}
	switch v := os.Getenv("MAILFERRY_BENCH_STORE"); v {
	case "":
	case "tmpfs", "disk":
		cfg.store = v
	default:
		t.Fatalf("MAILFERRY_BENCH_STORE=%q: want tmpfs or disk", v)
	}
	if v := os.Getenv("MAILFERRY_BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MAILFERRY_BENCH_RUNS=%q: want a positive integer", v)
		}
		cfg.runs = n
	}
	if v := os.Getenv("MAILFERRY_BENCH_RTTS"); v != "" {
		cfg.rtts = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 || n%2 != 0 {
				t.Fatalf("MAILFERRY_BENCH_RTTS=%q: want even milliseconds >= 0, comma-separated (half of each is added per direction)", v)
			}
			cfg.rtts = append(cfg.rtts, n)
		}
	}
	if v := os.Getenv("MAILFERRY_BENCH_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 100 {
			t.Fatalf("MAILFERRY_BENCH_SCALE=%q: want a number in (0, 100]", v)
		}
		cfg.scale = f
	}
	if v := os.Getenv("MAILFERRY_BENCH_PEERS"); v != "" {
		cfg.peers = nil
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if _, ok := peers[s]; !ok {
				t.Fatalf("MAILFERRY_BENCH_PEERS: unknown tool %q (known: mailferry, mailferry-before, mbsync, dsync)", s)
			}
			if !slices.Contains(cfg.peers, s) {
				cfg.peers = append(cfg.peers, s)
			}
		}
	}
	return cfg
}

// buildMailferry builds the binary from this checkout, once, unless
// MAILFERRY_BENCH_BIN names one to use instead (e.g. built from another
// commit).
func buildMailferry(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("MAILFERRY_BENCH_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("MAILFERRY_BENCH_BIN: %v", err)
		}
		return abs
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mailferry")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mailferry")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mailferry: %v\n%s", err, out)
	}
	return bin
}

func dovecotPath() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	return "/usr/sbin/dovecot"
}

func gitDescribe() string {
	out, err := exec.Command("git", "-C", "..", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "(unknown commit)"
	}
	return "commit " + strings.TrimSpace(string(out))
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func runLine(rtt, run, runs int, p peer, m measurement, sum seedSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rtt=%dms run %d/%d %-9s ", rtt, run+1, runs, p.name)
	if m.wall > 0 {
		secs := m.wall.Seconds()
		fmt.Fprintf(&b, "%6.1f s, %6.1f msgs/s, %5.2f MB/s, RSS %6.1f MiB, CPU %5.1f s (%3.0f%% of wall), Dovecot CPU src %4.1f s + dst %4.1f s, IMAP logins src %d + dst %d, machine CPU %5.1f s, load %s",
			secs, float64(sum.messages)/secs, float64(sum.bytes)/1e6/secs, float64(m.rss)/(1<<20),
			m.cpu.Seconds(), 100*m.cpu.Seconds()/secs, m.srcCPU.Seconds(), m.dstCPU.Seconds(),
			m.srcLogins, m.dstLogins, m.machine.Seconds(), loadAvg())
	}
	if m.err != nil {
		fmt.Fprintf(&b, " FAILED")
	}
	if m.verdict.srcMsgs > 0 {
		fmt.Fprintf(&b, "\n    %s", m.verdict)
		if p.normalise != nil {
			fmt.Fprintf(&b, " (compared after normalising %d messages: X-TUID removed)", m.stripped)
		}
	}
	return b.String()
}

// stat is the medians of one tool at one RTT.
type stat struct {
	n, ok                 int // runs, complete runs without error
	wall, minW, maxW      time.Duration
	cpu, srcCPU, dstCPU   time.Duration
	rss, maxRSS           int64
	worst                 verdict
	msgsPerSec, mbPerSec  float64
	hasWorst, allComplete bool
}

func summarise(ms []measurement, sum seedSummary) stat {
	var s stat
	s.n = len(ms)
	var walls, cpus, srcs, dsts []time.Duration
	var rss []int64
	s.allComplete = len(ms) > 0
	for _, m := range ms {
		if m.ok() {
			s.ok++
		} else {
			s.allComplete = false
		}
		if v := m.verdict; v.srcMsgs > 0 && (!s.hasWorst || worse(v, s.worst)) {
			s.worst, s.hasWorst = v, true
		}
		if m.err != nil || m.wall == 0 {
			continue
		}
		walls = append(walls, m.wall)
		cpus = append(cpus, m.cpu)
		srcs = append(srcs, m.srcCPU)
		dsts = append(dsts, m.dstCPU)
		rss = append(rss, m.rss)
	}
	if len(walls) == 0 {
		return s
	}
	s.wall, s.cpu, s.rss = median(walls), median(cpus), median(rss)
	s.srcCPU, s.dstCPU = median(srcs), median(dsts)
	s.minW, s.maxW = slices.Min(walls), slices.Max(walls)
	s.maxRSS = slices.Max(rss)
	s.msgsPerSec = float64(sum.messages) / s.wall.Seconds()
	s.mbPerSec = float64(sum.bytes) / 1e6 / s.wall.Seconds()
	return s
}

// worse orders verdicts: an incomplete copy first, then by how many
// messages arrived intact.
func worse(a, b verdict) bool {
	if a.complete() != b.complete() {
		return !a.complete()
	}
	return a.bytesExact+a.flagsOK+a.keywordsOK+a.datesOK < b.bytesExact+b.flagsOK+b.keywordsOK+b.datesOK
}

func median[T int64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rttTable(rtt int, names []string, byPeer [][]measurement, sum seedSummary) string {
	var b strings.Builder
	switch rtt {
	case 0:
		fmt.Fprintf(&b, "### Loopback (no added latency)\n\n")
	default:
		fmt.Fprintf(&b, "### RTT %d ms (latency proxy in front of both servers; dsync: source only, it writes locally)\n\n", rtt)
	}
	b.WriteString("| tool | runs ok | wall s, median (min–max) | msgs/s | MB/s | peak RSS MiB | CPU s | CPU/wall | Dovecot CPU s, src + dst | delivered | byte-identical | flags | keywords | INTERNALDATE | Mailferry ÷ tool, msgs/s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var mf stat
	if i := slices.Index(names, "mailferry"); i >= 0 {
		mf = summarise(byPeer[i], sum)
	}
	for i, name := range names {
		s := summarise(byPeer[i], sum)
		ratio := "—"
		if mf.msgsPerSec > 0 && s.msgsPerSec > 0 {
			ratio = fmt.Sprintf("%.2f×", mf.msgsPerSec/s.msgsPerSec)
		}
		v := s.worst
		bytesCol := fmt.Sprintf("%d", v.bytesExact)
		if peers[name].normalise != nil {
			bytesCol += " (without X-TUID)"
		}
		if s.wall == 0 {
			fmt.Fprintf(&b, "| %s | %d/%d | failed | | | | | | | %d/%d | %s | %d | %d | %d | |\n", name, s.ok, s.n,
				v.dstMsgs, v.srcMsgs, bytesCol, v.flagsOK, v.keywordsOK, v.datesOK)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.1f (%.1f–%.1f) | %.1f | %.2f | %.1f | %.1f | %.0f%% | %.1f + %.1f | %d/%d | %s | %d | %d | %d | %s |\n",
			name, s.ok, s.n, s.wall.Seconds(), s.minW.Seconds(), s.maxW.Seconds(), s.msgsPerSec, s.mbPerSec,
			float64(s.rss)/(1<<20), s.cpu.Seconds(), 100*s.cpu.Seconds()/s.wall.Seconds(), s.srcCPU.Seconds(), s.dstCPU.Seconds(),
			v.dstMsgs, v.srcMsgs, bytesCol, v.flagsOK, v.keywordsOK, v.datesOK, ratio)
	}
	b.WriteString("\n(delivered … INTERNALDATE: the worst run; byte-identical counts source messages found with the same SHA-256 in the same destination folder, and flags, keywords and INTERNALDATE are checked on those.)")
	return b.String()
}

// targets checks the figures issue 6 asks for.
func targets(cfg benchConfig, results [][][]measurement) string {
	var b strings.Builder
	b.WriteString("## Targets (issue 6)\n")
	mfIdx := slices.Index(cfg.peers, "mailferry")
	if mfIdx < 0 {
		b.WriteString("mailferry was not run.\n")
		return b.String()
	}
	// Same data set for every tool, so the msgs/s ratio is the inverse
	// ratio of the median wall times.
	ratio := func(ri int, peer string) (float64, bool) {
		pi := slices.Index(cfg.peers, peer)
		if pi < 0 {
			return 0, false
		}
		mf, other := okWalls(results[ri][mfIdx]), okWalls(results[ri][pi])
		if len(mf) == 0 || len(other) == 0 {
			return 0, false
		}
		return median(other).Seconds() / median(mf).Seconds(), true
	}
	check := func(rtt int, peer string, want float64) {
		ri := slices.Index(cfg.rtts, rtt)
		if ri < 0 {
			fmt.Fprintf(&b, "- RTT %d ms, ≥ %.1f× %s in msgs/s: not measured (RTT not run)\n", rtt, want, peer)
			return
		}
		r, ok := ratio(ri, peer)
		if !ok {
			fmt.Fprintf(&b, "- RTT %d ms, ≥ %.1f× %s in msgs/s: not measured\n", rtt, want, peer)
			return
		}
		verdict := "MET"
		if r < want {
			verdict = "NOT MET"
		}
		fmt.Fprintf(&b, "- RTT %d ms, ≥ %.1f× %s in msgs/s: %.2f× — %s\n", rtt, want, peer, r, verdict)
	}
	check(0, "dsync", 1.0)
	check(0, "mbsync", 2.0)
	check(20, "dsync", 4.0)
	check(20, "mbsync", 2.0)
	var peak int64
	for ri := range cfg.rtts {
		for _, m := range results[ri][mfIdx] {
			peak = max(peak, m.rss)
		}
	}
	verdict := "MET"
	if peak > 64<<20 {
		verdict = "NOT MET"
	}
	fmt.Fprintf(&b, "- mailferry peak RSS ≤ 64 MiB (with the 40 MB message), highest of all runs: %.1f MiB — %s\n", float64(peak)/(1<<20), verdict)
	return b.String()
}

func okWalls(ms []measurement) []time.Duration {
	var w []time.Duration
	for _, m := range ms {
		if m.err == nil && m.wall > 0 {
			w = append(w, m.wall)
		}
	}
	return w
}
