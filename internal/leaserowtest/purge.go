package leaserowtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// PurgeDeletesFreeRows locks and releases keys on drv (which it closes),
// lets their rows age, and purges with a small age: the rows of keys
// released or expired longer ago are gone, those of a held key and of keys
// released just before (one of them taken long before) stay, and a purged key's next fence is above its
// old one. stored reads the lock_key of key's row behind the driver's back
// (sql.ErrNoRows when there is none). drv's table must be the test's own: the purge must delete exactly
// the rows this test made old.
func PurgeDeletesFreeRows(t *testing.T, drv driver.Driver, stored func(ctx context.Context, key string) (string, error)) {
	ctx := t.Context()
	purger, ok := drv.(driver.Purger)
	if !ok {
		drv.Close()
		t.Fatalf("%T does not implement driver.Purger", drv)
	}
	c, err := distlock.NewClient(drv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const age = time.Second

	released := []string{"purge-a", "purge-b", "purge-c"}
	fences := map[string]uint64{}
	for _, k := range released {
		l, err := c.TryLock(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		fences[k] = l.Fence()
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A lease that runs out without a release is free from its expiry on.
	if _, err := drv.Acquire(ctx, driver.AcquireRequest{Key: "purge-expired", Token: "purge-expired-token", TTL: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	held, err := c.TryLock(ctx, "purge-held")
	if err != nil {
		t.Fatal(err)
	}
	// Taken long ago, released just now: its fence is old, its release
	// is not.
	long, err := c.TryLock(ctx, "purge-long")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(age + age/4)
	if err := long.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	young, err := c.TryLock(ctx, "purge-young")
	if err != nil {
		t.Fatal(err)
	}
	if err := young.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	n, err := purger.Purge(ctx, age)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if want := int64(len(released) + 1); n != want {
		t.Errorf("Purge deleted %d rows, want %d (three released and one expired more than %v ago)", n, want, age)
	}
	for _, k := range append(released, "purge-expired") {
		if _, err := stored(ctx, k); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("row of %s after the purge: %v; want it gone", k, err)
		}
	}
	for _, k := range []string{"purge-held", "purge-long", "purge-young"} {
		if _, err := stored(ctx, k); err != nil {
			t.Errorf("row of %s after the purge: %v; want it kept", k, err)
		}
	}
	if err := held.Refresh(ctx); err != nil {
		t.Errorf("Refresh of the held lock after the purge: %v", err)
	}
	if err := held.Unlock(ctx); err != nil {
		t.Errorf("Unlock of the held lock after the purge: %v", err)
	}
	for _, k := range released {
		l, err := c.TryLock(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= fences[k] {
			t.Errorf("fence of %s after the purge %d, not above %d before it", k, l.Fence(), fences[k])
		}
		l.Unlock(ctx)
	}
	if _, err := purger.Purge(ctx, 0); err == nil {
		t.Error("Purge with age 0 succeeded; want an error: a fence could repeat within the clock's tick")
	}
}

// PurgeInEveryMode runs PurgeDeletesFreeRows in each of b's modes, each on
// a table of its own, with drivers from open and rows read by b.StoredKey.
func PurgeInEveryMode[M fmt.Stringer](t *testing.T, b Backend[M], open func(ctx context.Context, mode M, table string) (driver.Driver, error)) {
	for _, mode := range b.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			table := "purge_" + mode.String()
			drv, err := open(t.Context(), mode, table)
			if err != nil {
				t.Fatal(err)
			}
			PurgeDeletesFreeRows(t, drv, func(ctx context.Context, key string) (string, error) {
				return b.StoredKey(ctx, table, key)
			})
		})
	}
}
