package drivertest

import (
	"errors"
	"time"

	"github.com/distlock/distlock"
)

// comeBack is how long a store may take to answer again after a restart or
// a rollback, by the case's polling.
const comeBack = 30 * time.Second

// takeWhenBack polls until c takes key: the store may still be coming back,
// and a restored lock must first expire. It returns nil and reports the
// failure after comeBack plus a TTL.
func (t *caseT) takeWhenBack(c *distlock.Client, key, what string) *distlock.Lock {
	t.T.Helper()
	bound := comeBack + t.s.expiryBound()
	var err error
	for end := time.Now().Add(bound); time.Now().Before(end) && t.ctx.Err() == nil; t.sleep(t.s.ttl / 10) {
		var l *distlock.Lock
		if l, err = c.TryLock(t.ctx, key); err == nil {
			return l
		}
	}
	t.Errorf("%s: TryLock still fails %v later: %v", what, bound, err)
	return nil
}

// wantFenceAbove takes key through c once the store answers, checks that
// its fence is above last, and releases it.
func (t *caseT) wantFenceAbove(c *distlock.Client, key string, last uint64, what string) {
	t.T.Helper()
	l := t.takeWhenBack(c, key, what)
	if l == nil {
		return
	}
	if l.Fence() <= last {
		t.Errorf("%s: fence %d, want above %d, the last handed out before", what, l.Fence(), last)
	}
	t.unlock(l)
}

// cycle takes and releases key n times through c and returns the last
// fence.
func (t *caseT) cycle(c *distlock.Client, key string, n int) uint64 {
	t.T.Helper()
	var last uint64
	for range n {
		l := t.tryLock(c, key)
		last = l.Fence()
		t.unlock(l)
	}
	return last
}

// letGo releases l if its Client still can; a lock the store forgot (a
// restart without persistence) is reported lost, which is fine here.
func (t *caseT) letGo(l *distlock.Lock, what string) {
	t.T.Helper()
	if err := l.Unlock(t.ctx); err != nil && !errors.Is(err, distlock.ErrNotHeld) {
		t.Logf("%s: Unlock: %v", what, err)
	}
}

func testFenceAfterRestart(t *caseT) {
	a := t.client()
	k, kh := t.key(), t.key()
	last := t.cycle(a, k, 3)
	lh := t.tryLock(a, kh) // held across the restart
	if err := t.s.caps.restarter.Restart(t.ctx, t.T); err != nil {
		t.harnessFatalf("Restart: %v", err)
	}
	b := t.client()
	t.wantFenceAbove(b, k, last, "a key free at the restart, by a new Client")
	t.wantFenceAbove(a, k, last, "a key free at the restart, by a Client from before")
	// The store may have kept the held lock (then its holder renews it and
	// releases it now) or lost it (then its holder learns at its next
	// renewal): either way, the next holder's fence is above it.
	t.letGo(lh, "the lock held across the restart")
	t.wantFenceAbove(b, kh, lh.Fence(), "a key held at the restart")
}

func testFenceAfterRollback(t *caseT) {
	a := t.client()
	k, kh := t.key(), t.key()
	t.cycle(a, k, 1) // the key has a fence at the snapshot
	lh := t.tryLock(a, kh)
	rollback, err := t.s.caps.rollbacker.Snapshot(t.ctx, t.T)
	if err != nil {
		t.harnessFatalf("Snapshot: %v", err)
	}
	// Writes the rollback loses.
	last := t.cycle(a, k, 3)
	t.unlock(lh)
	lastH := t.cycle(a, kh, 2)
	if err := rollback(t.ctx); err != nil {
		t.harnessFatalf("rolling back to the snapshot: %v", err)
	}
	b := t.client()
	t.wantFenceAbove(b, k, last, "a key free at the snapshot")
	// kh comes back held by a token nobody uses: it expires by its TTL.
	t.wantFenceAbove(b, kh, lastH, "a key held at the snapshot")
}
