package testenv

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver NewDatabase uses
)

// Postgres is a throwaway PostgreSQL cluster: its own data directory in a
// temporary directory, listening on a free loopback port and a private
// Unix socket, stopped when the test ends. Like Dovecot it is a real
// server from the Debian package (postgresql), never a fake: the store
// suite runs every test against it and against SQLite.
//
// PostgreSQL refuses to run as root, so under root (CI) the cluster runs as
// the "postgres" system user the package creates; otherwise as the current
// user.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	dir  string
	bin  string
	cred *syscall.Credential
	dbs  atomic.Int64
}

// postgresBinDir finds the server binaries: PATH (Debian does not put
// initdb there), then Debian's versioned directory.
func postgresBinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	// The highest version sorts last for single-digit-free majors (13..17).
	return filepath.Dir(matches[len(matches)-1])
}

// StartPostgres initialises and starts a cluster for t. It takes about a
// second; a package that needs many databases should start one cluster
// (e.g. in TestMain through StartPostgresMain) and call NewDatabase per test.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, cleanup, err := startPostgres()
	if err != nil {
		if errors.Is(err, errPostgresMissing) {
			unavailable(t, "testenv: %v", err)
		}
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(cleanup)
	return p
}

// StartPostgresMain is StartPostgres for TestMain, where there is no
// testing.TB: it returns the cluster and a stop function, or an error. A
// missing PostgreSQL is reported as ErrPostgresMissing so that the caller
// can skip (or fail under MAILFERRY_REQUIRE_SERVERS=1).
func StartPostgresMain() (*Postgres, func(), error) { return startPostgres() }

var errPostgresMissing = errors.New("PostgreSQL server binaries (initdb, postgres) not found; install the Debian package postgresql")

// ErrPostgresMissing is returned by StartPostgresMain when PostgreSQL is
// not installed.
var ErrPostgresMissing = errPostgresMissing

func startPostgres() (*Postgres, func(), error) {
	bin := postgresBinDir()
	if bin == "" {
		return nil, nil, errPostgresMissing
	}
	dir, err := os.MkdirTemp("", "mailferry-pg-")
	if err != nil {
		return nil, nil, err
	}
	p := &Postgres{dir: dir, bin: bin}
	removeDir := func() { _ = os.RemoveAll(dir) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			removeDir()
			return nil, nil, fmt.Errorf("running as root needs the system user \"postgres\" (created by the postgresql package): %w", err)
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err := errors.Join(err1, err2); err != nil {
			removeDir()
			return nil, nil, err
		}
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			removeDir()
			return nil, nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		removeDir()
		return nil, nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Throwaway data: durability settings off, as for Dovecot's
	// mail_fsync=never. Connections are many because River and the store
	// each keep a pool, and several workers may share one cluster.
	conf := strings.Join([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + dir + "'",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"max_connections = 200",
		"shared_buffers = 32MB",
		"log_min_messages = warning",
		"",
	}, "\n")
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			removeDir()
			return nil, nil, err
		}
		out, err := p.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "30",
			"-o", "-p "+strconv.Itoa(port), "start")
		if err == nil {
			p.Port = port
			stop := func() {
				_, _ = p.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
				removeDir()
			}
			return p, stop, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
		// Another process may have taken the port in between: try another.
		if !bytes.Contains(log, []byte("could not bind")) && !bytes.Contains(log, []byte("in use")) {
			break
		}
	}
	removeDir()
	return nil, nil, lastErr
}

func (p *Postgres) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd.CombinedOutput()
}

// URL returns a connection URL for database db (postgres:// form, as
// pgx and the --database flag take it).
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// NewDatabase creates an empty database for t and returns its URL. It is
// dropped when the test ends. open must be a database/sql driver name
// registered by the caller (e.g. "pgx"), used to run CREATE DATABASE.
func (p *Postgres) NewDatabase(t testing.TB, driver string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.dbs.Add(1))
	admin, err := sql.Open(driver, p.URL("postgres"))
	if err != nil {
		t.Fatalf("testenv: postgres: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testenv: postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open(driver, p.URL("postgres"))
		if err != nil {
			return
		}
		defer a.Close()
		// WITH (FORCE) ends sessions a test left open (PostgreSQL 13+).
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			if err == nil || time.Now().After(deadline) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return p.URL(name)
}

// PostgresMain is the cluster one test binary shares: started in TestMain
// (where a missing PostgreSQL cannot yet fail or skip a test), it hands
// each test a fresh database, or fails or skips that test when there is
// no cluster, as StartPostgres would.
type PostgresMain struct {
	pg  *Postgres
	err error
}

// StartPostgresForMain starts the shared cluster. Call it from TestMain
// and call stop after m.Run; it never fails by itself.
func StartPostgresForMain() (m *PostgresMain, stop func()) {
	pg, stop, err := startPostgres()
	if err != nil {
		return &PostgresMain{err: err}, func() {}
	}
	return &PostgresMain{pg: pg}, stop
}

// Database returns the URL of a new, empty database for t, dropped when
// t ends. Without a cluster t skips, or fails under
// MAILFERRY_REQUIRE_SERVERS=1 (and always when the cluster was there but
// would not start).
func (m *PostgresMain) Database(t testing.TB) string {
	t.Helper()
	if m == nil || m.pg == nil {
		err := errPostgresMissing
		if m != nil && m.err != nil {
			err = m.err
		}
		if errors.Is(err, errPostgresMissing) {
			unavailable(t, "testenv: %v", err)
		}
		t.Fatalf("testenv: %v", err)
	}
	return m.pg.NewDatabase(t, "pgx")
}

// Cluster is the shared cluster, or nil when it is not running.
func (m *PostgresMain) Cluster() *Postgres { return m.pg }

// PID is the process ID of the cluster's postmaster (0 if unknown), for
// benchmarks that measure its CPU time: the backends are its children.
func (p *Postgres) PID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
