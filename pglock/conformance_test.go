package pglock_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

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
	// open makes a driver the way a user would; OpenDriver if nil.
	open func(ctx context.Context, dsn string, opts *pglock.Options) (driver.Driver, error)
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	if h.open != nil {
		return h.open(ctx, h.dsn, &h.opts)
	}
	return pglock.OpenDriver(ctx, h.dsn, &h.opts)
}

// notifyingDriver is what every pglock driver is.
type notifyingDriver interface {
	driver.Driver
	driver.Notifier
}

// closingDriver closes the handle its driver was made on after the driver.
type closingDriver struct {
	notifyingDriver
	closeHandle func()
}

func (d closingDriver) Close() error {
	err := d.notifyingDriver.Close()
	d.closeHandle()
	return err
}

// withOwnHandle adapts NewDriver or NewDBDriver to a harness's open: the
// handle is the caller's, made here and closed after the driver.
func withOwnHandle[H any](open func(context.Context, string) (H, func(), error), newDriver func(context.Context, H, *pglock.Options) (driver.Driver, error)) func(context.Context, string, *pglock.Options) (driver.Driver, error) {
	return func(ctx context.Context, dsn string, opts *pglock.Options) (driver.Driver, error) {
		h, closeHandle, err := open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		d, err := newDriver(ctx, h, opts)
		if err != nil {
			closeHandle()
			return nil, err
		}
		return closingDriver{d.(notifyingDriver), closeHandle}, nil
	}
}

func openPool(ctx context.Context, dsn string) (*pgxpool.Pool, func(), error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	return pool, pool.Close, nil
}

func openDB(ctx context.Context, dsn string) (*sql.DB, func(), error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDB(*cfg)
	return db, func() { db.Close() }, nil
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	if h.opts.Mode == pglock.Advisory {
		return terminateHolder(ctx, h.admin, pglock.DefaultSessionTable, key)
	}
	table := h.opts.Table
	if table == "" {
		table = pglock.DefaultTable
	}
	_, err := h.admin.Exec(ctx, "DELETE FROM "+table+" WHERE lock_key = $1", key)
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

// TestConformanceUserHandles runs the suite on drivers made on the caller's
// own handles: New's *pgxpool.Pool (the hot path on the pool, the rest
// through database/sql over it) and NewDB's *sql.DB (everything through
// database/sql), which Open does not exercise. Lease-row mode; each uses a
// table of its own.
func TestConformanceUserHandles(t *testing.T) {
	dsn, admin := startPostgres(t)
	for _, c := range []struct {
		name  string
		table string
		open  func(context.Context, string, *pglock.Options) (driver.Driver, error)
	}{
		{"New", "distlock_locks_pool", withOwnHandle(openPool, pglock.NewDriver)},
		{"NewDB", "distlock_locks_db", withOwnHandle(openDB, pglock.NewDBDriver)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := &harness{dsn: dsn, opts: pglock.Options{Table: c.table}, admin: admin, open: c.open}
			drivertest.RunConformanceTests(t, h)
		})
	}
}
