package testenv

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// TestPostgres starts a real cluster, creates two databases and checks
// that they are separate and that the server is the real thing.
func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	a := pg.NewDatabase(t, "pgx")
	b := pg.NewDatabase(t, "pgx")
	if a == b {
		t.Fatalf("NewDatabase returned the same database twice: %s", a)
	}
	dbA, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	var version string
	if err := dbA.QueryRow("SHOW server_version").Scan(&version); err != nil {
		t.Fatalf("query: %v", err)
	}
	if version == "" {
		t.Fatal("empty server_version")
	}
	if _, err := dbA.Exec("CREATE TABLE only_in_a (x BIGINT)"); err != nil {
		t.Fatal(err)
	}
	dbB, err := sql.Open("pgx", b)
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	var n int
	if err := dbB.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a table created in one test database is visible in another")
	}
	t.Logf("PostgreSQL %s on port %d", version, pg.Port)
}
