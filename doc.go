// Package distlock is one API for distributed locks over Redis, Redlock, etcd,
// PostgreSQL, MySQL/MariaDB and SQLite (the embedded default).
//
// Open a store by URL (import the driver package for its scheme), then take
// locks by key:
//
//	import (
//		"github.com/distlock/distlock"
//		_ "github.com/distlock/distlock/sqlitelock"
//	)
//
//	client, err := distlock.Open(ctx, "sqlite:///var/lib/app/locks.db")
//	...
//	err = client.Do(ctx, "nightly-report", func(ctx context.Context) error {
//		return build(ctx) // ctx is cancelled if the lock is lost
//	})
//
// # Guarantees
//
//   - Each acquisition has a unique, unguessable token. Release and renewal
//     succeed only for the token that holds the key, so a holder can never
//     delete somebody else's lock.
//   - Expiry is measured by the store's clock. The Client also keeps a
//     conservative local deadline (send time of the last successful renewal
//     plus the TTL) and declares the lock lost when it passes.
//   - One background goroutine per Client renews every held lock, batched
//     (about every TTL/3). A renewal that fails for a transient reason is
//     retried while the TTL allows; an answer "not yours any more", or the
//     deadline passing, is a loss: Done closes, Err wraps ErrLost, the lock's
//     Context is cancelled with that cause.
//   - Every lock carries a fence (Lock.Fence): a number made by the store,
//     strictly greater than the fence of every earlier holder of the key.
//     Protected resources should reject writes carrying a smaller fence; that
//     is what makes a lock that was lost while its holder was paused harmless.
//   - An acquire whose outcome is unknown (timeout, broken connection) is
//     read back by token before the call answers: it never returns an error
//     while holding the lock, and never returns a lock it does not hold.
//   - The ctx of Lock bounds the waiting only, never the life of the lock.
//
// # Errors
//
// Every error is an *Error naming the operation, key and backend, and
// unwrapping to a sentinel (ErrLocked, ErrNotHeld, ErrLost, ErrUnavailable,
// ErrClosed, ErrInvalid) and to the store's own error.
//
// # Round trips
//
// TryLock: one. Lock: one per attempt; with a store that wakes waiters, one
// attempt per wake-up. Unlock: one. Renewal: one per interval for all locks
// of a Client with the same TTL. Status: one. An ambiguous acquire adds one
// read-back.
package distlock
