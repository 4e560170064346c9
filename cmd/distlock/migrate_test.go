package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
)

func TestMigratePrint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want []string // in the output
	}{
		{"sqlite:///tmp/x/locks.db", []string{"CREATE TABLE IF NOT EXISTS distlock_locks (", "WITHOUT ROWID;\n"}},
		{"sqlite:///tmp/x/locks.db?table=my_locks", []string{"CREATE TABLE IF NOT EXISTS my_locks ("}},
		{"postgres://u:secret@db.example:5432/app?sslmode=require", []string{"CREATE TABLE IF NOT EXISTS distlock_locks (", "lock_key     text"}},
		{"postgresql://db.example/app?mode=advisory", []string{"CREATE TABLE IF NOT EXISTS distlock_session_locks ("}},
		{"postgres://db.example/app?table=locks.dl", []string{"CREATE TABLE IF NOT EXISTS locks.dl ("}},
		{"mysql://u:secret@db.example/app", []string{"CREATE TABLE IF NOT EXISTS distlock_locks (", "VARBINARY(1024)", "ENGINE=InnoDB;\n"}},
		{"mysql://db.example/app?mode=getlock&table=gl", []string{"CREATE TABLE IF NOT EXISTS gl ("}},
	} {
		r := runCLI(t, "migrate", "--store", tc.url, "--print")
		if r.code != exitOK {
			t.Errorf("migrate --print %s: %v", tc.url, r)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("migrate --print %s: output lacks %q:\n%s", tc.url, w, r.stdout)
			}
		}
	}
}

func TestMigrateUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate", "--store", "redis://localhost:6379", "--print"},
		{"migrate", "--store", "sqlite:///tmp/x.db?table=a;b", "--print"},
		{"migrate", "--store", "postgres://u:secret@h/db?mode=nope", "--print"},
		{"migrate", "--store", "mysql://u:secret@h/", "--print"},
		{"migrate", "extra"},
	} {
		r := runCLI(t, args...)
		if r.code != exitUsage {
			t.Errorf("%q: want exit %d; got %v", args, exitUsage, r)
		}
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("%q: the password shows in %q", args, r.stderr)
		}
	}
	r := runCLI(t, "help", "migrate")
	if r.code != exitOK || !strings.Contains(r.stdout, "usage: distlock migrate") {
		t.Errorf("help migrate: %v", r)
	}
}

// TestMigrateSQLite creates the table, then a Client that may not create it
// works, and a second migrate is harmless.
func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "locks.db")
	store := "sqlite://" + path + "?table=migrated"
	for range 2 {
		if r := runCLI(t, "migrate", "--store", store); r.code != exitOK || !strings.Contains(r.stdout, "table migrated is ready") {
			t.Fatalf("migrate: %v", r)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM migrated").Scan(&n); err != nil {
		t.Fatalf("the table was not created: %v", err)
	}
	c, err := distlock.Open(t.Context(), store+"&create_table=false")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.TryLock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(t.Context())
}

// TestMigrateServers runs migrate against PostgreSQL and MariaDB, then
// opens each with create_table=false.
func TestMigrateServers(t *testing.T) {
	t.Parallel()
	pg := testserver.StartPostgres(t)
	my := testserver.StartMariaDB(t)
	myURL := "mysql://root@" + my.Addr() + "/test"
	for _, store := range []string{
		pg.DSN(), pg.DSN() + "&mode=advisory",
		myURL, myURL + "?mode=getlock",
	} {
		if r := runCLI(t, "migrate", "--store", store); r.code != exitOK {
			t.Fatalf("migrate %s: %v", store, r)
		}
		sep := "?"
		if strings.Contains(store, "?") {
			sep = "&"
		}
		c, err := distlock.Open(t.Context(), store+sep+"create_table=false")
		if err != nil {
			t.Fatalf("open %s after migrate: %v", store, err)
		}
		l, err := c.TryLock(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		// distlock run on these stores: the child's status, and contention.
		if r := runCLI(t, "run", "--store", store, "--wait", "0", "k", "--", "sh", "-c", "exit 0"); r.code != exitLocked {
			t.Errorf("run on a held key of %s: want exit %d; got %v", store, exitLocked, r)
		}
		l.Unlock(t.Context())
		if r := runCLI(t, "run", "--store", store, "--wait", "0", "k", "--", "sh", "-c", `test -n "$DISTLOCK_FENCE" && exit 3`); r.code != 3 {
			t.Errorf("run on %s: want the child's exit 3; got %v", store, r)
		}
		c.Close()
	}
	if r := runCLI(t, "run", "--store", "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2", "--wait", "0", "k", "--", "true"); r.code != exitUnavailable || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("run on an unreachable postgres: want exit %d without the password; got %v", exitUnavailable, r)
	}
}
