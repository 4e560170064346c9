// Package sqlitelock keeps distlock locks in an SQLite database file: the
// embedded store that needs no server. Processes on one machine that open the
// same file share its locks. It uses modernc.org/sqlite (pure Go, no cgo).
//
//	client, err := sqlitelock.Open(ctx, "/var/lib/app/locks.db", nil)
//
// or, with the package imported, distlock.Open(ctx, "sqlite:///var/lib/app/locks.db").
// New takes a *sql.DB the caller already has.
//
// # Guarantees
//
//   - Every call is one autocommit statement that reads the clock of SQLite
//     (the machine's clock) inside the statement: no transaction is held
//     open between calls, and no lock outlives its TTL because a client
//     stalled or died.
//   - A lock is held while its row's expires_at is later than that clock. An
//     acquire takes a key whose row is missing or expired, nothing else.
//     Release and renewal match the holder's token, so nobody frees or
//     extends a lock that is not theirs.
//   - Fences are strictly increasing per key. Each new fence is at least the
//     machine's clock in microseconds: a new row starts at the clock, a
//     takeover gets max(fence + 1, clock), and a release keeps the row and
//     its fence. So fences keep growing even if an operator deletes rows, or
//     a power cut undoes the last commits (the file is opened with
//     synchronous=NORMAL, which in WAL mode never corrupts it but may lose
//     the latest transactions; the processes that held locks died with the
//     machine). The one assumption: the machine's clock does not step back.
//   - Client.Purge (distlock gc) deletes the rows of keys free for at least
//     a given age; a purged key starts again from the clock, above its old
//     fence, as long as the clock has not stepped back by that age.
//   - Keys, tokens and owners are always bound parameters, never spliced into
//     SQL; the table name is checked to be a plain identifier.
//
// # URLs
//
//	sqlite:///absolute/path/locks.db
//	sqlite://localhost/absolute/path/locks.db
//	sqlite:relative/path/locks.db
//
// Any other host is an error: the database is a local file. Percent-escape
// '%', '?' and '#' in a path. Query parameters:
//
//	table=NAME            the lock table (default distlock_locks)
//	busy_timeout=DURATION how long to wait for another writer (default 5s)
//	create_table=BOOL     create the table if missing (default true)
//
// An unknown or repeated parameter is an error, as is a malformed value; all
// URL errors wrap distlock.ErrInvalid. The file's directory is created
// (mode 0700) if it does not exist, so a default store can live in a state
// directory made on first use.
//
// # Your own *sql.DB
//
// New and NewDriver use a *sql.DB the caller opened and owns (closing the
// Client does not close it). Any database/sql driver for SQLite 3.42 or later
// works; the version is checked when the Client is made. Give the handle a
// busy timeout (with modernc.org/sqlite, _pragma=busy_timeout(5000) in the
// DSN), and WAL mode if several processes share the file. Errors are
// classified (driver.ErrUnavailable when the file cannot be opened) for
// modernc.org/sqlite's errors and for any error with a Code() int method that
// returns an SQLite result code. An in-memory database works only if every
// connection of the pool sees the same database (for example with
// SetMaxOpenConns(1)), and then only within the process.
//
// # Waiting
//
// A Lock call waiting for a key held in the same process is woken by the
// holder's release (Subscribe, driver.Notifier): any Client on the same file
// and table, whether made by Open, New or distlock.Open, wakes it. A release
// wakes one waiter, the one that has waited longest, since only one can take
// the key; a waiter that gives up passes an unused wake-up on. A holder in
// another process cannot wake anyone here; waiters then poll with jittered
// back-off, and never sleep past the holder's expiry, which every contended
// acquire reports.
//
// Writes from one process to one file queue in Go, in arrival order, before
// they reach SQLite (one queue per file, shared by all Clients of the
// process): SQLite's write lock has no queue, and a writer that finds it
// taken sleeps and polls, so that under contention a renewal could lose to
// newer statements for longer than its lock's TTL. TTLs are kept in whole
// milliseconds (rounded up); the smallest is 100ms.
//
// # Several processes
//
// The file is opened in WAL mode, so readers never wait for the writer, and
// with a busy timeout (default 5s): a statement that finds another process
// writing waits up to that long for it, then fails with SQLITE_BUSY; that
// statement had no effect, and the Client reads back before it answers.
// Each Open makes a pool of at most two connections: writes take turns in
// the process's queue anyway, and the second connection lets a read
// (Status, a read-back) run beside a write.
//
// Keep the file on a local disk. SQLite's locking, and WAL's shared memory,
// do not work over NFS or other network file systems: processes on different
// machines must use a server store (Redis, etcd, PostgreSQL, MySQL).
//
// # Wire protocol
//
// One table, created by Open unless create_table=false (or
// Options.DisableCreateTable). Statements below show its name as {table}.
// expires_at is in milliseconds since the Unix epoch by SQLite's clock; a
// released row has an empty token and minus the time of its release in
// expires_at (free by every statement below, whatever the clock reads
// next), and keeps its fence.
//
//	CREATE TABLE IF NOT EXISTS {table} (
//	  lock_key   TEXT    NOT NULL PRIMARY KEY,
//	  token      TEXT    NOT NULL,
//	  fence      INTEGER NOT NULL,
//	  owner      TEXT    NOT NULL,
//	  ttl_ms     INTEGER NOT NULL,
//	  expires_at INTEGER NOT NULL
//	) WITHOUT ROWID
//
// Opening checks the table's columns with
//
//	SELECT lock_key, token, fence, owner, ttl_ms, expires_at FROM {table} LIMIT 0
//
// Acquire binds ?1 key, ?2 token, ?3 owner, ?4 TTL in milliseconds, ?5 the
// caller's clock in microseconds since the Unix epoch, read just before the
// statement (SQLite's own clock ticks in milliseconds, too coarse to keep two
// fences apart if a row is deleted between them; the statement takes the
// later of the two). It takes the row if it is missing or expired and always
// returns the row; the lock is ours if the returned token is ours (so a retry
// with our token, while we hold the lock, returns it unchanged). Otherwise
// the returned owner, fence and remaining milliseconds describe the holder.
//
//	INSERT INTO {table} (lock_key, token, fence, owner, ttl_ms, expires_at)
//	VALUES (?1, ?2, max(?5, (CAST(unixepoch('subsec') * 1000 AS INTEGER) * 1000)), ?3, ?4, CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?4)
//	ON CONFLICT (lock_key) DO UPDATE SET
//	  token      = CASE WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) THEN excluded.token      ELSE token      END,
//	  fence      = CASE WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) THEN max(fence + 1, excluded.fence) ELSE fence END,
//	  owner      = CASE WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) THEN excluded.owner      ELSE owner      END,
//	  ttl_ms     = CASE WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) THEN excluded.ttl_ms     ELSE ttl_ms     END,
//	  expires_at = CASE WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) THEN excluded.expires_at ELSE expires_at END
//	RETURNING token, fence, owner, ttl_ms, expires_at - CAST(unixepoch('subsec') * 1000 AS INTEGER)
//
// Release binds ?1 key, ?2 token; no row changed means the lock was not held
// (driver.ErrNotHeld).
//
//	UPDATE {table} SET token = '', owner = '', expires_at = -CAST(unixepoch('subsec') * 1000 AS INTEGER)
//	WHERE lock_key = ?1 AND token = ?2 AND expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)
//
// Renew takes a batch of n leases: {keys} is ?1 ... ?n, {tokens} is
// ?(n+1) ... ?(2n). Each lease is extended by its row's ttl_ms; leases
// missing from the result are lost (driver.ErrNotHeld).
//
//	UPDATE {table} SET expires_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) + ttl_ms
//	WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)
//	RETURNING lock_key, token
//
// Inspect (status, and the read-back of an acquire whose outcome was lost)
// binds ?1 key and returns no row when the key is free:
//
//	SELECT token, fence, owner, expires_at - CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM {table}
//	WHERE lock_key = ?1 AND expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)
//
// Purge (Client.Purge, distlock gc) binds ?1 the age in milliseconds and
// deletes the rows free for at least that long: released (abs(expires_at))
// or expired (expires_at) that long ago, with a fence (its clock in
// microseconds) at least that old too, so that no key's next fence can
// repeat or go below its old one. It reads the whole table.
//
//	DELETE FROM {table}
//	WHERE max(abs(expires_at), fence / 1000) <= CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?1
//
// Another program can take and release these locks by running the same
// statements; it needs only a token of its own that is unique per
// acquisition.
//
// # Round trips
//
// Each is a statement in this process (SQLite has no server):
//
//	TryLock             1 (2 when the outcome was lost and is read back)
//	Lock                1 per attempt
//	Unlock              1
//	renewal             1 per 500 locks a Client renews at once
//	Status              1
//	Purge               1
//	Open                4: sqlite_version(), pragma_database_list,
//	                    CREATE TABLE IF NOT EXISTS, the column check
//	                    (plus the pragmas of each new connection)
package sqlitelock
