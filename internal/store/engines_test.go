package store

import (
	"context"
	"os"
	"testing"

	"github.com/mailferry/mailferry/internal/testenv"
)

// pg is the PostgreSQL cluster this test binary shares (TestMain): every
// store test runs once on SQLite and once on a fresh database of it.
var pg *testenv.PostgresMain

func TestMain(m *testing.M) {
	var stop func()
	pg, stop = testenv.StartPostgresForMain()
	code := m.Run()
	stop()
	os.Exit(code)
}

// eachEngine runs fn as a subtest per engine. open opens the test's
// database (the same one each time it is called, so that a test can close
// and reopen it); what it opens is closed when the subtest ends.
func eachEngine(t *testing.T, fn func(t *testing.T, open func() *Store)) {
	t.Helper()
	run := func(t *testing.T, openOnce func(context.Context) (*Store, error)) {
		fn(t, func() *Store {
			t.Helper()
			s, err := openOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		run(t, func(ctx context.Context) (*Store, error) { return OpenSQLite(ctx, dir) })
	})
	t.Run("postgres", func(t *testing.T) {
		url := pg.Database(t)
		run(t, func(ctx context.Context) (*Store, error) { return OpenPostgres(ctx, url, 0) })
	})
}
