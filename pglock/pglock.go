package pglock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/clientopen"
	"github.com/distlock/distlock/internal/leaserow"
)

// Mode says how a lock is held.
type Mode int

const (
	// LeaseRow (the default): a lock is a row whose lease expires unless
	// renewed. Nothing is held between statements.
	LeaseRow Mode = iota
	// Advisory: as LeaseRow, and the holder also keeps a session-level
	// advisory lock on a connection of its own for as long as it holds the
	// lock, so that the lock ends as soon as that connection dies, without
	// waiting for the lease to run out. See the package documentation.
	Advisory
)

func (m Mode) String() string {
	switch m {
	case LeaseRow:
		return "lease"
	case Advisory:
		return "advisory"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults applied when Options leave a field zero.
const (
	// DefaultTable is the lock table of LeaseRow mode.
	DefaultTable = leaserow.DefaultTable
	// DefaultSessionTable is the lock table of Advisory mode: a table of its
	// own, so that the two modes never share rows by accident (see Mode).
	DefaultSessionTable = leaserow.DefaultSessionTable
)

// Options configure a driver. A nil *Options means all defaults.
type Options struct {
	// Table is the lock table's name (default DefaultTable, or
	// DefaultSessionTable in Advisory mode): a plain SQL identifier,
	// optionally schema-qualified ("locks.distlock_locks").
	Table string
	// DisableCreateTable skips CREATE TABLE IF NOT EXISTS when opening; the
	// table must then exist (see the package documentation, or run
	// distlock migrate).
	DisableCreateTable bool
	// Mode picks lease-row locks (the default) or advisory-lock sessions.
	Mode Mode
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Table == "" {
		r.Table = DefaultTable
		if r.Mode == Advisory {
			r.Table = DefaultSessionTable
		}
	}
	return r
}

// Open connects to the PostgreSQL server named by connString (a URL or a
// keyword/value string, as pgx parses it, with pgxpool's pool_* settings) and
// returns a Client that keeps its locks there. Client.Close closes the
// connections. The table is created unless opts.DisableCreateTable.
//
// Round trips: the version check, CREATE TABLE IF NOT EXISTS and the column
// check, plus connecting.
func Open(ctx context.Context, connString string, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := OpenDriver(ctx, connString, opts)
	return clientopen.Client(leaserow.Postgres.Name, drv, err, clientOpts)
}

// New returns a Client that keeps its locks in the database of pool, which
// the caller made and still owns: Client.Close does not close it. The
// Client keeps one of the pool's connections between statements (for a
// minute at most), and one more for LISTEN once a Lock call has had to
// wait. In Advisory mode every held lock has a connection of its own,
// opened with the pool's configuration outside the pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(ctx, pool, opts)
	return clientopen.Client(leaserow.Postgres.Name, drv, err, clientOpts)
}

// NewDB is New for a *sql.DB opened with pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib, driver name "pgx"). Locks work through
// any PostgreSQL driver; waking waiters by LISTEN needs pgx's (with another,
// waiters poll).
func NewDB(ctx context.Context, db *sql.DB, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDBDriver(ctx, db, opts)
	return clientopen.Client(leaserow.Postgres.Name, drv, err, clientOpts)
}

// OpenDriver is Open without the Client: the bare driver, for
// distlock.NewClient and conformance harnesses. Its Close closes the
// connections it opened.
func OpenDriver(ctx context.Context, connString string, opts *Options) (driver.Driver, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", distlock.ErrInvalid, err)
	}
	return openConfig(ctx, cfg, opts)
}

// openConfig is OpenDriver with the pool's configuration parsed.
func openConfig(ctx context.Context, cfg *pgxpool.Config, opts *Options) (driver.Driver, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", distlock.ErrInvalid, err)
	}
	db := sqlOverPool(pool)
	closeDB := func() error { err := db.Close(); pool.Close(); return err }
	d, err := newDriver(ctx, db, pool, cfg.ConnConfig, opts.withDefaults(), closeDB)
	if err != nil {
		closeDB()
		return nil, err
	}
	return d, nil
}

// sqlOverPool is the *sql.DB the driver uses, over pool, for what is not on
// the hot path (renewals, the LISTEN connection, table set-up). One pool
// connection stays with it between statements (for a minute at most),
// which spares taking it from the pool and wrapping it on every statement;
// the rest go back at once.
func sqlOverPool(pool *pgxpool.Pool) *sql.DB {
	db := stdlib.OpenDBFromPool(pool)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(time.Minute)
	return db
}

// NewDriver is New without the Client. Its Close leaves pool open.
func NewDriver(ctx context.Context, pool *pgxpool.Pool, opts *Options) (driver.Driver, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil *pgxpool.Pool", distlock.ErrInvalid)
	}
	db := sqlOverPool(pool)
	d, err := newDriver(ctx, db, pool, pool.Config().ConnConfig, opts.withDefaults(), db.Close)
	if err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// NewDBDriver is NewDB without the Client. Its Close leaves db open.
func NewDBDriver(ctx context.Context, db *sql.DB, opts *Options) (driver.Driver, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", distlock.ErrInvalid)
	}
	return newDriver(ctx, db, nil, nil, opts.withDefaults(), nil)
}

// The dialects of both modes, with pgx's errors classified.
var (
	dialect        = withPgxErrors(leaserow.Postgres)
	sessionDialect = withPgxErrors(leaserow.PostgresSession)
)

// postgresBeacon is the advisory lock of Advisory mode.
var postgresBeacon = leaserow.Beacon{Lock: leaserow.PostgresBeaconLock, Unlock: leaserow.PostgresBeaconUnlock}

func withPgxErrors(d *leaserow.Dialect) *leaserow.Dialect {
	c := *d
	c.Unavailable = unavailable
	return &c
}

// unavailable reports whether err proves the request never reached the
// server: pgx says so of errors raised before anything was sent (a refused
// dial, a closed pool).
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, sql.ErrConnDone)
}

// minServerVersion is the oldest PostgreSQL the statements run on: sha256()
// came in 11.
const minServerVersion = 110000

// pgDriver is the lease-row Store plus LISTEN/NOTIFY wake-ups.
type pgDriver struct {
	*leaserow.Store
	listener *listener
	closeDB  func() error
}

// sessionDriver is pgDriver in Advisory mode.
type sessionDriver struct {
	*leaserow.SessionStore
	listener *listener
	closeDB  func() error
}

var (
	_ driver.Notifier = (*pgDriver)(nil)
	_ driver.Notifier = (*sessionDriver)(nil)
)

// newDriver makes the driver over db, with the hot path on pool when it is
// not nil (pool and db then reach the same server). In Advisory mode, beacon connections
// are opened with connCfg outside db's pool, so that held locks never starve
// the pool of connections for renewals; with connCfg nil (the caller's
// *sql.DB) they come from db.
func newDriver(ctx context.Context, db *sql.DB, pool *pgxpool.Pool, connCfg *pgx.ConnConfig, o Options, closeDB func() error) (driver.Driver, error) {
	if err := leaserow.ValidateTable(o.Table); err != nil {
		return nil, err
	}
	var version int
	if err := db.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, dialect.Classify(err)
	}
	if version < minServerVersion {
		return nil, fmt.Errorf("%w: PostgreSQL %d is too old: pglock needs 11 or later", distlock.ErrInvalid, version)
	}
	d := dialect
	if o.Mode == Advisory {
		d = sessionDialect
	} else if o.Mode != LeaseRow {
		return nil, fmt.Errorf("%w: unknown mode %v", distlock.ErrInvalid, o.Mode)
	}
	cfg := leaserow.Config{DB: db, Dialect: d, Table: o.Table}
	if pool != nil {
		cfg.Native = native{pool}
	}
	store, err := leaserow.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := initStore(ctx, store, !o.DisableCreateTable); err != nil {
		return nil, err
	}
	if o.Mode == LeaseRow {
		return &pgDriver{Store: store, listener: newListener(db), closeDB: closeDB}, nil
	}
	var beacons *sql.DB
	if connCfg != nil {
		beacons = stdlib.OpenDB(*connCfg.Copy())
		beacons.SetMaxIdleConns(2)
		closeDB = closeBoth(beacons.Close, closeDB)
	}
	ss, err := leaserow.NewSession(store, postgresBeacon, beacons)
	if err != nil {
		if beacons != nil {
			beacons.Close()
		}
		return nil, err
	}
	return &sessionDriver{SessionStore: ss, listener: newListener(db), closeDB: closeDB}, nil
}

// closeBoth returns a func that runs a, then b if not nil.
func closeBoth(a, b func() error) func() error {
	return func() error {
		err := a()
		if b != nil {
			err = errors.Join(err, b())
		}
		return err
	}
}

// initStore runs Init, once more if it fails with the error PostgreSQL gives
// when two sessions run the same CREATE TABLE IF NOT EXISTS at once: both
// see no table, and one fails on the catalog's unique index.
func initStore(ctx context.Context, store *leaserow.Store, create bool) error {
	err := store.Init(ctx, create)
	var pe *pgconn.PgError
	if create && errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07") {
		err = store.Init(ctx, create)
	}
	return err
}

// Subscribe implements driver.Notifier: the driver's one LISTEN connection
// listens on the key's channel, which every Release notifies.
func (d *pgDriver) Subscribe(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return d.listener.subscribe(ctx, key)
}

// Close implements driver.Driver: it stops listening and closes what the
// driver opened itself.
func (d *pgDriver) Close() error {
	d.listener.close()
	err := d.Store.Close()
	if d.closeDB != nil {
		err = errors.Join(err, d.closeDB())
	}
	return err
}

// Subscribe implements driver.Notifier, as in LeaseRow mode.
func (d *sessionDriver) Subscribe(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return d.listener.subscribe(ctx, key)
}

// Close implements driver.Driver: it lets go of every session it holds,
// stops listening and closes what the driver opened itself.
func (d *sessionDriver) Close() error {
	d.listener.close()
	err := d.SessionStore.Close()
	if d.closeDB != nil {
		err = errors.Join(err, d.closeDB())
	}
	return err
}
