package store

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
)

// dialect is everything that differs between the two engines. The
// schema and the queries are otherwise one portable text ($n
// placeholders, ON CONFLICT … DO UPDATE, BIGINT, no AUTOINCREMENT); a
// query that would need an engine's own SQL asks the dialect instead of
// branching where it is written.
type dialect struct {
	// name is "sqlite" or "postgres", as shown to operators.
	name string
	// goose is the migration tool's dialect.
	goose goose.Dialect
	// positional: the engine takes '?' placeholders faster than $n ones.
	// SQLite looks numbered parameters up by name, in time that grows
	// with their count (the 768-parameter message-entry insert,
	// BenchmarkRecord); PostgreSQL knows only $n.
	positional bool
	// nowMillis is an expression for the database server's clock in
	// Unix milliseconds. Leases are compared against the database's
	// clock, never a worker's: the workers' clocks may disagree, and a
	// worker whose clock runs ahead would take over live leases early.
	nowMillis string
	// forUpdate ends a SELECT whose rows the transaction is about to
	// change on the strength of what it read: PostgreSQL locks them
	// (FOR UPDATE); SQLite has one writer at a time and no such clause.
	forUpdate string
}

var (
	sqliteDialect = &dialect{
		name:       "sqlite",
		goose:      goose.DialectSQLite3,
		positional: true,
		// julianday is fractional days since noon in Greenwich on
		// November 24, 4714 B.C.; 2440587.5 is the Unix epoch.
		nowMillis: "CAST((julianday('now') - 2440587.5) * 86400000 AS BIGINT)",
	}
	postgresDialect = &dialect{
		name:  "postgres",
		goose: goose.DialectPostgres,
		// clock_timestamp, not now(): now() is the start of the
		// transaction, which may be older than the statement.
		nowMillis: "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
		forUpdate: " FOR UPDATE",
	}
)

// bind turns a query written with '?' placeholders into this engine's
// form: unchanged for SQLite, $1, $2, … for PostgreSQL. The queries it is
// given have no '?' inside literals.
func (d *dialect) bind(q string) string {
	if d.positional {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + len(q)/4)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// busy reports whether err means the database is locked by another
// writer: SQLite's SQLITE_BUSY after its busy timeout. PostgreSQL waits
// for row locks instead and has no such state.
func busy(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// unique reports whether err is a violated UNIQUE constraint: SQLite's
// SQLITE_CONSTRAINT_UNIQUE (its text), PostgreSQL's SQLSTATE 23505.
func unique(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}
