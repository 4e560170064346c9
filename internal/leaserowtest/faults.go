// Package leaserowtest holds the fault tests, round-trip checks and
// benchmarks that every SQL lease-row driver (pglock, mysqllock; sqlitelock
// for the purge) runs against its real server: the same scenarios, the
// backend's own server and statements. It is imported by those packages'
// tests only.
package leaserowtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Backend is what the shared tests need of a driver package. M is its Mode.
type Backend[M fmt.Stringer] struct {
	// Modes are the package's lock modes; LeaseRow is the one whose every
	// statement is one round trip (a lost reply is read back by token).
	Modes    []M
	LeaseRow M
	// Open returns a Client on dsn in mode, closed when the test ends.
	Open func(t *testing.T, dsn string, mode M, opts ...distlock.Option) *distlock.Client
	// Driver returns the bare driver on dsn in mode, closed when the test
	// ends.
	Driver func(t *testing.T, dsn string, mode M) driver.Driver
	// Table is the default lock table of mode.
	Table func(mode M) string
	// StoredKey reads lock_key of the row whose lock_key is key, and Rows
	// counts the table's rows, both through an admin connection.
	StoredKey func(ctx context.Context, table, key string) (string, error)
	Rows      func(ctx context.Context, table string) (int, error)
}

// Server is a private database server the tests may stop, kill and restart.
type Server interface {
	DSN() string
	Stop()
	Kill()
	Restart()
}

// quiet is the logging of Clients whose failures are the point of a test.
var quiet = distlock.WithLogger(slog.New(slog.DiscardHandler))

// ReplyLostAfterCommit cuts the connection of an acquire after the server
// committed it and before its reply reached the client: viaProxy reaches
// the server through p, direct straight. In lease-row mode the read-back by
// token must find the lock granted; in a session mode it may find it free
// (the holder's session died with the connection). In every mode the key
// is not left orphaned.
func ReplyLostAfterCommit[M fmt.Stringer](t *testing.T, b Backend[M], p *Proxy, viaProxy, direct string) {
	ctx := t.Context()
	for _, mode := range b.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			key := "reply-lost-" + mode.String()
			c, other := b.Open(t, viaProxy, mode), b.Open(t, direct, mode)
			l, err := cutTryLock(t, c, key, p.CutNextReply, p)
			if mode.String() == b.LeaseRow.String() {
				if err != nil {
					t.Fatalf("TryLock whose reply was lost after commit: %v; want the lock, read back by token", err)
				}
				st, err := other.Status(ctx, key)
				if err != nil || !st.Held || st.Fence != l.Fence() {
					t.Errorf("Status = %+v, %v; want held with fence %d", st, err, l.Fence())
				}
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			} else if err == nil {
				// The cut hit the beacon's reply before the upsert: fine.
				l.Unlock(ctx)
			}
			l2, err := other.TryLock(ctx, key)
			if err != nil {
				t.Fatalf("the key is orphaned after the lost reply: %v", err)
			}
			l2.Unlock(ctx)
		})
	}
}

// cutTryLock runs TryLock of key on c, whose store the proxy p fronts,
// with the reply cut as arm says, and checks that a reply was cut. It uses
// c's connections just before, so that the database/sql layer does not
// ping them first and the cut hits the acquire's reply.
func cutTryLock(t *testing.T, c *distlock.Client, key string, arm func(), p *Proxy) (*distlock.Lock, error) {
	t.Helper()
	ctx := t.Context()
	warm, err := c.TryLock(ctx, key+"-warm")
	if err != nil {
		t.Fatal(err)
	}
	warm.Unlock(ctx)
	arm()
	l, err := c.TryLock(ctx, key)
	if !p.Cut() {
		t.Fatal("no reply was cut")
	}
	return l, err
}

// tryLockWithin tries to take key on c until it succeeds or limit has
// passed (a liveness bound: the server has to notice a change first).
func tryLockWithin(ctx context.Context, c *distlock.Client, key string, limit time.Duration) (*distlock.Lock, error) {
	for deadline := time.Now().Add(limit); ; {
		l, err := c.TryLock(ctx, key)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RestartWhileHeld restarts the server while a lock is held, down for longer
// than the lock's TTL: the holder learns of the loss, and the next holder's
// fence is above the lost one.
func RestartWhileHeld[M fmt.Stringer](t *testing.T, b Backend[M], srv Server) {
	ctx := t.Context()
	const ttl = time.Second
	for _, mode := range b.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := b.Open(t, srv.DSN(), mode, distlock.WithTTL(ttl), quiet)
			key := "restart-" + mode.String()
			l, err := c.TryLock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			time.Sleep(ttl + ttl/2)
			srv.Restart()
			select {
			case <-l.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the holder did not learn of its loss")
			}
			if !errors.Is(l.Err(), distlock.ErrLost) {
				t.Errorf("Err = %v, want ErrLost", l.Err())
			}
			other := b.Open(t, srv.DSN(), mode, quiet)
			l2, err := tryLockWithin(ctx, other, key, 10*time.Second)
			if err != nil {
				t.Fatalf("TryLock after the restart: %v", err)
			}
			if l2.Fence() <= l.Fence() {
				t.Errorf("fence after restart %d, not above the lost %d", l2.Fence(), l.Fence())
			}
			l2.Unlock(ctx)
		})
	}
}

// CrashKeepsFencesMonotonic kills the server (the test servers do not wait
// for the disk, so recent commits may be lost) and checks that fences keep
// growing: they are seeded from the clock.
func CrashKeepsFencesMonotonic[M fmt.Stringer](t *testing.T, b Backend[M], srv Server) {
	ctx := t.Context()
	var last uint64
	for round := range 2 {
		c := b.Open(t, srv.DSN(), b.LeaseRow, quiet)
		for range 3 {
			l, err := c.TryLock(ctx, "crash")
			if err != nil {
				t.Fatal(err)
			}
			if l.Fence() <= last {
				t.Errorf("round %d: fence %d after %d", round, l.Fence(), last)
			}
			last = l.Fence()
			l.Unlock(ctx)
		}
		c.Close()
		srv.Kill()
		srv.Restart()
	}
}

// SQLKeys are keys full of SQL syntax that every backend must store and
// lock as plain data; a backend adds its own placeholders and quoting.
var SQLKeys = []string{
	`'`, `''`, `"`, `';--`, `'); DROP TABLE distlock_locks; --`, `/* comment */`, `*/`, `-- x`,
	`a' OR '1'='1`, `\`, `%_`, `;`, `{table}`, "line\nbreak", "ключ 🔒",
}

// KeysAreData locks each of keys, checks that a second Client is refused,
// that the row holds the key byte for byte, and that the table survived.
func KeysAreData[M fmt.Stringer](t *testing.T, b Backend[M], dsn string, keys []string) {
	ctx := t.Context()
	for _, mode := range b.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			a, c := b.Open(t, dsn, mode), b.Open(t, dsn, mode)
			for _, k := range keys {
				l, err := a.TryLock(ctx, k)
				if err != nil {
					t.Fatalf("TryLock(%q): %v", k, err)
				}
				if _, err := c.TryLock(ctx, k); !errors.Is(err, distlock.ErrLocked) {
					t.Errorf("second TryLock(%q): %v, want ErrLocked", k, err)
				}
				if stored, err := b.StoredKey(ctx, b.Table(mode), k); err != nil || stored != k {
					t.Errorf("stored key %q, %v; want %q", stored, err, k)
				}
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock(%q): %v", k, err)
				}
			}
			if n, err := b.Rows(ctx, b.Table(mode)); err != nil || n < len(keys) {
				t.Errorf("%d rows (%v), want at least %d: the table is intact", n, err, len(keys))
			}
		})
	}
}

// AbandonedSession loses the reply of a session-mode acquire after the
// server ran it, and leaves the session behind at the server (the network
// failed without a word: the client gave its connection up, the server
// still holds the session's beacon). The acquire's read-back must not hand
// out a lock that rests on that session: when it ends, another client may
// take the key at once. So TryLock fails, nobody else holds the key while
// the abandoned session might still count, and once it is gone a second
// client takes the key. viaProxy reaches the server through p, which must
// cut only the reply of the upsert (see IsUpsert); direct reaches the
// server straight.
func AbandonedSession[M fmt.Stringer](t *testing.T, b Backend[M], p *Proxy, viaProxy, direct string) {
	ctx := t.Context()
	for _, mode := range b.Modes {
		if mode.String() == b.LeaseRow.String() {
			continue
		}
		t.Run(mode.String(), func(t *testing.T) {
			key := "abandoned-session-" + mode.String()
			c, other := b.Open(t, viaProxy, mode, quiet), b.Open(t, direct, mode, quiet)
			l, err := cutTryLock(t, c, key, p.AbandonNextReply, p)
			if err == nil {
				t.Errorf("TryLock whose session was abandoned returned a lock (fence %d); want an error", l.Fence())
			} else if !errors.Is(err, distlock.ErrUnavailable) || errors.Is(err, distlock.ErrLocked) {
				t.Errorf("TryLock whose session was abandoned: %v; want an error wrapping ErrUnavailable, not contention", err)
			}
			t.Logf("TryLock whose session was abandoned: %v", err)
			// While the abandoned session lives, its row is released by
			// token through the pool: the key is free for others soon,
			// and never while c might think it holds it.
			if l != nil {
				if l2, err := other.TryLock(ctx, key); err == nil {
					t.Errorf("two holders: fence %d handed out while the abandoned session's fence %d is held", l2.Fence(), l.Fence())
					l2.Unlock(ctx)
				}
			} else {
				l2, err := tryLockWithin(ctx, other, key, 5*time.Second)
				if err != nil {
					t.Fatalf("the abandoned attempt's row was not released by token while its session lived: %v", err)
				}
				l2.Unlock(ctx)
			}

			p.EndAbandoned()
			l2, err := tryLockWithin(ctx, other, key, 10*time.Second)
			if err != nil {
				t.Fatalf("the key is not free once the abandoned session ended: %v", err)
			}
			if l != nil {
				select {
				case <-l.Done():
				default:
					t.Errorf("two holders: fence %d taken while the first lock (fence %d) is still held by its Client", l2.Fence(), l.Fence())
				}
			}
			l2.Unlock(ctx)
		})
		t.Run(mode.String()+"-retry", func(t *testing.T) {
			abandonedRetry(t, b, mode, p, viaProxy, direct)
		})
	}
}

// abandonedRetry: a retry, with the same token, of an acquire whose session
// was abandoned finds the token's beacon held by that session. It must not
// hand the lock out, and it frees the row, so the key need not wait for the
// abandoned session to end.
func abandonedRetry[M fmt.Stringer](t *testing.T, b Backend[M], mode M, p *Proxy, viaProxy, direct string) {
	ctx := t.Context()
	d, other := b.Driver(t, viaProxy, mode), b.Driver(t, direct, mode)
	req := driver.AcquireRequest{Key: "abandoned-retry-" + mode.String(), Token: "abandoned-retry-token", TTL: 10 * time.Second}
	warm := driver.AcquireRequest{Key: req.Key + "-warm", Token: "warm-token", TTL: time.Second}
	if l, err := d.Acquire(ctx, warm); err != nil {
		t.Fatal(err)
	} else if err := d.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	p.AbandonNextReply()
	if l, err := d.Acquire(ctx, req); err == nil {
		t.Fatalf("Acquire whose reply was cut returned %+v", l)
	}
	if !p.Cut() {
		t.Fatal("no reply was cut")
	}
	defer p.EndAbandoned()
	if l, err := d.Acquire(ctx, req); err == nil {
		t.Errorf("retried Acquire, with the beacon held by the abandoned session, returned %+v; want no lock", l)
	} else if !errors.Is(err, driver.ErrRetry) {
		t.Errorf("retried Acquire: %v; want an error wrapping ErrRetry", err)
	}
	l, err := other.Acquire(ctx, driver.AcquireRequest{Key: req.Key, Token: "other-token", TTL: 10 * time.Second})
	if err != nil {
		t.Fatalf("the key is not free after the retry released it: %v", err)
	}
	other.Release(ctx, l)
}
