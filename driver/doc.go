// Package driver defines the contract between the portable distlock package and
// the stores that hold locks. Users never import it; driver authors do.
//
// The portable package (distlock) owns everything every backend shares: input
// validation, token generation, the blocking loop of Lock, the read-back after
// an ambiguous acquire, the single renewal loop per Client, loss notification,
// error wrapping, logging and metrics. A driver only speaks to its store, one
// request at a time, and says what each answer means.
//
// # The required interface
//
// [Driver] has five calls, each a single attempt and ideally one round trip:
//
//   - Acquire: try once to take a key for a token. Contention is a definite
//     answer ([ErrLocked], best as a [*HeldError] that names the holder).
//   - Release: delete the lock only if the token still holds it.
//   - Renew: extend a batch of locks, each only if its token still holds it.
//     One round trip for the whole batch where the store allows it.
//   - Inspect: read who holds a key. Used by status and by the read-back of an
//     ambiguous acquire: the portable layer compares tokens.
//   - Close: release the driver's own resources (never the user's client).
//
// A driver classifies its failures by wrapping them: [ErrUnavailable] when the
// request surely never reached the store (dial refused, pool closed), so nothing
// can have happened; [ErrNotHeld] when the store says the token no longer holds
// the key; [ErrRetry] when an acquire took nothing, knows of no holder, and the
// store could not decide in time (Redlock without a majority). Any other error
// from Acquire is treated as ambiguous: the portable layer reads back by token
// (Inspect) and hands the lock out only if the store holds it for the token;
// otherwise it keeps releasing the token in the background and reports
// ErrUnavailable or ErrLocked. Lock retries ErrUnavailable, ErrRetry and
// ambiguous outcomes with back-off until its ctx ends; TryLock reports them.
//
// A driver whose lock is bound to something that may end without the store
// forgetting the lock at once (a session connection it had to drop) must not
// report the token in Inspect once it has let go of it: the read-back would
// hand out a lock that another client can take when the store notices.
//
// # Optional interfaces: who owns waiting
//
// Lock must not force every store into try-sleep-retry. A driver picks one of
// three shapes, by which optional interface it implements:
//
//   - Neither: the portable layer retries Acquire with jittered exponential
//     back-off, sleeping no longer than the holder's remaining TTL when the
//     store reported it (SQLite across processes, MySQL).
//   - [Notifier]: the store can tell waiters that a key may have become free.
//     The portable layer subscribes before its first attempt (so a release
//     between the attempt and the wait is never missed), then alternates one
//     Acquire with one wait for a wake-up or the fallback timer.
//   - [Queuer]: the driver owns waiting entirely, because the store keeps an
//     ordered queue of waiters. AcquireWait returns only when the lock is held
//     or ctx ends, and on ctx end it removes its own queue entry.
//
// # Who uses what
//
// The parts of the contract that only some stores need, and who needs them:
//
//	Notifier        PostgreSQL (LISTEN/NOTIFY), SQLite (waiters in one process)
//	Queuer          Redis (a server-side queue), etcd (the revision queue)
//	Purger          the SQL stores (a free row keeps its key's fence)
//	Lease.Since     etcd: a lock on a shared lease is as fresh as its last renewal
//	ErrRetry        Redlock: no majority in time, nobody known to hold the key
//	HeldError       every driver that can name the holder at no extra cost
//	Holder.Token    every driver, for the portable read-back only (never shown)
//
// # How the other stores fit
//
// Redis (package redislock). Acquire is one Lua script: SET key token PX ttl
// if absent (or if it already holds our token), make the fence by the rule
// (max(last + 1, the server's TIME in µs)) and set the counter, kept under the
// same hash tag, with an expiry; return the fence; on contention return the holder's
// PTTL in the HeldError so the fallback timer is exact. Release and Renew are
// one Lua script each (compare token, then DEL or PEXPIRE); Renew pipelines
// every held lock in one round trip. Inspect is GET + PTTL + the fence. Waiting:
// either [Notifier] (a release PUBLISHes on a per-key channel; the driver keeps
// one shared subscription connection per Client and fans wake-ups out), or
// [Queuer] if waiters take turns through a server-side list so that one
// release wakes one waiter, oldest first.
//
// etcd (package etcdlock). One lease in force per Client, kept alive by the
// driver.
// [Queuer] is the natural fit: AcquireWait puts K/<lease hex> in one Txn (if
// absent, bound to the lease, the token as value), then waits for the deletion
// of the key with the next-lower create revision, exactly as etcd's own
// concurrency.Mutex does; Acquire (TryLock) does the same Txn and, when it is
// not first, deletes its key and reports the holder. The fence is the create
// revision. Release is a plain delete of the lock's own key name; a write
// whose outcome is unknown retires the lease (new requests take a fresh one;
// the old one lives only for the locks still on it, and is swept and
// revoked), so a late delete or put can never outlive its lock. Renew keeps
// each lease of the batch alive and checks the keys still exist with their
// fences; a lease lost is ErrNotHeld for every lock on it.
//
// SQL (sqlitelock, pglock, mysqllock). One lease row per key, written by one
// autocommit statement per call on the database's clock; the code is shared in
// internal/leaserow, and each database is a dialect of it. PostgreSQL adds
// [Notifier] through LISTEN/NOTIFY; SQLite notifies waiters in the same process
// and backs off across processes.
//
// # Rules every driver keeps
//
//   - Every call returns by its ctx's deadline, whatever the store or the
//     network is doing (a paused server, a black-holed connection): with an
//     answer, or with an error whose outcome is unknown. A call that cannot
//     be interrupted (a client library that ignores ctx) is run so that the
//     driver returns anyway and the call finishes in the background.
//     Cancellation should end a call as promptly where the client allows. The portable layer does not depend on it
//     for safety (it ends a lock at its local deadline whatever a call in
//     flight is doing), but Unlock, TryLock and Close do for their promptness.
//   - Keys reach the store as data (bound parameters, script arguments), never
//     spliced into a statement or a script.
//   - Expiry is measured by the store's clock. The portable layer also keeps a
//     conservative local deadline (the time the request was sent plus the TTL)
//     to declare a lock lost when renewals stop succeeding.
//   - The fence is made by the store, strictly increasing per key, and must not
//     go backwards when the store loses or forgets a key. The rule where the
//     store has a clock: next fence = max(previous + 1, the store's clock in
//     microseconds since the Unix epoch), so a counter that was lost or
//     restored from an old snapshot can never repeat or lower a fence (etcd,
//     which has no clock to read, uses the key's create revision). A grant
//     never carries fence 0: the portable layer refuses it and releases.
//   - A write whose answer was lost may still land later. Release and Renew
//     check the token, so a late one cannot touch another holder's lock; a
//     late Acquire takes a lock for a token nobody uses, which the portable
//     layer keeps releasing until the store would have expired it. A store
//     that does not expire locks by TTL while the driver lives (etcd's lease)
//     must make sure by itself that no such key outlives its lock.
//   - Errors keep the store's own error in their chain, so errors.As reaches it.
package driver
