package once_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/once"
)

// backend is one database the behaviour table runs on.
type backend struct {
	name     string
	database once.Database
	// connector returns a fresh connector to the shared database; victim
	// connections are the ones kill tests may end.
	connector func(t testing.TB, victim bool) driver.Connector
	// admin is a connection of the test's own, never killed.
	admin *sql.DB
	// lifecycle, for pause tests; nil without a private server (SQLite).
	server interface {
		Pause()
		Resume()
	}
	// killVictims ends the server sessions of every victim connection and
	// returns how many it ended.
	killVictims func(ctx context.Context) (int, error)
	// blockedVictim returns the session id of a victim statement waiting
	// for a row lock, or 0.
	blockedVictim func(ctx context.Context) (int64, error)
	// killSession ends one session.
	killSession func(ctx context.Context, id int64) error
	// forUpdate is the row-lock statement for the admin's transaction.
	forUpdate string
	// url opens the same database with once.Open.
	url string
}

// openDB opens a *sql.DB of its own, as a separate process would have, and
// closes it when the test ends.
func (b *backend) openDB(t testing.TB, victim bool, in *injector) *sql.DB {
	t.Helper()
	c := b.connector(t, victim)
	if in != nil {
		c = &faultConnector{inner: c, in: in}
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// guard makes a Guard over a fresh *sql.DB, closed when the test ends.
func (b *backend) guard(t testing.TB, opts ...once.Option) *once.Guard {
	t.Helper()
	return b.guardOn(t, b.openDB(t, false, nil), opts...)
}

func (b *backend) guardOn(t testing.TB, db *sql.DB, opts ...once.Option) *once.Guard {
	t.Helper()
	g, err := once.New(db, b.database, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

func sqliteBackend(t testing.TB) *backend {
	path := filepath.Join(t.TempDir(), "once.db")
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	b := &backend{
		name:     "sqlite",
		database: once.SQLite,
		url:      "sqlite://" + filepath.ToSlash(path),
		connector: func(t testing.TB, victim bool) driver.Connector {
			c, err := sqlite.NewConnector(dsn)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}
	b.admin = b.openDB(t, false, nil)
	return b
}

func postgresBackend(t testing.TB, srv *testserver.Postgres) *backend {
	const victimApp = "once_victim"
	connector := func(t testing.TB, victim bool) driver.Connector {
		u, err := url.Parse(srv.DSN())
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if victim {
			q.Set("application_name", victimApp)
		} else {
			q.Set("application_name", "once_test")
		}
		u.RawQuery = q.Encode()
		cfg, err := pgx.ParseConfig(u.String())
		if err != nil {
			t.Fatal(err)
		}
		return stdlib.GetConnector(*cfg)
	}
	b := &backend{name: "postgres", database: once.Postgres, connector: connector, server: srv, url: srv.DSN(),
		forUpdate: "SELECT once_key FROM %s WHERE once_key = $1 FOR UPDATE"}
	b.admin = b.openDB(t, false, nil)
	b.killVictims = func(ctx context.Context) (int, error) {
		var n int
		err := b.admin.QueryRowContext(ctx,
			`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) AS k`, victimApp).Scan(&n)
		return n, err
	}
	b.blockedVictim = func(ctx context.Context) (int64, error) {
		var pid int64
		err := b.admin.QueryRowContext(ctx,
			`SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' LIMIT 1`, victimApp).Scan(&pid)
		if err == sql.ErrNoRows {
			return 0, nil
		}
		return pid, err
	}
	b.killSession = func(ctx context.Context, id int64) error {
		_, err := b.admin.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, id)
		return err
	}
	return b
}

func mariadbBackend(t testing.TB, srv *testserver.MariaDB) *backend {
	const victimUser = "once_victim"
	base, err := mysql.ParseDSN(srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	connector := func(t testing.TB, victim bool) driver.Connector {
		cfg := base.Clone()
		if victim {
			cfg.User, cfg.Passwd = victimUser, "victim"
		}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	myURL := url.URL{Scheme: "mysql", Host: base.Addr, Path: "/" + base.DBName}
	if base.Passwd != "" {
		myURL.User = url.UserPassword(base.User, base.Passwd)
	} else {
		myURL.User = url.User(base.User)
	}
	b := &backend{name: "mariadb", database: once.MySQL, connector: connector, server: srv, url: myURL.String(),
		forUpdate: "SELECT once_key FROM %s WHERE once_key = ? FOR UPDATE"}
	b.admin = b.openDB(t, false, nil)
	ctx := t.Context()
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS '" + victimUser + "'@'%' IDENTIFIED BY 'victim'",
		"GRANT ALL ON `" + base.DBName + "`.* TO '" + victimUser + "'@'%'",
	} {
		if _, err := b.admin.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	b.killVictims = func(ctx context.Context) (int, error) {
		rows, err := b.admin.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?`, victimUser)
		if err != nil {
			return 0, err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		n := 0
		for _, id := range ids {
			if _, err := b.admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err == nil {
				n++
			}
		}
		return n, nil
	}
	b.blockedVictim = func(ctx context.Context) (int64, error) {
		var id int64
		err := b.admin.QueryRowContext(ctx,
			`SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND IN ('Query', 'Execute') AND INFO LIKE '%once_key%' AND TIME_MS > 50 LIMIT 1`, victimUser).Scan(&id)
		if err == sql.ErrNoRows {
			return 0, nil
		}
		return id, err
	}
	b.killSession = func(ctx context.Context, id int64) error {
		_, err := b.admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
		return err
	}
	return b
}

// within runs f with a timeout context.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
