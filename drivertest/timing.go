package drivertest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

func testCrashedHolderExpires(t *caseT) {
	a, b := t.client(), t.client()
	k := t.key()
	// No renewal stands for a holder that crashed.
	la := t.tryLock(a, k, distlock.WithAutoRenew(false))
	deadline := la.Deadline()

	lockCtx, cancel := context.WithTimeout(t.ctx, 10*t.s.ttl+10*time.Second)
	defer cancel()
	lb, err := b.Lock(lockCtx, k)
	got := time.Now()
	if err != nil {
		t.Fatalf("Lock on a key whose holder stopped renewing: %v", err)
	}
	defer t.unlock(lb)
	// A store that keeps time in whole units (SQLite: milliseconds) may
	// expire a lock up to one unit before the holder's own deadline.
	slack := max(t.s.info.TTLGranularity, time.Millisecond)
	if got.Before(deadline.Add(-slack)) {
		t.Errorf("the waiter got the key %v before the holder's TTL ran out (its deadline)", deadline.Sub(got))
	}
	if lb.Fence() <= la.Fence() {
		t.Errorf("the next holder's fence %d is not above the expired holder's %d", lb.Fence(), la.Fence())
	}
	if !waitClosed(la.Done(), 2*time.Second) {
		t.Fatalf("the expired holder's Done is still open 2s after another Client took the key")
	}
	t.wantIs(la.Err(), "the expired holder's Err", distlock.ErrLost)
	t.wantIs(context.Cause(la.Context()), "the expired holder's context cause", distlock.ErrLost)
	t.wantHeldBy(a, k, lb.Fence(), "after expiry and takeover")
}

func testRenewalKeepsLock(t *caseT) {
	a, b := t.client(), t.client()
	k, kr := t.key(), t.key()
	la := t.tryLock(a, k) // renewed in the background
	lr := t.tryLock(a, kr, distlock.WithAutoRenew(false))
	first := la.Deadline()

	end := time.Now().Add(7 * t.s.ttl / 2)
	for time.Now().Before(end) && t.ctx.Err() == nil {
		t.sleep(t.s.ttl / 4)
		if err := lr.Refresh(t.ctx); err != nil {
			t.Fatalf("Refresh of a held lock: %v", err)
		}
		t.wantLocked(b, k, "another Client, while the holder renews")
		t.wantLocked(b, kr, "another Client, while the holder calls Refresh")
		select {
		case <-la.Done():
			t.Fatalf("the renewed lock was lost: %v", la.Err())
		default:
		}
	}
	if err := la.Err(); err != nil {
		t.Errorf("Err of a renewed lock after 3.5 TTLs = %v, want nil", err)
	}
	if !la.Deadline().After(first) {
		t.Errorf("Deadline did not move after 3.5 TTLs of renewal (still %v)", first)
	}
	t.wantHeldBy(b, k, la.Fence(), "after 3.5 TTLs")
	t.unlock(la)
	t.unlock(lr)
}

func testLossDetected(t *caseT) {
	a, b := t.client(), t.client()
	k := t.key()
	la := t.tryLock(a, k)
	if err := t.s.h.Evict(t.ctx, t.T, k); err != nil {
		t.harnessFatalf("Evict: %v", err)
	}
	bound := t.s.lossBound()
	if !waitClosed(la.Done(), bound) {
		t.Fatalf("Done is still open %v after the lock was evicted (renewal interval %v)", bound, t.s.interval())
	}
	t.wantIs(la.Err(), "Err after eviction", distlock.ErrLost)
	if la.Context().Err() == nil {
		t.Errorf("the Lock's context is not cancelled after the loss")
	}
	t.wantIs(context.Cause(la.Context()), "the Lock's context cause", distlock.ErrLost)
	t.wantIs(la.Unlock(t.ctx), "Unlock of a lost lock", distlock.ErrNotHeld)
	if f := t.wantFree(b, k, "another Client after the eviction"); f != 0 && f <= la.Fence() {
		t.Errorf("fence after eviction = %d, want above the evicted holder's %d", f, la.Fence())
	}
}

func testFenceMonotonic(t *caseT) {
	a, b, c := t.client(), t.client(), t.client()
	k := t.key()
	var last uint64
	step := func(cl *distlock.Client, how string, evict bool) {
		t.T.Helper()
		l := t.tryLock(cl, k)
		if l.Fence() <= last {
			t.Errorf("%s: fence %d, want above the previous holder's %d", how, l.Fence(), last)
		}
		last = l.Fence()
		if evict {
			if err := t.s.h.Evict(t.ctx, t.T, k); err != nil {
				t.harnessFatalf("Evict: %v", err)
			}
			return
		}
		t.unlock(l)
	}
	step(a, "first holder", false)
	step(b, "another Client after release", false)
	step(b, "the same Client again after release", false)
	step(a, "the first Client again", true)
	step(c, "a third Client after the holder was evicted", true)
	step(a, "after a second eviction", false)
	for i := range 5 {
		step([]*distlock.Client{a, b, c}[i%3], fmt.Sprintf("round %d of evictions and releases", i), i%2 == 0)
	}

	// Fences are per key, but a key must never see a smaller one because
	// another key was used in between.
	k2 := t.key()
	t.wantFree(c, k2, "an unrelated key")
	step(c, "after an unrelated key was taken", false)
}

func testRenewalBatched(t *caseT) {
	const n = 20
	// A longer TTL than elsewhere: the 20 acquisitions must fall within a
	// quarter of an interval for their renewals to fall into step.
	ttl := max(3*t.s.ttl, 1500*time.Millisecond)
	if g := t.s.info.TTLGranularity; g > 0 && ttl%g != 0 {
		ttl = (ttl/g + 1) * g
	}
	interval := ttl / 3

	var (
		mu    sync.Mutex
		calls []renewCall
	)
	a := t.clientOn(&fault{renew: func(ctx context.Context, leases []driver.Lease, next renewFunc) ([]error, error) {
		c := renewCall{at: time.Now()}
		for _, l := range leases {
			c.keys = append(c.keys, l.Key)
		}
		c.errs, c.err = next(ctx, leases)
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return c.errs, c.err
	}}, distlock.WithTTL(ttl))
	take := func(since time.Time) []renewCall {
		mu.Lock()
		defer mu.Unlock()
		var out []renewCall
		for _, c := range calls {
			if !c.at.Before(since) {
				out = append(out, c)
			}
		}
		return out
	}

	locks := make([]*distlock.Lock, n)
	began := time.Now()
	for i := range locks {
		locks[i] = t.tryLock(a, t.key())
	}
	if d := time.Since(began); d > interval/4 {
		t.Logf("taking %d locks took %v, more than a quarter of the renewal interval %v: their renewals may not fall into step", n, d, interval)
	}

	// Wait for the first full batch, then watch 2.5 intervals.
	bound := 3*interval + 2*time.Second
	var start time.Time
	for deadline := time.Now().Add(bound); start.IsZero(); {
		for _, c := range take(began) {
			if len(c.keys) == n {
				start = c.at.Add(time.Nanosecond)
				break
			}
		}
		if start.IsZero() {
			if time.Now().After(deadline) {
				t.Fatalf("no Renew call carried all %d locks within %v; calls: %v", n, bound, batchSizes(take(began)))
			}
			t.sleep(interval / 10)
		}
	}
	t.sleep(5 * interval / 2)
	got := take(start)
	if len(got) < 1 || len(got) > 4 {
		t.Errorf("%d Renew calls in 2.5 renewal intervals, want about one per interval (sizes %v)", len(got), batchSizes(got))
	}
	for _, c := range got {
		if len(c.keys) != n {
			t.Errorf("a Renew call carried %d leases, want all %d locks together (sizes %v)", len(c.keys), n, batchSizes(got))
			break
		}
		if c.err != nil {
			t.Errorf("Renew of held locks failed: %v", c.err)
			break
		}
		for _, e := range c.errs {
			if e != nil {
				t.Errorf("Renew of a held lock answered %v", e)
				break
			}
		}
	}

	// Released locks leave the batch.
	for _, l := range locks[n/2:] {
		t.unlock(l)
	}
	released := time.Now()
	t.sleep(2 * interval)
	got = take(released)
	if len(got) == 0 {
		t.Errorf("no Renew call within 2 intervals after half the locks were released")
	}
	for _, c := range got {
		if len(c.keys) != n/2 {
			t.Errorf("after releasing half the locks, a Renew call carried %d leases, want %d (sizes %v)", len(c.keys), n/2, batchSizes(got))
			break
		}
	}
	for _, l := range locks[:n/2] {
		if err := l.Err(); err != nil {
			t.Errorf("a renewed lock was lost: %v", err)
		}
		t.unlock(l)
	}
}

// renewCall is one Renew call seen by testRenewalBatched.
type renewCall struct {
	at   time.Time
	keys []string
	errs []error
	err  error
}

func batchSizes(calls []renewCall) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = len(c.keys)
	}
	return out
}
