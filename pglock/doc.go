// Package pglock keeps distlock locks in a PostgreSQL table, through pgx v5.
//
//	client, err := pglock.Open(ctx, "postgres://app@db.internal/app", nil)
//
// or, with the package imported, distlock.Open(ctx, "postgres://app@db.internal/app").
// New takes the *pgxpool.Pool the caller already has, NewDB a *sql.DB
// opened with pgx's database/sql driver.
//
// # Guarantees
//
//   - Every call is one autocommit statement (two where noted below), judged
//     by the server's clock, clock_timestamp(): no transaction is held open
//     between calls and no row stays locked (no SELECT ... FOR UPDATE), so a
//     client that stalls or dies holds nothing but its lease, which expires.
//   - A lock is held while its row's expires_at is later than the server's
//     clock. An acquire takes a key whose row is missing or expired, nothing
//     else; release and renewal match the holder's token.
//   - Fences strictly increase per key: a new row starts at the server's
//     clock in microseconds, a takeover gets max(fence + 1, clock), and a
//     release keeps the row and its fence. Rows are durable, so a restart
//     keeps them; a deleted row or a commit lost in a crash (with
//     synchronous_commit=off, or a failover to a lagging replica) restarts
//     from the clock, above every fence handed out before, as long as the
//     server's clock does not step back.
//   - Client.Purge (distlock gc) deletes the rows of keys free for at least
//     a given age by the server's clock; a purged key starts again from the
//     clock, above its old fence, as long as the clock has not stepped back
//     by that age.
//   - Keys, tokens and owners are bound parameters, never spliced into SQL;
//     the table name must be a plain identifier.
//
// Not guaranteed: a lock outlives a partition between the holder and the
// server by up to its TTL (the holder learns of the loss by its local
// deadline, the send time of its last successful renewal plus the TTL), and
// it depends on the server's clock running at a normal rate.
//
// # URLs
//
//	postgres://user:password@host:5432/database?param=value&...
//	postgresql://...                        (the same)
//
// The URL is pgx's connection string (pgxpool.ParseConfig: sslmode,
// connect_timeout, application_name, pool_max_conns, ...; unknown
// parameters become run-time settings, which the server rejects at connect
// if it does not know them), plus three parameters of this package, taken
// out before pgx sees the URL:
//
//	table=NAME            the lock table (default distlock_locks, or
//	                      distlock_session_locks with mode=advisory); a
//	                      plain identifier, optionally schema.table
//	create_table=BOOL     create the table if missing (default true)
//	mode=lease|advisory   the lock mode (default lease; see Modes)
//
// A repeated or malformed parameter of this package is an error wrapping
// distlock.ErrInvalid; errors never show the password.
//
// # Modes
//
// Lease-row mode (the default) holds nothing between statements: a lock
// lasts while its holder renews its lease, and a holder that dies keeps the
// key for at most one TTL.
//
// Advisory mode (mode=advisory, Options.Mode = Advisory) adds a session
// lock: each held lock keeps a connection of its own, outside the pool, on
// which it holds a session-level advisory lock named after its token (the
// beacon: pg_try_advisory_lock of the first 64 bits of the SHA-256 of the
// token, as a signed bigint). PostgreSQL drops the beacon when that
// connection ends, and the statements of this mode count a row whose
// holder's beacon is gone as free: when a holder's process or connection
// dies, the next acquire takes the key at once, without waiting out the
// TTL. Mutual exclusion, the fence and the TTL stay in the row (so a
// holder that stops renewing still loses its lock, any Client can release
// by token, and the fence is the lease-row counter, bumped by the acquire).
// The beacon names the holder rather than the key so that the row stays
// the one arbiter: the key is taken in the row, by the upsert, which runs
// on the beacon's own connection, so only a live holder ever writes it.
//
// Trade-offs of advisory mode:
//
//   - One connection per held lock, for as long as it is held (counted
//     against max_connections; with New the connections are opened with the
//     pool's configuration but outside the pool; with NewDB they come from
//     the caller's *sql.DB, so leave room in its SetMaxOpenConns).
//   - Poolers in transaction mode (PgBouncer pool_mode=transaction) break
//     it: a session lock lives on a server connection the pooler hands to
//     others between statements. Connect directly or in session mode.
//   - A lock also ends when its connection dies while its holder lives (a
//     network blip, an idle-connection killer, pg_terminate_backend): the
//     holder learns at its next renewal, within a third of the TTL, and
//     another holder may have the key meanwhile; as always, check fences.
//   - An acquire whose answer is lost is never read back as granted: its
//     connection is given up, and the session, beacon and all, may live on
//     at the server until the server notices, then end behind the holder's
//     back. The attempt fails instead; the row it may have written
//     is free once that session ends, or once it is released by token.
//   - Releases by a holder's death wake no waiter: waiters find out at
//     their next try (their back-off, at most WithBackoff's maximum).
//   - Lease-row and advisory clients must not share a table (hence the two
//     default tables): an advisory acquire takes over any row whose token
//     has no beacon, which a lease-row holder never has.
//
// # Waiting
//
// A release sends NOTIFY on the key's channel, "distlock_" and the first 40
// hex digits of the SHA-256 of the key (49 bytes, within PostgreSQL's limit
// of 63 whatever the key), in the same statement, but only when an acquire
// of the key failed in the last minute: a NOTIFY costs the server a global
// lock at commit that serializes notifying transactions (a third of an
// uncontended Lock+Unlock when measured), and nobody listens for an
// uncontended key. A Lock that has to
// wait LISTENs on the key's channel through the driver's one listening
// connection (taken from the pool when first needed, kept while the driver
// lives); the LISTEN is sent in the background, and the waiter tries once
// more when it is in place, so no release is missed. A channel stays
// LISTENed on for 30 seconds after its last waiter left, so a key locked
// again and again costs one LISTEN. A release wakes the longest waiting Lock
// of each listening Client; the fallback is the holder's expiry and
// WithBackoff's maximum. If the listening connection fails, every waiter
// tries again and the driver reconnects with back-off.
//
// # Wire protocol
//
// Statements below show the table's name as {table}, NOW_MS for the
// server's clock in milliseconds since the Unix epoch and NOW_US in
// microseconds:
//
//	NOW_MS = floor(date_part('epoch', clock_timestamp()) * 1000)::bigint
//	NOW_US = floor(date_part('epoch', clock_timestamp()) * 1000000)::bigint
//
// The table, created on first use unless create_table=false (or run
// distlock migrate, or this statement yourself):
//
//	CREATE TABLE IF NOT EXISTS {table} (
//	  lock_key     text   NOT NULL PRIMARY KEY,
//	  token        text   NOT NULL,
//	  fence        bigint NOT NULL,
//	  owner        text   NOT NULL,
//	  ttl_ms       bigint NOT NULL,
//	  expires_at   bigint NOT NULL,
//	  wanted_until bigint NOT NULL DEFAULT 0
//	)
//
// A released row has an empty token and minus the time of its release in
// expires_at (free by every statement below, whatever the clock reads
// next), and keeps its fence. Opening
// checks the columns with SELECT lock_key, token, fence, owner, ttl_ms,
// expires_at, wanted_until FROM {table} LIMIT 0.
//
// Acquire binds $1 key, $2 token, $3 owner, $4 TTL in milliseconds. It
// inserts the row or takes it over if it is free, and returns the row when
// it wrote it; the lock is ours.
//
//	INSERT INTO {table} AS t (lock_key, token, fence, owner, ttl_ms, expires_at)
//	VALUES ($1, $2, NOW_US, $3, $4, NOW_MS + $4)
//	ON CONFLICT (lock_key) DO UPDATE SET
//	  token      = excluded.token,
//	  fence      = greatest(t.fence + 1, excluded.fence),
//	  owner      = excluded.owner,
//	  ttl_ms     = excluded.ttl_ms,
//	  expires_at = excluded.expires_at
//	WHERE t.expires_at <= excluded.expires_at - excluded.ttl_ms
//	RETURNING token, fence, owner, ttl_ms, ttl_ms
//
// When it returns no row (the key is held, or we hold it: a retried
// request), a second statement marks the key as wanted (so releases
// NOTIFY) and reads the holder; the lock is ours if the token is ours, else
// owner, fence and the remaining milliseconds describe the holder:
//
//	WITH wanted AS (
//	  UPDATE {table} SET wanted_until = NOW_MS + 60000
//	  WHERE lock_key = $1 AND wanted_until < NOW_MS + 30000
//	)
//	SELECT CASE WHEN expires_at > NOW_MS THEN token ELSE '' END, fence, owner, ttl_ms, expires_at - NOW_MS
//	FROM {table} WHERE lock_key = $1
//
// Release binds $1 key, $2 token; no row updated means the lock was not
// held. A NOTIFY goes out only if the key was wanted lately.
//
//	UPDATE {table} SET token = '', owner = '', expires_at = -NOW_MS
//	WHERE lock_key = $1 AND token = $2 AND expires_at > NOW_MS
//	RETURNING CASE WHEN wanted_until > NOW_MS THEN pg_notify('distlock_' || left(encode(sha256(convert_to(lock_key, 'UTF8')), 'hex'), 40), '') END IS NULL
//
// Renew extends a batch of n leases (up to 500 per statement): {keys} is
// $1 ... $n, {tokens} is $(n+1) ... $(2n); leases missing from the result
// are lost.
//
//	UPDATE {table} SET expires_at = NOW_MS + ttl_ms
//	WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND expires_at > NOW_MS
//	RETURNING lock_key, token
//
// Inspect (status, and the read-back of an acquire whose reply was lost)
// binds $1 key and returns no row when the key is free:
//
//	SELECT token, fence, owner, expires_at - NOW_MS FROM {table}
//	WHERE lock_key = $1 AND expires_at > NOW_MS
//
// Purge (Client.Purge, distlock gc) binds $1 the age in milliseconds and
// deletes the rows free for at least that long: released (abs(expires_at))
// or expired (expires_at) that long ago, with a fence (its clock in
// microseconds) at least that old too, so that no key's next fence can
// repeat or go below its old one. It reads the clock once and the whole
// table, and locks only the rows it deletes; the same statement in both
// modes (a row past its expiry is free in both).
//
//	DELETE FROM {table}
//	WHERE greatest(abs(expires_at), fence / 1000) <= (SELECT NOW_MS - $1)
//
// In advisory mode, with BEACON(x) = ('x' || left(encode(sha256(convert_to(x,
// 'UTF8')), 'hex'), 16))::bit(64)::bigint and ALIVE(x) the condition
//
//	EXISTS (SELECT FROM pg_locks
//	  WHERE locktype = 'advisory' AND granted AND objsubid = 1
//	    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
//	    AND classid::bigint = (BEACON(x) >> 32) & 4294967295
//	    AND objid::bigint = BEACON(x) & 4294967295)
//
// the holder first runs SELECT pg_try_advisory_lock(BEACON($1)) with $1 its
// token on a connection of its own, then Acquire on that connection with
// "OR NOT ALIVE(t.token)" added to the upsert's WHERE; the read after it,
// Renew and Inspect add "AND ALIVE(token)" to their held condition; Release
// is the same statement, followed on the holder's connection by SELECT
// pg_advisory_unlock(BEACON($1)). The exact text is in
// internal/leaserow/postgres.go.
//
// # Round trips
//
//	                     lease-row    advisory
//	TryLock, free key    1            2 (beacon, upsert; + connect if no idle beacon connection)
//	TryLock, held key    2            4 (beacon, upsert, read, beacon given back)
//	Lock                 as TryLock per attempt; waiting itself costs no round
//	                     trip on the caller's path (LISTEN runs in the background,
//	                     once per key per 30s)
//	Unlock               1            2 (row, beacon)
//	renewal              1 per 500 locks a Client renews at once, both modes
//	Status               1            1
//	Purge                1            1
//	Open                 3: the version check, CREATE TABLE IF NOT EXISTS, the
//	                     column check (plus connecting)
//
// pgx prepares each statement once per connection (its statement cache),
// which costs one more round trip the first time a connection runs it; a
// pooled connection idle for over a second is pinged by pgx's database/sql
// layer before reuse (renewals and the LISTEN connection only: see below).
//
// With Open and New, acquire, release and Status run straight on the pgx
// pool; renewals, set-up and the LISTEN connection go through a *sql.DB over
// the same pool (stdlib.OpenDBFromPool), which keeps one pool connection
// between statements. database/sql on the hot path cost a tenth of an
// uncontended Lock+Unlock. With NewDB everything runs on the caller's
// *sql.DB.
package pglock
