package drivertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

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

	// The same request again, as a retry after a lost reply would be (by
	// the same driver, perhaps on another connection): the same lease.
	if again, err := d1.Acquire(ctx, req); err != nil || again.Fence != l1.Fence {
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

	// The holder's token is for the read-back of the driver that took the
	// lock (a session store shows it only for the sessions it keeps).
	h, err := d1.Inspect(ctx, k)
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
