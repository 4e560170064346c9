package once

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
)

// Guard claims business keys in one table so that the work behind each key
// runs once. It is safe for concurrent use and keeps no state between calls
// besides the database handle and the claims it holds: every operation is an
// autocommit statement judged by the database's clock.
type Guard struct {
	db      *sql.DB
	d       *dialect
	cfg     guardConfig
	ownsDB  bool
	stmts   statements
	initMu  chan struct{} // held while initialising; a channel so a waiter can give up
	ready   atomic.Bool   // set once Init succeeded; prepped is read-only after
	prepped map[string]*sql.Stmt

	mu      sync.Mutex
	closed  bool
	claims  map[*Claim]struct{}
	closing context.Context // cancelled by Close
	doClose context.CancelFunc
	bg      sync.WaitGroup // heartbeats and background abandons

	readBacks atomic.Int64 // statements whose outcome was unknown and read back (tests report it)
}

// statements are the dialect's statements with the table name filled in.
type statements struct {
	createTable, probe, claim, claimRead, read, extend, complete, abandon, forget string
}

// New returns a Guard over db, which the caller opened and still owns (Close
// leaves it open). database says which SQL db speaks: SQLite, Postgres (for a
// pgx pool, pass stdlib.OpenDBFromPool(pool)) or MySQL (also MariaDB).
//
// New does no I/O. The first operation creates the table if it does not
// exist (unless WithCreateTable(false)) and checks its columns; call Init to
// do that eagerly.
func New(db *sql.DB, database Database, opts ...Option) (*Guard, error) {
	if db == nil {
		return nil, &distlock.Error{Op: "open", Backend: "once", Err: fmt.Errorf("%w: nil *sql.DB", errInvalid)}
	}
	d, err := dialectOf(database)
	if err != nil {
		return nil, &distlock.Error{Op: "open", Backend: "once", Err: err}
	}
	return newGuard(db, d, false, opts)
}

func newGuard(db *sql.DB, d *dialect, owns bool, opts []Option) (*Guard, error) {
	cfg := defaultGuardConfig()
	for _, o := range opts {
		if o != nil {
			o.applyGuard(&cfg)
		}
	}
	g := &Guard{db: db, d: d, cfg: cfg, ownsDB: owns, initMu: make(chan struct{}, 1), claims: make(map[*Claim]struct{})}
	if err := errors.Join(cfg.err, cfg.claim.err); err != nil {
		return nil, g.wrap("open", "", err)
	}
	fill := func(s string) string { return strings.ReplaceAll(s, "{table}", cfg.table) }
	g.stmts = statements{
		createTable: fill(d.createTable), probe: fill(d.probe), claim: fill(d.claim), claimRead: fill(d.claimRead),
		read: fill(d.read), extend: fill(d.extend), complete: fill(d.complete), abandon: fill(d.abandon), forget: fill(d.forget),
	}
	g.closing, g.doClose = context.WithCancel(context.Background())
	return g, nil
}

// Database returns which database the Guard speaks to.
func (g *Guard) Database() Database { return g.d.db }

// Table returns the table's name.
func (g *Guard) Table() string { return g.cfg.table }

// Init creates the table if allowed and missing, checks that it has the
// expected columns, and prepares the statements the dialect prepares. Every
// operation calls it; it does its work once (again after a failure).
// Cost: two or three round trips, once.
func (g *Guard) Init(ctx context.Context) error {
	if g.ready.Load() {
		return nil
	}
	select {
	case g.initMu <- struct{}{}:
	case <-ctx.Done():
		return g.wrap("init", "", context.Cause(ctx))
	}
	defer func() { <-g.initMu }()
	if g.ready.Load() {
		return nil
	}
	if err := g.closedErr(); err != nil {
		return g.wrap("init", "", err)
	}
	if err := g.setUp(ctx); err != nil {
		return g.wrap("init", "", err)
	}
	g.ready.Store(true)
	return nil
}

func (g *Guard) setUp(ctx context.Context) error {
	if g.cfg.createTable {
		if _, err := g.db.ExecContext(ctx, g.stmts.createTable); err != nil {
			// Two first uses at once can collide inside CREATE TABLE IF NOT
			// EXISTS (PostgreSQL reports a duplicate type): the probe below
			// says whether the table is there after all.
			if perr := g.probe(ctx); perr != nil {
				return fmt.Errorf("create table %s: %w", g.cfg.table, err)
			}
		}
	}
	if err := g.probe(ctx); err != nil {
		return fmt.Errorf("check table %s: %w", g.cfg.table, err)
	}
	if !g.d.prepare {
		return nil
	}
	prepped := make(map[string]*sql.Stmt)
	for _, q := range []string{g.stmts.claim, g.stmts.claimRead, g.stmts.read, g.stmts.extend, g.stmts.complete, g.stmts.abandon, g.stmts.forget} {
		if q == "" || prepped[q] != nil {
			continue
		}
		st, err := g.db.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range prepped {
				st.Close()
			}
			return fmt.Errorf("prepare: %w", err)
		}
		prepped[q] = st
	}
	g.prepped = prepped
	return nil
}

func (g *Guard) probe(ctx context.Context) error {
	rows, err := g.db.QueryContext(ctx, g.stmts.probe)
	if err != nil {
		return err
	}
	return rows.Close()
}

// begin checks an operation's key and makes sure the Guard is initialised.
func (g *Guard) begin(ctx context.Context, op, key string) error {
	if err := g.closedErr(); err != nil {
		return g.wrap(op, key, err)
	}
	if err := distlock.ValidateKey(key); err != nil {
		return g.wrap(op, "", err)
	}
	return g.Init(ctx)
}

func (g *Guard) closedErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return distlock.ErrClosed
	}
	return nil
}

// exec runs q, prepared if Init prepared it.
func (g *Guard) exec(ctx context.Context, q string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := g.prepped[q]; st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = g.db.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (g *Guard) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := g.prepped[q]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return g.db.QueryRowContext(ctx, q, args...)
}

// row is a once row as a statement returned it.
type row struct {
	exists    bool
	state     string
	token     string
	fence     uint64
	owner     string
	remaining time.Duration // of the lease, by the database's clock; <= 0 expired
	result    []byte
	updated   time.Time
}

func scanRow(r *sql.Row) (row, error) {
	var (
		x         row
		fence     int64
		remaining int64
		updated   int64
	)
	err := r.Scan(&x.state, &x.token, &fence, &x.owner, &remaining, &x.result, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, nil
	}
	if err != nil {
		return row{}, err
	}
	x.exists = true
	x.fence = uint64(fence)
	x.remaining = time.Duration(remaining) * time.Millisecond
	x.updated = time.UnixMilli(updated)
	return x, nil
}

// free reports whether a claim would take the row.
func (x row) free() bool {
	return !x.exists || x.state == stateClaimed && x.remaining <= 0
}

// ownedBy reports whether token holds a claim on the row (its lease may have
// run out, but nobody has taken it over).
func (x row) ownedBy(token string) bool {
	return x.exists && x.state == stateClaimed && x.token == token
}

// read reads key's row: one round trip.
func (g *Guard) read(ctx context.Context, key string) (row, error) {
	return scanRow(g.queryRow(ctx, g.stmts.read, key))
}

// Status is what Guard.Status reads about a key.
type Status struct {
	Key   string
	State State
	Owner string        // the current or completing claimer's owner
	Fence uint64        // the current or completing claim's fence
	TTL   time.Duration // Claimed: time left on the lease, by the database's clock
	// Result is the stored result (Done only).
	Result []byte
	// Updated is when the row last changed state, by the database's clock.
	Updated time.Time
}

// State is a key's state.
type State string

// The states a key can be in.
const (
	// Free: never claimed, abandoned, or its claimer's lease ran out.
	Free State = "free"
	// Claimed: a live claim runs.
	Claimed State = "claimed"
	// Done: completed.
	Done State = "done"
)

// Status reads key's state. One round trip.
func (g *Guard) Status(ctx context.Context, key string) (Status, error) {
	if err := g.begin(ctx, "status", key); err != nil {
		return Status{}, err
	}
	x, err := g.read(ctx, key)
	if err != nil {
		return Status{}, g.wrap("status", key, err)
	}
	s := Status{Key: key, State: Free}
	switch {
	case !x.exists:
		return s, nil
	case x.state == stateDone:
		s.State = Done
		s.Result = x.result
	case x.free():
		s.Fence = x.fence
		s.Updated = x.updated
		return s, nil
	default:
		s.State = Claimed
		s.TTL = x.remaining
	}
	s.Owner, s.Fence, s.Updated = x.owner, x.fence, x.updated
	return s, nil
}

// Forget deletes key's row if it is done, so that the key can be claimed
// (and its work run) again. A key that is claimed or free is left alone.
// It reports whether a row was deleted. Fences stay monotonic: a new row's
// fence starts from the clock in microseconds. One round trip.
func (g *Guard) Forget(ctx context.Context, key string) (bool, error) {
	if err := g.begin(ctx, "forget", key); err != nil {
		return false, err
	}
	n, err := g.exec(ctx, g.stmts.forget, key)
	if err != nil {
		return false, g.wrap("forget", key, err)
	}
	return n > 0, nil
}

// Close stops the heartbeats of the claims still held (their Done closes and
// Err wraps distlock.ErrClosed; their leases then run out by their TTL:
// Close does not abandon them), waits for background work, and closes the
// database if Open opened it.
func (g *Guard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.doClose()
	claims := make([]*Claim, 0, len(g.claims))
	for c := range g.claims {
		claims = append(claims, c)
	}
	g.mu.Unlock()
	for _, c := range claims {
		c.end(endLost, fmt.Errorf("%w: %w", distlock.ErrLost, distlock.ErrClosed))
	}
	g.bg.Wait()
	// Wait for a running Init, so its prepared statements are seen.
	g.initMu <- struct{}{}
	var errs []error
	for _, st := range g.prepped {
		errs = append(errs, st.Close())
	}
	<-g.initMu
	if g.ownsDB {
		errs = append(errs, g.db.Close())
	}
	return errors.Join(errs...)
}

// track adds a claim to the set Close ends.
func (g *Guard) track(c *Claim) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return distlock.ErrClosed
	}
	g.claims[c] = struct{}{}
	g.bg.Add(1)
	return nil
}

func (g *Guard) untrack(c *Claim) {
	g.mu.Lock()
	delete(g.claims, c)
	g.mu.Unlock()
}

// newToken returns 128 random bits, URL-safe base64 (22 characters).
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// jitter returns a duration drawn uniformly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + mrand.N(d-d/2+1)
}

// sleep waits d or until ctx ends, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// driftMargin leaves room for the two clocks ticking at slightly different
// rates and for expiry kept in whole milliseconds.
func driftMargin(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// deadlineMargin is how much before the database can let another claimer in
// a claim's local deadline falls: the drift margin, and a lead (a tenth of
// the TTL, at most 50ms) so that the loss is seen in time even when the
// heartbeat is scheduled late.
func deadlineMargin(ttl time.Duration) time.Duration {
	return driftMargin(ttl) + min(ttl/10, 50*time.Millisecond)
}
