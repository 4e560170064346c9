package sqlitelock

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/clientopen"
	"github.com/distlock/distlock/internal/leaserow"
)

// Defaults applied when Options leave a field zero.
const (
	DefaultTable       = leaserow.DefaultTable
	DefaultBusyTimeout = 5 * time.Second
)

// minVersion is the oldest SQLite the statements run on: unixepoch('subsec')
// came in 3.42 (RETURNING in 3.35).
var minVersion = [3]int{3, 42, 0}

// maxOpenConns bounds the pool of a database file this package opens. SQLite
// lets one connection write at a time, and the writes of a process take
// turns at its Gate anyway; a second connection lets a read (Status, a
// read-back) run beside a write. Measured with BenchmarkLockUnlockParallel,
// one, two and four connections are alike.
const maxOpenConns = 2

// Options configure a driver. A nil *Options means all defaults.
type Options struct {
	// Table is the lock table's name (default distlock_locks): a plain SQL
	// identifier, optionally schema-qualified ("main.locks").
	Table string
	// DisableCreateTable skips CREATE TABLE IF NOT EXISTS when opening; the
	// table must then exist (see the package documentation for its schema).
	DisableCreateTable bool
	// BusyTimeout is how long a statement waits for another connection's
	// write to finish before failing with SQLITE_BUSY (default 5s). Open
	// only: New leaves the settings of the caller's *sql.DB alone.
	BusyTimeout time.Duration
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Table == "" {
		r.Table = DefaultTable
	}
	if r.BusyTimeout <= 0 {
		r.BusyTimeout = DefaultBusyTimeout
	}
	return r
}

// Open opens (creating it and its directory if needed) the SQLite database
// file at path, and returns a Client that takes locks in it. Client.Close
// closes the file. Any number of Clients, in this process or others, may
// share one file.
func Open(ctx context.Context, path string, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := OpenDriver(ctx, path, opts)
	return clientopen.Client(leaserow.SQLite.Name, drv, err, clientOpts)
}

// New returns a Client that takes locks in the database db, which the caller
// opened (with modernc.org/sqlite or any database/sql driver for SQLite
// 3.42+) and still owns: Client.Close does not close it. Set a busy timeout on
// db (modernc.org/sqlite: _pragma=busy_timeout(5000) in the DSN) and use WAL
// mode when several processes share the file.
func New(ctx context.Context, db *sql.DB, opts *Options, clientOpts ...distlock.Option) (*distlock.Client, error) {
	drv, err := NewDriver(ctx, db, opts)
	return clientopen.Client(leaserow.SQLite.Name, drv, err, clientOpts)
}

// OpenDriver is Open without the Client: the bare driver, for
// distlock.NewClient and conformance harnesses. Each call opens its own
// connections to the file, as another process would. Close closes them.
func OpenDriver(ctx context.Context, path string, opts *Options) (driver.Driver, error) {
	o := opts.withDefaults()
	db, err := openDB(path, o.BusyTimeout, nil)
	if err != nil {
		return nil, err
	}
	d, err := newDriver(ctx, db, o, true)
	if err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// NewDriver is New without the Client. Its Close leaves db open.
func NewDriver(ctx context.Context, db *sql.DB, opts *Options) (driver.Driver, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", distlock.ErrInvalid)
	}
	return newDriver(ctx, db, opts.withDefaults(), false)
}

// openDB opens the file at path with the pragmas this package relies on.
// wrap, if not nil, interposes on the connector (tests count statements).
func openDB(path string, busy time.Duration, wrap func(sqldriver.Connector) sqldriver.Connector) (*sql.DB, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("%w: database path is empty", distlock.ErrInvalid)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("%w: %q is not a file path: give the path of a database file that every process can open (an in-memory database is private to one connection)",
			distlock.ErrInvalid, path)
	case strings.IndexByte(path, 0) >= 0:
		return nil, fmt.Errorf("%w: database path contains a NUL byte", distlock.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: database path %q: %w", distlock.ErrInvalid, path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("%w: create the database's directory: %w", driver.ErrUnavailable, err)
	}
	conn, err := sqlite.NewConnector(dsn(abs, busy))
	if err != nil {
		return nil, fmt.Errorf("%w: database path %q: %w", distlock.ErrInvalid, path, err)
	}
	if wrap != nil {
		conn = wrap(conn)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	return db, nil
}

// uriPath escapes the characters that end or escape the path of an SQLite
// URI filename.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// dsn is the modernc.org/sqlite data source name for the file at abs: an
// SQLite URI, so any file name works, with the connection's pragmas.
// synchronous(NORMAL) in WAL mode never corrupts the file, but a power cut
// (not a process crash) may undo the last commits; the fence rule (never
// below the clock) keeps fences from being handed out twice even then, and
// every process that held a lock died with the machine.
func dsn(abs string, busy time.Duration) string {
	ms := max(int64((busy+time.Millisecond-1)/time.Millisecond), 1)
	return "file:" + uriPath.Replace(filepath.ToSlash(abs)) +
		"?_pragma=busy_timeout(" + strconv.FormatInt(ms, 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)"
}

// sqliteDriver is the lease-row Store plus wake-ups for waiters in this
// process.
type sqliteDriver struct {
	*leaserow.Store
	file string // the database's identity in the wake-up registry
}

var _ driver.Notifier = (*sqliteDriver)(nil)

func newDriver(ctx context.Context, db *sql.DB, o Options, owned bool) (*sqliteDriver, error) {
	if err := leaserow.ValidateTable(o.Table); err != nil {
		return nil, err
	}
	// Processes that open a new file at the same moment race to switch it to
	// WAL and create the table; the loser gets SQLITE_BUSY at once, without
	// the busy handler. Setting up again is safe: every step is idempotent.
	deadline := time.Now().Add(o.BusyTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		d, err := setUp(ctx, db, o, owned)
		if err == nil || !isBusy(err) || time.Now().Add(pause).After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
	}
}

// isBusy reports whether err is SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	code, ok := leaserow.ErrorCode(err)
	return ok && code&0xff == sqliteBusy
}

const sqliteBusy = 5

func setUp(ctx context.Context, db *sql.DB, o Options, owned bool) (*sqliteDriver, error) {
	dialect := leaserow.SQLite
	var version string
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return nil, dialect.Classify(err)
	}
	if !atLeast(version, minVersion) {
		return nil, fmt.Errorf("%w: SQLite %s is too old: sqlitelock needs %d.%d.%d or later", distlock.ErrInvalid, version, minVersion[0], minVersion[1], minVersion[2])
	}
	file, err := mainFile(ctx, db)
	if err != nil {
		return nil, dialect.Classify(err)
	}
	store, err := leaserow.New(leaserow.Config{DB: db, Dialect: dialect, Table: o.Table, CloseDB: owned, Gate: gateFor(file)})
	if err != nil {
		return nil, err
	}
	if err := store.Init(ctx, !o.DisableCreateTable); err != nil {
		return nil, err
	}
	return &sqliteDriver{Store: store, file: file}, nil
}

// gates holds one leaserow.Gate per database file, shared by every driver
// of the process on that file, so that their writes queue in Go rather than
// in SQLite's polling busy handler. Entries are never removed: a process
// opens few distinct files.
var gates = struct {
	sync.Mutex
	m map[string]*leaserow.Gate
}{m: make(map[string]*leaserow.Gate)}

func gateFor(file string) *leaserow.Gate {
	gates.Lock()
	defer gates.Unlock()
	g := gates.m[file]
	if g == nil {
		g = leaserow.NewGate()
		gates.m[file] = g
	}
	return g
}

// mainFile names the database for the wake-up registry: the full path of its
// main file, as SQLite reports it, so every driver on the same file, opened
// by Open or by New, shares wake-ups. A database without a file (in memory)
// is known by its handle: only drivers over the same *sql.DB share it.
func mainFile(ctx context.Context, db *sql.DB) (string, error) {
	var file string
	err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file)
	if err != nil {
		return "", err
	}
	if file == "" {
		return fmt.Sprintf("sql.DB %p", db), nil
	}
	return file, nil
}

// atLeast reports whether the dotted version v is at least min.
func atLeast(v string, min [3]int) bool {
	parts := strings.SplitN(v, ".", 4)
	for i := range min {
		n := 0
		if i < len(parts) {
			var err error
			if n, err = strconv.Atoi(parts[i]); err != nil {
				return false
			}
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

// Release frees the lock and wakes this process's waiters for the key.
func (d *sqliteDriver) Release(ctx context.Context, l driver.Lease) error {
	if err := d.Store.Release(ctx, l); err != nil {
		return err
	}
	publish(d.topic(l.Key))
	return nil
}

// Subscribe implements driver.Notifier for waiters in this process: a Release
// through any driver on the same database file and table wakes the waiter
// that has waited longest (see publish). Releases by other processes are not
// seen; waiters fall back to polling then, never sleeping past the holder's
// expiry.
func (d *sqliteDriver) Subscribe(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	wake, cancel := subscribe(d.topic(key))
	return wake, cancel, nil
}

func (d *sqliteDriver) topic(key string) topic {
	// SQLite table names are case-insensitive, and "main." is the default.
	table := strings.ToLower(d.Table())
	table = strings.TrimPrefix(table, "main.")
	return topic{file: d.file, table: table, key: key}
}
