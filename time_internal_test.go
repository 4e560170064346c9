package distlock

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
)

// hookDriver is an in-memory store for the portable layer's own tests, with
// hooks that make a call block (ignoring its ctx, the worst a driver can do),
// fail, or land late. Expiry is by time.Now, as a server's clock.
type hookDriver struct {
	mu      sync.Mutex
	locks   map[string]hookLock
	fence   uint64
	zero    bool          // grant fence 0
	slack   time.Duration // the store keeps locks this much longer than their TTL
	inspect int           // Inspect calls

	// Hooks, called without mu; nil: none. A hook's non-nil error is the
	// call's result.
	onAcquire func(ctx context.Context, req driver.AcquireRequest) error
	onRenew   func(ctx context.Context) error
	onRelease func(ctx context.Context) error
}

type hookLock struct {
	token   string
	fence   uint64
	expires time.Time
}

func newHookDriver() *hookDriver { return &hookDriver{locks: map[string]hookLock{}} }

func (d *hookDriver) Info() driver.Info { return driver.Info{Name: "hook", MinTTL: time.Millisecond} }

func (d *hookDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	if d.onAcquire != nil {
		if err := d.onAcquire(ctx, req); err != nil {
			return driver.Lease{}, err
		}
	}
	return d.take(req)
}

// take grants req if the key is free.
func (d *hookDriver) take(req driver.AcquireRequest) (driver.Lease, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.locks[req.Key]; ok && time.Now().Before(l.expires) && l.token != req.Token {
		return driver.Lease{}, &driver.HeldError{Holder: driver.Holder{Held: true, Fence: l.fence, TTL: time.Until(l.expires)}}
	}
	d.fence++
	f := d.fence
	if d.zero {
		f = 0
	}
	d.locks[req.Key] = hookLock{token: req.Token, fence: f, expires: time.Now().Add(req.TTL + d.slack)}
	return driver.Lease{Key: req.Key, Token: req.Token, Fence: f, TTL: req.TTL}, nil
}

func (d *hookDriver) Release(ctx context.Context, l driver.Lease) error {
	if d.onRelease != nil {
		if err := d.onRelease(ctx); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.locks[l.Key]; !ok || h.token != l.Token || !time.Now().Before(h.expires) {
		return driver.ErrNotHeld
	}
	delete(d.locks, l.Key)
	return nil
}

func (d *hookDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	if d.onRenew != nil {
		if err := d.onRenew(ctx); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	res := make([]error, len(leases))
	for i, l := range leases {
		h, ok := d.locks[l.Key]
		if !ok || h.token != l.Token || !time.Now().Before(h.expires) {
			res[i] = driver.ErrNotHeld
			continue
		}
		h.expires = time.Now().Add(l.TTL + d.slack)
		d.locks[l.Key] = h
	}
	return res, nil
}

func (d *hookDriver) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inspect++
	h, ok := d.locks[key]
	if !ok || !time.Now().Before(h.expires) {
		return driver.Holder{}, nil
	}
	return driver.Holder{Held: true, Token: h.token, Fence: h.fence, TTL: time.Until(h.expires)}, nil
}

func (d *hookDriver) Close() error { return nil }

// heldBy reports the token holding key now ("" if free).
func (d *hookDriver) heldBy(key string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.locks[key]; ok && time.Now().Before(h.expires) {
		return h.token
	}
	return ""
}

// gate blocks the calls that pass it until opened, whatever their ctx says.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait(context.Context) error { <-g.ch; return nil }
func (g *gate) open()                      { g.once.Do(func() { close(g.ch) }) }

func hookClient(t *testing.T, d *hookDriver, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(d, append([]Option{WithLogger(discardLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lateness is how far after want the channel closed, or a negative value if
// it did not close within limit.
func lateness(ch <-chan struct{}, want time.Time, limit time.Duration) time.Duration {
	select {
	case <-ch:
		return time.Since(want)
	case <-time.After(time.Until(want) + limit):
		return -1
	}
}

// lossSlack is how late after Deadline a loss may be reported here: the
// promise is milliseconds; the slack allows for a loaded CI machine.
const lossSlack = 100 * time.Millisecond

// TestDeadlineFiresWhileRenewalBlocks: a renewal the store never answers,
// in a driver that ignores its ctx, does not hold back the loss: Done
// closes at the lock's Deadline and Err wraps ErrLost.
func TestDeadlineFiresWhileRenewalBlocks(t *testing.T) {
	d := newHookDriver()
	g := newGate()
	defer g.open()
	d.onRenew = g.wait
	c := hookClient(t, d, WithTTL(300*time.Millisecond))
	defer func() { g.open(); c.Close() }()
	l, err := c.TryLock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	late := lateness(l.Done(), l.Deadline(), time.Second)
	if late < 0 || late > lossSlack {
		t.Fatalf("Done closed %v after Deadline (negative: not within a second), want within %v", late, lossSlack)
	}
	if !errors.Is(l.Err(), ErrLost) {
		t.Errorf("Err() = %v, want ErrLost", l.Err())
	}
	if !errors.Is(context.Cause(l.Context()), ErrLost) {
		t.Errorf("Context cause = %v, want ErrLost", context.Cause(l.Context()))
	}
}

// TestDeadlineFiresWhileReleaseBlocks: a lock whose Unlock is stuck in the
// driver is lost at its deadline too (Done closes), rather than looking
// held until the store answers.
func TestDeadlineFiresWhileReleaseBlocks(t *testing.T) {
	d := newHookDriver()
	g := newGate()
	defer g.open()
	d.onRelease = g.wait
	c := hookClient(t, d, WithTTL(300*time.Millisecond), WithAutoRenew(false))
	defer func() { g.open(); c.Close() }()
	l, err := c.TryLock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan error, 1)
	go func() { unlocked <- l.Unlock(context.Background()) }()
	late := lateness(l.Done(), l.Deadline(), time.Second)
	if late < 0 || late > lossSlack {
		t.Fatalf("Done closed %v after Deadline (negative: not within a second), want within %v", late, lossSlack)
	}
	if !errors.Is(l.Err(), ErrLost) {
		t.Errorf("Err() = %v, want ErrLost", l.Err())
	}
	g.open()
	<-unlocked
}

// TestRenewalLimitIsTheBatchsOwn: the time limit of a renewal batch comes
// from the locks in it, not from a manual lock about to expire beside them.
func TestRenewalLimitIsTheBatchsOwn(t *testing.T) {
	d := newHookDriver()
	limits := make(chan time.Duration, 16)
	d.onRenew = func(ctx context.Context) error {
		dl, _ := ctx.Deadline()
		limits <- time.Until(dl)
		return nil
	}
	c := hookClient(t, d, WithTTL(600*time.Millisecond))
	defer c.Close()
	// When the auto lock renews (at 200ms), the manual lock's deadline is
	// about 55ms away.
	manual, err := c.TryLock(t.Context(), "manual", WithTTL(260*time.Millisecond), WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Unlock(t.Context())
	auto, err := c.TryLock(t.Context(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	defer auto.Unlock(t.Context())
	select {
	case got := <-limits:
		if got < 150*time.Millisecond {
			t.Errorf("renewal of a 600ms lock had a time limit of %v, cut by another lock's deadline", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no renewal within 3s")
	}
}

// TestRefreshReportsLossDuringFlight: a Refresh that the store answers only
// after the lock was declared lost reports ErrNotHeld, not success.
func TestRefreshReportsLossDuringFlight(t *testing.T) {
	d := newHookDriver()
	d.slack = time.Second // the store still holds it when the renewal lands
	g := newGate()
	defer g.open()
	c := hookClient(t, d, WithTTL(200*time.Millisecond), WithAutoRenew(false))
	defer func() { g.open(); c.Close() }()
	l, err := c.TryLock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	d.onRenew = g.wait
	// The background release of the lost lock waits until Refresh is done.
	released := newGate()
	defer released.open()
	d.onRelease = released.wait
	refreshed := make(chan error, 1)
	go func() { refreshed <- l.Refresh(context.Background()) }()
	<-l.Done()
	g.open()
	err = <-refreshed
	released.open()
	if !errors.Is(err, ErrNotHeld) {
		t.Errorf("Refresh in flight while the lock was lost = %v, want ErrNotHeld", err)
	}
}

// TestDoReleasesOnPanic: a panicking fn, recovered further up, leaves
// nothing held.
func TestDoReleasesOnPanic(t *testing.T) {
	d := newHookDriver()
	c := hookClient(t, d)
	defer c.Close()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the fn's own panic", r)
			}
		}()
		c.Do(t.Context(), "k", func(context.Context) error { panic("boom") })
	}()
	if tok := d.heldBy("k"); tok != "" {
		t.Errorf("key still held after fn panicked")
	}
	c.mu.Lock()
	n := len(c.held)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("the Client still renews %d locks after fn panicked", n)
	}
}

// TestLateLandingIsReleased: an attempt whose answer was lost, read back as
// not taken, then lands after all (a request held up on the way): the
// Client gives the key back well before its TTL.
func TestLateLandingIsReleased(t *testing.T) {
	d := newHookDriver()
	landed := make(chan struct{})
	d.onAcquire = func(ctx context.Context, req driver.AcquireRequest) error {
		go func() {
			time.Sleep(100 * time.Millisecond)
			d.take(req)
			close(landed)
		}()
		return errors.New("connection reset")
	}
	c := hookClient(t, d, WithTTL(10*time.Second))
	defer c.Close()
	_, err := c.TryLock(t.Context(), "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("TryLock with a lost answer read back as not held = %v, want ErrUnavailable", err)
	}
	<-landed
	deadline := time.Now().Add(3 * time.Second)
	for d.heldBy("k") != "" {
		if time.Now().After(deadline) {
			t.Fatal("the late-landing lock was still held 3s later (its TTL is 10s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLockRetriesTransientFailures: Lock keeps trying through store
// failures until its ctx ends; TryLock reports the first.
func TestLockRetriesTransientFailures(t *testing.T) {
	d := newHookDriver()
	var mu sync.Mutex
	fails := 3
	d.onAcquire = func(context.Context, driver.AcquireRequest) error {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return driver.ErrUnavailable
		}
		return nil
	}
	c := hookClient(t, d)
	defer c.Close()
	if _, err := c.TryLock(t.Context(), "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("TryLock during a store failure = %v, want ErrUnavailable", err)
	}
	l, err := c.Lock(t.Context(), "k")
	if err != nil {
		t.Fatalf("Lock through two more failures = %v, want the lock", err)
	}
	l.Unlock(t.Context())

	mu.Lock()
	fails = 1 << 30
	mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Lock(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Lock whose store stays down = %v, want ctx's error and ErrUnavailable", err)
	}
}

// TestNoLockWithoutFence: a grant without a fence is refused and given back.
func TestNoLockWithoutFence(t *testing.T) {
	d := newHookDriver()
	d.zero = true
	c := hookClient(t, d)
	defer c.Close()
	if _, err := c.TryLock(t.Context(), "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("TryLock granted with fence 0 = %v, want ErrUnavailable", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.heldBy("k") != "" {
		if time.Now().After(deadline) {
			t.Fatal("the fenceless lock was not given back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
