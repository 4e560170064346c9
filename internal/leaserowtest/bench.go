package leaserowtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distlock/distlock"
)

// CountedOpen returns a Client in mode whose round trips to the database
// are counted in n, closed when the test ends.
type CountedOpen[M fmt.Stringer] func(tb testing.TB, mode M, n *atomic.Int64) *distlock.Client

// RoundTrips is what a package documents one mode's calls to cost, once
// each statement has been prepared on its connection.
type RoundTrips[M fmt.Stringer] struct {
	Mode                             M
	Lock, Refresh, Unlock, Contended int64
}

// RoundTripsPerOperation pins the round trips of TryLock, Refresh, Unlock
// and a TryLock of a held key, for each mode in want.
func RoundTripsPerOperation[M fmt.Stringer](t *testing.T, open CountedOpen[M], want []RoundTrips[M]) {
	ctx := t.Context()
	for _, c := range want {
		t.Run(c.Mode.String(), func(t *testing.T) {
			var n atomic.Int64
			cl := open(t, c.Mode, &n)
			other := open(t, c.Mode, new(atomic.Int64))
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
			// Warm up: drivers prepare each statement once per connection
			// (pgx on its second use).
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
			step("TryLock", c.Lock, func() (err error) { l, err = cl.TryLock(ctx, "k"); return err })
			step("Refresh", c.Refresh, func() error { return l.Refresh(ctx) })
			step("Unlock", c.Unlock, func() error { return l.Unlock(ctx) })
			ol, err := other.TryLock(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			defer ol.Unlock(ctx)
			for range 2 { // warms the read of the holder
				cl.TryLock(ctx, "k")
			}
			step("contended TryLock", c.Contended, func() error {
				if _, err := cl.TryLock(ctx, "k"); err == nil {
					return errors.New("TryLock of a held key succeeded")
				}
				return nil
			})
		})
	}
}

// BenchmarkLockUnlock runs Lock and Unlock in each mode: uncontended (one
// Client, one key) and with 8 Clients, as 8 processes would be, taking
// turns on one key; it reports round trips per operation.
func BenchmarkLockUnlock[M fmt.Stringer](b *testing.B, open CountedOpen[M], modes ...M) {
	for _, mode := range modes {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("mode=%v/contenders=%d", mode, par), func(b *testing.B) {
				var n atomic.Int64
				clients := make([]*distlock.Client, par)
				for i := range clients {
					clients[i] = open(b, mode, &n)
				}
				key := fmt.Sprintf("bench-%v-%d-%d", mode, par, b.N)
				var id atomic.Int64
				ctx := context.Background()
				start := n.Load()
				b.ResetTimer()
				RunParallel(b, par, func() func() error {
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

// RunParallel runs b.N calls in all of the op each of par goroutines makes.
func RunParallel(b *testing.B, par int, newOp func() func() error) {
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
