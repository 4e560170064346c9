package mysqllock_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/leaserow"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/mysqllock"
)

// harness opens a driver of its own per NewDriver, as separate processes
// would, and evicts through an admin handle: in lease-row mode by deleting
// the row, in GET_LOCK mode by killing the holder's connection, as an
// operator or a failover would.
type harness struct {
	dsn   string
	opts  mysqllock.Options
	admin *sql.DB
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return mysqllock.OpenDriver(ctx, h.dsn, &h.opts)
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	if h.opts.Mode == mysqllock.GetLock {
		return killHolder(ctx, h.admin, mysqllock.DefaultSessionTable, key)
	}
	_, err := h.admin.ExecContext(ctx, "DELETE FROM distlock_locks WHERE lock_key = ?", key)
	return err
}

// faultHarness is a harness on a server of its own, which it can reach
// through fault proxies (the DSN's address replaced), restart (graceful:
// committed rows stay) and roll back: a snapshot is a copy of the lock
// table's rows, put back over the table's, as a restored backup or a replica
// that missed the latest commits would have them.
type faultHarness struct {
	*harness
	srv *testserver.MariaDB
}

func (h *faultHarness) Addrs() []string {
	cfg, err := mysql.ParseDSN(h.dsn)
	if err != nil {
		panic(err) // the DSN was the server's own
	}
	return []string{cfg.Addr}
}

func (h *faultHarness) NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error) {
	cfg, err := mysql.ParseDSN(h.dsn)
	if err != nil {
		return nil, err
	}
	cfg.Addr = via[0]
	return mysqllock.OpenDriver(ctx, cfg.FormatDSN(), &h.opts)
}

func (h *faultHarness) Restart(ctx context.Context, t *testing.T) error {
	h.srv.Restart()
	return nil
}

func (h *faultHarness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	table := mysqllock.DefaultTable
	if h.opts.Mode == mysqllock.GetLock {
		table = mysqllock.DefaultSessionTable
	}
	return drivertest.SnapshotTable(ctx, h.admin, table)
}

func (h *faultHarness) Lacks() map[string]string {
	if h.srv.External() {
		return map[string]string{"restart": "the server is external (" + testserver.EnvMySQL + "); the test may not restart it"}
	}
	return nil
}

// killHolder kills the connection that holds the beacon of key's holder.
func killHolder(ctx context.Context, admin *sql.DB, table, key string) error {
	var token string
	if err := admin.QueryRowContext(ctx, "SELECT token FROM "+table+" WHERE lock_key = ?", key).Scan(&token); err != nil {
		return err
	}
	var id sql.NullInt64
	if err := admin.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", leaserow.BeaconName(token)).Scan(&id); err != nil {
		return err
	}
	if !id.Valid {
		return nil // already gone
	}
	_, err := admin.ExecContext(ctx, "KILL ?", id.Int64)
	return err
}

// startMariaDB starts a private server (or uses DISTLOCK_TEST_MYSQL) and
// returns its DSN and an admin handle.
func startMariaDB(t testing.TB) (string, *sql.DB) {
	t.Helper()
	m, admin := startMariaDBServer(t)
	return m.DSN(), admin
}

// startMariaDBServer is startMariaDB returning the server's handle.
func startMariaDBServer(t testing.TB) (*testserver.MariaDB, *sql.DB) {
	t.Helper()
	m := testserver.StartMariaDB(t)
	cfg, err := mysql.ParseDSN(m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := sql.OpenDB(conn)
	t.Cleanup(func() { admin.Close() })
	return m, admin
}

// TestConformance runs the suite in each mode on a server of its own, so
// that a mode's restart does not cut the other's cases short.
func TestConformance(t *testing.T) {
	for _, mode := range []mysqllock.Mode{mysqllock.LeaseRow, mysqllock.GetLock} {
		srv, admin := startMariaDBServer(t)
		h := &harness{dsn: srv.DSN(), opts: mysqllock.Options{Mode: mode}, admin: admin}
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			drivertest.RunConformanceTests(t, &faultHarness{harness: h, srv: srv})
		})
	}
}
