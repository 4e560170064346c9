package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/rediswire/rediswiretest"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// Calls get a 200ms ctx; callLimit is that, with room for a loaded machine,
// and far below the clients' 10s read timeout, which the calls waited for
// before.
const (
	callCtx   = 200 * time.Millisecond
	callLimit = callCtx + 800*time.Millisecond
)

// Every driver call returns by its ctx's deadline on a server that stopped
// answering, whether the client honours ctx deadlines (a redis:// URL, even
// with read_timeout=10s) or not (a user's client with ReadTimeout 10s and
// no ContextTimeoutEnabled), and its error is of unknown outcome, not
// ErrUnavailable: the request may have reached the server.
func TestCallsReturnByDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, addr string) driver.Driver
	}{
		{"URL", func(t *testing.T, addr string) driver.Driver {
			d, err := redislock.OpenDriver(t.Context(), "redis://"+addr+"/?read_timeout=10s")
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"UserClient", func(t *testing.T, addr string) driver.Driver {
			rc := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
			t.Cleanup(func() { rc.Close() })
			d, err := redislock.NewDriver(rc, nil)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.StartRedis(t, testserver.Private())
			d := tc.open(t, srv.Addr())
			t.Cleanup(func() { d.Close() })
			stop := func() {
				srv.Pause()
				t.Cleanup(srv.Resume) // before Close, which waits for what runs on
			}
			rediswiretest.CallsReturnByDeadline(t, d, stop, rediswiretest.Deadline{
				Ctx: callCtx, Limit: callLimit, Check: rediswiretest.UnknownOutcome,
			})
		})
	}
}

// The same through the portable layer: TryLock and Unlock with a user's
// client whose ReadTimeout is 10s return long before it.
func TestClientReturnsByDeadline(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	t.Cleanup(func() { rc.Close() })
	c, err := redislock.New(rc, nil, distlock.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	l, err := c.TryLock(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx, "held"); err != nil { // loads its script
		t.Fatal(err)
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	// TryLock reads back by token after its attempt got no answer; that
	// read-back is bounded by the portable layer (at most 1s), not by the
	// client's read timeout.
	const limit = callLimit + time.Second
	cctx, cancel := context.WithTimeout(ctx, callCtx)
	defer cancel()
	start := time.Now()
	if l2, err := c.TryLock(cctx, "other"); err == nil {
		t.Error("TryLock on a paused server returned a lock")
		l2.Unlock(ctx)
	}
	if took := time.Since(start); took > limit {
		t.Errorf("TryLock took %v with a %v ctx", took.Round(time.Millisecond), callCtx)
	}
	uctx, cancel := context.WithTimeout(ctx, callCtx)
	defer cancel()
	start = time.Now()
	l.Unlock(uctx) // fails (the server is paused); released in the background
	if took := time.Since(start); took > callLimit {
		t.Errorf("Unlock took %v with a %v ctx", took.Round(time.Millisecond), callCtx)
	}
}
