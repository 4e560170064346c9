package drivertest

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// cases is the suite, in the order it runs: single-call behaviour first,
// then time (expiry, renewal, loss), then waiting, then the stress test.
var cases = []testCase{
	{"Status",
		"Status reports a free key as not held, and a held key with its owner, its fence and a remaining TTL in (0, ttl]",
		testStatus},
	{"TryLockContended",
		"TryLock on a key somebody holds, the holder's own Client included, fails at once with ErrLocked",
		testTryLockContended},
	{"Unlock",
		"Unlock frees the key for others at once and ends the Lock cleanly; a second Unlock reports ErrNotHeld",
		testUnlock},
	{"DriverContract",
		"each driver call answers as package driver documents: a retried Acquire returns the holder's lease, contention is ErrLocked, Inspect reads the holder, Renew answers per lease, Release only for the holder",
		testDriverContract},
	{"OwnerOnly",
		"only the token that holds a key can release or renew it; a stale or made-up token gets ErrNotHeld and changes nothing",
		testOwnerOnly},
	{"CrashedHolderExpires",
		"a lock nobody renews expires after its TTL and not before: a waiter then takes it with a larger fence, and the old holder's Lock reports ErrLost",
		testCrashedHolderExpires},
	{"RenewalKeepsLock",
		"a lock renewed, in the background or by Refresh, stays held long past its TTL",
		testRenewalKeepsLock},
	{"LossDetected",
		"when a lock is removed behind its holder's back, the holder learns within a few renewal intervals: Done closes, Err and the Lock's context cause wrap ErrLost, Unlock reports ErrNotHeld",
		testLossDetected},
	{"FenceMonotonic",
		"a key's fence grows strictly with every acquisition, across clients, releases and evictions",
		testFenceMonotonic},
	{"LockCancelled",
		"a Lock waiting for a key returns soon after its ctx ends, with an error wrapping the ctx's error and ErrLocked, and leaves nothing held",
		testLockCancelled},
	{"LockWakesOnRelease",
		"a Lock waiting for a key gets it after the holder unlocks, with a larger fence",
		testLockWakesOnRelease},
	{"LockContextBoundsWaitOnly",
		"the ctx given to Lock or TryLock bounds the waiting only: the lock stays held, and renewed, after that ctx ends",
		testLockContextBoundsWaitOnly},
	{"Do",
		"Do runs fn under the lock, returns fn's error and releases the lock afterwards; if the lock is lost meanwhile, fn's context is cancelled with ErrLost as its cause and Do's error wraps ErrLost",
		testDo},
	{"Close",
		"Client.Close releases every lock the Client holds (their Err wraps ErrClosed), ends its waiting Locks with ErrClosed, makes later calls return ErrClosed, and may be called twice",
		testClose},
	{"InvalidInput",
		"invalid keys and options are refused with an error wrapping ErrInvalid whose message names the problem, and nothing is taken; every valid key works",
		testInvalidInput},
	{"KeysAreExact",
		"keys are compared byte for byte: keys that differ only in case, trailing space or Unicode normalization are different locks",
		testKeysAreExact},
	{"AmbiguousAcquire",
		"an acquire whose reply was lost is read back by token: the caller gets the lock if and only if the store granted it, and nothing stays held when the caller gave up",
		testAmbiguousAcquire},
	{"RenewalBatched",
		"one Client renews all its locks with the same TTL together, in one driver call per renewal interval",
		testRenewalBatched},
	{"MutualExclusion",
		"at most one of many contending Clients holds a key at any moment, and fences strictly increase in the order the lock is taken",
		testMutualExclusion},
}

func testStatus(t *caseT) {
	a, b := t.client(), t.client()
	free := t.key()
	st := t.status(b, free)
	if st.Held || st.Fence != 0 || st.Owner != "" || st.Key != free {
		t.Errorf("Status of a key never taken = %+v, want {Key: %q, Held: false} and nothing else", st, short(free))
	}

	k := t.key()
	const owner = "drivertest owner ✓ 'quoted'"
	l := t.tryLock(a, k, distlock.WithOwner(owner))
	for _, c := range []struct {
		name   string
		client *distlock.Client
	}{{"holder's Client", a}, {"another Client", b}} {
		st := t.status(c.client, k)
		switch {
		case !st.Held:
			t.Errorf("%s: Status of a held key says it is free", c.name)
		case st.Key != k:
			t.Errorf("%s: Status.Key = %q, want %q", c.name, short(st.Key), short(k))
		case st.Owner != owner:
			t.Errorf("%s: Status.Owner = %q, want the WithOwner value %q", c.name, st.Owner, owner)
		case st.Fence != l.Fence():
			t.Errorf("%s: Status.Fence = %d, want the holder's fence %d", c.name, st.Fence, l.Fence())
		case st.TTL <= 0 || st.TTL > t.s.ttl:
			t.Errorf("%s: Status.TTL = %v, want a remaining time in (0, %v]", c.name, st.TTL, t.s.ttl)
		}
	}
	if l.Owner() != owner {
		t.Errorf("Lock.Owner() = %q, want %q", l.Owner(), owner)
	}
	t.unlock(l)
	t.wantNotHeld(b, k, "after Unlock")

	// Without WithOwner the store still keeps some owner metadata
	// (hostname:pid by default).
	k2 := t.key()
	l2 := t.tryLock(a, k2)
	if st := t.status(b, k2); st.Owner == "" || st.Owner != l2.Owner() {
		t.Errorf("Status.Owner of a lock taken without WithOwner = %q, want the default owner %q", st.Owner, l2.Owner())
	}
	t.unlock(l2)
}

func testTryLockContended(t *caseT) {
	a, b := t.client(), t.client()
	k := t.key()
	l := t.tryLock(a, k)
	t.wantLocked(b, k, "another Client")
	t.wantLocked(a, k, "the holder's own Client (locks are not reentrant)")
	_, err := b.TryLock(t.ctx, k)
	if errors.Is(err, distlock.ErrLost) || errors.Is(err, distlock.ErrNotHeld) {
		t.Errorf("contention must be told apart from loss: TryLock error %v wraps ErrLost or ErrNotHeld", err)
	}
	t.wantHeldBy(b, k, l.Fence(), "after the failed attempts")
	if err := l.Err(); err != nil {
		t.Errorf("the holder's Err after others' failed attempts = %v, want nil", err)
	}
	t.unlock(l)
	t.wantFree(b, k, "after the holder unlocked")
}

func testUnlock(t *caseT) {
	a, b := t.client(), t.client()
	k := t.key()
	l := t.tryLock(a, k)
	if err := l.Unlock(t.ctx); err != nil {
		t.Fatalf("Unlock of a held lock: %v", err)
	}
	select {
	case <-l.Done():
	default:
		t.Errorf("Done is still open after Unlock returned")
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err after a successful Unlock = %v, want nil", err)
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, context.Canceled) {
		t.Errorf("the Lock's context cause after Unlock = %v, want context.Canceled", cause)
	}
	if f := t.wantFree(b, k, "another Client right after Unlock"); f != 0 && f <= l.Fence() {
		t.Errorf("the next holder's fence %d is not above the released lock's %d", f, l.Fence())
	}
	err := l.Unlock(t.ctx)
	t.wantIs(err, "second Unlock", distlock.ErrNotHeld)
}

func testDriverContract(t *caseT) {
	d1, d2 := t.driver(), t.driver()
	ctx, ttl := t.ctx, t.s.ttl
	k, k2 := t.key(), t.key()

	if h, err := d1.Inspect(ctx, k); err != nil || h.Held {
		t.Errorf("Inspect of a key never taken = %+v, %v; want Held false and no error", h, err)
	}
	req := driver.AcquireRequest{Key: k, Token: newToken(), TTL: ttl, Owner: "drivertest"}
	l1, err := d1.Acquire(ctx, req)
	if err != nil {
		t.Fatalf("Acquire of a free key: %v", err)
	}
	if l1.Key != k || l1.Token != req.Token || l1.Fence == 0 || (l1.TTL != 0 && l1.TTL < ttl) {
		t.Errorf("Acquire returned %+v; want the request's key and token, a fence above 0, and a TTL of 0 (not reported) or at least %v", l1, ttl)
	}

	// The same request again, through another connection, as a retry after
	// a lost reply would be: the same lease.
	if again, err := d2.Acquire(ctx, req); err != nil || again.Fence != l1.Fence {
		t.Errorf("Acquire retried with the holder's token = %+v, %v; want the held lease, fence %d", again, err, l1.Fence)
	}

	other := driver.AcquireRequest{Key: k, Token: newToken(), TTL: ttl, Owner: "other"}
	_, err = d2.Acquire(ctx, other)
	if t.wantIs(err, "Acquire of a held key with another token", driver.ErrLocked) {
		var he *driver.HeldError
		if errors.As(err, &he) {
			h := he.Holder
			if !h.Held || h.Fence != l1.Fence || h.Owner != "drivertest" || h.TTL < 0 || h.TTL > ttl {
				t.Errorf("HeldError.Holder = {Held: %v, Fence: %d, Owner: %q, TTL: %v}; want the holder (fence %d, owner %q, TTL 0 or in (0, %v])",
					h.Held, h.Fence, h.Owner, h.TTL, l1.Fence, "drivertest", ttl)
			}
		}
	}

	h, err := d2.Inspect(ctx, k)
	if err != nil || !h.Held || h.Token != req.Token || h.Fence != l1.Fence || h.Owner != "drivertest" || h.TTL <= 0 || h.TTL > ttl {
		t.Errorf("Inspect of a held key = {Held: %v, Token ok: %v, Fence: %d, Owner: %q, TTL: %v}, %v; want the holder's token, fence %d, owner %q, TTL in (0, %v]",
			h.Held, h.Token == req.Token, h.Fence, h.Owner, h.TTL, err, l1.Fence, "drivertest", ttl)
	}

	// A batch with a held lease, a made-up token on a held key and a lease
	// of another key: one answer per lease, in order.
	req2 := driver.AcquireRequest{Key: k2, Token: newToken(), TTL: ttl}
	l2, err := d1.Acquire(ctx, req2)
	if err != nil {
		t.Fatalf("Acquire of a second free key: %v", err)
	}
	fake := driver.Lease{Key: k, Token: newToken(), Fence: l1.Fence, TTL: ttl}
	res, err := d1.Renew(ctx, []driver.Lease{l1, fake, l2})
	switch {
	case err != nil:
		t.Errorf("Renew of a batch: %v", err)
	case len(res) != 3:
		t.Errorf("Renew of 3 leases returned %d results", len(res))
	default:
		if res[0] != nil || res[2] != nil {
			t.Errorf("Renew of held leases: results %v and %v, want nil", res[0], res[2])
		}
		t.wantIs(res[1], "Renew of a made-up token on a held key, in a batch", driver.ErrNotHeld)
	}

	if err := d2.Release(ctx, l1); err != nil {
		t.Errorf("Release by the holder's token: %v", err)
	}
	t.wantIs(d1.Release(ctx, l1), "Release of an already released lease", driver.ErrNotHeld)
	if h, err := d1.Inspect(ctx, k); err != nil || h.Held {
		t.Errorf("Inspect after Release = {Held: %v, Fence: %d}, %v; want the key free", h.Held, h.Fence, err)
	}
	res, err = d1.Renew(ctx, []driver.Lease{l1})
	if err != nil || len(res) != 1 {
		t.Errorf("Renew of a released lease = %v, %v; want one result wrapping ErrNotHeld", res, err)
	} else {
		t.wantIs(res[0], "Renew of a released lease", driver.ErrNotHeld)
	}
	l3, err := d2.Acquire(ctx, other)
	if err != nil {
		t.Errorf("Acquire of a released key: %v", err)
	} else {
		if l3.Fence <= l1.Fence {
			t.Errorf("fence after release = %d, want above the previous holder's %d", l3.Fence, l1.Fence)
		}
		if err := d2.Release(ctx, l3); err != nil {
			t.Errorf("Release: %v", err)
		}
	}
	if err := d1.Release(ctx, l2); err != nil {
		t.Errorf("Release of the second key: %v", err)
	}
}

// recorder is a fault that records the leases a driver grants, so a case can
// use a stale token directly.
type recorder struct {
	mu     sync.Mutex
	leases map[string]driver.Lease // by key, the last granted
}

func (r *recorder) fault() *fault {
	r.leases = make(map[string]driver.Lease)
	return &fault{acquire: func(ctx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error) {
		l, err := next(ctx, req)
		if err == nil {
			r.mu.Lock()
			r.leases[l.Key] = l
			r.mu.Unlock()
		}
		return l, err
	}}
}

func (r *recorder) lease(key string) (driver.Lease, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.leases[key]
	return l, ok
}

func testOwnerOnly(t *caseT) {
	var rec recorder
	a := t.clientOn(rec.fault())
	b := t.client()
	k := t.key()
	la := t.tryLock(a, k, distlock.WithAutoRenew(false))

	// b waits out la's TTL and takes the key.
	lockCtx, cancel := context.WithTimeout(t.ctx, 10*t.s.ttl+10*time.Second)
	defer cancel()
	lb, err := b.Lock(lockCtx, k)
	if err != nil {
		t.Fatalf("Lock on a key whose holder stopped renewing: %v", err)
	}

	// la's token is stale now: whether or not a knows it yet, it can
	// neither renew nor release.
	t.wantIs(la.Refresh(t.ctx), "Refresh by the expired holder", distlock.ErrNotHeld)
	t.wantIs(la.Unlock(t.ctx), "Unlock by the expired holder", distlock.ErrNotHeld)
	t.wantHeldBy(a, k, lb.Fence(), "after the stale holder's Refresh and Unlock")
	if err := lb.Err(); err != nil {
		t.Errorf("the new holder's Err = %v, want nil", err)
	}

	// The same at the driver level, where the portable layer's own
	// bookkeeping cannot help.
	raw := t.driver()
	stale, ok := rec.lease(k)
	if !ok {
		t.Fatalf("drivertest: the recorder saw no lease for the first holder")
	}
	madeUp := driver.Lease{Key: k, Token: newToken(), Fence: lb.Fence(), TTL: t.s.ttl}
	for _, c := range []struct {
		name  string
		lease driver.Lease
	}{{"the stale token", stale}, {"a made-up token", madeUp}} {
		t.wantIs(raw.Release(t.ctx, c.lease), "driver Release with "+c.name, driver.ErrNotHeld)
		res, err := raw.Renew(t.ctx, []driver.Lease{c.lease})
		if err != nil || len(res) != 1 {
			t.Errorf("driver Renew with %s = %v, %v; want one result wrapping ErrNotHeld", c.name, res, err)
		} else {
			t.wantIs(res[0], "driver Renew with "+c.name, driver.ErrNotHeld)
		}
		t.wantHeldBy(b, k, lb.Fence(), "after driver Release and Renew with "+c.name)
	}
	if err := lb.Err(); err != nil {
		t.Errorf("the holder's Err after others' attempts = %v, want nil", err)
	}
	t.unlock(lb)
}

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

func testLockCancelled(t *caseT) {
	a, b, c := t.client(), t.client(), t.client()
	k := t.key()
	la := t.tryLock(a, k)

	// A waiter cancelled while it waits.
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	res := lockAsync(ctx, b, k)
	select {
	case r := <-res:
		t.Fatalf("Lock on a held key returned before its ctx ended: %v, %v", r.l, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case r := <-res:
		if r.err == nil {
			t.Errorf("cancelled Lock returned a lock (fence %d) while the key was held", r.l.Fence())
			r.l.Unlock(t.ctx)
		} else {
			t.wantIs(r.err, "cancelled Lock", context.Canceled, distlock.ErrLocked)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Lock still waiting 2s after its ctx was cancelled")
	}

	// A waiter whose deadline passes.
	dctx, dcancel := context.WithTimeout(t.ctx, 100*time.Millisecond)
	defer dcancel()
	start := time.Now()
	_, err := b.Lock(dctx, k)
	if d := time.Since(start); d > 2*time.Second+100*time.Millisecond {
		t.Errorf("Lock with a 100ms deadline returned after %v", d)
	}
	t.wantIs(err, "Lock whose deadline passed", context.DeadlineExceeded, distlock.ErrLocked)

	t.unlock(la)
	t.wantFree(c, k, "a third Client after the holder unlocked (the cancelled waiters must hold nothing)")

	// A ctx already cancelled: Lock and TryLock return at once, on a free
	// key and on a held one, and take nothing.
	dead, kill := context.WithCancel(t.ctx)
	kill()
	free := t.key()
	held := t.key()
	lh := t.tryLock(a, held)
	for _, key := range []struct{ name, key string }{{"free", free}, {"held", held}} {
		for _, op := range []struct {
			name string
			f    func(context.Context, string, ...distlock.LockOption) (*distlock.Lock, error)
		}{{"Lock", b.Lock}, {"TryLock", b.TryLock}} {
			what := fmt.Sprintf("%s with a cancelled ctx on a %s key", op.name, key.name)
			start := time.Now()
			l, err := op.f(dead, key.key)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s returned after %v", what, d)
			}
			if err == nil {
				t.Errorf("%s returned a lock (fence %d)", what, l.Fence())
				l.Unlock(t.ctx)
				continue
			}
			t.wantIs(err, what, context.Canceled)
		}
	}
	t.wantNotHeld(c, free, "after Lock and TryLock with a cancelled ctx")
	t.wantHeldBy(c, held, lh.Fence(), "after Lock and TryLock with a cancelled ctx")
	t.unlock(lh)
}

func testLockWakesOnRelease(t *caseT) {
	a := t.client()
	k := t.key()
	la := t.tryLock(a, k)

	const waiters = 3
	var (
		mu     sync.Mutex
		fences []uint64
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	started := make(chan struct{}, waiters)
	for i := range waiters {
		c := t.client()
		wg.Go(func() {
			started <- struct{}{}
			l, err := c.Lock(ctx, k)
			if err != nil {
				t.Errorf("waiter %d: Lock: %v", i, err)
				return
			}
			mu.Lock()
			fences = append(fences, l.Fence())
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			if err := l.Unlock(t.ctx); err != nil {
				t.Errorf("waiter %d: Unlock: %v", i, err)
			}
		})
	}
	for range waiters {
		<-started
	}
	time.Sleep(200 * time.Millisecond) // let them block
	mu.Lock()
	early := len(fences)
	mu.Unlock()
	if early > 0 {
		t.Errorf("%d waiters got the key while it was held", early)
	}
	t.unlock(la)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	bound := 10*time.Second + 4*distlock.DefaultMaxBackoff*waiters
	if !waitClosed(done, bound) {
		mu.Lock()
		n := len(fences)
		mu.Unlock()
		t.Errorf("only %d of %d waiters got the key within %v of its release", n, waiters, bound)
		cancel() // end the others' wait
		<-done
		return
	}
	mu.Lock()
	defer mu.Unlock()
	prev := la.Fence()
	for i, f := range fences {
		if f <= prev {
			t.Errorf("waiter %d in order got fence %d, want above %d", i, f, prev)
		}
		prev = f
	}
}

func testLockContextBoundsWaitOnly(t *caseT) {
	a, b := t.client(), t.client()
	k, k2 := t.key(), t.key()

	ctx1, cancel1 := context.WithCancel(t.ctx)
	l1, err := a.Lock(ctx1, k)
	cancel1()
	if err != nil {
		t.Fatalf("Lock on a free key: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(t.ctx, t.s.ttl/2)
	l2, err := a.TryLock(ctx2, k2)
	if err != nil {
		t.Fatalf("TryLock on a free key: %v", err)
	}
	<-ctx2.Done()
	cancel2()

	t.sleep(2 * t.s.ttl)
	for _, l := range []*distlock.Lock{l1, l2} {
		if err := l.Err(); err != nil {
			t.Errorf("Err of a lock whose acquire ctx ended 2 TTLs ago = %v, want nil (still held)", err)
		}
		if l.Context().Err() != nil {
			t.Errorf("the Lock's context ended with its acquire ctx: %v", context.Cause(l.Context()))
		}
		t.wantLocked(b, l.Key(), "another Client, after the holder's acquire ctx ended")
		t.unlock(l)
	}
}

var errFromFn = errors.New("drivertest: error returned by fn")

func testDo(t *caseT) {
	a, b := t.client(), t.client()
	k := t.key()

	ran := 0
	err := a.Do(t.ctx, k, func(ctx context.Context) error {
		ran++
		t.wantLocked(b, k, "another Client, while Do's fn runs")
		if st := t.status(b, k); !st.Held {
			t.Errorf("Status while Do's fn runs says the key is free")
		}
		if ctx.Err() != nil {
			t.Errorf("fn's context is already done: %v", context.Cause(ctx))
		}
		return errFromFn
	})
	if ran != 1 {
		t.Errorf("Do ran fn %d times, want once", ran)
	}
	if !errors.Is(err, errFromFn) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if errors.Is(err, distlock.ErrLost) {
		t.Errorf("Do's error wraps ErrLost although the lock was kept: %v", err)
	}
	t.wantFree(b, k, "another Client after Do returned")

	if err := a.Do(t.ctx, k, func(context.Context) error { return nil }); err != nil {
		t.Errorf("Do with fn returning nil = %v, want nil", err)
	}

	// fn does not run when the key cannot be had.
	lb := t.tryLock(b, k)
	short, cancel := context.WithTimeout(t.ctx, 100*time.Millisecond)
	ran = 0
	err = a.Do(short, k, func(context.Context) error { ran++; return nil })
	cancel()
	if ran != 0 {
		t.Errorf("Do ran fn although the key was held by another Client")
	}
	t.wantIs(err, "Do on a held key until its ctx ended", distlock.ErrLocked)
	t.unlock(lb)

	// The lock is lost while fn runs: fn's context says so.
	var cause error
	err = a.Do(t.ctx, k, func(ctx context.Context) error {
		if err := t.s.h.Evict(t.ctx, t.T, k); err != nil {
			t.harnessFatalf("Evict: %v", err)
		}
		if !waitClosed(ctx.Done(), t.s.lossBound()) {
			t.Errorf("fn's context still open %v after its lock was evicted", t.s.lossBound())
			return nil
		}
		cause = context.Cause(ctx)
		return ctx.Err()
	})
	if cause != nil {
		t.wantIs(cause, "the cause of fn's context after eviction", distlock.ErrLost)
	}
	t.wantIs(err, "Do whose lock was evicted while fn ran", distlock.ErrLost)
	t.wantFree(b, k, "another Client after the evicted Do")
}

func testClose(t *caseT) {
	a, b := t.client(), t.client()
	k1, k2, k3 := t.key(), t.key(), t.key()
	l1 := t.tryLock(a, k1)
	l2 := t.tryLock(a, k2, distlock.WithAutoRenew(false))
	lb := t.tryLock(b, k3)
	waiting := lockAsync(t.ctx, a, k3)
	time.Sleep(100 * time.Millisecond) // let it block

	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, l := range []*distlock.Lock{l1, l2} {
		select {
		case <-l.Done():
		default:
			t.Errorf("Done of a lock is still open after Close returned")
		}
		t.wantIs(l.Err(), "Err of a lock released by Close", distlock.ErrClosed)
		t.wantFree(b, l.Key(), "another Client right after Close")
	}
	select {
	case r := <-waiting:
		if r.err == nil {
			t.Errorf("a Lock waiting during Close returned a lock (fence %d)", r.l.Fence())
		} else {
			t.wantIs(r.err, "a Lock waiting during Close", distlock.ErrClosed)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("a Lock waiting during Close is still waiting 2s later")
	}

	k4 := t.key()
	_, err := a.TryLock(t.ctx, k4)
	t.wantIs(err, "TryLock after Close", distlock.ErrClosed)
	_, err = a.Lock(t.ctx, k4)
	t.wantIs(err, "Lock after Close", distlock.ErrClosed)
	_, err = a.Status(t.ctx, k4)
	t.wantIs(err, "Status after Close", distlock.ErrClosed)
	ran := false
	err = a.Do(t.ctx, k4, func(context.Context) error { ran = true; return nil })
	t.wantIs(err, "Do after Close", distlock.ErrClosed)
	if ran {
		t.Errorf("Do after Close ran fn")
	}
	t.wantNotHeld(b, k4, "after calls on a closed Client")
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	t.wantHeldBy(b, k3, lb.Fence(), "another Client's lock, after Close")
	t.unlock(lb)
}

func testInvalidInput(t *caseT) {
	a, b := t.client(), t.client()
	ttl, minTTL := t.s.ttl, t.s.info.MinTTL
	base := t.key()
	pad := func(prefix string, n int) string { return prefix + strings.Repeat("k", n-len(prefix)) }

	type badCase struct {
		name string
		key  string
		opts []distlock.LockOption
		want string // in the message
	}
	bad := []badCase{
		{"empty key", "", nil, "empty"},
		{"key of 1025 bytes", pad(base, distlock.MaxKeyLen+1), nil, "1025 bytes"},
		{"key of invalid UTF-8", base + "/\xff\xfe", nil, "UTF-8"},
		{"key with NUL", base + "/a\x00b", nil, "NUL"},
		{"WithTTL(0)", base, []distlock.LockOption{distlock.WithTTL(0)}, "ttl"},
		{"negative TTL", base, []distlock.LockOption{distlock.WithTTL(-time.Second)}, "ttl"},
		{"WithBackoff(0, 1s)", base, []distlock.LockOption{distlock.WithBackoff(0, time.Second)}, "backoff"},
		{"backoff max below min", base, []distlock.LockOption{distlock.WithBackoff(time.Second, time.Millisecond)}, "backoff"},
		{"renew interval equal to the TTL", base, []distlock.LockOption{distlock.WithRenewInterval(ttl)}, "renew interval"},
		{"renew interval above half the TTL", base, []distlock.LockOption{distlock.WithRenewInterval(ttl/2 + ttl/10)}, "renew interval"},
		{"renew interval of 0", base, []distlock.LockOption{distlock.WithRenewInterval(0)}, "renew interval"},
		{"owner over 256 bytes", base, []distlock.LockOption{distlock.WithOwner(strings.Repeat("o", 257))}, "owner"},
	}
	if minTTL > 0 {
		bad = append(bad, badCase{"TTL below the driver's MinTTL", base, []distlock.LockOption{distlock.WithTTL(minTTL / 2)}, minTTL.String()})
	} else {
		t.Logf("the driver declares no MinTTL; a TTL below it cannot be tried")
	}
	for _, c := range bad {
		check := func(op string, err error) {
			t.T.Helper()
			switch {
			case err == nil:
				t.Errorf("%s with %s succeeded", op, c.name)
			case !errors.Is(err, distlock.ErrInvalid):
				t.Errorf("%s with %s: %v, want an error wrapping ErrInvalid", op, c.name, err)
			case !strings.Contains(err.Error(), c.want):
				t.Errorf("%s with %s: message %q does not name the problem (want it to mention %q)", op, c.name, err, c.want)
			}
		}
		l, err := a.TryLock(t.ctx, c.key, c.opts...)
		check("TryLock", err)
		if l != nil {
			l.Unlock(t.ctx)
		}
		l, err = a.Lock(t.ctx, c.key, c.opts...)
		check("Lock", err)
		if l != nil {
			l.Unlock(t.ctx)
		}
		ran := false
		check("Do", a.Do(t.ctx, c.key, func(context.Context) error { ran = true; return nil }, c.opts...))
		if ran {
			t.Errorf("Do with %s ran fn", c.name)
		}
		if c.opts == nil {
			_, err := a.Status(t.ctx, c.key)
			check("Status", err)
		}
	}
	t.wantNotHeld(b, base, "after every invalid option was refused")

	// The same options given to NewClient, as the Client's defaults.
	for _, c := range bad {
		if c.opts == nil {
			continue
		}
		drv, err := t.s.h.NewDriver(t.ctx, t.T)
		if err != nil {
			t.harnessFatalf("NewDriver: %v", err)
		}
		opts := []distlock.Option{distlock.WithTTL(ttl)}
		for _, o := range c.opts {
			opts = append(opts, o)
		}
		cl, err := distlock.NewClient(drv, opts...)
		if err == nil {
			cl.Close() // closes drv too
			t.Errorf("NewClient with %s succeeded", c.name)
			continue
		}
		drv.Close() // NewClient leaves a driver it refused to the caller
		if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewClient with %s: %v, want an error wrapping ErrInvalid that mentions %q", c.name, err, c.want)
		}
	}

	// Keys at the limit and keys that break naive quoting all work.
	good := []string{
		pad(base, distlock.MaxKeyLen),
		pad(base, distlock.MaxKeyLen-len("🔒")) + "🔒",
		base + `/it's "quoted"`,
		base + "/a;b",
		base + "/x -- y",
		base + "/'; DELETE FROM distlock_locks; --",
		base + "/\"; DROP TABLE distlock_locks; --",
		base + `/back\slash %_*?[]{}`,
		base + "/{hash tag}",
		base + "/ключ/鍵/🔒",
		base + "/line\nbreak\ttab\r",
		" " + base + " leading and trailing spaces ",
		"a" + base[1:],
	}
	for _, k := range good {
		l, err := a.TryLock(t.ctx, k)
		if err != nil {
			t.Errorf("TryLock(%q): %v", short(k), err)
			continue
		}
		st := t.status(b, k)
		if !st.Held || st.Fence != l.Fence() || st.Key != k {
			t.Errorf("Status(%q) = {Held: %v, Fence: %d, same key: %v}, want {Held: true, Fence: %d, same key: true}",
				short(k), st.Held, st.Fence, st.Key == k, l.Fence())
		}
		t.wantLocked(b, k, fmt.Sprintf("another Client on key %q", short(k)))
		t.unlock(l)
		t.wantNotHeld(b, k, fmt.Sprintf("key %q after Unlock", short(k)))
	}
}

func testKeysAreExact(t *caseT) {
	a, b := t.client(), t.client()
	base := t.key()
	pairs := [][2]string{
		{"/Key", "/key"},
		{"/a", "/a "},
		{"/a", "/a\t"},
		{"/\u00e9", "/e\u0301"}, // é precomposed and decomposed
		{"/ß", "/ss"},
		{"/\u212b", "/\u00c5"}, // ANGSTROM SIGN and LATIN CAPITAL LETTER A WITH RING ABOVE
		{"/x", "/x\u200b"},
		{"", "/"},
	}
	for _, p := range pairs {
		k1, k2 := base+p[0], base+p[1]
		l1 := t.tryLock(a, k1)
		l2, err := b.TryLock(t.ctx, k2)
		if err != nil {
			t.Errorf("with %q held, TryLock(%q) = %v, want a lock of its own", p[0], p[1], err)
		} else {
			t.wantHeldBy(a, k2, l2.Fence(), fmt.Sprintf("key %q", p[1]))
			t.unlock(l2)
		}
		t.wantHeldBy(b, k1, l1.Fence(), fmt.Sprintf("key %q after %q was used", p[0], p[1]))
		t.unlock(l1)
	}
}

var errReplyLost = errors.New("drivertest: connection reset, reply lost")

func testAmbiguousAcquire(t *caseT) {
	b := t.client()

	// (a) The store granted the lock but the reply was lost.
	{
		var once atomic.Bool
		var granted atomic.Uint64
		a := t.clientOn(&fault{acquire: func(ctx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error) {
			l, err := next(ctx, req)
			if err != nil || !once.CompareAndSwap(false, true) {
				return l, err
			}
			granted.Store(l.Fence)
			return driver.Lease{}, errReplyLost
		}})
		k := t.key()
		l, err := a.TryLock(t.ctx, k)
		if err != nil {
			t.Errorf("granted, reply lost: TryLock = %v, want the lock the store granted (read back by token)", err)
			if st := t.status(b, k); st.Held {
				t.Errorf("granted, reply lost: the key stays held (fence %d) although TryLock failed", st.Fence)
			}
		} else {
			if l.Fence() != granted.Load() {
				t.Errorf("granted, reply lost: fence %d, want %d, the one the store granted", l.Fence(), granted.Load())
			}
			t.wantHeldBy(b, k, l.Fence(), "granted, reply lost")
			t.wantLocked(b, k, "granted, reply lost: another Client")
			t.unlock(l)
			t.wantFree(b, k, "granted, reply lost: after Unlock")
		}
	}

	// (b) The request never reached the store, but the caller cannot know.
	{
		a := t.clientOn(&fault{acquire: func(ctx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error) {
			return driver.Lease{}, errReplyLost
		}})
		k := t.key()
		l, err := a.TryLock(t.ctx, k)
		if err == nil {
			t.Errorf("not granted, reply lost: TryLock returned a lock (fence %d) the store never granted", l.Fence())
		} else if !errors.Is(err, errReplyLost) {
			t.Errorf("not granted, reply lost: TryLock = %v, want the driver's error in the chain", err)
		}
		t.wantNotHeld(b, k, "not granted, reply lost")
		t.wantFree(b, k, "not granted, reply lost: another Client")
	}

	// (c) Granted, reply lost, and the caller gave up meanwhile: it gets an
	// error, and the lock it cannot use is given back.
	{
		ctx, cancel := context.WithCancel(t.ctx)
		defer cancel()
		a := t.clientOn(&fault{acquire: func(actx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error) {
			_, err := next(context.WithoutCancel(actx), req)
			cancel()
			if err != nil {
				return driver.Lease{}, err
			}
			return driver.Lease{}, errReplyLost
		}})
		k := t.key()
		l, err := a.TryLock(ctx, k)
		if err == nil {
			t.Errorf("granted, reply lost, caller gone: TryLock returned a lock (fence %d) after its ctx was cancelled", l.Fence())
			l.Unlock(t.ctx)
		}
		bound := 5 * time.Second
		deadline := time.Now().Add(bound)
		for {
			l, err := b.TryLock(t.ctx, k)
			if err == nil {
				t.unlock(l)
				break
			}
			if !errors.Is(err, distlock.ErrLocked) || time.Now().After(deadline) {
				t.Errorf("granted, reply lost, caller gone: the key is not free %v later: %v", bound, err)
				break
			}
			t.sleep(20 * time.Millisecond)
		}
	}
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
