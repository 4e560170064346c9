package pglock_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

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
	dsn      string
	opts     pglock.Options
	admin    *pgxpool.Pool
	sqlAdmin *sql.DB // admin through database/sql
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
	_, err := h.admin.Exec(ctx, "DELETE FROM "+h.table()+" WHERE lock_key = $1", key)
	return err
}

// table is the harness's lock table.
func (h *harness) table() string {
	switch {
	case h.opts.Table != "":
		return h.opts.Table
	case h.opts.Mode == pglock.Advisory:
		return pglock.DefaultSessionTable
	}
	return pglock.DefaultTable
}

// faultHarness is a harness on a server of its own, which it can reach
// through fault proxies (the DSN's host and port replaced), restart
// (graceful: committed rows stay) and roll back: a snapshot is a copy of the
// lock table's rows, put back over the table's, as a restored backup or a
// replica that missed the latest commits would have them.
type faultHarness struct {
	*harness
	srv *testserver.Postgres
}

func (h *faultHarness) Addrs() []string {
	cfg, err := pgx.ParseConfig(h.dsn)
	if err != nil {
		panic(err) // the DSN was the server's own
	}
	return []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
}

func (h *faultHarness) NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error) {
	dsn, err := withAddr(h.dsn, via[0])
	if err != nil {
		return nil, err
	}
	return pglock.OpenDriver(ctx, dsn, &h.opts)
}

func (h *faultHarness) Restart(ctx context.Context, t *testing.T) error {
	h.srv.Restart()
	return nil
}

func (h *faultHarness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	return drivertest.SnapshotTable(ctx, h.sqlAdmin, h.table())
}

func (h *faultHarness) Lacks() map[string]string {
	if h.srv.External() {
		return map[string]string{"restart": "the server is external (" + testserver.EnvPostgres + "); the test may not restart it"}
	}
	return nil
}

// withAddr returns dsn with its host and port replaced by addr's, in URL or
// keyword form.
func withAddr(dsn, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Host = addr
		return u.String(), nil
	}
	return dsn + " host=" + host + " port=" + port, nil // the last of a keyword wins
}

// terminateHolder ends the session that holds the beacon of key's holder.
func terminateHolder(ctx context.Context, admin *pgxpool.Pool, table, key string) error {
	var token string
	if err := admin.QueryRow(ctx, "SELECT token FROM "+table+" WHERE lock_key = $1", key).Scan(&token); err != nil {
		return err
	}
	id := uint64(leaserow.BeaconID(token))
	const beacon = `FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2`
	hi, lo := int64(id>>32), int64(id&0xffffffff)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) "+beacon, hi, lo); err != nil {
		return err
	}
	// The backend exits, and its advisory locks go, a moment after
	// pg_terminate_backend returns: the eviction is done only then.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) "+beacon, hi, lo).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the holder's session still holds its beacon 5s after pg_terminate_backend")
		}
	}
}

// startPostgres starts a private server (or uses DISTLOCK_TEST_POSTGRES)
// and returns its DSN and an admin pool.
func startPostgres(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	pg, admin := startPostgresServer(t)
	return pg.DSN(), admin
}

// startPostgresServer is startPostgres returning the server's handle.
func startPostgresServer(t testing.TB) (*testserver.Postgres, *pgxpool.Pool) {
	t.Helper()
	pg := testserver.StartPostgres(t)
	admin, err := pgxpool.New(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	return pg, admin
}

// TestConformance runs the suite in each mode on a server of its own, so
// that a mode's restart does not cut the other's cases short.
func TestConformance(t *testing.T) {
	for _, mode := range []pglock.Mode{pglock.LeaseRow, pglock.Advisory} {
		srv, admin := startPostgresServer(t)
		sqlAdmin := stdlib.OpenDBFromPool(admin)
		t.Cleanup(func() { sqlAdmin.Close() })
		h := &harness{dsn: srv.DSN(), opts: pglock.Options{Mode: mode}, admin: admin, sqlAdmin: sqlAdmin}
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			drivertest.RunConformanceTests(t, &faultHarness{harness: h, srv: srv})
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
