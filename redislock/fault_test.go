package redislock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// A restart of a Redis server without persistence forgets every lock and
// every fence counter. The holder must learn it at its next renewal, and the
// next holder's fence must still be higher.
func TestRestartLosesLockAndFenceStillGrows(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	ctx := t.Context()
	const ttl = 3 * time.Second
	const interval = ttl / 3
	c, err := redislock.Open(ctx, "redis://"+srv.Addr(), distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.TryLock(ctx, "restart", distlock.WithRenewInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	restarted := time.Now()
	select {
	case <-l.Done():
		t.Logf("loss seen %v after the restart (renewal interval %v)", time.Since(restarted).Round(time.Millisecond), interval)
	case <-time.After(interval + 2*time.Second): // one interval, plus slack for a loaded machine
		t.Fatalf("Done still open %v after the restart", interval+2*time.Second)
	}
	if !errors.Is(l.Err(), distlock.ErrLost) {
		t.Errorf("Err() = %v, want ErrLost", l.Err())
	}
	c2, err := redislock.Open(ctx, "redis://"+srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	l2, err := c2.TryLock(ctx, "restart")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock(ctx)
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence after the restart %d is not above the fence before it %d", l2.Fence(), l.Fence())
	}
}

// A cut connection loses either the acquire request (nothing happened) or
// its reply (the lock was taken). The read-back by token must tell the two
// apart: the first is an error with nothing held, the second the lock.
func TestCutMidAcquire(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()

	for _, tc := range []struct {
		name   string
		mode   int32
		landed bool
	}{
		{"RequestLost", dropRequest, false},
		{"ReplyLost", dropReply, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			p := startProxy(t, srv.Addr())
			rc := redis.NewClient(&redis.Options{Addr: p.addr(), ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
			defer rc.Close()
			c, err := redislock.New(rc, nil, distlock.WithTTL(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Load the scripts, so the acquire below is a single EVALSHA.
			warm, err := c.TryLock(ctx, "warm-"+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			warm.Unlock(ctx)

			key := "cut-" + tc.name
			n := rediswire.NamesFor("", key)
			p.mode.Store(tc.mode)
			type result struct {
				l   *distlock.Lock
				err error
			}
			res := make(chan result, 1)
			go func() {
				l, err := c.TryLock(ctx, key)
				res <- result{l, err}
			}()
			deadline := time.Now().Add(5 * time.Second)
			for p.dropped.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the proxy saw nothing to drop")
				}
				time.Sleep(time.Millisecond)
			}
			if tc.landed {
				for admin.Exists(ctx, n.Lock).Val() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the acquire never reached the server")
					}
					time.Sleep(time.Millisecond)
				}
			}
			p.mode.Store(forward) // the read-back gets through
			r := <-res
			if tc.landed {
				if r.err != nil {
					t.Fatalf("TryLock whose reply was lost: %v, want the lock (it was taken)", r.err)
				}
				if f := admin.Get(ctx, n.Record).Val(); f == "" {
					t.Fatal("no record of the holder")
				}
				h, _ := rediswire.Inspect(ctx, admin, n)
				if h.Fence != r.l.Fence() {
					t.Fatalf("server holder fence %d, lock's fence %d", h.Fence, r.l.Fence())
				}
				if err := r.l.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if r.err == nil {
				r.l.Unlock(ctx)
				t.Fatal("TryLock whose request was lost returned a lock")
			}
			if errors.Is(r.err, distlock.ErrLocked) {
				t.Fatalf("TryLock whose request was lost: %v; it must not claim contention", r.err)
			}
			t.Logf("lost request: %v", r.err)
			if k := admin.Exists(ctx, n.Lock, n.Record).Val(); k != 0 {
				t.Fatalf("%d keys exist: the lost request must have done nothing", k)
			}
		})
	}
}

// The server stops (SIGSTOP) while an acquire is on the wire and the
// caller's ctx runs out. The request is still in the server's socket buffer
// and runs when the server resumes; the read-back then finds the lock taken
// for a caller that has given up, and gives it back: nothing stays held.
func TestPausedServerMidAcquire(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	c, err := redislock.Open(ctx, "redis://"+srv.Addr(), distlock.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	warm, err := c.TryLock(ctx, "warm") // loads the scripts
	if err != nil {
		t.Fatal(err)
	}
	warm.Unlock(ctx)

	key := "paused"
	n := rediswire.NamesFor("", key)
	srv.Pause()
	res := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		l, err := c.TryLock(sctx, key)
		if err == nil {
			l.Unlock(ctx)
		}
		res <- err
	}()
	time.Sleep(600 * time.Millisecond)
	srv.Resume()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("TryLock returned a lock after its ctx ended")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("TryLock: %v, want the ctx's error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("TryLock did not return")
	}
	if admin.Exists(ctx, n.Record).Val() != 1 {
		t.Skip("the acquire never ran on the server (the request was lost with its connection); the other outcome is tested in TestCutMidAcquire")
	}
	deadline := time.Now().Add(5 * time.Second)
	for admin.Exists(ctx, n.Lock).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lock taken for a caller that gave up is still held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
