//go:build linux

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// TestCluster is issue 16's benchmark: one full pass of many mailboxes
// through the scale-out service on PostgreSQL (one mailferry serve
// --no-workers and 1, 2 or 4 mailferry worker processes on this machine),
// next to one mbsync per mailbox run at the same per-host concurrency
// (--host-limit mailboxes at once, the rest waiting their turn), all on
// the same data, runs interleaved.
//
//	MAILFERRY_BENCH_MAILBOXES     mailboxes (default 20)
//	MAILFERRY_BENCH_PER_MAILBOX   messages in each (default 2000)
//	MAILFERRY_BENCH_WORKERS       worker processes per setup (default 1,2,4)
//	MAILFERRY_BENCH_HOST_LIMIT    mailboxes at once per server (default 5)
//
// MAILFERRY_BENCH_RUNS, _STORE and _PEERS (mailferry, mbsync) apply as in
// TestPeers; there is no latency proxy here.
func TestCluster(t *testing.T) {
	if os.Getenv("MAILFERRY_BENCH") != "1" {
		t.Skip("set MAILFERRY_BENCH=1 (scripts/bench)")
	}
	cfg := readBenchConfig(t)
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	count := envInt(t, "MAILFERRY_BENCH_MAILBOXES", 20)
	per := envInt(t, "MAILFERRY_BENCH_PER_MAILBOX", 2000)
	hostLimit := envInt(t, "MAILFERRY_BENCH_HOST_LIMIT", 5)
	var workerCounts []int
	for _, s := range strings.Split(cmpOr(os.Getenv("MAILFERRY_BENCH_WORKERS"), "1,2,4"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 32 {
			t.Fatalf("MAILFERRY_BENCH_WORKERS=%q: want worker counts like 1,2,4", os.Getenv("MAILFERRY_BENCH_WORKERS"))
		}
		workerCounts = append(workerCounts, n)
	}
	started := time.Now()
	out("# Scale-out: worker processes on PostgreSQL")
	out("settings: MAILFERRY_BENCH_MAILBOXES=%d MAILFERRY_BENCH_PER_MAILBOX=%d MAILFERRY_BENCH_WORKERS=%s MAILFERRY_BENCH_HOST_LIMIT=%d MAILFERRY_BENCH_RUNS=%d MAILFERRY_BENCH_STORE=%s",
		count, per, joinInts(workerCounts), hostLimit, cfg.runs, cfg.store)
	out("machine: %s", machineInfo())

	const password = "bench-Secret-1"
	pg := testenv.StartPostgres(t)
	src := testenv.StartDovecot(t, cfg.dovecotOptions())
	dst := testenv.StartDovecot(t, cfg.dovecotOptions())
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
	out("PostgreSQL: %s", toolVersion(filepath.Join(filepath.Dir(postgresBin()), "postgres"), "--version"))

	type setup struct {
		name    string
		workers int // 0: mbsync
	}
	var setups []setup
	if slices.Contains(cfg.peers, "mailferry") {
		for _, n := range workerCounts {
			setups = append(setups, setup{fmt.Sprintf("mailferry, %d worker%s", n, map[bool]string{true: "s"}[n > 1]), n})
		}
	}
	if slices.Contains(cfg.peers, "mbsync") {
		setups = append(setups, setup{fmt.Sprintf("mbsync, %d at a time", hostLimit), 0})
	}
	var bin string
	if len(setups) > 0 && setups[0].workers > 0 {
		bin = buildMailferry(t)
	}
	type result struct {
		wall, toolCPU, pgCPU, srcCPU, dstCPU, machine time.Duration
		complete                                      int
	}
	results := map[string][]result{}
	for run := range cfg.runs {
		for si, s := range setups {
			prefix := fmt.Sprintf("c%d%d-", run+1, si)
			dstUsers := make([]string, count)
			for i := range dstUsers {
				dstUsers[i] = prefix + srcUsers[i]
				dst.AddUser(t, dstUsers[i], password)
			}
			srcPID, dstPID, pgPID := masterPID(src.Dir), masterPID(dst.Dir), pg.PID()
			src0, dst0, pg0, m0 := groupCPU(srcPID), groupCPU(dstPID), treeCPU(pgPID), machineBusy()
			var r result
			if s.workers > 0 {
				r.wall, r.toolCPU = clusterServe(t, bin, pg.NewDatabase(t, "pgx"), s.workers, hostLimit, src.Host, src.Port, dst.Addr(),
					srcUsers, dstUsers, password)
			} else {
				r.wall, r.toolCPU = mbsyncPool(t, hostLimit, src.Addr(), dst.Addr(), srcUsers, dstUsers, password)
			}
			time.Sleep(100 * time.Millisecond) // for the imap processes to exit
			r.srcCPU, r.dstCPU, r.pgCPU, r.machine = groupCPU(srcPID)-src0, groupCPU(dstPID)-dst0, treeCPU(pgPID)-pg0, machineBusy()-m0
			norm := (func([]byte) []byte)(nil)
			if s.workers == 0 {
				norm = stripTUID
			}
			for _, u := range dstUsers {
				p, err := fingerprint(dst.Addr(), u, password, norm)
				if err != nil {
					t.Errorf("%s run %d: verifying %s: %v", s.name, run+1, u, err)
					continue
				}
				if v := compare(srcPrint, p); v.complete() {
					r.complete++
				} else {
					t.Errorf("%s run %d: %s incomplete: %s", s.name, run+1, u, v)
				}
				// The copies are checked: free their memory (tmpfs).
				_ = os.RemoveAll(filepath.Join(dst.Dir, "home", u))
			}
			results[s.name] = append(results[s.name], r)
			out("run %d/%d %-22s %6.1f s, %7.1f msgs/s, %6.2f MB/s, CPU: Mailferry %5.1f s, PostgreSQL %4.1f s, Dovecot src %4.1f s + dst %4.1f s, machine %5.1f s; %d/%d mailboxes complete",
				run+1, cfg.runs, s.name, r.wall.Seconds(), float64(total)/r.wall.Seconds(), float64(totalBytes)/1e6/r.wall.Seconds(),
				r.toolCPU.Seconds(), r.pgCPU.Seconds(), r.srcCPU.Seconds(), r.dstCPU.Seconds(), r.machine.Seconds(), r.complete, count)
		}
	}

	out("\n## Results: %d mailboxes x %d messages (%.1f MB in all), %d mailboxes at once per server, loopback, medians of %d run(s)\n",
		count, sum.messages, float64(totalBytes)/1e6, hostLimit, cfg.runs)
	out("| setup | wall s | msgs/s | MB/s | tool CPU s | PostgreSQL CPU s | Dovecot CPU s, src + dst | machine CPU s (%% of both cores) | mailboxes complete |")
	out("|---|---|---|---|---|---|---|---|---|")
	for _, s := range setups {
		rs := results[s.name]
		med := func(f func(result) time.Duration) time.Duration {
			var xs []time.Duration
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		worst := count
		for _, r := range rs {
			worst = min(worst, r.complete)
		}
		w := med(func(r result) time.Duration { return r.wall })
		pgText := fmt.Sprintf("%.1f", med(func(r result) time.Duration { return r.pgCPU }).Seconds())
		if s.workers == 0 {
			pgText = "—"
		}
		machine := med(func(r result) time.Duration { return r.machine })
		out("| %s | %.1f | %.0f | %.2f | %.1f | %s | %.1f + %.1f | %.1f (%.0f %%) | %d/%d |", s.name, w.Seconds(), float64(total)/w.Seconds(),
			float64(totalBytes)/1e6/w.Seconds(), med(func(r result) time.Duration { return r.toolCPU }).Seconds(), pgText,
			med(func(r result) time.Duration { return r.srcCPU }).Seconds(), med(func(r result) time.Duration { return r.dstCPU }).Seconds(),
			machine.Seconds(), 100*machine.Seconds()/(2*w.Seconds()), worst, count)
	}
	out("\nnotes:\n- mailferry: one mailferry serve --no-workers (the API) and N mailferry worker processes (--workers 10 each, --host-limit %d,\n"+
		"  default --connections) on one PostgreSQL database; one project, the %d mailboxes imported by CSV, one full pass; wall is from\n"+
		"  starting the pass to every mailbox done; tool CPU is all the mailferry processes'.\n"+
		"- mbsync: one process per mailbox, configured as in TestPeers, %d running at any time; wall is until the last exits.\n"+
		"- machine CPU is every process on the machine during the run: more than tool + PostgreSQL + Dovecot means other work shared it.\n"+
		"total time %v", hostLimit, count, hostLimit, time.Since(started).Round(time.Second))
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func postgresBin() string {
	if p, err := exec.LookPath("postgres"); err == nil {
		return p
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) == 0 {
		return "postgres"
	}
	return m[len(m)-1]
}

// clusterServe runs one full pass of every pair through an API process
// and n worker processes on the database at dbURL, and returns its wall
// time and the CPU time of all those processes during the pass.
func clusterServe(t *testing.T, bin, dbURL string, n, hostLimit int, srcHost string, srcPort int, dstAddr string,
	srcUsers, dstUsers []string, password string) (wall, cpu time.Duration) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := append(os.Environ(), "MAILFERRY_DATABASE_URL="+dbURL, "MAILFERRY_SECRET_KEY="+hex.EncodeToString(key))
	common := []string{"--preset", "Bench=imap://" + dstAddr + "?allow_plaintext=1", "--allow-net", "127.0.0.0/8",
		"--host-limit", strconv.Itoa(hostLimit)}
	add := exec.Command(bin, "user", "add", "--email", "bench@example.com", "--data-dir", t.TempDir())
	add.Env = env
	tok, err := add.Output()
	if err != nil {
		t.Fatalf("mailferry user add: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	var procs []*exec.Cmd
	var logs []*bytes.Buffer
	start := func(args ...string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		listen := "--listen"
		if args[0] == "worker" {
			listen = "--metrics-listen"
		}
		cmd := exec.Command(bin, append(append(args, listen, addr, "--data-dir", t.TempDir()), common...)...)
		cmd.Env = env
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, logs = append(procs, cmd), append(logs, &log)
		base := "http://" + addr
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get(base + "/healthz"); err == nil {
				resp.Body.Close()
				return base
			}
			if time.Now().After(deadline) {
				t.Fatalf("mailferry %s did not come up:\n%s", args[0], log.String())
			}
		}
	}
	defer func() {
		for i, cmd := range procs {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("process %d log:\n%s", i, logs[i].String())
			}
		}
	}()
	base := start("serve", "--no-workers")
	for i := range n {
		start("worker", "--worker-name", fmt.Sprintf("bench-%d", i+1))
	}
	call := func(method, path, ctype string, body []byte, outv any) int {
		return testenv.API(t, base, token, method, path, ctype, body, outv)
	}
	body, _ := json.Marshal(map[string]any{"name": "Cluster", "destination_preset": "bench",
		"source": map[string]any{"host": srcHost, "port": srcPort, "security": "none", "allow_plaintext": true}})
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
	if code := call("POST", "/api/projects/"+p.ID+"/mailboxes/import", "text/csv", []byte(csv.String()), &imported); code != 201 {
		t.Fatalf("import: %d", code)
	}
	var ps struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		Mailboxes []struct {
			Status    string `json:"status"`
			LastError string `json:"last_error"`
		} `json:"mailboxes"`
	}
	cpuNow := func() time.Duration {
		var d time.Duration
		for _, c := range procs {
			d += groupCPU(c.Process.Pid)
		}
		return d
	}
	cpu0 := cpuNow()
	t0 := time.Now()
	if code := call("POST", "/api/projects/"+p.ID+"/passes", "application/json", []byte(`{"kind":"full"}`), &ps); code != 201 {
		t.Fatalf("start pass: %d", code)
	}
	for deadline := time.Now().Add(30 * time.Minute); ps.State != "completed" && ps.State != "stopped"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pass not done after 30 minutes: %+v", ps)
		}
		call("GET", "/api/projects/"+p.ID+"/passes/"+ps.ID, "", nil, &ps)
	}
	wall, cpu = time.Since(t0), cpuNow()-cpu0
	for i, m := range ps.Mailboxes {
		if m.Status != "completed" {
			t.Errorf("mailbox %d: %s %s", i, m.Status, m.LastError)
		}
	}
	return wall, cpu
}

// mbsyncPool runs one mbsync per mailbox, at most limit at a time.
func mbsyncPool(t *testing.T, limit int, srcAddr, dstAddr string, srcUsers, dstUsers []string, password string) (wall, cpu time.Duration) {
	t.Helper()
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
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
		sem <- struct{}{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("mbsync %d: %v", i+1, err)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}()
	}
	wg.Wait()
	return time.Since(start), cpu
}
