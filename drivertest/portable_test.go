// Regression tests for faults in the portable package (the repository root)
// that writing the suite brought to light. They use the memory store of
// memdriver_test.go, which is why they live here.
package drivertest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// memClient returns a Client on drv (a plain memDriver on s if nil).
func memClient(t *testing.T, s *memStore, drv driver.Driver, opts ...distlock.Option) *distlock.Client {
	t.Helper()
	if drv == nil {
		drv = &memDriver{s: s}
	}
	c, err := distlock.NewClient(drv, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A per-lock WithTTL gets its own renew interval (TTL/3); it used to keep
// the Client's, so on a default Client (15s, interval 5s) any per-lock TTL
// under 10s was refused as "renew interval 5s must be at most half the ttl".
func TestPortablePerLockTTLUsesItsOwnRenewInterval(t *testing.T) {
	c := memClient(t, newMemStore(), nil) // default TTL 15s
	l, err := c.TryLock(t.Context(), "k", distlock.WithTTL(2*time.Second))
	if err != nil {
		t.Fatalf("TryLock with WithTTL(2s) on a default Client: %v", err)
	}
	l.Unlock(t.Context())
}

// ctxDriver answers like a database/sql driver does when the caller's ctx
// ends during a statement: with the ctx's error, unwrapped.
type ctxDriver struct {
	*memDriver
	onAcquire func(n int) // called before each Acquire, numbered from 1
	mu        sync.Mutex
	n         int
}

func (d *ctxDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	d.mu.Lock()
	d.n++
	n := d.n
	d.mu.Unlock()
	d.onAcquire(n)
	if err := ctx.Err(); err != nil {
		return driver.Lease{}, err
	}
	return d.memDriver.Acquire(ctx, req)
}

// A Lock whose ctx ends during an attempt, after it has seen the key held,
// reports ErrLocked as well as the ctx's error. It used to treat the
// driver's ctx error as an ambiguous outcome, read back, and return "outcome
// unknown, read back: not held: context canceled" without ErrLocked; on
// SQLite that broke the suite's LockCancelled rule now and then.
func TestPortableLockCancelledDuringAttemptWrapsErrLocked(t *testing.T) {
	s := newMemStore()
	holder := memClient(t, s, nil)
	l, err := holder.TryLock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(t.Context())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d := &ctxDriver{memDriver: &memDriver{s: s}, onAcquire: func(n int) {
		if n == 2 { // the waiter's second attempt: ctx ends while it is in flight
			cancel()
		}
	}}
	waiter := memClient(t, s, d)
	_, err = waiter.Lock(ctx, "k")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("Lock cancelled during an attempt on a held key: %v; want an error wrapping context.Canceled and ErrLocked", err)
	}
}

// slowReplyDriver delivers Acquire's answer late, as a congested store does
// (the suite measured SQLite Acquire at p99 428ms, max 1.6s, under -race
// with 16 contenders).
type slowReplyDriver struct {
	*memDriver
	delay time.Duration
}

func (d *slowReplyDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	l, err := d.memDriver.Acquire(ctx, req)
	time.Sleep(d.delay)
	return l, err
}

// A lock handed to the caller has time left, even when the store's answer
// arrived after the TTL had run out by the caller's clock (it used to be
// declared lost at once: "ttl elapsed without a successful renewal"; the
// suite's stress case on SQLite lost tiny critical sections that way).
func TestPortableNoLockReturnedPastItsDeadline(t *testing.T) {
	const ttl = 200 * time.Millisecond
	s := newMemStore()
	c := memClient(t, s, &slowReplyDriver{memDriver: &memDriver{s: s}, delay: ttl + 50*time.Millisecond}, distlock.WithTTL(ttl))
	l, err := c.TryLock(t.Context(), "k")
	if err != nil {
		return // refusing is fine
	}
	defer l.Unlock(t.Context())
	if left := time.Until(l.Deadline()); left <= 0 {
		t.Errorf("TryLock returned a lock whose deadline passed %v ago", -left)
	}
	time.Sleep(ttl / 4)
	if err := l.Err(); err != nil {
		t.Errorf("a lock TryLock just returned is already lost: %v", err)
	}
}

// Refresh does not take a Renew answer without a result for the lease as
// success (it used to, moving the deadline; the renewal loop rejected it).
type emptyRenewDriver struct{ *memDriver }

func (d emptyRenewDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	return nil, nil
}

func TestPortableRefreshRejectsMalformedRenewAnswer(t *testing.T) {
	s := newMemStore()
	c := memClient(t, s, emptyRenewDriver{&memDriver{s: s}}, distlock.WithTTL(time.Second))
	l, err := c.TryLock(t.Context(), "k", distlock.WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(t.Context())
	if err := l.Refresh(t.Context()); err == nil {
		t.Errorf("Refresh succeeded although the driver's Renew returned no result for the lease")
	}
}

// renewCounter counts the leases of each Renew call.
type renewCounter struct {
	*memDriver
	mu    sync.Mutex
	sizes []int
}

func (d *renewCounter) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	d.mu.Lock()
	d.sizes = append(d.sizes, len(leases))
	d.mu.Unlock()
	return d.memDriver.Renew(ctx, leases)
}

func (d *renewCounter) take() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sizes
	d.sizes = nil
	return s
}

// Locks of one TTL taken at different times fall into step: one Renew call
// per interval (two groups taken half an interval apart used to be renewed
// separately for as long as they were held).
func TestPortableRenewalGroupsFallIntoStep(t *testing.T) {
	const ttl = 600 * time.Millisecond
	interval := ttl / 3
	s := newMemStore()
	d := &renewCounter{memDriver: &memDriver{s: s}}
	c := memClient(t, s, d, distlock.WithTTL(ttl))
	var locks []*distlock.Lock
	take := func(n int) {
		for range n {
			l, err := c.TryLock(t.Context(), "k"+time.Now().String())
			if err != nil {
				t.Fatal(err)
			}
			locks = append(locks, l)
		}
	}
	take(10)
	time.Sleep(interval / 2)
	take(10)
	time.Sleep(3 * interval) // time to fall into step
	d.take()
	time.Sleep(3 * interval)
	sizes := d.take()
	for _, l := range locks {
		l.Unlock(t.Context())
	}
	if len(sizes) > 4 {
		t.Errorf("%d Renew calls in 3 intervals for 20 locks of one TTL (sizes %v); want about one per interval", len(sizes), sizes)
	}
}
