package leaserow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Config says how to make a Store.
type Config struct {
	// DB is the database handle. The Store never changes its settings.
	DB *sql.DB
	// Dialect is the database's SQL.
	Dialect *Dialect
	// Table is the lock table's name (DefaultTable if empty); see
	// ValidateTable.
	Table string
	// CloseDB makes Close close DB: set it when the driver opened DB itself,
	// never for a handle the user passed in.
	CloseDB bool
	// Gate, if not nil, is entered around every statement that writes.
	// Stores that share a Gate write one at a time, queueing in Go.
	Gate *Gate
	// Native, if not nil, runs the statements of the hot path (Acquire and
	// its read, Release, Inspect) instead of DB, on the database's own
	// client: database/sql's work per statement (a pool checkout, argument
	// conversion, a Rows wrapper) measured a tenth of an uncontended
	// Lock+Unlock with pgx. It must reach the same database as DB.
	Native Native
}

// Native is a database's own client, for the statements of the hot path.
// Its errors must be classified by the Dialect as DB's are, and a query
// that returns no row must make Scan fail with an error that is
// sql.ErrNoRows (pgx.ErrNoRows is).
type Native interface {
	QueryRow(ctx context.Context, query string, args ...any) Row
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Row is the one row a query returned: *sql.Row, or a Native client's.
type Row interface{ Scan(dest ...any) error }

// Gate lets the writing statements of the Stores that share it run one at a
// time, in the order they arrived. SQLite needs it: its write lock is a file
// lock without a queue, and a writer that finds it taken sleeps and polls
// (1ms, 2ms, 5ms ... 100ms), so under contention an unlucky statement, a
// renewal say, can wait for seconds while newer ones get through. Writers of
// one process queue at the Gate instead, and only writers of different
// processes meet at the file lock.
type Gate struct{ ch chan struct{} }

// NewGate returns an open Gate.
func NewGate() *Gate { return &Gate{ch: make(chan struct{}, 1)} }

// enter waits for the gate. If ctx ends first, the statement was never
// sent, which the error says by wrapping driver.ErrUnavailable.
func (g *Gate) enter(ctx context.Context) (leave func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	select {
	case g.ch <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: gave up waiting for this process's other writers: %w", driver.ErrUnavailable, context.Cause(ctx))
	}
}

func (g *Gate) leave() { <-g.ch }

// Store is a driver.Driver over one lock table. It is safe for concurrent use
// and holds no state between calls besides the database handle: every
// operation is a single autocommit statement (two with a Dialect's *Read
// fallbacks), evaluated on the database's clock.
type Store struct {
	db      *sql.DB
	d       *Dialect
	table   string
	closeDB bool
	gate    *Gate
	native  Native

	createTable, probe       string
	acquire, acquireRead     string
	release, inspect, purge  string
	renewTmpl, renewReadTmpl string               // markers for the placeholder lists remain
	prepared                 map[string]*sql.Stmt // by statement text; set by Init, read-only after
	batchMu                  sync.Mutex
	batchStmts               map[string]*sql.Stmt // prepared renewals of small batches, by text
	closeOnce                sync.Once
	closeErr                 error
}

// New makes a Store. It does no I/O; call Init before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", distlock.ErrInvalid)
	}
	if cfg.Dialect == nil {
		return nil, errors.New("leaserow: nil Dialect")
	}
	if err := cfg.Dialect.check(); err != nil {
		return nil, err
	}
	table := cfg.Table
	if table == "" {
		table = DefaultTable
	}
	if err := ValidateTable(table); err != nil {
		return nil, err
	}
	d := cfg.Dialect
	return &Store{
		db:            cfg.DB,
		d:             d,
		table:         table,
		closeDB:       cfg.CloseDB,
		gate:          cfg.Gate,
		native:        cfg.Native,
		createTable:   withTable(d.CreateTable, table),
		probe:         withTable(d.Probe, table),
		acquire:       withTable(d.Acquire, table),
		acquireRead:   withTable(d.AcquireRead, table),
		release:       withTable(d.Release, table),
		inspect:       withTable(d.Inspect, table),
		purge:         withTable(d.Purge, table),
		renewTmpl:     withTable(d.Renew, table),
		renewReadTmpl: withTable(d.RenewRead, table),
	}, nil
}

// Table returns the lock table's name.
func (s *Store) Table() string { return s.table }

// DB returns the database handle.
func (s *Store) DB() *sql.DB { return s.db }

// Init creates the table if create is set and it does not exist, then checks
// that the table has the expected columns, so that a wrong table fails here
// rather than at the first lock.
func (s *Store) Init(ctx context.Context, create bool) error {
	if create {
		leave, err := s.gate.enter(ctx)
		if err != nil {
			return err
		}
		_, err = s.db.ExecContext(ctx, s.createTable)
		leave()
		if err != nil {
			return s.classify(fmt.Errorf("create table %s: %w", s.table, err))
		}
	}
	rows, err := s.db.QueryContext(ctx, s.probe)
	if err != nil {
		return s.classify(fmt.Errorf("check table %s: %w", s.table, err))
	}
	if err := rows.Close(); err != nil {
		return s.classify(err)
	}
	if !s.d.Prepare {
		return nil
	}
	// Parsing the upsert costs more than running it (SQLite: 59% of a
	// lock+unlock): prepare the fixed statements once.
	s.prepared = make(map[string]*sql.Stmt)
	for _, q := range []string{s.acquire, s.acquireRead, s.release, s.inspect} {
		if q == "" {
			continue
		}
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			s.closeStmts()
			return s.classify(fmt.Errorf("prepare: %w", err))
		}
		s.prepared[q] = st
	}
	return nil
}

// queryRow runs q on the Native client if there is one, else prepared if
// Init prepared it.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) Row {
	if s.native != nil {
		return s.native.QueryRow(ctx, q, args...)
	}
	if st := s.prepared[q]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, q, args...)
}

// exec runs q as queryRow does.
func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if s.native != nil {
		return s.native.Exec(ctx, q, args...)
	}
	if st := s.prepared[q]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, q, args...)
}

func (s *Store) closeStmts() error {
	var errs []error
	for _, st := range s.prepared {
		errs = append(errs, st.Close())
	}
	s.batchMu.Lock()
	for _, st := range s.batchStmts {
		errs = append(errs, st.Close())
	}
	s.batchStmts = nil
	s.batchMu.Unlock()
	return errors.Join(errs...)
}

// Info implements driver.Driver.
func (s *Store) Info() driver.Info {
	return driver.Info{Name: s.d.Name, MinTTL: s.d.MinTTL, TTLGranularity: time.Millisecond}
}

// ttlMillis converts a TTL to whole milliseconds, rounding up.
func ttlMillis(ttl time.Duration) int64 {
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// Acquire implements driver.Driver: one upsert that inserts the row, or takes
// over the row if it has expired, and returns the row as it is afterwards. The
// lock is ours if the returned token is ours: this also makes a retry with
// the same token, while the lock is held, return the lease unchanged.
func (s *Store) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	return s.acquireOn(ctx, nil, req)
}

// acquireOn is Acquire with its statements sent on conn, or through the
// pool when conn is nil.
func (s *Store) acquireOn(ctx context.Context, conn *sql.Conn, req driver.AcquireRequest) (driver.Lease, error) {
	queryRow, exec := s.queryRow, s.exec
	if conn != nil {
		queryRow = func(ctx context.Context, q string, args ...any) Row { return conn.QueryRowContext(ctx, q, args...) }
		exec = conn.ExecContext
	}
	if req.Token == "" {
		return driver.Lease{}, fmt.Errorf("%w: empty token", distlock.ErrInvalid)
	}
	if req.TTL <= 0 {
		return driver.Lease{}, fmt.Errorf("%w: ttl %v must be positive", distlock.ErrInvalid, req.TTL)
	}
	args := []any{req.Key, req.Token, req.Owner, ttlMillis(req.TTL)}
	// One row struct rather than five variables: each variable Scan points
	// into would be an allocation of its own.
	var row struct {
		token, owner       string
		fence, ttl, remain int64
	}
	dest := []any{&row.token, &row.fence, &row.owner, &row.ttl, &row.remain}
	leave, err := s.gate.enter(ctx)
	if err != nil {
		return driver.Lease{}, err
	}
	if s.d.ClockArg {
		args = append(args, time.Now().UnixMicro())
	}
	granted := false
	if s.acquireRead == "" || s.d.ReadOnEmpty {
		err = queryRow(ctx, s.acquire, args...).Scan(dest...)
		if errors.Is(err, sql.ErrNoRows) && s.d.ReadOnEmpty {
			err = queryRow(ctx, s.acquireRead, req.Key).Scan(dest...)
		}
	} else {
		var res sql.Result
		res, err = exec(ctx, s.acquire, args...)
		if err == nil && s.d.Granted != nil {
			row.fence, granted, err = s.d.Granted(res)
		}
		if err == nil && !granted {
			err = queryRow(ctx, s.acquireRead, req.Key).Scan(dest...)
		}
	}
	leave()
	if granted {
		return driver.Lease{Key: req.Key, Token: req.Token, Fence: uint64(row.fence), TTL: millis(args[3].(int64))}, nil
	}
	if errors.Is(err, sql.ErrNoRows) && s.d.ReadOnEmpty {
		// The holder's row went between the two statements: the key was
		// held when we tried, by someone we can no longer name.
		return driver.Lease{}, &driver.HeldError{Holder: driver.Holder{Held: true}}
	}
	if err != nil {
		// sql.ErrNoRows included: the statement always returns the row.
		return driver.Lease{}, s.classify(err)
	}
	if row.token != req.Token {
		return driver.Lease{}, &driver.HeldError{Holder: driver.Holder{
			Held:  true,
			Fence: uint64(row.fence),
			Owner: row.owner,
			TTL:   millis(row.remain),
			// Token stays empty: it is the right to release the lock.
		}}
	}
	return driver.Lease{Key: req.Key, Token: req.Token, Fence: uint64(row.fence), TTL: millis(row.ttl)}, nil
}

// millis converts a millisecond count from the store, clamping negatives to
// zero ("unknown").
func millis(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// errNotHeld is what a lease that no longer holds its key gets.
var errNotHeld = fmt.Errorf("%w: the token no longer holds the key (released, expired, taken over or removed)", driver.ErrNotHeld)

// Release implements driver.Driver: one UPDATE that frees the row if the
// token holds it. The row is kept, with its fence, so the fence survives.
func (s *Store) Release(ctx context.Context, l driver.Lease) error {
	leave, err := s.gate.enter(ctx)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, s.release, l.Key, l.Token)
	leave()
	if err != nil {
		return s.classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.classify(err)
	}
	if n == 0 {
		return errNotHeld
	}
	return nil
}

// Renew implements driver.Driver: one UPDATE per MaxBatch leases extends every
// lease still held, from now by the store's clock, by the TTL stored with its
// row, and returns which ones it extended.
func (s *Store) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	renewed := make(map[leaseID]bool, len(leases))
	for start := 0; start < len(leases); start += s.d.MaxBatch {
		chunk := leases[start:min(start+s.d.MaxBatch, len(leases))]
		leave, err := s.gate.enter(ctx)
		if err != nil {
			return nil, err
		}
		err = s.renewChunk(ctx, chunk, renewed)
		leave()
		if err != nil {
			// Earlier chunks may have been renewed; saying nothing is known
			// is safe: the caller keeps its deadlines and tries again.
			return nil, s.classify(err)
		}
	}
	results := make([]error, len(leases))
	for i, l := range leases {
		if !renewed[leaseID{l.Key, l.Token}] {
			results[i] = errNotHeld
		}
	}
	return results, nil
}

type leaseID struct{ key, token string }

func (s *Store) renewChunk(ctx context.Context, chunk []driver.Lease, renewed map[leaseID]bool) error {
	args := make([]any, 2*len(chunk))
	for i, l := range chunk {
		args[i] = l.Key
		args[len(chunk)+i] = l.Token
	}
	query := s.d.batchSQL(s.renewTmpl, len(chunk))
	if s.renewReadTmpl == "" {
		return s.collect(ctx, query, args, renewed)
	}
	// No UPDATE ... RETURNING: the row count tells whether all were
	// renewed; only when some were not does a read say which.
	var (
		res sql.Result
		err error
	)
	if st := s.batchStmt(ctx, query, len(chunk)); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = s.db.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n >= int64(distinct(chunk)) {
		for _, l := range chunk {
			renewed[leaseID{l.Key, l.Token}] = true
		}
		return nil
	}
	return s.collect(ctx, s.d.batchSQL(s.renewReadTmpl, len(chunk)), args, renewed)
}

// maxPreparedBatch is the largest renewal batch whose statement is prepared
// and kept (with Dialect.Prepare): a Client renews its locks with one TTL
// together, so a few sizes recur; larger batches are rare and sent as they
// are.
const maxPreparedBatch = 16

// batchStmt returns query prepared, once per Store, for a batch of n leases
// when the dialect prepares statements and n is small; nil otherwise (and
// when preparing fails: the statement is then sent unprepared).
func (s *Store) batchStmt(ctx context.Context, query string, n int) *sql.Stmt {
	if !s.d.Prepare || n > maxPreparedBatch {
		return nil
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	if st := s.batchStmts[query]; st != nil {
		return st
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if s.batchStmts == nil {
		s.batchStmts = make(map[string]*sql.Stmt)
	}
	s.batchStmts[query] = st
	return st
}

// distinct counts the different leases in chunk.
func distinct(chunk []driver.Lease) int {
	seen := make(map[leaseID]bool, len(chunk))
	for _, l := range chunk {
		seen[leaseID{l.Key, l.Token}] = true
	}
	return len(seen)
}

// collect runs a query returning (lock_key, token) rows and marks each.
func (s *Store) collect(ctx context.Context, query string, args []any, into map[leaseID]bool) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id leaseID
		if err := rows.Scan(&id.key, &id.token); err != nil {
			return err
		}
		into[id] = true
	}
	return rows.Err()
}

// Inspect implements driver.Driver: one SELECT of the row if it is held now.
func (s *Store) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	var (
		h             driver.Holder
		fence, remain int64
	)
	err := s.queryRow(ctx, s.inspect, key).Scan(&h.Token, &fence, &h.Owner, &remain)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return driver.Holder{}, nil
	case err != nil:
		return driver.Holder{}, s.classify(err)
	}
	h.Held = true
	h.Fence = uint64(fence)
	h.TTL = millis(remain)
	return h, nil
}

// Purge implements driver.Purger: one DELETE of the rows that have been
// free for at least olderThan by the database's clock (released that long
// ago, or expired that long ago without a release), and whose fence is at
// least that old. A held row is never deleted. A key whose row went starts
// again from the clock in microseconds, above its old fence as long as the
// clock has not stepped back by olderThan or more. One round trip; the
// statement reads the whole table.
func (s *Store) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < time.Millisecond {
		// Younger than the clock's tick, a new fence could equal the old.
		return 0, fmt.Errorf("%w: purge age %v is below 1ms", distlock.ErrInvalid, olderThan)
	}
	leave, err := s.gate.enter(ctx)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, s.purge, ttlMillis(olderThan))
	leave()
	if err != nil {
		return 0, s.classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.classify(err)
	}
	return n, nil
}

// Close implements driver.Driver. It closes the database handle only if the
// Store was told it owns it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.closeStmts()
		if s.closeDB {
			s.closeErr = errors.Join(s.closeErr, s.db.Close())
		}
	})
	return s.closeErr
}

func (s *Store) classify(err error) error { return s.d.Classify(err) }

var (
	_ driver.Driver = (*Store)(nil)
	_ driver.Purger = (*Store)(nil)
)
