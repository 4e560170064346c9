package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	bsmlock "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// interopSetup starts a server and returns a go-redis client and a distlock
// Client on it, with no key prefix, so both libraries name the same keys.
func interopSetup(t *testing.T) (*redis.Client, *distlock.Client) {
	t.Helper()
	srv := testserver.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rc.Close() })
	c, err := redislock.Open(t.Context(), "redis://"+srv.Addr(), distlock.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rc, c
}

func TestRedsyncInterop(t *testing.T) {
	ctx := t.Context()
	rc, c := interopSetup(t)
	rs := redsync.New(redsyncgoredis.NewPool(rc))
	key := "interop/redsync/" + t.Name()

	// Their lock blocks ours.
	m := rs.NewMutex(key, redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
	if err := m.LockContext(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.TryLock(ctx, key)
	if !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("TryLock while redsync holds the key: %v, want ErrLocked", err)
	}
	st, err := c.Status(ctx, key)
	if err != nil || !st.Held {
		t.Fatalf("Status while redsync holds the key: %+v, %v", st, err)
	}
	if ok, err := m.UnlockContext(ctx); !ok || err != nil {
		t.Fatalf("redsync unlock: %v, %v", ok, err)
	}

	// Ours blocks theirs; after our Unlock they get it.
	l, err := c.TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	m2 := rs.NewMutex(key, redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
	if err := m2.LockContext(ctx); err == nil {
		t.Fatal("redsync locked a key distlock holds")
	}
	// A waiting Lock of ours is woken by its fallback timer when redsync's
	// lock expires or is released by redsync's own script.
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.LockContext(ctx); err != nil {
		t.Fatalf("redsync after our Unlock: %v", err)
	}
	m2.UnlockContext(ctx)
}

func TestBsmRedislockInterop(t *testing.T) {
	ctx := t.Context()
	rc, c := interopSetup(t)
	locker := bsmlock.New(rc)
	key := "interop/bsm/" + t.Name()

	theirs, err := locker.Obtain(ctx, key, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryLock(ctx, key); !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("TryLock while bsm/redislock holds the key: %v, want ErrLocked", err)
	}
	if err := theirs.Release(ctx); err != nil {
		t.Fatal(err)
	}

	l, err := c.TryLock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Obtain(ctx, key, 10*time.Second, nil); !errors.Is(err, bsmlock.ErrNotObtained) {
		t.Fatalf("bsm/redislock Obtain on a key distlock holds: %v, want ErrNotObtained", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := locker.Obtain(ctx, key, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("bsm/redislock after our Unlock: %v", err)
	}
	again.Release(ctx)
}

// A Lock of ours waiting on a key another library holds gets it once that
// library releases (no hand-over message: the fallback timer at the
// holder's remaining TTL, or a re-check, finds the key free).
func TestWaitOnForeignHolder(t *testing.T) {
	ctx := t.Context()
	rc, c := interopSetup(t)
	locker := bsmlock.New(rc)
	key := "interop/wait/" + t.Name()
	theirs, err := locker.Obtain(ctx, key, 700*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := c.Lock(wctx, key)
	if err != nil {
		t.Fatalf("Lock behind an expiring foreign lock: %v", err)
	}
	defer l.Unlock(ctx)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("got the key after %v, while the foreign lock was still valid", d)
	}
	_ = theirs
}
