package drivertest

import (
	"context"

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
