package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Options choose and tune the database.
type Options struct {
	// URL selects PostgreSQL (postgres://… or postgresql://…, as libpq
	// and pgx take it). Empty selects the embedded SQLite database in
	// Dir.
	URL string
	// Dir is the data directory of the embedded database.
	Dir string
	// MaxConns bounds the PostgreSQL connection pool, unless the URL
	// sets pool_max_conns itself (default 10).
	MaxConns int
}

// IsPostgresURL reports whether u names a PostgreSQL database.
func IsPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// RedactURL is u without its password, for logs and errors.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an unreadable database URL)"
	}
	return p.Redacted()
}

// Open opens the database o names, creating and migrating its schema.
func Open(ctx context.Context, o Options) (*Store, error) {
	switch {
	case o.URL == "":
		return OpenSQLite(ctx, o.Dir)
	case IsPostgresURL(o.URL):
		return OpenPostgres(ctx, o.URL, o.MaxConns)
	}
	return nil, fmt.Errorf("state: database %s: only postgres:// (or postgresql://) URLs are understood; "+
		"leave the database unset for the embedded SQLite database in the data directory", RedactURL(o.URL))
}

// OpenPostgres connects to a PostgreSQL database and migrates its schema.
// Several processes may start at once: the migrations run under an
// advisory lock, one process after the other.
func OpenPostgres(ctx context.Context, rawURL string, maxConns int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's message quotes the URL with the password masked.
		return nil, fmt.Errorf("state: database URL: %w", err)
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		if maxConns <= 0 {
			maxConns = 10
		}
		cfg.MaxConns = int32(maxConns)
	}
	where := RedactURL(rawURL)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state: connect to %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state: connect to %s: %w (is PostgreSQL running there, and does the database exist? "+
			"Check --database or MAILFERRY_DATABASE_URL)", where, err)
	}
	s := &Store{db: stdlib.OpenDBFromPool(pool), pool: pool, dialect: postgresDialect}
	err = s.Locked(ctx, func(ctx context.Context) error { return s.migrate(ctx, postgresDialect.goose) })
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// migrationLock is the advisory lock key under which schema migrations
// run on PostgreSQL ("mailferr" in ASCII).
const migrationLock = 0x6d61696c66657272

// Locked runs fn while holding the database-wide migration lock: on
// PostgreSQL a session advisory lock, so that processes starting together
// migrate one after the other; on SQLite (one process, one connection)
// fn just runs. The jobs package runs River's migrations under it too.
func (s *Store) Locked(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.pool == nil {
		return fn(ctx)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("state: migration lock: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("state: migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)) //nolint:errcheck // ends with the session anyway
	return fn(ctx)
}

// Engine is "sqlite" or "postgres".
func (s *Store) Engine() string { return s.dialect.name }

// Pool is the PostgreSQL connection pool (nil on SQLite), for River's
// pgx driver.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// querier runs statements, outside or inside a transaction, on either
// engine: database/sql for SQLite, pgx for PostgreSQL (whose transactions
// River's pgx driver takes, so that jobs are inserted in the same
// transaction as the rows they work on).
type querier interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (rows, error)
	queryRow(ctx context.Context, q string, args ...any) row
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type row interface{ Scan(dest ...any) error }

type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlQ struct{ c sqlConn }

func (q sqlQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, s, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	r, err := q.c.QueryContext(ctx, s, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (q sqlQ) queryRow(ctx context.Context, s string, args ...any) row {
	return q.c.QueryRowContext(ctx, s, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type pgxConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxQ struct{ c pgxConn }

func (q pgxQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, s, args...)
	return tag.RowsAffected(), err
}

func (q pgxQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	return q.c.Query(ctx, s, args...)
}

func (q pgxQ) queryRow(ctx context.Context, s string, args ...any) row {
	return q.c.QueryRow(ctx, s, args...)
}

// q is the querier outside transactions.
func (s *Store) q() querier {
	if s.pool != nil {
		return pgxQ{s.pool}
	}
	return sqlQ{s.db}
}

// Tx is a transaction of the store. The jobs package inserts River jobs
// in it, through the handle of its engine, so that a pass and its jobs
// are committed together or not at all.
type Tx struct {
	q   querier
	sql *sql.Tx
	pgx pgx.Tx
}

// SQL is the transaction on SQLite (nil on PostgreSQL).
func (t *Tx) SQL() *sql.Tx { return t.sql }

// Pgx is the transaction on PostgreSQL (nil on SQLite).
func (t *Tx) Pgx() pgx.Tx { return t.pgx }

// inTx runs fn in a transaction and commits it if fn returns nil. fn must
// use only tx: on SQLite the store has a single connection, which the
// transaction holds.
func (s *Store) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	if s.pool != nil {
		ptx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		if err := fn(&Tx{q: pgxQ{ptx}, pgx: ptx}); err != nil {
			_ = ptx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		return ptx.Commit(ctx)
	}
	stx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Tx{q: sqlQ{stx}, sql: stx}); err != nil {
		_ = stx.Rollback()
		return err
	}
	return stx.Commit()
}

// ErrNoRows is what a store method returns for a row that is not there.
var ErrNoRows = sql.ErrNoRows

func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.pool != nil {
		return s.pool.Ping(ctx)
	}
	return s.db.PingContext(ctx)
}
