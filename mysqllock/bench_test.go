package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/leaserowtest"
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

// counted is countedClient on dsn, in the shared tests' shape.
func counted(dsn string) leaserowtest.CountedOpen[Mode] {
	return func(tb testing.TB, mode Mode, n *atomic.Int64) *distlock.Client {
		return countedClient(tb, dsn, mode, n)
	}
}

// TestRoundTripsPerOperation pins the round trips the package documents.
func TestRoundTripsPerOperation(t *testing.T) {
	dsn := testserver.StartMariaDB(t).DSN()
	leaserowtest.RoundTripsPerOperation(t, counted(dsn), []leaserowtest.RoundTrips[Mode]{
		// Lease-row: one prepared statement each; a contended TryLock
		// reads the holder after the upsert.
		{Mode: LeaseRow, Lock: 1, Refresh: 1, Unlock: 1, Contended: 2},
		// GET_LOCK: the beacon and the upsert on the beacon's own
		// connection are not prepared statements there (prepare and
		// execute, 2 each); Unlock is the row, then RELEASE_LOCK (2); a
		// contended TryLock also gives its beacon back.
		{Mode: GetLock, Lock: 4, Refresh: 1, Unlock: 3, Contended: 8},
	})
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
			leaserowtest.RunParallel(b, par, func() func() error {
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

// BenchmarkLockUnlock: see leaserowtest.BenchmarkLockUnlock.
func BenchmarkLockUnlock(b *testing.B) {
	leaserowtest.BenchmarkLockUnlock(b, counted(testserver.StartMariaDB(b).DSN()), LeaseRow, GetLock)
}
