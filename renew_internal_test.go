package distlock

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
)

// slowReleaseDriver is an in-memory store whose Release takes a while, as a
// round trip does: long enough for the renewal loop to run meanwhile.
type slowReleaseDriver struct {
	mu    sync.Mutex
	held  map[string]string
	fence uint64
}

func (d *slowReleaseDriver) Info() driver.Info {
	return driver.Info{Name: "slow-release", MinTTL: time.Millisecond}
}

func (d *slowReleaseDriver) Acquire(_ context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if tok, ok := d.held[req.Key]; ok && tok != req.Token {
		return driver.Lease{}, driver.ErrLocked
	}
	d.held[req.Key] = req.Token
	d.fence++
	return driver.Lease{Key: req.Key, Token: req.Token, Fence: d.fence, TTL: req.TTL}, nil
}

func (d *slowReleaseDriver) Release(_ context.Context, l driver.Lease) error {
	time.Sleep(200 * time.Microsecond)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held[l.Key] != l.Token {
		return driver.ErrNotHeld
	}
	delete(d.held, l.Key)
	return nil
}

func (d *slowReleaseDriver) Renew(_ context.Context, leases []driver.Lease) ([]error, error) {
	return make([]error, len(leases)), nil
}

func (d *slowReleaseDriver) Inspect(context.Context, string) (driver.Holder, error) {
	return driver.Holder{}, nil
}

func (d *slowReleaseDriver) Close() error { return nil }

// TestUncontendedLoopPokesOncePerInterval: a Lock+Unlock loop wakes the
// renewal loop about once per renewal interval, not once per lock. (The loop
// used to run during Unlock's round trip, find no lock held, plan to sleep
// an hour, and so make the next lock wake it again: a goroutine switch on
// every acquire.)
func TestUncontendedLoopPokesOncePerInterval(t *testing.T) {
	c, err := NewClient(&slowReleaseDriver{held: map[string]string{}}, WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	const n = 200
	for range n {
		l, err := c.Lock(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	pokes := c.pokes
	c.mu.Unlock()
	// The loop runs well within one 10s interval: one poke, for the first
	// lock; a few more would still be fine, one per lock is the fault.
	if pokes > 3 {
		t.Errorf("%d locks woke the renewal loop %d times, want about once per renewal interval", n, pokes)
	}
}
