// Package mysqllock keeps distlock locks in a MySQL or MariaDB table,
// through go-sql-driver/mysql.
//
//	client, err := mysqllock.Open(ctx, "app:secret@tcp(db.internal:3306)/app", nil)
//
// or, with the package imported, distlock.Open(ctx, "mysql://app:secret@db.internal:3306/app").
// New takes the *sql.DB the caller already has.
//
// # Guarantees
//
//   - Every call is one autocommit statement (two where noted below), judged
//     by the server's clock, UTC_TIMESTAMP(6): no transaction is held open
//     between calls and no row stays locked (no SELECT ... FOR UPDATE), so a
//     client that stalls or dies holds nothing but its lease, which expires.
//   - A lock is held while its row's expires_at is later than the server's
//     clock. An acquire takes a key whose row is missing or expired, nothing
//     else; release and renewal match the holder's token.
//   - Fences strictly increase per key: a new row starts at the server's
//     clock in microseconds, a takeover gets max(fence + 1, clock), and a
//     release keeps the row and its fence. InnoDB rows are durable, so a
//     restart keeps them; a deleted row or a commit lost in a crash
//     (innodb_flush_log_at_trx_commit=2, or a failover to a lagging replica)
//     restarts from the clock, above every fence handed out before, as long
//     as the server's clock does not step back.
//   - Client.Purge (distlock gc) deletes the rows of keys free for at least
//     a given age by the server's clock; a purged key starts again from the
//     clock, above its old fence, as long as the clock has not stepped back
//     by that age.
//   - Keys, tokens and owners are bound parameters (server-side prepared
//     statements), never spliced into SQL; the table name must be a plain
//     identifier. They are stored as byte strings (VARBINARY), compared byte
//     for byte, whatever the server's collations.
//
// Not guaranteed: a lock outlives a partition between the holder and the
// server by up to its TTL (the holder learns of the loss by its local
// deadline), and it depends on the server's clock running at a normal rate.
//
// # URLs
//
//	mysql://user:password@host:port/database?param=value&...
//
// is translated into go-sql-driver/mysql's configuration, the DSN
//
//	user:password@tcp(host:port)/database?param=value&...
//
// The user and password are percent-decoded (escape '@', ':', '/' and '%'
// in them); the host defaults to 127.0.0.1 and the port to 3306; an IPv6
// host is written in brackets; the database is required. Three parameters
// are this package's, taken out first:
//
//	table=NAME            the lock table (default distlock_locks, or
//	                      distlock_session_locks with mode=getlock); a plain
//	                      identifier, optionally database.table
//	create_table=BOOL     create the table if missing (default true)
//	mode=lease|getlock    the lock mode (default lease; see Modes)
//
// Every other parameter is the driver's (tls, timeout, readTimeout,
// writeTimeout, charset, collation, ...), checked by its DSN parser; a name
// it does not know is sent as a session variable when connecting (SET
// name=value), which the server rejects if it does not know it. parseTime
// is not needed: every time is an integer. Connections opened from a URL
// or a DSN set clientFoundRows, so a renewal counts the rows it matched.
// Errors wrap distlock.ErrInvalid for a bad URL and never show the
// password.
//
// # Modes
//
// Lease-row mode (the default) holds nothing between statements: a lock
// lasts while its holder renews its lease, and a holder that dies keeps the
// key for at most one TTL.
//
// GET_LOCK mode (mode=getlock, Options.Mode = GetLock) adds a session lock:
// each held lock keeps a connection of its own on which it holds a
// GET_LOCK lock named after its token (the beacon: "distlock_" and the
// first 40 hex digits of the SHA-256 of the token, 49 characters, within
// GET_LOCK's limit of 64; hex digits compare the same under any collation).
// The server drops the beacon when that connection ends, and the
// statements of this mode count a row whose holder's beacon is gone
// (IS_FREE_LOCK) as free: when a holder's process or connection dies, the
// next acquire takes the key at once, without waiting out the TTL. Mutual
// exclusion, the fence and the TTL stay in the row (a holder that stops
// renewing still loses its lock, any Client can release by token, and the
// fence is the lease-row counter, bumped by the acquire). The beacon names
// the holder rather than the key so that the row stays the one arbiter; the
// upsert runs on the beacon's own connection, so only a live holder ever
// writes it.
//
// Trade-offs of GET_LOCK mode:
//
//   - One connection per held lock, for as long as it is held (counted
//     against max_connections; with Open they come from a handle of their
//     own, with New from the caller's *sql.DB, so leave room in its
//     SetMaxOpenConns). A beacon connection idle for wait_timeout (8 hours
//     by default) is closed by the server, which ends the lock.
//   - Behind a proxy that multiplexes connections, a session lock is only
//     as good as the proxy's pinning: ProxySQL pins a client connection to
//     its backend connection for good once it has called GET_LOCK, which
//     keeps the lock right at the price of that backend connection.
//   - A lock also ends when its connection dies while its holder lives (a
//     network blip, KILL): the holder learns at its next renewal, within a
//     third of the TTL, and another holder may have the key meanwhile; as
//     always, check fences.
//   - An acquire whose answer is lost is never read back as granted: its
//     connection is given up, and the session, beacon and all, may live on
//     at the server until the server notices, then end behind the holder's
//     back. The attempt fails instead; the row it may have written
//     is free once that session ends, or once it is released by token.
//   - Lease-row and GET_LOCK clients must not share a table (hence the two
//     default tables): a GET_LOCK acquire takes over any row whose token has
//     no beacon, which a lease-row holder never has.
//
// # Waiting
//
// MySQL has nothing like LISTEN/NOTIFY: a waiting Lock tries again with
// jittered exponential back-off (WithBackoff, 10ms to 500ms by default),
// never sleeping past the holder's expiry, which every contended attempt
// reports. Each try costs two round trips.
//
// # Wire protocol
//
// Statements below show the table's name as {table}, NOW_MS for the
// server's clock in milliseconds since the Unix epoch and NOW_US in
// microseconds, read once per statement (date arithmetic, free of the
// session's time zone):
//
//	NOW_US = TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
//	NOW_MS = (NOW_US DIV 1000)
//
// The table, created on first use unless create_table=false (or run
// distlock migrate, or this statement yourself):
//
//	CREATE TABLE IF NOT EXISTS {table} (
//	  lock_key   VARBINARY(1024) NOT NULL PRIMARY KEY,
//	  token      VARBINARY(255)  NOT NULL,
//	  fence      BIGINT          NOT NULL,
//	  owner      VARBINARY(1024) NOT NULL,
//	  ttl_ms     BIGINT          NOT NULL,
//	  expires_at BIGINT          NOT NULL
//	) ENGINE=InnoDB
//
// A released row has an empty token and minus the time of its release in
// expires_at (free by every statement below, whatever the clock reads
// next), and keeps its fence.
//
// Acquire binds key, token, owner, TTL in milliseconds. MySQL has no
// INSERT ... RETURNING; the statement reports its outcome through
// LAST_INSERT_ID(expr), which the server returns in its OK packet (the
// table has no AUTO_INCREMENT column, so nothing else sets it): the new
// fence when it inserted or took over the row, 0 when it left the row
// alone. The inserted row's expires_at refers to ttl_ms, set earlier in the
// same VALUES list. The UPDATE's assignments run left to right, each seeing
// the ones before, so the column the condition reads, expires_at, is
// assigned last.
//
//	INSERT INTO {table} (lock_key, token, fence, owner, ttl_ms, expires_at)
//	VALUES (?, ?, LAST_INSERT_ID(NOW_US), ?, ?, NOW_MS + ttl_ms)
//	ON DUPLICATE KEY UPDATE
//	  owner      = IF(expires_at <= NOW_MS, VALUES(owner), owner),
//	  ttl_ms     = IF(expires_at <= NOW_MS, VALUES(ttl_ms), ttl_ms),
//	  fence      = IF(expires_at <= NOW_MS, LAST_INSERT_ID(GREATEST(fence + 1, VALUES(fence))), fence + LAST_INSERT_ID(0)),
//	  token      = IF(expires_at <= NOW_MS, VALUES(token), token),
//	  expires_at = IF(expires_at <= NOW_MS, VALUES(expires_at), expires_at)
//
// An uncontended acquire is therefore one round trip. When the last insert
// id is 0 (the key is held, or we hold it: a retried request), a second
// statement reads the row; the lock is ours if the token is ours, else
// owner, fence and the remaining milliseconds describe the holder:
//
//	SELECT IF(expires_at > NOW_MS, token, ''), fence, owner, ttl_ms, expires_at - NOW_MS
//	FROM {table} WHERE lock_key = ?
//
// Release binds key, token; no row affected means the lock was not held.
//
//	UPDATE {table} SET token = '', owner = '', expires_at = -NOW_MS
//	WHERE lock_key = ? AND token = ? AND expires_at > NOW_MS
//
// Renew takes a batch of n leases (up to 500 per statement), keys first,
// then tokens. When it affects fewer rows than the batch has leases, a read
// with the same arguments says which are held; the others are lost.
//
//	UPDATE {table} SET expires_at = NOW_MS + ttl_ms
//	WHERE lock_key IN (?, ...) AND token IN (?, ...) AND expires_at > NOW_MS
//
//	SELECT lock_key, token FROM {table}
//	WHERE lock_key IN (?, ...) AND token IN (?, ...) AND expires_at > NOW_MS
//
// Inspect (status, and the read-back of an acquire whose reply was lost)
// binds key and returns no row when the key is free:
//
//	SELECT token, fence, owner, expires_at - NOW_MS FROM {table}
//	WHERE lock_key = ? AND expires_at > NOW_MS
//
// Purge (Client.Purge, distlock gc) binds the age in milliseconds and
// deletes the rows free for at least that long: released (abs(expires_at))
// or expired (expires_at) that long ago, with a fence (its clock in
// microseconds) at least that old too, so that no key's next fence can
// repeat or go below its old one. It reads the whole table, and under
// REPEATABLE READ InnoDB locks every row it reads, and the gaps between,
// until it ends: acquires, renewals and releases meeting them wait for it.
// The same statement in both modes.
//
//	DELETE FROM {table}
//	WHERE GREATEST(ABS(expires_at), fence DIV 1000) <= NOW_MS - ?
//
// In GET_LOCK mode, with NAME(x) = CONCAT('distlock_', LEFT(SHA2(x, 256),
// 40)), the holder first runs SELECT GET_LOCK(NAME(?), 0) with its token on
// a connection of its own, then Acquire on that connection with the
// condition "expires_at <= NOW_MS OR IS_FREE_LOCK(NAME(token))" in place of
// "expires_at <= NOW_MS", and the last assignment
// "expires_at = IF(token = VALUES(token), VALUES(expires_at), expires_at)"
// (the token, which the condition also reads, has been assigned by then);
// the read after it, Renew, its read and Inspect add
// "AND IS_USED_LOCK(NAME(token)) IS NOT NULL" to their held condition;
// Release is the same statement, followed on the holder's connection by
// SELECT RELEASE_LOCK(NAME(?)). The exact text is in
// internal/leaserow/mysql.go.
//
// # Round trips
//
// Statements are prepared once per connection and then cost one round trip
// each (go-sql-driver would otherwise prepare, execute and close every
// statement with arguments):
//
//	                     lease-row    getlock
//	TryLock, free key    1            4 (beacon and upsert, each prepared
//	                                  and executed on the beacon's connection)
//	TryLock, held key    2            8 (the same, the read, the beacon given back)
//	Lock                 as TryLock per attempt, with back-off between attempts
//	Unlock               1            3 (row, then RELEASE_LOCK prepared and executed)
//	renewal              1 per 500 locks a Client renews at once (2 when a lease
//	                     was lost), both modes
//	Status               1            1
//	Purge                1            1
//	Open                 3: SELECT VERSION(), CREATE TABLE IF NOT EXISTS, the
//	                     column check (plus connecting and preparing)
package mysqllock
