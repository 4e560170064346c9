package leaserow

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// The PostgreSQL clock. clock_timestamp() is the server's wall clock with
// microsecond precision, read when it is called (now() would be the start of
// the transaction, which in autocommit is the statement's start, stale after
// a wait for a row lock). date_part returns a double, exact to well under a
// microsecond at today's epoch, and cheaper than extract's numeric.
const (
	// PostgresNowUs is the server clock in microseconds since the Unix epoch.
	PostgresNowUs = "floor(date_part('epoch', clock_timestamp()) * 1000000)::bigint"
	// PostgresNowMs is the server clock in milliseconds since the Unix epoch.
	PostgresNowMs = "floor(date_part('epoch', clock_timestamp()) * 1000)::bigint"
)

// PostgresChannel is the SQL expression of the NOTIFY channel of a key (the
// column lock_key): "distlock_" and the first 40 hex digits of the SHA-256
// of the key's UTF-8 bytes, 49 bytes, within PostgreSQL's limit of 63 on
// identifiers whatever the key's length. NotifyChannel computes the same
// name in Go.
const PostgresChannel = "'distlock_' || left(encode(sha256(convert_to(lock_key, 'UTF8')), 'hex'), 40)"

// NotifyChannel returns the PostgreSQL NOTIFY channel of key, the name that
// PostgresChannel computes in SQL.
func NotifyChannel(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "distlock_" + hex.EncodeToString(sum[:])[:40]
}

// PostgresBeaconID is the SQL expression of the advisory-lock id of a
// holder's beacon in session mode (Advisory): the first 64 bits of the
// SHA-256 of its token, as a signed bigint. BeaconID computes it in Go.
func PostgresBeaconID(tokenExpr string) string {
	return "('x' || left(encode(sha256(convert_to(" + tokenExpr + ", 'UTF8')), 'hex'), 16))::bit(64)::bigint"
}

// postgresAlive is the SQL condition "the holder whose token is tokenExpr
// still holds its beacon": some session of this database holds the advisory
// lock (pg_locks shows a bigint key as classid, the high half, and objid,
// the low half, with objsubid 1).
func postgresAlive(tokenExpr string) string {
	id := PostgresBeaconID(tokenExpr)
	return `EXISTS (SELECT FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid::bigint = (` + id + ` >> 32) & 4294967295
      AND objid::bigint = ` + id + ` & 4294967295)`
}

// BeaconID returns the 64-bit advisory-lock id of the beacon of token,
// the value PostgresBeaconID computes in SQL.
func BeaconID(token string) int64 {
	sum := sha256.Sum256([]byte(token))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// The PostgreSQL statements, in the order of the Dialect's fields.
const (
	PostgresCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  lock_key     text   NOT NULL PRIMARY KEY,
  token        text   NOT NULL,
  fence        bigint NOT NULL,
  owner        text   NOT NULL,
  ttl_ms       bigint NOT NULL,
  expires_at   bigint NOT NULL,
  wanted_until bigint NOT NULL DEFAULT 0
)`

	PostgresProbe = `SELECT lock_key, token, fence, owner, ttl_ms, expires_at, wanted_until FROM {table} LIMIT 0`
)

// postgresAcquire inserts the row or takes it over if it is free (the
// upsert's WHERE: expired, or in session mode also a holder whose beacon is
// gone), and returns the row it wrote. When it writes nothing (the key is
// held, or we hold it already: a retried request) it returns no row, and
// postgresAcquireRead reads the holder with a second statement. A single
// statement that also read the holder (a CTE with a UNION) measured a
// quarter slower on the uncontended path, which is the one that matters.
// excluded.expires_at - excluded.ttl_ms is the clock as the inserted row
// read it.
func postgresAcquire(session bool) string {
	free := "t.expires_at <= excluded.expires_at - excluded.ttl_ms"
	if session {
		free += "\n   OR NOT " + postgresAlive("t.token")
	}
	return `INSERT INTO {table} AS t (lock_key, token, fence, owner, ttl_ms, expires_at)
VALUES ($1, $2, ` + PostgresNowUs + `, $3, $4, ` + PostgresNowMs + ` + $4)
ON CONFLICT (lock_key) DO UPDATE SET
  token      = excluded.token,
  fence      = greatest(t.fence + 1, excluded.fence),
  owner      = excluded.owner,
  ttl_ms     = excluded.ttl_ms,
  expires_at = excluded.expires_at
WHERE ` + free + `
RETURNING token, fence, owner, ttl_ms, ttl_ms`
}

// PostgresWantedMs is how long, in milliseconds, releases of a key keep
// sending NOTIFY after an acquire of it last failed. A waiter tries again
// at least every WithBackoff maximum (or when the holder's lease ends), and
// each failed try extends the window, so waiters are woken for as long as
// there are any; a release that nobody waits for sends nothing (a NOTIFY
// costs the server a global lock at commit that serializes notifying
// transactions: a third of an uncontended Lock+Unlock, measured).
const PostgresWantedMs = 60000

// postgresAcquireRead runs after an Acquire that did not take the row. It
// marks the key as wanted (a write at most once per half window) and reads
// the holder, or ourselves for a retried request, from the snapshot before
// that write (which changes wanted_until only). The token shows only while
// it holds the row, so that a free row never reads as ours.
func postgresAcquireRead(session bool) string {
	held := "expires_at > " + PostgresNowMs
	if session {
		held += " AND " + postgresAlive("token")
	}
	return `WITH wanted AS (
  UPDATE {table} SET wanted_until = ` + PostgresNowMs + ` + ` + strconv.Itoa(PostgresWantedMs) + `
  WHERE lock_key = $1 AND wanted_until < ` + PostgresNowMs + ` + ` + strconv.Itoa(PostgresWantedMs/2) + `
)
SELECT CASE WHEN ` + held + ` THEN token ELSE '' END, fence, owner, ttl_ms, expires_at - ` + PostgresNowMs + `
FROM {table} WHERE lock_key = $1`
}

// postgresRelease frees the row and, in the same statement, notifies the
// key's channel if someone wanted the key lately (see PostgresWantedMs). It
// updates one row when it freed the lock. The NOTIFY rides on the RETURNING
// list: a CTE that joined the update to a notifying SELECT cost the server
// a tenth more than this plain UPDATE.
const postgresRelease = `UPDATE {table} SET token = '', owner = '', expires_at = -` + PostgresNowMs + `
WHERE lock_key = $1 AND token = $2 AND expires_at > ` + PostgresNowMs + `
RETURNING CASE WHEN wanted_until > ` + PostgresNowMs + ` THEN pg_notify(` + PostgresChannel + `, '') END IS NULL`

func postgresRenew(session bool) string {
	cond := "expires_at > " + PostgresNowMs
	if session {
		cond += "\n  AND " + postgresAlive("token")
	}
	return `UPDATE {table} SET expires_at = ` + PostgresNowMs + ` + ttl_ms
WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND ` + cond + `
RETURNING lock_key, token`
}

func postgresInspect(session bool) string {
	cond := "expires_at > " + PostgresNowMs
	if session {
		cond += "\n  AND " + postgresAlive("token")
	}
	return `SELECT token, fence, owner, expires_at - ` + PostgresNowMs + ` FROM {table}
WHERE lock_key = $1 AND ` + cond
}

// postgresPurge deletes the rows free for at least the bound number of
// milliseconds. The clock is read once, in a subquery: clock_timestamp()
// in the WHERE would be read again for every row.
const postgresPurge = `DELETE FROM {table}
WHERE greatest(abs(expires_at), fence / 1000) <= (SELECT ` + PostgresNowMs + ` - $1)`

// The statements of both modes, as they are sent (with {table} and the
// batch markers still to be filled in).
var (
	PostgresAcquire        = postgresAcquire(false)
	PostgresAcquireRead    = postgresAcquireRead(false)
	PostgresRelease        = postgresRelease
	PostgresRenew          = postgresRenew(false)
	PostgresInspect        = postgresInspect(false)
	PostgresPurge          = postgresPurge
	PostgresSessionAcquire = postgresAcquire(true)
	PostgresSessionRead    = postgresAcquireRead(true)
	PostgresSessionRenew   = postgresRenew(true)
	PostgresSessionInspect = postgresInspect(true)
	// PostgresBeaconLock and PostgresBeaconUnlock bind the holder's token;
	// each returns one boolean.
	PostgresBeaconLock   = "SELECT pg_try_advisory_lock(" + PostgresBeaconID("$1") + ")"
	PostgresBeaconUnlock = "SELECT pg_advisory_unlock(" + PostgresBeaconID("$1") + ")"
)

// Postgres is the dialect of PostgreSQL 11 and later (sha256() came in 11).
// Its Unavailable classifier is left to the driver, which knows pgx's
// errors.
var Postgres = postgresDialect(false)

// PostgresSession is the dialect of session mode (Advisory): the lease-row
// statements where a row also counts as free when its holder's beacon, an
// advisory lock on the holder's own connection, is gone.
var PostgresSession = postgresDialect(true)

func postgresDialect(session bool) *Dialect {
	d := &Dialect{
		Name:        "postgres",
		MinTTL:      100 * time.Millisecond,
		CreateTable: PostgresCreateTable,
		Probe:       PostgresProbe,
		Acquire:     postgresAcquire(session),
		AcquireRead: postgresAcquireRead(session),
		ReadOnEmpty: true,
		Release:     postgresRelease,
		Renew:       postgresRenew(session),
		// PostgreSQL allows 65535 parameters per statement.
		MaxBatch: 500,
		Inspect:  postgresInspect(session),
		Purge:    postgresPurge,
		// pgx prepares and caches statements per connection by itself; a
		// database/sql prepared statement would pin them to a pool connection
		// and break behind a transaction-mode pooler.
		Prepare:     false,
		Placeholder: NumberedPlaceholder("$"),
	}
	return d
}
