package drivertest

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

func testMutualExclusion(t *caseT) {
	const contenders, rounds = 16, 200
	k := t.key()
	// Every attempt is timed: slow attempts under contention explain a slow
	// case, or locks lost to the local deadline.
	var lat latencies
	timed := &fault{acquire: func(ctx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error) {
		start := time.Now()
		l, err := next(ctx, req)
		lat.add(time.Since(start))
		return l, err
	}}
	clients := make([]*distlock.Client, contenders)
	for i := range clients {
		// Short back-off: the case measures exclusion, not patience.
		clients[i] = t.clientOn(timed, distlock.WithBackoff(2*time.Millisecond, 100*time.Millisecond))
	}

	var (
		inside   atomic.Int32
		waiting  atomic.Int32
		waitSum  atomic.Int64
		overlaps atomic.Int64
		mu       sync.Mutex
		fences   []uint64 // in the order the lock was taken
		holders  []int    // who took it, in the same order
		wg       sync.WaitGroup
	)
	began := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			for r := range rounds {
				waiting.Add(1)
				l, err := c.Lock(t.ctx, k)
				w := waiting.Add(-1)
				if err != nil {
					t.Errorf("contender %d, round %d: Lock: %v", i, r, err)
					return
				}
				waitSum.Add(int64(w))
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				mu.Lock()
				fences = append(fences, l.Fence())
				holders = append(holders, i)
				mu.Unlock()
				runtime.Gosched()
				inside.Add(-1)
				if err := l.Unlock(t.ctx); err != nil {
					t.Errorf("contender %d, round %d: Unlock after a tiny critical section: %v", i, r, err)
					return
				}
				// Step back a moment, so that the key changes hands
				// instead of going back to whoever just released it.
				time.Sleep(mrand.N(2 * time.Millisecond))
			}
		})
	}
	wg.Wait()
	handovers := 0
	for i := 1; i < len(holders); i++ {
		if holders[i] != holders[i-1] {
			handovers++
		}
	}
	t.Logf("%d contenders × %d critical sections on one key: %v, %d handovers between contenders, %.1f others waiting on average; %s",
		contenders, rounds, time.Since(began).Round(time.Millisecond), handovers, float64(waitSum.Load())/float64(max(1, len(fences))), lat.summary("Acquire"))

	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d critical sections overlapped another", n)
	}
	if len(fences) != contenders*rounds {
		t.Errorf("%d critical sections ran, want %d", len(fences), contenders*rounds)
	}
	bad := 0
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			if bad < 3 {
				t.Errorf("acquisition %d got fence %d, not above the previous acquisition's %d", i, fences[i], fences[i-1])
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("... and %d more acquisitions whose fence did not grow", bad-3)
	}
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// summary is "N calls: p50 …, p99 …, max …".
func (l *latencies) summary(what string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return "no " + what + " calls"
	}
	d := slices.Clone(l.d)
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))].Round(time.Microsecond) }
	return fmt.Sprintf("%d %s calls: p50 %v, p99 %v, max %v", len(d), what, at(0.5), at(0.99), d[len(d)-1].Round(time.Microsecond))
}
