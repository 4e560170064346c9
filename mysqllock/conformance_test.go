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
	return m.DSN(), admin
}

func TestConformance(t *testing.T) {
	dsn, admin := startMariaDB(t)
	for _, mode := range []mysqllock.Mode{mysqllock.LeaseRow, mysqllock.GetLock} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel() // the modes use different tables
			h := &harness{dsn: dsn, opts: mysqllock.Options{Mode: mode}, admin: admin}
			drivertest.RunConformanceTests(t, h)
		})
	}
}
