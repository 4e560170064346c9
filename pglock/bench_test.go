package pglock

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
)

// countingConn counts the writes a client makes on a connection: pgx sends
// each round trip's messages (Parse, Bind, Execute, Sync, or one Query) in
// one write, so writes are round trips.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// countedConfig parses dsn with every connection's writes counted in n.
func countedConfig(tb testing.TB, dsn string, n *atomic.Int64) *pgxpool.Config {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
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

// benchDSN starts a server for a benchmark function.
func benchDSN(b *testing.B) string {
	pg := testserver.StartPostgres(b)
	return pg.DSN()
}

// TestRoundTripsPerOperation pins the round trips the package documents.
func TestRoundTripsPerOperation(t *testing.T) {
	dsn := testserver.StartPostgres(t).DSN()
	ctx := t.Context()
	for _, c := range []struct {
		mode                  Mode
		lock, refresh, unlock int64
		contended             int64
	}{
		// Lease-row: one statement each; a contended TryLock reads the
		// holder after the upsert that wrote nothing.
		{LeaseRow, 1, 1, 1, 2},
		// Advisory: the beacon, then the upsert on its connection; Unlock
		// is the row, then the beacon; a contended TryLock also gives its
		// beacon back.
		{Advisory, 2, 1, 2, 4},
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
			// Warm up: pgx prepares each statement once per connection.
			for range 3 {
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
			for range 2 { // the first prepares the read
				cl.TryLock(ctx, "k")
			}
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
// INSERT and DELETE of one row through a pool opened as Open opens it. A
// lease-row lock cannot cost less than two autocommit writes.
func BenchmarkFloor(b *testing.B) {
	dsn := benchDSN(b)
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("contenders=%d", par), func(b *testing.B) {
			var n atomic.Int64
			pool, err := pgxpool.NewWithConfig(context.Background(), countedConfig(b, dsn, &n))
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			ctx := context.Background()
			if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_floor (k text PRIMARY KEY, v text NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			var id atomic.Int64
			start := n.Load()
			b.ResetTimer()
			runParallel(b, par, func() func() error {
				key := fmt.Sprint("floor-", id.Add(1))
				return func() error {
					if _, err := pool.Exec(ctx, `INSERT INTO bench_floor (k, v) VALUES ($1, $2)`, key, "token"); err != nil {
						return err
					}
					_, err := pool.Exec(ctx, `DELETE FROM bench_floor WHERE k = $1 AND v = $2`, key, "token")
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
	dsn := benchDSN(b)
	for _, mode := range []Mode{LeaseRow, Advisory} {
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
