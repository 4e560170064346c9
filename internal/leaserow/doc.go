// Package leaserow is the lock code every SQL backend shares: one lease row
// per key, written by one autocommit statement per call and judged by the
// database's clock. Each database is a [Dialect] of it (its statements, its
// placeholder style, its error classifier), never a copy: [SQLite],
// [Postgres] and [MySQL], plus the session-lock variants [PostgresSession]
// and [MySQLSession].
//
// # Schema
//
// One table (default name distlock_locks), keyed by the lock key:
//
//	lock_key    the key, bound as a parameter, never spliced into SQL
//	token       the holder's token; '' when free
//	fence       the fencing token of the latest acquisition
//	owner       the holder's metadata; '' when free
//	ttl_ms      the holder's TTL in milliseconds, reused by every renewal
//	expires_at  while held, when the lease ends, in milliseconds since the
//	            Unix epoch by the database's clock; after a release, minus
//	            the clock at the release (0 in rows released by versions
//	            that did not record it)
//
// A row is held while expires_at is later than the database's clock, and
// free otherwise, whatever its token says. A release clears token and owner,
// keeps the fence, and records when the row became free as a negative
// expires_at: free by every statement's condition whatever the clock reads
// next (a positive time could read as held to a statement whose clock was
// read before it, or after a clock step back), and old enough to purge once
// abs(expires_at) is.
//
// # Operations
//
//   - Acquire is one upsert: insert the row, or take over the row if it is
//     not held (bumping its fence), and in every case return the row as it
//     is afterwards. The lock is ours when the returned token is ours. A
//     retry with the same token while the lock is held therefore returns the
//     same lease without bumping the fence; any other token gets a
//     *driver.HeldError with the holder's owner, fence and remaining TTL, so
//     a waiter can sleep exactly until the holder's expiry.
//   - Release is one UPDATE matching key, token and "still held"; no row
//     matched is driver.ErrNotHeld, including a lock that expired but was
//     not taken over.
//   - Renew is one UPDATE for the whole batch (split every MaxBatch leases):
//     key IN (...) AND token IN (...) AND still held, returning the rows it
//     extended. Tokens are unique, so the two lists match exactly the
//     batch's leases. A lease missing from the result wraps
//     driver.ErrNotHeld.
//   - Inspect is one SELECT of the row if it is held.
//   - Purge (driver.Purger) is one DELETE of the rows free for at least a
//     given age: released, or expired without a release, that long ago by
//     the database's clock, with a fence at least that old too. Nothing
//     else deletes rows. The statement reads the whole table (there is no
//     index on expires_at), so it is for an occasional clean-up.
//
// No statement holds a transaction open or locks a row beyond its own
// execution (no SELECT ... FOR UPDATE), so a client that stalls or dies
// holds nothing but its lease, which expires.
//
// # Fences
//
// Every new fence is at least the clock in microseconds since the Unix
// epoch: a freshly inserted row gets the clock, a takeover gets
// max(fence + 1, clock). The clock is the database's, or for a Dialect with
// ClockArg (SQLite, whose clock ticks in milliseconds) the later of the
// database's and the caller's, read just before the statement. So a key's
// fence grows by at least one per acquisition, and it stays above every
// fence handed out before even when the database forgets what it wrote:
//
//   - an operator deletes the row (or the table): the next insert starts
//     again from the clock, above any fence the old row reached;
//   - a commit is lost (a power cut with SQLite's synchronous=NORMAL, a
//     failover to a replica that lags): the next takeover of the older row
//     jumps to the clock, above the fence of the lost acquisition.
//
// The one assumption: the clock does not step back. (Fences also stay ahead
// of the clock only while a key changes hands fewer than a million times a
// second, far beyond what one row sustains.) The fence of a key survives its
// release in its row. Purge deletes a row only once both the time it became
// free and its fence's time are at least the purge age behind the clock,
// so the key's next fence, the clock in microseconds when it is inserted
// again, is above the old one unless the clock has stepped back by that
// age or more in between.
//
// # Dialects without RETURNING
//
// MySQL has no UPDATE ... RETURNING (nor INSERT ... RETURNING). A Dialect
// that sets AcquireRead or RenewRead runs Acquire or Renew for its effect
// only: Acquire is followed by a read of the row by key; Renew compares the
// affected-row count with the number of distinct leases, and only when some
// were not renewed reads which ones are held. The fallbacks are tested
// against SQLite with RETURNING left out.
package leaserow
