package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/sqlitelock"
)

// faulty:///abs/path.db is the SQLite store at that path, its driver wrapped
// to inject the faults a real store cannot be made to show on demand: a lock
// taken away while held, a release that fails. Tests set the faults of a
// path through faultyStore.
func init() { distlock.Register("faulty", openFaulty) }

var faultsByPath sync.Map // database path → *faults

type faults struct {
	mu          sync.Mutex
	takenOver   bool // the lock was taken over: renewals and releases answer ErrNotHeld
	failRelease bool // releases fail as if the store could not be reached
}

func (f *faults) set(takenOver, failRelease bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.takenOver, f.failRelease = takenOver, failRelease
}

func (f *faults) get() (takenOver, failRelease bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.takenOver, f.failRelease
}

// faultyStore returns the URL of a fresh faulty store, its faults (none
// yet), and the URL of the same database without them.
func faultyStore(t *testing.T) (store string, f *faults, plain string) {
	path := filepath.Join(t.TempDir(), "locks.db")
	f = &faults{}
	faultsByPath.Store(path, f)
	t.Cleanup(func() { faultsByPath.Delete(path) })
	return "faulty://" + path, f, "sqlite://" + path
}

func openFaulty(ctx context.Context, u *url.URL) (driver.Driver, error) {
	f, ok := faultsByPath.Load(u.Path)
	if !ok {
		return nil, fmt.Errorf("%w: no faulty store at %q", distlock.ErrInvalid, u.Path)
	}
	inner, err := sqlitelock.OpenDriver(ctx, u.Path, nil)
	if err != nil {
		return nil, err
	}
	return &faultyDriver{Driver: inner, f: f.(*faults)}, nil
}

type faultyDriver struct {
	driver.Driver
	f *faults
}

func (d *faultyDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	if takenOver, _ := d.f.get(); !takenOver {
		return d.Driver.Renew(ctx, leases)
	}
	res := make([]error, len(leases))
	for i, l := range leases {
		d.Driver.Release(ctx, l) // free it for real: the "new holder" may take it
		res[i] = fmt.Errorf("%w: taken over (injected)", driver.ErrNotHeld)
	}
	return res, nil
}

func (d *faultyDriver) Release(ctx context.Context, l driver.Lease) error {
	takenOver, failRelease := d.f.get()
	switch {
	case failRelease:
		return fmt.Errorf("%w: injected release failure", driver.ErrUnavailable)
	case takenOver:
		d.Driver.Release(ctx, l)
		return fmt.Errorf("%w: taken over (injected)", driver.ErrNotHeld)
	}
	return d.Driver.Release(ctx, l)
}
