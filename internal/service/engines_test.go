package service

import (
	"context"
	"os"
	"testing"

	"github.com/mailferry/mailferry/internal/store"
	"github.com/mailferry/mailferry/internal/testenv"
)

// pg is the PostgreSQL cluster this test binary shares: the service tests
// run once on SQLite and once on PostgreSQL, since every statement they
// reach is the store's on either engine.
var pg *testenv.PostgresMain

func TestMain(m *testing.M) {
	var stop func()
	pg, stop = testenv.StartPostgresForMain()
	code := m.Run()
	stop()
	os.Exit(code)
}

// eachEngine runs fn as a subtest per engine, on a new database.
func eachEngine(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			o := store.Options{Dir: t.TempDir()}
			if engine == "postgres" {
				o.URL = pg.Database(t)
			}
			st, err := store.Open(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			fn(t, st)
		})
	}
}
