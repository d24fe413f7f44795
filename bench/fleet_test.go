package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestFleet is part 4 of issue 6: many mailboxes at once through
// `mailferry serve` on its embedded defaults (SQLite, River on SQLite, the
// default per-host limit and connections), next to one mbsync process per
// mailbox, all started together, on the same data.
//
//	MAILFERRY_BENCH_MAILBOXES     mailboxes (default 20)
//	MAILFERRY_BENCH_PER_MAILBOX   messages in each (default 1000)
//	MAILFERRY_BENCH_SERVE_ARGS    extra `mailferry serve` flags, e.g. "--host-limit 20"
//
// MAILFERRY_BENCH_RUNS, _STORE and _PEERS (mailferry, mbsync) apply as in
// TestPeers; there is no latency proxy here.
func TestFleet(t *testing.T) {
	if os.Getenv("MAILFERRY_BENCH") != "1" {
		t.Skip("set MAILFERRY_BENCH=1 (scripts/bench)")
	}
	cfg := readBenchConfig(t)
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	count := envInt(t, "MAILFERRY_BENCH_MAILBOXES", 20)
	per := envInt(t, "MAILFERRY_BENCH_PER_MAILBOX", 1000)
	serveArgs := strings.Fields(os.Getenv("MAILFERRY_BENCH_SERVE_ARGS"))
	started := time.Now()

	out("# Many mailboxes at once")
	out("settings: MAILFERRY_BENCH_MAILBOXES=%d MAILFERRY_BENCH_PER_MAILBOX=%d MAILFERRY_BENCH_RUNS=%d MAILFERRY_BENCH_STORE=%s MAILFERRY_BENCH_SERVE_ARGS=%q",
		count, per, cfg.runs, cfg.store, strings.Join(serveArgs, " "))
	out("machine: %s", machineInfo())

	const password = "bench-Secret-1"
	src := testenv.StartDovecot(t, cfg.dovecotOptions())
	dst := testenv.StartDovecot(t, cfg.dovecotOptions())

	// The same ~1,000 ordinary messages (the big ones left out) in every
	// source account, over the benchmark's 20 folders.
	ds := planDataset(float64(per) / baseMessages)
	for i, f := range ds.msgs {
		ds.msgs[i] = slices.DeleteFunc(f, func(m plannedMsg) bool { return m.kind == kindBig })
	}
	srcUsers := make([]string, count)
	var sum seedSummary
	t0 := time.Now()
	for i := range srcUsers {
		srcUsers[i] = fmt.Sprintf("m%02d", i+1)
		src.AddUser(t, srcUsers[i], password)
		sum = seedSource(t, src, srcUsers[i], password, ds)
	}
	out("\n## Data set\n%d mailboxes, each: %s\nseeded all in %v", count, sum, time.Since(t0).Round(100*time.Millisecond))
	srcPrint, err := fingerprint(src.Addr(), srcUsers[0], password, nil)
	if err != nil {
		t.Fatalf("reading the source: %v", err)
	}
	total, totalBytes := int64(count)*int64(sum.messages), int64(count)*sum.bytes

	var bin string
	if slices.Contains(cfg.peers, "mailferry") {
		bin = buildMailferry(t)
		out("mailferry serve defaults: %s", serveDefaults(bin, "workers", "host-limit", "connections"))
	}
	type fleetRun struct {
		wall           time.Duration
		cpu, srcCPU    time.Duration
		dstCPU         time.Duration
		rss, rssMax    int64 // mailferry: the serve process; mbsync: sum of peaks, largest peak
		complete, runs int
		note           string
	}
	results := map[string][]fleetRun{}
	for run := range cfg.runs {
		for _, tool := range []string{"mailferry", "mbsync"} {
			if !slices.Contains(cfg.peers, tool) {
				continue
			}
			prefix := fmt.Sprintf("%s%d-", tool[:2], run+1)
			dstUsers := make([]string, count)
			for i := range dstUsers {
				dstUsers[i] = prefix + srcUsers[i]
				dst.AddUser(t, dstUsers[i], password)
			}
			srcPID, dstPID := masterPID(src.Dir), masterPID(dst.Dir)
			src0, dst0 := groupCPU(srcPID), groupCPU(dstPID)
			var r fleetRun
			switch tool {
			case "mailferry":
				r.wall, r.cpu, r.rss, r.note = fleetServe(t, bin, serveArgs, src.Host, src.Port, dst.Addr(), srcUsers, dstUsers, password)
				r.rssMax = r.rss
			case "mbsync":
				r.wall, r.cpu, r.rss, r.rssMax = fleetMbsync(t, src.Addr(), dst.Addr(), srcUsers, dstUsers, password)
			}
			time.Sleep(100 * time.Millisecond) // for the imap processes to exit
			r.srcCPU, r.dstCPU = groupCPU(srcPID)-src0, groupCPU(dstPID)-dst0
			norm := (func([]byte) []byte)(nil)
			if tool == "mbsync" {
				norm = stripTUID
			}
			for _, u := range dstUsers {
				p, err := fingerprint(dst.Addr(), u, password, norm)
				if err != nil {
					t.Errorf("%s run %d: verifying %s: %v", tool, run+1, u, err)
					continue
				}
				if v := compare(srcPrint, p); v.complete() {
					r.complete++
				} else {
					t.Errorf("%s run %d: %s incomplete: %s", tool, run+1, u, v)
				}
			}
			results[tool] = append(results[tool], r)
			out("run %d/%d %-9s %6.1f s, %7.1f msgs/s, %6.2f MB/s, RSS %6.1f MiB (largest process %5.1f MiB), CPU %5.1f s, Dovecot CPU src %4.1f s + dst %4.1f s, %d/%d mailboxes complete %s",
				run+1, cfg.runs, tool, r.wall.Seconds(), float64(total)/r.wall.Seconds(), float64(totalBytes)/1e6/r.wall.Seconds(),
				float64(r.rss)/(1<<20), float64(r.rssMax)/(1<<20), r.cpu.Seconds(), r.srcCPU.Seconds(), r.dstCPU.Seconds(), r.complete, count, r.note)
		}
	}

	out("\n## Results: %d mailboxes x %d messages (%.1f MB in all), loopback, medians of %d run(s)\n", count, sum.messages, float64(totalBytes)/1e6, cfg.runs)
	out("| tool | wall s | msgs/s (all mailboxes) | MB/s | peak RSS MiB | CPU s | Dovecot CPU s, src + dst | mailboxes complete | Mailferry ÷ tool |")
	out("|---|---|---|---|---|---|---|---|---|")
	medianWall := map[string]time.Duration{}
	for _, tool := range []string{"mailferry", "mbsync"} {
		rs := results[tool]
		if len(rs) == 0 {
			continue
		}
		walls := make([]time.Duration, len(rs))
		for i, r := range rs {
			walls[i] = r.wall
		}
		medianWall[tool] = median(walls)
		var rss, rssMax, cpu, srcCPU, dstCPU []int64
		worst := count
		for _, r := range rs {
			rss, rssMax, cpu = append(rss, r.rss), append(rssMax, r.rssMax), append(cpu, int64(r.cpu))
			srcCPU, dstCPU = append(srcCPU, int64(r.srcCPU)), append(dstCPU, int64(r.dstCPU))
			worst = min(worst, r.complete)
		}
		rssText := fmt.Sprintf("%.1f (one process)", float64(median(rss))/(1<<20))
		if tool == "mbsync" {
			rssText = fmt.Sprintf("%.1f in all (%d processes, largest %.1f)", float64(median(rss))/(1<<20), count, float64(median(rssMax))/(1<<20))
		}
		ratio := ""
		if mf, ok := medianWall["mailferry"]; ok {
			ratio = fmt.Sprintf("%.2f×", medianWall[tool].Seconds()/mf.Seconds())
		}
		w := medianWall[tool].Seconds()
		out("| %s | %.1f | %.1f | %.2f | %s | %.1f | %.1f + %.1f | %d/%d | %s |", tool, w, float64(total)/w, float64(totalBytes)/1e6/w,
			rssText, time.Duration(median(cpu)).Seconds(), time.Duration(median(srcCPU)).Seconds(), time.Duration(median(dstCPU)).Seconds(), worst, count, ratio)
	}
	out("\nnotes:\n- mailferry: one `mailferry serve` on embedded defaults%s; one project, the %d mailboxes imported by CSV, one full pass;\n"+
		"  wall is from starting the pass to every mailbox done; RSS and CPU are the serve process's (it also serves the API).\n"+
		"- mbsync: %d processes started together, one per mailbox, configured as in TestPeers; wall is until the last exits.\n"+
		"total time %v", serveNote(serveArgs), count, count, time.Since(started).Round(time.Second))
}

// serveDefaults reads the named flags' defaults from `serve -h`.
func serveDefaults(bin string, names ...string) string {
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	lines := strings.Split(string(help), "\n")
	var out []string
	for i, l := range lines {
		for _, n := range names {
			if strings.Fields(l + " x")[0] == "-"+n && i+1 < len(lines) {
				out = append(out, "--"+n+": "+strings.TrimSpace(lines[i+1]))
			}
		}
	}
	return strings.Join(out, "; ")
}

func serveNote(args []string) string {
	if len(args) == 0 {
		return " (no flags but --listen, --data-dir, the destination preset and --allow-net for the loopback sources)"
	}
	return " plus " + strings.Join(args, " ")
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// fleetServe runs one full pass of every mailbox pair through a fresh
// `mailferry serve` and returns its wall time, and the serve process's CPU
// and peak RSS during the pass.
func fleetServe(t *testing.T, bin string, extra []string, srcHost string, srcPort int, dstAddr string, srcUsers, dstUsers []string, password string) (wall, cpu time.Duration, rss int64, note string) {
	t.Helper()
	dataDir := t.TempDir()
	env := append(os.Environ(), "MAILFERRY_DATA_DIR="+dataDir)
	add := exec.Command(bin, "user", "add", "--email", "bench@example.com")
	add.Env = env
	tok, err := add.Output()
	if err != nil {
		t.Fatalf("mailferry user add: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	// The source servers are on loopback: allowed explicitly, since
	// users' sources may not be there by default.
	args := append([]string{"serve", "--listen", listen, "--preset", "Bench=imap://" + dstAddr + "?allow_plaintext=1", "--allow-net", "127.0.0.0/8"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	}()
	base := "http://" + listen
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailferry serve did not come up:\n%s", log.String())
		}
	}
	call := func(method, path, ctype string, body []byte, outv any) int {
		return testenv.API(t, base, token, method, path, ctype, body, outv)
	}
	var presets []struct{ ID string }
	call("GET", "/api/presets", "", nil, &presets)
	if len(presets) != 1 {
		t.Fatalf("presets: %+v", presets)
	}
	project := map[string]any{
		"name": "Fleet", "destination_preset": presets[0].ID,
		"source": map[string]any{"host": srcHost, "port": srcPort, "security": "none", "allow_plaintext": true},
	}
	body, _ := json.Marshal(project)
	var p struct{ ID string }
	if code := call("POST", "/api/projects", "application/json", body, &p); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	var csv strings.Builder
	csv.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\r\n")
	for i := range srcUsers {
		fmt.Fprintf(&csv, "%s@old.example,%s,%s,%s@new.example,%s,%s\r\n", srcUsers[i], srcUsers[i], password, dstUsers[i], dstUsers[i], password)
	}
	var imported []json.RawMessage
	if code := call("POST", "/api/projects/"+p.ID+"/mailboxes/import", "text/csv", []byte(csv.String()), &imported); code != 201 || len(imported) != len(srcUsers) {
		t.Fatalf("import: %d, %d mailboxes", code, len(imported))
	}

	type mailboxPass struct {
		Status    string `json:"status"`
		Copied    int64  `json:"copied"`
		LastError string `json:"last_error"`
	}
	var ps struct {
		ID        string        `json:"id"`
		State     string        `json:"state"`
		Mailboxes []mailboxPass `json:"mailboxes"`
	}
	pid := cmd.Process.Pid
	hwm := watchHWM(pid)
	cpu0 := groupCPU(pid)
	start := time.Now()
	if code := call("POST", "/api/projects/"+p.ID+"/passes", "application/json", []byte(`{"kind":"full"}`), &ps); code != 201 {
		t.Fatalf("start pass: %d", code)
	}
	running := 0
	for deadline := time.Now().Add(20 * time.Minute); ps.State != "completed" && ps.State != "stopped"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pass not done after 20 minutes: %+v", ps)
		}
		call("GET", "/api/projects/"+p.ID+"/passes/"+ps.ID, "", nil, &ps)
		n := 0
		for _, m := range ps.Mailboxes {
			if m.Status == "migrating" {
				n++
			}
		}
		running = max(running, n)
	}
	wall = time.Since(start)
	cpu = groupCPU(pid) - cpu0
	rss = hwm.Stop()
	for i, m := range ps.Mailboxes {
		if m.Status != "completed" {
			t.Errorf("mailbox %d: %s %s", i, m.Status, m.LastError)
		}
	}
	return wall, cpu, rss, fmt.Sprintf("(at most %d mailboxes seen running at once)", running)
}

// fleetMbsync starts one mbsync per mailbox at once and waits for all.
func fleetMbsync(t *testing.T, srcAddr, dstAddr string, srcUsers, dstUsers []string, password string) (wall, cpu time.Duration, rssSum, rssMax int64) {
	t.Helper()
	cmds := make([]*exec.Cmd, len(srcUsers))
	for i := range srcUsers {
		work := t.TempDir()
		cmd, err := mbsyncCommand(context.Background(), runEnv{srcAddr: srcAddr, dstAddr: dstAddr,
			srcUser: srcUsers[i], dstUser: dstUsers[i], password: password, work: work})
		if err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(work, "mbsync.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmds[i] = cmd
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hwm := watchHWM(cmd.Process.Pid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			peak := hwm.Stop()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("mbsync %d: %v", i+1, err)
			}
			rssSum += peak
			rssMax = max(rssMax, peak)
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}()
	}
	wg.Wait()
	return time.Since(start), cpu, rssSum, rssMax
}
