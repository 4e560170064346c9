// Package leaserowtest holds the fault tests, round-trip checks and
// benchmarks that every SQL lease-row driver (pglock, mysqllock) runs
// against its real server: the same scenarios, the backend's own server and
// statements. It is imported by those packages' tests only.
package leaserowtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// Backend is what the shared tests need of a driver package. M is its Mode.
type Backend[M fmt.Stringer] struct {
	// Modes are the package's lock modes; LeaseRow is the one whose every
	// statement is one round trip (a lost reply is read back by token).
	Modes    []M
	LeaseRow M
	// Open returns a Client on dsn in mode, closed when the test ends.
	Open func(t *testing.T, dsn string, mode M, opts ...distlock.Option) *distlock.Client
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
			c := b.Open(t, viaProxy, mode)
			other := b.Open(t, direct, mode)
			key := "reply-lost-" + mode.String()
			// Use the connections just before, so that the database/sql
			// layer does not ping them first and the cut hits the acquire's
			// reply.
			warm, err := c.TryLock(ctx, key+"-warm")
			if err != nil {
				t.Fatal(err)
			}
			warm.Unlock(ctx)
			p.CutNextReply()
			l, err := c.TryLock(ctx, key)
			if !p.Cut() {
				t.Fatal("no reply was cut")
			}
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
			var l2 *distlock.Lock
			for deadline := time.Now().Add(10 * time.Second); ; {
				if l2, err = other.TryLock(ctx, key); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
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
