package drivertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Harness connects the suite to the store under test.
type Harness interface {
	// NewDriver returns a fresh driver connected to the store under test;
	// each call acts like a separate process. The suite closes it.
	NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error)
	// Evict removes the lock on key behind its holder's back (as an
	// operator or a store failure would).
	Evict(ctx context.Context, t *testing.T, key string) error
}

// ttlChooser is the optional interface a Harness implements to pick the
// short TTL the suite uses.
type ttlChooser interface{ TTL() time.Duration }

// RunConformanceTests runs every case of the suite, in order, as a subtest of
// t. Each failure names the rule that was broken. A case that needs a
// capability the harness lacks (Transport, Restarter, Rollbacker) is
// skipped with the reason; the log's first lines say what the harness can
// do.
func RunConformanceTests(t *testing.T, h Harness) {
	t.Helper()
	run(t, h, func(testCase) bool { return true })
}

// RunFaultTests runs only the cases that inject faults through the
// harness's capabilities (the network through Transport, restarts, rollbacks),
// in the suite's order: for another topology of a store whose whole suite
// already runs elsewhere, such as etcd with three members beside one.
func RunFaultTests(t *testing.T, h Harness) {
	t.Helper()
	run(t, h, func(c testCase) bool { return c.needs != "" })
}

func run(t *testing.T, h Harness, keep func(testCase) bool) {
	t.Helper()
	s := newSuite(t, h)
	t.Logf("drivertest: backend %q, MinTTL %v, suite TTL %v", s.info.Name, s.info.MinTTL, s.ttl)
	t.Logf("drivertest: capabilities: %v", s.caps)
	for _, c := range cases {
		if !keep(c) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			if !s.caps.has(c.needs) {
				t.Skipf("drivertest: the case needs %s: %s", c.needs, s.caps.why(c.needs))
			}
			ctx, cancel := context.WithTimeout(t.Context(), s.caseTimeout())
			defer cancel()
			c.run(&caseT{T: t, rule: c.rule, s: s, ctx: ctx})
		})
	}
}

// testCase is one rule of the suite.
type testCase struct {
	name  string
	rule  string // one sentence, printed with each failure
	run   func(t *caseT)
	needs string // the capability of the harness it needs; "" for none
}

// suite is what every case shares.
type suite struct {
	h    Harness
	caps capabilities
	info driver.Info
	ttl  time.Duration // the short TTL every Client of the suite uses
}

func newSuite(t *testing.T, h Harness) *suite {
	t.Helper()
	drv, err := h.NewDriver(t.Context(), t)
	if err != nil {
		t.Fatalf("drivertest: harness NewDriver: %v", err)
	}
	info := drv.Info()
	if err := drv.Close(); err != nil {
		t.Fatalf("drivertest: closing the driver: %v", err)
	}
	s := &suite{h: h, caps: capabilitiesOf(h), info: info, ttl: max(info.MinTTL, 500*time.Millisecond)}
	if c, ok := h.(ttlChooser); ok {
		s.ttl = c.TTL()
	}
	if g := info.TTLGranularity; g > 0 && s.ttl%g != 0 {
		s.ttl = (s.ttl/g + 1) * g
	}
	if s.ttl < info.MinTTL || s.ttl <= 0 {
		t.Fatalf("drivertest: suite TTL %v is below %s's MinTTL %v", s.ttl, info.Name, info.MinTTL)
	}
	return s
}

// interval is the renewal interval of locks with the suite's TTL.
func (s *suite) interval() time.Duration { return s.ttl / 3 }

// lossBound is how long a holder may take to notice that its lock was
// removed: a few renewal intervals, and never less than a second.
func (s *suite) lossBound() time.Duration { return 3*s.interval() + time.Second }

// lateLoss is how long after its Deadline a lock that could not be renewed
// may still look held (Done open). The promise is 100ms; the rest is room
// for a loaded 2-core machine under -race to schedule the renewal loop,
// while a renewal stuck in a driver call (seconds) stays far outside.
const lateLoss = 250 * time.Millisecond

// expiryBound is how long after its last renewal (or the acquire, or the
// release that failed) a lock nobody renews may stay held: one TTL, plus the
// store's rounding of TTLs and half a second for the store to act on its
// expiry (etcd looks for expired leases every 500ms) and for the case to
// see it.
func (s *suite) expiryBound() time.Duration {
	return s.ttl + s.info.TTLGranularity + 500*time.Millisecond
}

// caseTimeout bounds each case, so that a hang fails instead of stalling.
func (s *suite) caseTimeout() time.Duration { return 3*time.Minute + 30*s.ttl }

// caseT is a case's view of its subtest: Errorf and Fatalf put the case's rule in
// front of the detail.
type caseT struct {
	*testing.T
	rule string
	s    *suite
	ctx  context.Context // ends when the case's time is up
}

// Errorf reports a broken rule. Safe from any goroutine.
func (t *caseT) Errorf(format string, args ...any) {
	t.T.Helper()
	t.T.Errorf("%s: %s", t.rule, fmt.Sprintf(format, args...))
}

// Fatalf reports a broken rule and stops the case. Test goroutine only.
func (t *caseT) Fatalf(format string, args ...any) {
	t.T.Helper()
	t.T.Fatalf("%s: %s", t.rule, fmt.Sprintf(format, args...))
}

// harnessFatalf reports a failure of the harness, not of the driver.
func (t *caseT) harnessFatalf(format string, args ...any) {
	t.T.Helper()
	t.T.Fatalf("drivertest: harness: %s", fmt.Sprintf(format, args...))
}

// run runs f as a subtest of the case, under the case's rule and time.
func (t *caseT) run(name string, f func(t *caseT)) {
	t.T.Run(name, func(tt *testing.T) {
		f(&caseT{T: tt, rule: t.rule, s: t.s, ctx: t.ctx})
	})
}

// key returns a key no other case or run uses.
func (t *caseT) key() string {
	return fmt.Sprintf("drivertest/%s/%s", t.Name(), rand.Text()[:10])
}

// driver opens a raw driver, closed when the case ends.
func (t *caseT) driver() driver.Driver {
	t.T.Helper()
	drv, err := t.s.h.NewDriver(t.ctx, t.T)
	if err != nil {
		t.harnessFatalf("NewDriver: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	return drv
}

// client returns a Client on a fresh driver with the suite's TTL, closed
// when the case ends.
func (t *caseT) client(opts ...distlock.Option) *distlock.Client {
	t.T.Helper()
	return t.clientOn(nil, opts...)
}

// clientOn is client with the driver wrapped for fault injection.
func (t *caseT) clientOn(f *fault, opts ...distlock.Option) *distlock.Client {
	t.T.Helper()
	drv, err := t.s.h.NewDriver(t.ctx, t.T)
	if err != nil {
		t.harnessFatalf("NewDriver: %v", err)
	}
	if f != nil {
		drv = f.wrap(drv)
	}
	return t.newClient(drv, opts...)
}

// newClient makes a Client on drv with the suite's TTL, closed when the case
// ends.
func (t *caseT) newClient(drv driver.Driver, opts ...distlock.Option) *distlock.Client {
	t.T.Helper()
	all := append([]distlock.Option{distlock.WithTTL(t.s.ttl), distlock.WithLogger(t.logger())}, opts...)
	c, err := distlock.NewClient(drv, all...)
	if err != nil {
		drv.Close()
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.T.Errorf("drivertest: closing a client at the end of the case: %v", err)
		}
	})
	return c
}

// logger writes the Client's warnings (losses, failed renewals) into the
// test's output, so a failure comes with them.
func (t *caseT) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tryLock takes key or stops the case.
func (t *caseT) tryLock(c *distlock.Client, key string, opts ...distlock.LockOption) *distlock.Lock {
	t.T.Helper()
	l, err := c.TryLock(t.ctx, key, opts...)
	if err != nil {
		t.Fatalf("TryLock(%q) on a free key: %v", short(key), err)
	}
	return l
}

// unlock releases l and reports a failure.
func (t *caseT) unlock(l *distlock.Lock) {
	t.T.Helper()
	if err := l.Unlock(t.ctx); err != nil {
		t.Errorf("Unlock(%q) of a held lock: %v", short(l.Key()), err)
	}
}

// wantLocked checks that c cannot take key now, and gives back what it got
// if it could.
func (t *caseT) wantLocked(c *distlock.Client, key, who string) {
	t.T.Helper()
	l, err := c.TryLock(t.ctx, key)
	if err == nil {
		t.Errorf("%s: TryLock on a held key succeeded (fence %d)", who, l.Fence())
		l.Unlock(t.ctx)
		return
	}
	if !errors.Is(err, distlock.ErrLocked) {
		t.Errorf("%s: TryLock on a held key: got %v, want an error wrapping ErrLocked", who, err)
	}
}

// wantFree checks that c can take key at once, and releases it again. It
// returns the fence it got (0 on failure).
func (t *caseT) wantFree(c *distlock.Client, key, who string) uint64 {
	t.T.Helper()
	l, err := c.TryLock(t.ctx, key)
	if err != nil {
		t.Errorf("%s: TryLock on a key that should be free: %v", who, err)
		return 0
	}
	t.unlock(l)
	return l.Fence()
}

// status reads key's status or stops the case.
func (t *caseT) status(c *distlock.Client, key string) distlock.Status {
	t.T.Helper()
	st, err := c.Status(t.ctx, key)
	if err != nil {
		t.Fatalf("Status(%q): %v", short(key), err)
	}
	return st
}

// wantHeldBy checks that key is held with fence.
func (t *caseT) wantHeldBy(c *distlock.Client, key string, fence uint64, what string) {
	t.T.Helper()
	st := t.status(c, key)
	if !st.Held || st.Fence != fence {
		t.Errorf("%s: Status = {Held: %v, Fence: %d}, want {Held: true, Fence: %d}", what, st.Held, st.Fence, fence)
	}
}

// wantNotHeld checks that key is free.
func (t *caseT) wantNotHeld(c *distlock.Client, key string, what string) {
	t.T.Helper()
	st := t.status(c, key)
	if st.Held {
		t.Errorf("%s: Status = {Held: true, Fence: %d, Owner: %q}, want the key free", what, st.Fence, st.Owner)
	}
}

// wantIs checks errors.Is(err, target) for every target.
func (t *caseT) wantIs(err error, what string, targets ...error) bool {
	t.T.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: got error %v, want one wrapping %v", what, err, target)
			return false
		}
	}
	return true
}

// lockResult is the outcome of a Lock run in the background.
type lockResult struct {
	l   *distlock.Lock
	err error
}

// lockAsync runs c.Lock in a goroutine. The result channel is buffered, so
// the goroutine never outlives the Lock call.
func lockAsync(ctx context.Context, c *distlock.Client, key string, opts ...distlock.LockOption) <-chan lockResult {
	ch := make(chan lockResult, 1)
	go func() {
		l, err := c.Lock(ctx, key, opts...)
		ch <- lockResult{l, err}
	}()
	return ch
}

// waitClosed reports whether ch closes within d.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// sleep waits d or until the case's time is up.
func (t *caseT) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.ctx.Done():
	}
}

// short shortens long keys in messages.
func short(key string) string {
	if len(key) > 80 {
		return key[:60] + "…" + key[len(key)-10:]
	}
	return key
}

// newToken makes a token for direct driver calls.
func newToken() string { return "drivertest-" + rand.Text() }
