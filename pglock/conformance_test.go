package pglock_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/internal/leaserow"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/pglock"
)

// harness opens a driver of its own per NewDriver, as separate processes
// would, and evicts through an admin pool: in lease-row mode by deleting
// the row, in advisory mode by terminating the holder's session, as an
// operator or a failover would.
type harness struct {
	dsn   string
	opts  pglock.Options
	admin *pgxpool.Pool
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return pglock.OpenDriver(ctx, h.dsn, &h.opts)
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	if h.opts.Mode == pglock.Advisory {
		return terminateHolder(ctx, h.admin, pglock.DefaultSessionTable, key)
	}
	_, err := h.admin.Exec(ctx, "DELETE FROM distlock_locks WHERE lock_key = $1", key)
	return err
}

// terminateHolder ends the session that holds the beacon of key's holder.
func terminateHolder(ctx context.Context, admin *pgxpool.Pool, table, key string) error {
	var token string
	if err := admin.QueryRow(ctx, "SELECT token FROM "+table+" WHERE lock_key = $1", key).Scan(&token); err != nil {
		return err
	}
	id := uint64(leaserow.BeaconID(token))
	_, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(id>>32), int64(id&0xffffffff))
	return err
}

// startPostgres starts a private server (or uses DISTLOCK_TEST_POSTGRES)
// and returns its DSN and an admin pool.
func startPostgres(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	pg := testserver.StartPostgres(t)
	admin, err := pgxpool.New(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	return pg.DSN(), admin
}

func TestConformance(t *testing.T) {
	dsn, admin := startPostgres(t)
	for _, mode := range []pglock.Mode{pglock.LeaseRow, pglock.Advisory} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel() // the modes use different tables
			h := &harness{dsn: dsn, opts: pglock.Options{Mode: mode}, admin: admin}
			drivertest.RunConformanceTests(t, h)
		})
	}
}
