package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

// TestClusterSurvivesAKilledWorker is the scale-out service on
// PostgreSQL: one API process (mailferry serve --no-workers) and three
// worker processes (mailferry worker) on one database, two Dovecot
// instances, twelve mailbox pairs. One worker is killed with SIGKILL in
// the middle of the pass. Every mailbox completes, its copy verifies
// exact (bytes, flags, dates, folders; nothing twice), the killed
// worker's mailboxes are taken over by the others, the API process shows
// the workers' progress (it runs none), and the per-server limit holds
// across all the workers, counted where the servers see the connections.
func TestClusterSurvivesAKilledWorker(t *testing.T) {
	pg := testenv.StartPostgres(t)
	dbURL := pg.NewDatabase(t, "pgx")
	bin := filepath.Join(t.TempDir(), "mailferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	// Each Dovecot is reached only through a proxy that counts the
	// connections it gets, whichever worker they come from.
	srcCount, dstCount := testenv.StartCountingProxy(t, src.Addr()), testenv.StartCountingProxy(t, dst.Addr())
	// 40 ms of round trip (a provider across the ocean) keeps each
	// mailbox busy long enough to kill a worker in the middle of one.
	srcLag, dstLag := testenv.StartProxy(t, srcCount.Addr), testenv.StartProxy(t, dstCount.Addr)
	srcLag.AddLatency(t, 40)
	dstLag.AddLatency(t, 40)
	var users []string
	for i := range 12 {
		u := fmt.Sprintf("u%02d", i)
		users = append(users, u)
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
		testenv.SeedMailbox(t, src, u, pw, 0, 300+10*i, 1000)
	}
	const (
		hostLimit   = 3 // mailboxes at once per mail server, in the whole cluster
		connections = 2 // per server and mailbox
		leaseTTL    = "3s"
	)
	env := append(os.Environ(), "MAILFERRY_DATABASE_URL="+dbURL, "MAILFERRY_SECRET_KEY="+strings.Repeat("ab", 32))
	common := []string{"--preset", "Cluster Destination=imap://" + dstLag.Addr + "?allow_plaintext=1", "--allow-net", "127.0.0.0/8",
		"--host-limit", fmt.Sprint(hostLimit), "--connections", fmt.Sprint(connections), "--lease-ttl", leaseTTL}
	add := exec.Command(bin, "user", "add", "--email", "owner@example.com", "--data-dir", t.TempDir())
	add.Env = env
	out, err := add.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	token := strings.TrimSpace(string(out))

	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiSrv := &server{t: t, bin: bin, env: env, url: base, log: &syncBuffer{}, args: append([]string{"serve", "--no-workers",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", t.TempDir()}, common...)}
	apiSrv.start()
	procs := []*server{apiSrv}
	defer func() {
		for _, p := range procs {
			p.stop()
			if t.Failed() {
				t.Logf("%s log:\n%s", strings.Join(p.args[:1], " "), p.log.String())
			}
		}
	}()
	workers := map[string]*server{}
	for i := range 3 {
		name := fmt.Sprintf("worker-%d", i+1)
		mport := freePort(t)
		w := &server{t: t, bin: bin, env: env, url: fmt.Sprintf("http://127.0.0.1:%d", mport), log: &syncBuffer{},
			args: append([]string{"worker", "--worker-name", name, "--workers", "4", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport),
				"--data-dir", t.TempDir()}, common...)}
		w.start()
		workers[name] = w
		procs = append(procs, w)
	}

	var project struct{ ID string }
	if code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{
		"name": "Cluster", "destination_preset": "cluster-destination",
		"source": map[string]any{"host": "127.0.0.1", "port": portOf(t, srcLag.Addr), "security": "none", "allow_plaintext": true},
	}), &project); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	pp := "/api/projects/" + project.ID
	var csv strings.Builder
	csv.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\r\n")
	for _, u := range users {
		fmt.Fprintf(&csv, "%s@old.example,%s,%s,%s@new.example,%s,%s\r\n", u, u, pw, u, u, pw)
	}
	var imported []mailbox
	if code := api(t, base, token, "POST", pp+"/mailboxes/import", "text/csv", []byte(csv.String()), &imported); code != 201 || len(imported) != 12 {
		t.Fatalf("import: %d, %d mailboxes", code, len(imported))
	}

	var p clusterPass
	if code := api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "full"}), &p); code != 201 {
		t.Fatalf("start pass: %d", code)
	}
	// Kill a worker while it is copying a mailbox, as seen through the
	// API process (which runs no worker itself: what it shows, the
	// workers stored).
	var victim string
	victimParts := map[string]bool{}
	maxMigrating := 0
	deadline := time.Now().Add(2 * time.Minute)
	for victim == "" {
		if time.Now().After(deadline) || p.State == "completed" {
			t.Fatalf("no worker was seen copying: %+v", p)
		}
		api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &p)
		maxMigrating = max(maxMigrating, p.migrating())
		for _, m := range p.Mailboxes {
			if m.Status == "migrating" && m.Worker != "" {
				victim = m.Worker
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range p.Mailboxes {
		if m.Worker == victim && m.Status == "migrating" {
			victimParts[m.MailboxID] = true
		}
	}
	workers[victim].kill()
	t.Logf("killed %s while it was copying %d mailbox(es); up to then at most %d mailboxes were migrating at once", victim,
		len(victimParts), maxMigrating)
	// (After the kill the dead worker's mailboxes still read "migrating"
	// until they are taken over, so the count is only meaningful before.)
	if maxMigrating > hostLimit {
		t.Errorf("%d mailboxes were migrating at once, more than the limit of %d", maxMigrating, hostLimit)
	}

	deadline = time.Now().Add(3 * time.Minute)
	for p.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("the pass did not complete after the kill: %+v\n%s", p, queueState(t, dbURL))
		}
		time.Sleep(50 * time.Millisecond)
		api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &p)
	}
	for _, m := range p.Mailboxes {
		if m.Status != "completed" {
			t.Errorf("mailbox %s: %s (%s)", m.MailboxID, m.Status, m.LastError)
		}
		if sum := m.Copied + m.Present + m.Skipped + m.Failed; sum != m.TotalMsgs {
			t.Errorf("mailbox %s: %d to deal with, %d accounted for", m.MailboxID, m.TotalMsgs, sum)
		}
		if victimParts[m.MailboxID] && (m.Worker == victim || m.Worker == "") {
			t.Errorf("mailbox %s, which %s was copying when it was killed, ended as %q's", m.MailboxID, victim, m.Worker)
		}
	}
	took := false
	for name, w := range workers {
		if name != victim && strings.Contains(w.log.String(), "taking over a mailbox pass whose worker stopped renewing its lease") {
			took = true
		}
	}
	if !took {
		t.Error("no surviving worker logged taking over the killed worker's mailbox")
	}
	for _, u := range users {
		if d := testenv.SameMailbox(testenv.Fingerprint(t, src, u, pw), testenv.Fingerprint(t, dst, u, pw)); d != "" {
			t.Errorf("%s: %s", u, d)
		}
	}
	// The limit: hostLimit mailboxes at once per server, each with up to
	// connections connections, across three workers that could run
	// twelve mailboxes between them.
	limit := int64(hostLimit * connections)
	for _, c := range []struct {
		name string
		p    *testenv.CountingProxy
	}{{"source", srcCount}, {"destination", dstCount}} {
		t.Logf("%s server: at most %d connections at once (limit %d), %d in all", c.name, c.p.Peak(), limit, c.p.Total())
		if c.p.Peak() > limit {
			t.Errorf("the %s server had %d connections at once, more than %d mailboxes × %d connections", c.name, c.p.Peak(), hostLimit, connections)
		}
		if c.p.Peak() <= connections {
			t.Errorf("the %s server never had more than one mailbox's connections (%d): the workers did not run in parallel", c.name, c.p.Peak())
		}
	}
	// Every worker's metrics carry its name.
	for name, w := range workers {
		if name == victim {
			continue
		}
		resp, err := http.Get(w.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `mailferry_messages_copied_total{worker="`+name+`"}`) {
			t.Errorf("%s's metrics lack its worker label", name)
		}
	}
}

type clusterPass struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Mailboxes []struct {
		MailboxID  string `json:"mailbox_id"`
		Status     string `json:"status"`
		Copied     int64  `json:"copied"`
		Present    int64  `json:"already_present"`
		Skipped    int64  `json:"skipped"`
		Failed     int64  `json:"failed"`
		TotalMsgs  int64  `json:"total_messages"`
		LastError  string `json:"last_error"`
		Worker     string `json:"worker"`
		ProgressAt string `json:"progress_at"`
	} `json:"mailboxes"`
}

func (p clusterPass) migrating() int {
	n := 0
	for _, m := range p.Mailboxes {
		if m.Status == "migrating" {
			n++
		}
	}
	return n
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// queueState describes the jobs and the mailboxes' parts, for a failure.
func queueState(t *testing.T, dbURL string) string {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, state, attempt, scheduled_at, attempted_at, args::text, errors::text FROM river_job ORDER BY id`,
		`SELECT mailbox_id, status, job_id, worker, started_at, finished_at FROM mailbox_passes ORDER BY mailbox_id`,
		`SELECT resource, holder, expires_at FROM leases`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", q, err)
			continue
		}
		cols, _ := rows.Columns()
		fmt.Fprintf(&b, "%v\n", cols)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			fmt.Fprintf(&b, "  %v\n", vals)
		}
		rows.Close()
	}
	return b.String()
}

// mailferry serve --no-workers serves the portal and API and runs no job:
// a pass started through it stays queued (its jobs untouched in River's
// table) until a mailferry worker comes, which then runs every mailbox.
// A process that worked would have fetched the jobs within River's fetch
// interval (one second; at once on the insert's notification).
func TestServeNoWorkersRunsNoJobs(t *testing.T) {
	pg := testenv.StartPostgres(t)
	dbURL := pg.NewDatabase(t, "pgx")
	bin := buildMailferry(t)
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	users := []string{"ann", "bob"}
	for i, u := range users {
		src.AddUser(t, u, pw)
		dst.AddUser(t, u, pw)
		testenv.SeedMailbox(t, src, u, pw, 0, 10+5*i, 200)
	}
	env := append(os.Environ(), "MAILFERRY_DATABASE_URL="+dbURL, "MAILFERRY_SECRET_KEY="+strings.Repeat("cd", 32))
	common := []string{"--preset", "Dest=imap://" + dst.Addr() + "?allow_plaintext=1", "--allow-net", "127.0.0.0/8"}
	add := exec.Command(bin, "user", "add", "--email", "owner@example.com", "--data-dir", t.TempDir())
	add.Env = env
	out, err := add.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	token := strings.TrimSpace(string(out))

	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiSrv := &server{t: t, bin: bin, env: env, url: base, log: &syncBuffer{}, args: append([]string{"serve", "--no-workers",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", t.TempDir()}, common...)}
	apiSrv.start()
	procs := []*server{apiSrv}
	defer func() {
		for _, p := range procs {
			p.stop()
			if t.Failed() {
				t.Logf("%s log:\n%s", p.args[0], p.log.String())
			}
		}
	}()

	var project struct{ ID string }
	if code := api(t, base, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{
		"name": "API only", "destination_preset": "dest",
		"source": map[string]any{"host": "127.0.0.1", "port": portOf(t, src.Addr()), "security": "none", "allow_plaintext": true},
	}), &project); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	pp := "/api/projects/" + project.ID
	var csv strings.Builder
	csv.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\r\n")
	for _, u := range users {
		fmt.Fprintf(&csv, "%s@old.example,%s,%s,%s@new.example,%s,%s\r\n", u, u, pw, u, u, pw)
	}
	var imported []mailbox
	if code := api(t, base, token, "POST", pp+"/mailboxes/import", "text/csv", []byte(csv.String()), &imported); code != 201 || len(imported) != len(users) {
		t.Fatalf("import: %d, %d mailboxes", code, len(imported))
	}
	var p clusterPass
	if code := api(t, base, token, "POST", pp+"/passes", "application/json", jsonBody(map[string]any{"kind": "full"}), &p); code != 201 {
		t.Fatalf("start pass: %d", code)
	}

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &p)
		for _, m := range p.Mailboxes {
			if m.Status != "queued" || m.Worker != "" {
				t.Fatalf("with no worker running, mailbox %s is %s (worker %q)", m.MailboxID, m.Status, m.Worker)
			}
		}
		var jobs, touched int
		if err := db.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE state <> 'available' OR attempt > 0) FROM river_job`).
			Scan(&jobs, &touched); err != nil {
			t.Fatal(err)
		}
		if jobs != len(users) || touched != 0 {
			t.Fatalf("River has %d jobs (want %d), %d of them taken by someone: the API process ran jobs\n%s",
				jobs, len(users), touched, queueState(t, dbURL))
		}
	}

	mport := freePort(t)
	w := &server{t: t, bin: bin, env: env, url: fmt.Sprintf("http://127.0.0.1:%d", mport), log: &syncBuffer{},
		args: append([]string{"worker", "--worker-name", "late-worker", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport),
			"--data-dir", t.TempDir()}, common...)}
	w.start()
	procs = append(procs, w)
	deadline := time.Now().Add(2 * time.Minute)
	for p.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("the pass did not complete once a worker ran: %+v\n%s", p, queueState(t, dbURL))
		}
		time.Sleep(100 * time.Millisecond)
		api(t, base, token, "GET", pp+"/passes/"+p.ID, "", nil, &p)
	}
	for _, m := range p.Mailboxes {
		if m.Status != "completed" || m.Worker != "late-worker" {
			t.Errorf("mailbox %s: %s by %q (%s), want completed by late-worker", m.MailboxID, m.Status, m.Worker, m.LastError)
		}
	}
	for _, u := range users {
		if d := testenv.SameMailbox(testenv.Fingerprint(t, src, u, pw), testenv.Fingerprint(t, dst, u, pw)); d != "" {
			t.Errorf("%s: %s", u, d)
		}
	}
}
