package pglock

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/leaserowtest"
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

// counted is countedClient on dsn, in the shared tests' shape.
func counted(dsn string) leaserowtest.CountedOpen[Mode] {
	return func(tb testing.TB, mode Mode, n *atomic.Int64) *distlock.Client {
		return countedClient(tb, dsn, mode, n)
	}
}

// TestRoundTripsPerOperation pins the round trips the package documents.
func TestRoundTripsPerOperation(t *testing.T) {
	dsn := testserver.StartPostgres(t).DSN()
	leaserowtest.RoundTripsPerOperation(t, counted(dsn), []leaserowtest.RoundTrips[Mode]{
		// Lease-row: one statement each; a contended TryLock reads the
		// holder after the upsert that wrote nothing.
		{Mode: LeaseRow, Lock: 1, Refresh: 1, Unlock: 1, Contended: 2},
		// Advisory: the beacon, then the upsert on its connection; Unlock
		// is the row, then the beacon; a contended TryLock also gives its
		// beacon back.
		{Mode: Advisory, Lock: 2, Refresh: 1, Unlock: 2, Contended: 4},
	})
}

// BenchmarkFloor is the floor Lock+Unlock is measured against: a plain
// INSERT and DELETE of one row through a pool opened as Open opens it. A
// lease-row lock cannot cost less than two autocommit writes.
func BenchmarkFloor(b *testing.B) {
	dsn := testserver.StartPostgres(b).DSN()
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
			leaserowtest.RunParallel(b, par, func() func() error {
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

// BenchmarkLockUnlock: see leaserowtest.BenchmarkLockUnlock.
func BenchmarkLockUnlock(b *testing.B) {
	leaserowtest.BenchmarkLockUnlock(b, counted(testserver.StartPostgres(b).DSN()), LeaseRow, Advisory)
}
