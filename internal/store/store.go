// Package store keeps what Mailferry has synced, so that a migration can
// be resumed after a crash without duplicates and a repeated pass copies
// only what is new, and the migration service's projects, mailboxes,
// passes and leases. The embedded default is SQLite (modernc.org/sqlite,
// pure Go) in the data directory; PostgreSQL (pgx) is chosen by a
// postgres:// URL. The schema and the queries are one portable SQL text;
// what differs between the engines is in dialect.go. Migrations are
// embedded and applied on Open (goose).
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the embedded default driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Message states.
const (
	StateIntent  = "intent"  // an APPEND may be under way: outcome unknown
	StateCopied  = "copied"  // the destination acknowledged it
	StatePresent = "present" // it was already on the destination
	StateFailed  = "failed"  // it could not be copied; reason says why
)

// Store is the sync state. Safe for concurrent use.
type Store struct {
	db      *sql.DB
	pool    *pgxpool.Pool // PostgreSQL only; db is then database/sql over it
	dialect *dialect

	recordOnce sync.Once
	recordStmt *sql.Stmt // recordSQL(recordChunk), prepared once
	recordErr  error
}

const dbFile = "mailferry.db"

// ExistsSQLite reports whether dir holds a state database.
func ExistsSQLite(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, dbFile))
	return err == nil
}

// OpenSQLite opens (creating if needed) the state database in dir.
func OpenSQLite(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create data directory: %w", err)
	}
	path := filepath.Join(dir, dbFile)
	if err := PrivateSQLite(path); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	// WAL keeps readers off the writer's back, and a committed
	// transaction survives a crash of the process; synchronous=NORMAL is
	// crash-safe in WAL mode (only a power loss may drop the very last
	// commits, which reconciliation by identity then covers).
	// Transactions begin IMMEDIATE (take the write lock at once): one
	// that read first and wrote later would fail with SQLITE_BUSY_SNAPSHOT
	// when another connection (mailferry user add next to serve) wrote
	// in between, which the busy timeout does not wait out.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a single connection also
	// makes group commits cheap.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, dialect: sqliteDialect}
	if err := s.migrate(ctx, sqliteDialect.goose); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, dialect goose.Dialect) error {
	p, err := goose.NewProvider(dialect, s.db, mustSub(migrations, "migrations"))
	if err != nil {
		return fmt.Errorf("state: prepare schema migrations: %w", err)
	}
	applied, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("state: migrate schema: %w", err)
	}
	if len(applied) > 0 {
		// goose's SQL parser takes a 4 MiB scan buffer per migration
		// file; a fresh database left some 16 MB of garbage that a copy
		// started right after carried in its peak memory.
		debug.FreeOSMemory()
	}
	return nil
}

// DB returns the database, for the packages that keep their own tables in
// it (the service). They use the same portable SQL.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	if s.recordStmt != nil {
		_ = s.recordStmt.Close()
	}
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// Pair records a mailbox pair and returns its key.
func (s *Store) Pair(ctx context.Context, key, source, destination string) error {
	now := time.Now().Unix()
	_, err := s.db.ExecContext(ctx, `INSERT INTO mailbox_pairs (pair_key, source, destination, created_at, last_run_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (pair_key) DO UPDATE SET last_run_at = $4`, key, source, destination, now)
	return wrap("record mailbox pair", err)
}

// FolderState is what is known of one source folder of a pair.
type FolderState struct {
	SrcPath string
	// Cursor is the source connector's change state of the folder after
	// the last pass that settled every message it listed; opaque here.
	Cursor  string
	DstPath string
	// Messages is how many messages the folder held then.
	Messages int64
	Copied   int64
	Present  int64
	Failed   int64
	SyncedAt time.Time
}

const folderCols = `src_path, cursor, dst_path, messages, copied, present, failed, synced_at`

func scanFolder(sc interface{ Scan(...any) error }) (FolderState, error) {
	var f FolderState
	var synced int64
	err := sc.Scan(&f.SrcPath, &f.Cursor, &f.DstPath, &f.Messages, &f.Copied, &f.Present, &f.Failed, &synced)
	f.SyncedAt = time.Unix(synced, 0)
	return f, err
}

// Folder returns the state of one folder; ok is false when unknown.
func (s *Store) Folder(ctx context.Context, pair, srcPath string) (f FolderState, ok bool, err error) {
	f, err = scanFolder(s.db.QueryRowContext(ctx, `SELECT `+folderCols+` FROM folder_cursors WHERE pair_key = $1 AND src_path = $2`, pair, srcPath))
	if errors.Is(err, sql.ErrNoRows) {
		return FolderState{}, false, nil
	}
	if err != nil {
		return f, false, wrap("read folder state", err)
	}
	return f, true, nil
}

// Folders lists every folder state of a pair, for `mailferry status`.
func (s *Store) Folders(ctx context.Context, pair string) ([]FolderState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+folderCols+` FROM folder_cursors WHERE pair_key = $1 ORDER BY src_path`, pair)
	if err != nil {
		return nil, wrap("list folder states", err)
	}
	defer rows.Close()
	var out []FolderState
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, wrap("list folder states", err)
		}
		out = append(out, f)
	}
	return out, wrap("list folder states", rows.Err())
}

// SaveFolder stores a folder's state after a pass over it completed.
func (s *Store) SaveFolder(ctx context.Context, pair string, f FolderState) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO folder_cursors (pair_key, src_path, cursor, dst_path, messages, copied, present, failed, synced_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (pair_key, src_path) DO UPDATE SET cursor = $3, dst_path = $4, messages = $5, copied = $6, present = $7,
			failed = $8, synced_at = $9`,
		pair, f.SrcPath, f.Cursor, f.DstPath, f.Messages, f.Copied, f.Present, f.Failed, time.Now().Unix())
	return wrap("save folder state", err)
}

// ForgetFolder drops what is known of a folder's messages and its
// cursor, after the source connector said the IDs recorded under it mean
// nothing any more (an IMAP UIDVALIDITY change, a rewritten mbox file).
func (s *Store) ForgetFolder(ctx context.Context, pair, srcPath string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("forget folder", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM items WHERE pair_key = $1 AND src_path = $2`, pair, srcPath); err != nil {
		return wrap("forget folder", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM folder_cursors WHERE pair_key = $1 AND src_path = $2`, pair, srcPath); err != nil {
		return wrap("forget folder", err)
	}
	return wrap("forget folder", tx.Commit())
}

// MessageRecord is one message's entry. IDs are the connectors' own,
// opaque here.
type MessageRecord struct {
	SrcPath  string
	SrcID    string
	Identity string
	State    string
	DstPath  string
	// DstID is the copy's ID on the destination when it reported one
	// (IMAP APPENDUID); empty otherwise.
	DstID  string
	Reason string
	// Flags are the flags set on the destination copy, space-separated.
	Flags string
	// Bytes says how a copy's bytes were stored: BytesExact, BytesRebuilt
	// or "" (not known).
	Bytes string
}

// How a copy's bytes were stored (MessageRecord.Bytes).
const (
	BytesExact   = "exact"   // the destination keeps the source's bytes
	BytesRebuilt = "rebuilt" // rebuilt from the content (AppendResult.Rebuilt)
)

// Record writes many message entries in one transaction (group commit):
// the engine batches intents before APPENDs and results after them, so a
// migration costs a few commits per second, not one per message.
func (s *Store) Record(ctx context.Context, pair string, recs []MessageRecord) error {
	if len(recs) == 0 {
		return nil
	}
	// One statement carries many rows: a statement per row spent most of
	// the time binding parameters (a fifth of a copy's CPU). Within one
	// statement a row may be written once only (PostgreSQL refuses to
	// update a row twice in one ON CONFLICT), so the last entry per
	// message wins, as it would row by row.
	type key struct{ path, id string }
	last := make(map[key]int, len(recs))
	for i, r := range recs {
		last[key{r.SrcPath, r.SrcID}] = i
	}
	rows := recs
	if len(last) < len(recs) {
		rows = make([]MessageRecord, 0, len(last))
		for i, r := range recs {
			if last[key{r.SrcPath, r.SrcID}] == i {
				rows = append(rows, r)
			}
		}
	}
	// Prepared outside any transaction: the database may have a single
	// connection, which the transaction then holds.
	// Not under ctx: a cancelled first call must not spoil it for good.
	s.recordOnce.Do(func() { s.recordStmt, s.recordErr = s.db.Prepare(s.dialect.bind(recordSQL(recordChunk))) })
	if s.recordErr != nil {
		return wrap("record messages", s.recordErr)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("record messages", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	now := time.Now().Unix()
	args := make([]any, 0, recordChunk*recordColumns)
	for len(rows) > 0 {
		n := min(len(rows), recordChunk)
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, pair, r.SrcPath, r.SrcID, r.Identity, r.State, r.DstPath, r.DstID, r.Reason, r.Flags, r.Bytes, now)
		}
		var err error
		if n == recordChunk {
			_, err = tx.StmtContext(ctx, s.recordStmt).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, s.dialect.bind(recordSQL(n)), args...)
		}
		if err != nil {
			return wrap("record messages", err)
		}
		rows = rows[n:]
	}
	return wrap("record messages", tx.Commit())
}

// Rows per INSERT in Record, and the columns of each: 64 x 11 parameters
// stay far below SQLite's (32,766) and PostgreSQL's (65,535) limits.
const (
	recordChunk   = 64
	recordColumns = 11
)

// recordSQL is Record's INSERT for n rows. Its parameters are positional
// ('?'): SQLite looks numbered ones ($1, $2, ...) up by name, in time
// that grows with their count, which made a 64-row statement slower than
// 64 single-row ones (BenchmarkRecord). The dialect numbers them for
// PostgreSQL.
func recordSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO items (pair_key, src_path, src_id, identity, state, dst_path, dst_id, reason, flags, copy_bytes, updated_at) VALUES `)
	writeRows(&b, n, recordColumns)
	b.WriteString(` ON CONFLICT (pair_key, src_path, src_id) DO UPDATE SET identity = excluded.identity,
		state = excluded.state, dst_path = excluded.dst_path, dst_id = excluded.dst_id, reason = excluded.reason,
		flags = excluded.flags, copy_bytes = excluded.copy_bytes, updated_at = excluded.updated_at`)
	return b.String()
}

// writeRows writes n rows of cols positional parameters: (?,?),(?,?).
func writeRows(b *strings.Builder, n, cols int) {
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
}

// lookupChunk bounds the IDs of one Lookup statement.
const lookupChunk = 500

// Lookup returns the entries of these source IDs of a folder, by ID; IDs
// without an entry are absent. The engine asks once per listed batch, so
// that what it holds stays bounded by the batch, not the folder.
func (s *Store) Lookup(ctx context.Context, pair, srcPath string, ids []string) (map[string]MessageRecord, error) {
	out := make(map[string]MessageRecord, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), lookupChunk)
		var q strings.Builder
		// Positional parameters, as in recordSQL.
		q.WriteString(`SELECT src_id, identity, state, dst_path, dst_id, reason, flags, copy_bytes FROM items
			WHERE pair_key = ? AND src_path = ? AND src_id IN (`)
		args := make([]any, 0, n+2)
		args = append(args, pair, srcPath)
		for i, id := range ids[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('?')
			args = append(args, id)
		}
		q.WriteByte(')')
		rows, err := s.db.QueryContext(ctx, s.dialect.bind(q.String()), args...)
		if err != nil {
			return nil, wrap("look up messages", err)
		}
		for rows.Next() {
			r := MessageRecord{SrcPath: srcPath}
			if err := rows.Scan(&r.SrcID, &r.Identity, &r.State, &r.DstPath, &r.DstID, &r.Reason, &r.Flags, &r.Bytes); err != nil {
				rows.Close()
				return nil, wrap("look up messages", err)
			}
			out[r.SrcID] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap("look up messages", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

// Unsettled counts a folder's entries that an interrupted pass left
// (intent) or that failed (to be tried again).
func (s *Store) Unsettled(ctx context.Context, pair, srcPath string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM items WHERE pair_key = $1 AND src_path = $2 AND state IN ('intent', 'failed')`,
		pair, srcPath).Scan(&n)
	return n, wrap("count unsettled messages", err)
}

// CountStates counts a pair's message entries by state.
func (s *Store) CountStates(ctx context.Context, pair string) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM items WHERE pair_key = $1 GROUP BY state`, pair)
	if err != nil {
		return nil, wrap("count messages", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count messages", err)
		}
		out[st] = n
	}
	return out, wrap("count messages", rows.Err())
}

// PairInfo describes a stored mailbox pair.
type PairInfo struct {
	Key, Source, Destination string
	CreatedAt, LastRunAt     time.Time
}

// Pairs lists every mailbox pair.
func (s *Store) Pairs(ctx context.Context) ([]PairInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT pair_key, source, destination, created_at, last_run_at FROM mailbox_pairs ORDER BY source, destination`)
	if err != nil {
		return nil, wrap("list mailbox pairs", err)
	}
	defer rows.Close()
	var out []PairInfo
	for rows.Next() {
		var p PairInfo
		var c, l int64
		if err := rows.Scan(&p.Key, &p.Source, &p.Destination, &c, &l); err != nil {
			return nil, wrap("list mailbox pairs", err)
		}
		p.CreatedAt, p.LastRunAt = time.Unix(c, 0), time.Unix(l, 0)
		out = append(out, p)
	}
	return out, wrap("list mailbox pairs", rows.Err())
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if busy(err) {
		return fmt.Errorf("state: %s: the state database is in use by another mailferry process: %w", op, err)
	}
	return fmt.Errorf("state: %s: %w", op, err)
}

// Records streams every entry of a folder, in no particular order. fn
// must not use the store (the database may have one connection, which
// the stream holds).
func (s *Store) Records(ctx context.Context, pair, srcPath string, fn func(MessageRecord) error) error {
	return s.records(ctx, `SELECT src_id, identity, state, dst_path, dst_id, reason, flags, copy_bytes FROM items
		WHERE pair_key = $1 AND src_path = $2`, pair, srcPath, fn)
}

// Copied streams the entries of messages this tool copied from a
// folder, in no particular order; fn must not use the store. Flag sync
// and --delete-missing walk them.
func (s *Store) Copied(ctx context.Context, pair, srcPath string, fn func(MessageRecord) error) error {
	return s.records(ctx, `SELECT src_id, identity, state, dst_path, dst_id, reason, flags, copy_bytes FROM items
		WHERE pair_key = $1 AND src_path = $2 AND state = 'copied'`, pair, srcPath, fn)
}

func (s *Store) records(ctx context.Context, query, pair, srcPath string, fn func(MessageRecord) error) error {
	rows, err := s.db.QueryContext(ctx, query, pair, srcPath)
	if err != nil {
		return wrap("read message entries", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := MessageRecord{SrcPath: srcPath}
		if err := rows.Scan(&r.SrcID, &r.Identity, &r.State, &r.DstPath, &r.DstID, &r.Reason, &r.Flags, &r.Bytes); err != nil {
			return wrap("read message entries", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("read message entries", rows.Err())
}

// SetFlags records the flags now on the destination copies, by source ID.
func (s *Store) SetFlags(ctx context.Context, pair, srcPath string, flags map[string]string) error {
	if len(flags) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("record flags", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	stmt, err := tx.PrepareContext(ctx, `UPDATE items SET flags = $1, updated_at = $2 WHERE pair_key = $3 AND src_path = $4 AND src_id = $5`)
	if err != nil {
		return wrap("record flags", err)
	}
	defer stmt.Close()
	now := time.Now().Unix()
	for id, f := range flags {
		if _, err := stmt.ExecContext(ctx, f, now, pair, srcPath, id); err != nil {
			return wrap("record flags", err)
		}
	}
	return wrap("record flags", tx.Commit())
}

// Forget removes message entries: their copies were deleted, or their
// source messages are gone.
func (s *Store) Forget(ctx context.Context, pair, srcPath string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("forget messages", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM items WHERE pair_key = $1 AND src_path = $2 AND src_id = $3`)
	if err != nil {
		return wrap("forget messages", err)
	}
	defer stmt.Close()
	for _, id := range ids {
		if _, err := stmt.ExecContext(ctx, pair, srcPath, id); err != nil {
			return wrap("forget messages", err)
		}
	}
	return wrap("forget messages", tx.Commit())
}

// FolderPlan is the recorded destination of one source folder of a pair.
// A pass decides it the first time it meets the folder and every later
// pass follows it, so that a folder keeps its destination whatever the
// destination's folder list looks like by then.
type FolderPlan struct {
	SrcPath string
	// Dst is the destination path, one segment per element.
	Dst []string
	// DstRole is the special use the destination folder was created
	// with, when Mailferry created it for a role.
	DstRole string
	// Why is the reason shown to users, e.g. `special use \Sent`.
	Why string
	// Mapped is what the user's --map rules made of the source path when
	// the plan was decided; nil when no rule matched.
	Mapped    []string
	DecidedAt time.Time
}

// FolderPlans returns every recorded plan of a pair, by source path.
func (s *Store) FolderPlans(ctx context.Context, pair string) (map[string]FolderPlan, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT src_path, dst_path, dst_role, reason, mapped, decided_at
		FROM folder_plans WHERE pair_key = $1`, pair)
	if err != nil {
		return nil, wrap("read folder plans", err)
	}
	defer rows.Close()
	out := map[string]FolderPlan{}
	for rows.Next() {
		var p FolderPlan
		var dst, mapped string
		var at int64
		if err := rows.Scan(&p.SrcPath, &dst, &p.DstRole, &p.Why, &mapped, &at); err != nil {
			return nil, wrap("read folder plans", err)
		}
		if err := json.Unmarshal([]byte(dst), &p.Dst); err != nil {
			return nil, wrap("read folder plans", fmt.Errorf("folder %q: destination %q: %w", p.SrcPath, dst, err))
		}
		if mapped != "" {
			if err := json.Unmarshal([]byte(mapped), &p.Mapped); err != nil {
				return nil, wrap("read folder plans", fmt.Errorf("folder %q: mapping %q: %w", p.SrcPath, mapped, err))
			}
		}
		p.DecidedAt = time.Unix(at, 0)
		out[p.SrcPath] = p
	}
	return out, wrap("read folder plans", rows.Err())
}

// SaveFolderPlans records plans (new ones, or ones a changed mapping rule
// replaced) in one transaction.
func (s *Store) SaveFolderPlans(ctx context.Context, pair string, plans []FolderPlan) error {
	if len(plans) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("save folder plans", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	now := time.Now().Unix()
	for _, p := range plans {
		dst, err := json.Marshal(p.Dst)
		if err != nil {
			return wrap("save folder plans", err)
		}
		mapped := ""
		if p.Mapped != nil {
			b, err := json.Marshal(p.Mapped)
			if err != nil {
				return wrap("save folder plans", err)
			}
			mapped = string(b)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO folder_plans (pair_key, src_path, dst_path, dst_role, reason, mapped, decided_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (pair_key, src_path) DO UPDATE SET dst_path = $3, dst_role = $4, reason = $5, mapped = $6, decided_at = $7`,
			pair, p.SrcPath, string(dst), p.DstRole, p.Why, mapped, now); err != nil {
			return wrap("save folder plans", err)
		}
	}
	return wrap("save folder plans", tx.Commit())
}
