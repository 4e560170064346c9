package drivertest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

type (
	acquireFunc func(context.Context, driver.AcquireRequest) (driver.Lease, error)
	renewFunc   func(context.Context, []driver.Lease) ([]error, error)
)

// fault intercepts calls to a real driver. A nil hook passes the call
// through; a hook receives the real call as next and decides whether, and
// how, to make it.
type fault struct {
	// acquire intercepts Acquire and, for drivers that own waiting,
	// AcquireWait (next is then the real AcquireWait).
	acquire func(ctx context.Context, req driver.AcquireRequest, next acquireFunc) (driver.Lease, error)
	renew   func(ctx context.Context, leases []driver.Lease, next renewFunc) ([]error, error)
}

// wrap returns d with f's hooks in front of it, keeping the optional
// interfaces d implements, so the portable layer waits the same way.
func (f *fault) wrap(d driver.Driver) driver.Driver {
	fd := &faultDriver{Driver: d, f: f}
	n, isN := d.(driver.Notifier)
	q, isQ := d.(driver.Queuer)
	switch {
	case isN && isQ:
		return &struct {
			*faultDriver
			driver.Notifier
			*faultQueuer
		}{fd, n, &faultQueuer{q: q, f: f}}
	case isN:
		return &struct {
			*faultDriver
			driver.Notifier
		}{fd, n}
	case isQ:
		return &struct {
			*faultDriver
			*faultQueuer
		}{fd, &faultQueuer{q: q, f: f}}
	}
	return fd
}

type faultDriver struct {
	driver.Driver
	f *fault
}

func (d *faultDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	if d.f.acquire == nil {
		return d.Driver.Acquire(ctx, req)
	}
	return d.f.acquire(ctx, req, d.Driver.Acquire)
}

func (d *faultDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	if d.f.renew == nil {
		return d.Driver.Renew(ctx, leases)
	}
	return d.f.renew(ctx, leases, d.Driver.Renew)
}

type faultQueuer struct {
	q driver.Queuer
	f *fault
}

func (d *faultQueuer) AcquireWait(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	if d.f.acquire == nil {
		return d.q.AcquireWait(ctx, req)
	}
	return d.f.acquire(ctx, req, d.q.AcquireWait)
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
