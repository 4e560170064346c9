package sqlitelock

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// countingConnector counts the statements that reach SQLite through the
// connections it makes (the pragmas run when a connection opens are not
// counted: they are paid once per connection, not per operation).
type countingConnector struct {
	sqldriver.Connector
	n *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: c.n}, nil
}

// countingConn forwards the optional interfaces modernc.org/sqlite's
// connections implement, so database/sql behaves as without it.
type countingConn struct {
	sqldriver.Conn
	n *atomic.Int64
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	c.n.Add(1)
	return c.Conn.(sqldriver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	c.n.Add(1)
	return c.Conn.(sqldriver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (sqldriver.Stmt, error) {
	st, err := c.Conn.(sqldriver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, n: c.n}, nil
}

// countingStmt counts executions of a prepared statement.
type countingStmt struct {
	sqldriver.Stmt
	n *atomic.Int64
}

func (s *countingStmt) ExecContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	s.n.Add(1)
	return s.Stmt.(sqldriver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	s.n.Add(1)
	return s.Stmt.(sqldriver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *countingConn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (sqldriver.Tx, error) {
	return c.Conn.(sqldriver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) Ping(ctx context.Context) error { return c.Conn.(sqldriver.Pinger).Ping(ctx) }

func (c *countingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(sqldriver.SessionResetter).ResetSession(ctx)
}

func (c *countingConn) IsValid() bool { return c.Conn.(sqldriver.Validator).IsValid() }

func (c *countingConn) Unwrap() sqldriver.Conn { return c.Conn }

// countedClient opens a Client on a fresh file through Open's own path and
// returns it with its statement counter.
func countedClient(tb testing.TB, path string) (*distlock.Client, *atomic.Int64) {
	tb.Helper()
	var n atomic.Int64
	wrap := func(c sqldriver.Connector) sqldriver.Connector { return countingConnector{c, &n} }
	o := (*Options)(nil).withDefaults()
	db, err := openDB(path, o.BusyTimeout, wrap)
	if err != nil {
		tb.Fatal(err)
	}
	drv, err := newDriver(context.Background(), db, o, true)
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	c, err := distlock.NewClient(drv)
	if err != nil {
		drv.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c, &n
}

// TestStatementsPerOperation pins the round trips the package documents.
func TestStatementsPerOperation(t *testing.T) {
	ctx := context.Background()
	c, n := countedClient(t, filepath.Join(t.TempDir(), "locks.db"))
	step := func(what string, want int64, f func() error) {
		t.Helper()
		before := n.Load()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := n.Load() - before; got != want {
			t.Errorf("%s: %d statements, want %d", what, got, want)
		}
	}
	var l *distlock.Lock
	step("TryLock", 1, func() (err error) { l, err = c.TryLock(ctx, "k"); return err })
	step("Refresh", 1, func() error { return l.Refresh(ctx) })
	step("Status", 1, func() error { _, err := c.Status(ctx, "k"); return err })
	step("Unlock", 1, func() error { return l.Unlock(ctx) })
}

// BenchmarkLockUnlock is an uncontended TryLock and Unlock of one key.
func BenchmarkLockUnlock(b *testing.B) {
	ctx := context.Background()
	c, n := countedClient(b, filepath.Join(b.TempDir(), "locks.db"))
	start := n.Load()
	b.ResetTimer()
	for b.Loop() {
		l, err := c.TryLock(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
}

// BenchmarkLockUnlockParallel is TryLock and Unlock of a key per goroutine,
// all through one Client: the writes of one process queue for SQLite's
// single writer.
func BenchmarkLockUnlockParallel(b *testing.B) {
	ctx := context.Background()
	c, n := countedClient(b, filepath.Join(b.TempDir(), "locks.db"))
	var id atomic.Int64
	start := n.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprint("bench-", id.Add(1))
		for pb.Next() {
			l, err := c.TryLock(ctx, key)
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Unlock(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
}

// BenchmarkTryLockContended is a TryLock of a key another Client holds: the
// answer every waiter gets while it waits.
func BenchmarkTryLockContended(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "locks.db")
	holder, _ := countedClient(b, path)
	if _, err := holder.TryLock(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	c, n := countedClient(b, path)
	start := n.Load()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.TryLock(ctx, "bench"); !errors.Is(err, distlock.ErrLocked) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
}

// BenchmarkFloor is the floor BenchmarkLockUnlock is measured against: a
// plain INSERT and DELETE of one row, on a file opened exactly as Open opens
// it. A lock cannot cost less than two autocommit writes.
func BenchmarkFloor(b *testing.B) {
	ctx := context.Background()
	var n atomic.Int64
	wrap := func(c sqldriver.Connector) sqldriver.Connector { return countingConnector{c, &n} }
	db, err := openDB(filepath.Join(b.TempDir(), "floor.db"), 5*time.Second, wrap)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE floor (k TEXT NOT NULL PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	start := n.Load()
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.ExecContext(ctx, `INSERT INTO floor (k, v) VALUES (?1, ?2)`, "bench", "token"); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM floor WHERE k = ?1 AND v = ?2`, "bench", "token"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
}
