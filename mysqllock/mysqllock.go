package mysqllock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"

	"github.com/go-sql-driver/mysql"

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
	// GetLock: as LeaseRow, and the holder also keeps a GET_LOCK lock on a
	// connection of its own for as long as it holds the lock, so that the
	// lock ends as soon as that connection dies, without waiting for the
	// lease to run out. See the package documentation.
	GetLock
)

func (m Mode) String() string {
	switch m {
	case LeaseRow:
		return "lease"
	case GetLock:
		return "getlock"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults applied when Options leave a field zero.
const (
	// DefaultTable is the lock table of LeaseRow mode.
	DefaultTable = leaserow.DefaultTable
	// DefaultSessionTable is the lock table of GetLock mode: a table of its
	// own, so that the two modes never share rows by accident.
	DefaultSessionTable = leaserow.DefaultSessionTable
)

// Options configure a driver. A nil *Options means all defaults.
type Options struct {
	// Table is the lock table's name (default DefaultTable, or
	// DefaultSessionTable in GetLock mode): a plain SQL identifier,
	// optionally qualified by a database name ("locks.distlock_locks").
	Table string
	// DisableCreateTable skips CREATE TABLE IF NOT EXISTS when opening; the
	// table must then exist (see the package documentation, or run
	// distlock migrate).
	DisableCreateTable bool
	// Mode picks lease-row locks (the default) or GET_LOCK sessions.
	Mode Mode
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Table == "" {
		r.Table = DefaultTable
		if r.Mode == GetLock {
			r.Table = DefaultSessionTable
		}
	}
	return r
}

// Open connects to the MySQL or MariaDB server named by dsn, a
// go-sql-driver/mysql data source name ("user:password@tcp(host:3306)/db"),
// and returns a Client that keeps its locks there. Client.Close closes the
// connections. The table is created unless opts.DisableCreateTable.
func Open(ctx context.Context, dsn string, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := OpenDriver(ctx, dsn, opts)
	return clientopen.Client(leaserow.MySQL.Name, drv, err, clientOpts)
}

// New returns a Client that keeps its locks in the database of db, which the
// caller opened with go-sql-driver/mysql and still owns: Client.Close does
// not close it. In GetLock mode every held lock keeps one of db's
// connections: leave room for them in db.SetMaxOpenConns.
func New(ctx context.Context, db *sql.DB, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(ctx, db, opts)
	return clientopen.Client(leaserow.MySQL.Name, drv, err, clientOpts)
}

// OpenDriver is Open without the Client: the bare driver, for
// distlock.NewClient and conformance harnesses. Its Close closes the
// connections it opened.
func OpenDriver(ctx context.Context, dsn string, opts *Options) (driver.Driver, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", distlock.ErrInvalid, err)
	}
	return openConfig(ctx, cfg, opts)
}

func openConfig(ctx context.Context, cfg *mysql.Config, opts *Options) (driver.Driver, error) {
	// A renewal that matched a row counts it even if the row's expiry did
	// not change (two renewals in one millisecond), which saves the read
	// that would otherwise say which leases are held.
	cfg = cfg.Clone()
	cfg.ClientFoundRows = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", distlock.ErrInvalid, err)
	}
	db := sql.OpenDB(conn)
	o := opts.withDefaults()
	var beacons *sql.DB
	closeDB := db.Close
	if o.Mode == GetLock {
		// Beacon connections have a handle of their own, so that held
		// locks never starve statements of connections.
		beacons = sql.OpenDB(conn)
		beacons.SetMaxIdleConns(2)
		closeDB = func() error { return errors.Join(beacons.Close(), db.Close()) }
	}
	d, err := newDriver(ctx, db, beacons, o, closeDB)
	if err != nil {
		closeDB()
		return nil, err
	}
	return d, nil
}

// NewDriver is New without the Client. Its Close leaves db open.
func NewDriver(ctx context.Context, db *sql.DB, opts *Options) (driver.Driver, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", distlock.ErrInvalid)
	}
	return newDriver(ctx, db, nil, opts.withDefaults(), nil)
}

// The dialects of both modes, with go-sql-driver/mysql's errors classified.
var (
	dialect        = withMySQLErrors(leaserow.MySQL)
	sessionDialect = withMySQLErrors(leaserow.MySQLSession)
)

// getLockBeacon is the GET_LOCK lock of GetLock mode.
var getLockBeacon = leaserow.Beacon{Lock: leaserow.MySQLBeaconLock, Unlock: leaserow.MySQLBeaconUnlock}

func withMySQLErrors(d *leaserow.Dialect) *leaserow.Dialect {
	c := *d
	c.Unavailable = unavailable
	return &c
}

// unavailable reports whether err proves the request never reached the
// server: the dial failed, or the handle is closed.
func unavailable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed"
}

// mysqlDriver is a leaserow Store that closes what it opened.
type mysqlDriver struct {
	leaseStore // *leaserow.Store or *leaserow.SessionStore
	closeDB    func() error
}

// leaseStore is what both modes' Stores implement.
type leaseStore interface {
	driver.Driver
	driver.Purger
}

var _ leaseStore = (*mysqlDriver)(nil)

func (d *mysqlDriver) Close() error {
	err := d.leaseStore.Close()
	if d.closeDB != nil {
		err = errors.Join(err, d.closeDB())
	}
	return err
}

func newDriver(ctx context.Context, db, beacons *sql.DB, o Options, closeDB func() error) (driver.Driver, error) {
	if err := leaserow.ValidateTable(o.Table); err != nil {
		return nil, err
	}
	d := dialect
	switch o.Mode {
	case LeaseRow:
	case GetLock:
		d = sessionDialect
	default:
		return nil, fmt.Errorf("%w: unknown mode %v", distlock.ErrInvalid, o.Mode)
	}
	// The first round trip also checks that the server answers.
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, d.Classify(err)
	}
	store, err := leaserow.New(leaserow.Config{DB: db, Dialect: d, Table: o.Table})
	if err != nil {
		return nil, err
	}
	if err := store.Init(ctx, !o.DisableCreateTable); err != nil {
		return nil, err
	}
	if o.Mode == LeaseRow {
		return &mysqlDriver{leaseStore: store, closeDB: closeDB}, nil
	}
	ss, err := leaserow.NewSession(store, getLockBeacon, beacons)
	if err != nil {
		return nil, err
	}
	return &mysqlDriver{leaseStore: ss, closeDB: closeDB}, nil
}
