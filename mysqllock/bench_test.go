package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
)

// countingConn counts the commands a client sends that wait for a reply:
// packets that start a command (sequence id 0), except COM_QUIT and
// COM_STMT_CLOSE, which get none. go-sql-driver writes a packet in one
// write.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	if len(p) > 4 && p[3] == 0 && p[4] != 0x01 && p[4] != 0x19 {
		c.n.Add(1)
	}
	return c.Conn.Write(p)
}

// countedConfig parses dsn with every connection's commands counted in n.
func countedConfig(tb testing.TB, dsn string, n *atomic.Int64) *mysql.Config {
	tb.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, n}, nil
	}
	return cfg
}

// countedClient opens a Client through Open's own path, with its round trips
// counted in n.
func countedClient(tb testing.TB, dsn string, mode Mode, n *atomic.Int64) *distlock.Client {
	tb.Helper()
	drv, err := openConfig(context.Background(), countedConfig(tb, dsn, n), &Options{Mode: mode})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := distlock.NewClient(drv)
	if err != nil {
		drv.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestRoundTripsPerOperation pins the round trips the package documents.
func TestRoundTripsPerOperation(t *testing.T) {
	dsn := testserver.StartMariaDB(t).DSN()
	ctx := t.Context()
	for _, c := range []struct {
		mode                  Mode
		lock, refresh, unlock int64
		contended             int64
	}{
		// Lease-row: one prepared statement each; a contended TryLock
		// reads the holder after the upsert.
		{LeaseRow, 1, 1, 1, 2},
		// GET_LOCK: the beacon and the upsert on the beacon's own
		// connection are not prepared statements there (prepare and
		// execute, 2 each); Unlock is the row, then RELEASE_LOCK (2); a
		// contended TryLock also gives its beacon back.
		{GetLock, 4, 1, 3, 8},
	} {
		t.Run(c.mode.String(), func(t *testing.T) {
			var n atomic.Int64
			cl := countedClient(t, dsn, c.mode, &n)
			other := countedClient(t, dsn, c.mode, new(atomic.Int64))
			step := func(what string, want int64, f func() error) {
				t.Helper()
				before := n.Load()
				if err := f(); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got := n.Load() - before; got != want {
					t.Errorf("%s: %d round trips, want %d", what, got, want)
				}
			}
			// Warm up: each statement is prepared once per connection.
			for range 2 {
				l, err := cl.TryLock(ctx, "warm")
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				l.Unlock(ctx)
			}
			var l *distlock.Lock
			step("TryLock", c.lock, func() (err error) { l, err = cl.TryLock(ctx, "k"); return err })
			step("Refresh", c.refresh, func() error { return l.Refresh(ctx) })
			step("Unlock", c.unlock, func() error { return l.Unlock(ctx) })
			ol, err := other.TryLock(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			defer ol.Unlock(ctx)
			step("contended TryLock", c.contended, func() error {
				if _, err := cl.TryLock(ctx, "k"); err == nil {
					return fmt.Errorf("TryLock of a held key succeeded")
				}
				return nil
			})
		})
	}
}

// BenchmarkFloor is the floor Lock+Unlock is measured against: a plain
// INSERT and DELETE of one row, prepared once, through a handle opened as
// Open opens it. A lease-row lock cannot cost less than two autocommit
// writes.
func BenchmarkFloor(b *testing.B) {
	dsn := testserver.StartMariaDB(b).DSN()
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("contenders=%d", par), func(b *testing.B) {
			var n atomic.Int64
			conn, err := mysql.NewConnector(countedConfig(b, dsn, &n))
			if err != nil {
				b.Fatal(err)
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			ctx := context.Background()
			ins, del, err := prepareFloor(ctx, db)
			if err != nil {
				b.Fatal(err)
			}
			defer ins.Close()
			defer del.Close()
			var id atomic.Int64
			start := n.Load()
			b.ResetTimer()
			runParallel(b, par, func() func() error {
				key := fmt.Sprint("floor-", id.Add(1))
				return func() error {
					if _, err := ins.ExecContext(ctx, key, "token"); err != nil {
						return err
					}
					_, err := del.ExecContext(ctx, key, "token")
					return err
				}
			})
			b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

// BenchmarkLockUnlock is Lock and Unlock in both modes: uncontended (one
// Client, one key) and with 8 Clients, as 8 processes would be, taking
// turns on one key.
func BenchmarkLockUnlock(b *testing.B) {
	dsn := testserver.StartMariaDB(b).DSN()
	for _, mode := range []Mode{LeaseRow, GetLock} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("mode=%v/contenders=%d", mode, par), func(b *testing.B) {
				var n atomic.Int64
				clients := make([]*distlock.Client, par)
				for i := range clients {
					clients[i] = countedClient(b, dsn, mode, &n)
				}
				key := fmt.Sprintf("bench-%v-%d-%d", mode, par, b.N)
				var id atomic.Int64
				ctx := context.Background()
				start := n.Load()
				b.ResetTimer()
				runParallel(b, par, func() func() error {
					c := clients[id.Add(1)-1]
					return func() error {
						l, err := c.Lock(ctx, key)
						if err != nil {
							return err
						}
						return l.Unlock(ctx)
					}
				})
				b.ReportMetric(float64(n.Load()-start)/float64(b.N), "roundtrips/op")
			})
		}
	}
}

// runParallel runs b.N calls of the op each of par goroutines makes.
func runParallel(b *testing.B, par int, newOp func() func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range par {
		op := newOp()
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) && !failed.Load() {
				if err := op(); err != nil {
					if failed.CompareAndSwap(false, true) {
						b.Error(err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
}
