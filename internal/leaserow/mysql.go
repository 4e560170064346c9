package leaserow

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"time"
)

// The MySQL clock. UTC_TIMESTAMP(6) is the server's clock in UTC with
// microsecond precision, read once per statement (at its start); the
// difference from the epoch is plain date arithmetic, free of the session's
// time zone (UNIX_TIMESTAMP would convert through it, ambiguously in the
// hour a daylight-saving change repeats).
const (
	// MySQLNowUs is the server clock in microseconds since the Unix epoch.
	MySQLNowUs = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
	// MySQLNowMs is the server clock in milliseconds since the Unix epoch.
	MySQLNowMs = "(" + MySQLNowUs + " DIV 1000)"
)

// MySQLBeaconName returns the SQL expression of the GET_LOCK name of the
// beacon of a holder in session mode: "distlock_" and the first 40 hex digits
// of the SHA-256 of its token, 49 characters (GET_LOCK names are limited to
// 64, and compared case-insensitively: hex digits are lower case whatever
// the collation). BeaconName computes it in Go.
func MySQLBeaconName(tokenExpr string) string {
	return "CONCAT('distlock_', LEFT(SHA2(" + tokenExpr + ", 256), 40))"
}

// BeaconName returns the MySQL GET_LOCK name of the beacon of token.
func BeaconName(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "distlock_" + hex.EncodeToString(sum[:])[:40]
}

// MySQLCreateTable makes the table. Keys, tokens and owners are byte
// strings: compared byte for byte (no collation folds case, no PAD SPACE
// ignores trailing spaces), whatever the server's defaults.
const MySQLCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  lock_key   VARBINARY(1024) NOT NULL PRIMARY KEY,
  token      VARBINARY(255)  NOT NULL,
  fence      BIGINT          NOT NULL,
  owner      VARBINARY(1024) NOT NULL,
  ttl_ms     BIGINT          NOT NULL,
  expires_at BIGINT          NOT NULL
) ENGINE=InnoDB`

const mysqlProbe = `SELECT lock_key, token, fence, owner, ttl_ms, expires_at FROM {table} LIMIT 0`

// mysqlAcquire inserts the row, or takes over the row if it is free, in one
// INSERT ... ON DUPLICATE KEY UPDATE, and reports the outcome through
// LAST_INSERT_ID(expr), which the server returns in its OK packet (the
// table has no AUTO_INCREMENT column, so nothing else sets it): the new
// fence when the row was taken, 0 when it was left alone.
//
// The inserted row's fence is LAST_INSERT_ID(clock) and its expires_at
// refers to ttl_ms, set earlier in the same VALUES list (MySQL allows that),
// since every argument is bound once. MySQL evaluates the UPDATE's
// assignments left to right, each seeing the ones before: the columns that
// decide whether the row is free are assigned last. In lease-row mode that
// is expires_at alone. In session mode it is token too: expires_at then
// follows the token ("the token is now ours"), which also extends a retried
// request's own lease.
func mysqlAcquire(session bool) string {
	free := "expires_at <= " + MySQLNowMs
	tail := `  token      = IF(` + free + `, VALUES(token), token),
  expires_at = IF(` + free + `, VALUES(expires_at), expires_at)`
	if session {
		free = "(" + free + " OR IS_FREE_LOCK(" + MySQLBeaconName("token") + "))"
		tail = `  token      = IF(` + free + `, VALUES(token), token),
  expires_at = IF(token = VALUES(token), VALUES(expires_at), expires_at)`
	}
	return `INSERT INTO {table} (lock_key, token, fence, owner, ttl_ms, expires_at)
VALUES (?, ?, LAST_INSERT_ID(` + MySQLNowUs + `), ?, ?, ` + MySQLNowMs + ` + ttl_ms)
ON DUPLICATE KEY UPDATE
  owner      = IF(` + free + `, VALUES(owner), owner),
  ttl_ms     = IF(` + free + `, VALUES(ttl_ms), ttl_ms),
  fence      = IF(` + free + `, LAST_INSERT_ID(GREATEST(fence + 1, VALUES(fence))), fence + LAST_INSERT_ID(0)),
` + tail
}

// mysqlHeld is the condition "the row is held" on the row's columns.
func mysqlHeld(session bool) string {
	held := "expires_at > " + MySQLNowMs
	if session {
		held += " AND IS_USED_LOCK(" + MySQLBeaconName("token") + ") IS NOT NULL"
	}
	return held
}

// mysqlAcquireRead reads the row after an Acquire that did not take it: the
// holder, or ourselves for a retried request. The token shows only while it
// holds the row.
func mysqlAcquireRead(session bool) string {
	return `SELECT IF(` + mysqlHeld(session) + `, token, ''), fence, owner, ttl_ms, expires_at - ` + MySQLNowMs + `
FROM {table} WHERE lock_key = ?`
}

const mysqlRelease = `UPDATE {table} SET token = '', owner = '', expires_at = -` + MySQLNowMs + `
WHERE lock_key = ? AND token = ? AND expires_at > ` + MySQLNowMs

// mysqlPurge deletes the rows free for at least the bound number of
// milliseconds. It reads every row (expires_at has no index), and under
// REPEATABLE READ InnoDB keeps the rows it reads locked until it ends.
const mysqlPurge = `DELETE FROM {table}
WHERE GREATEST(ABS(expires_at), fence DIV 1000) <= ` + MySQLNowMs + ` - ?`

func mysqlRenew(session bool) string {
	return `UPDATE {table} SET expires_at = ` + MySQLNowMs + ` + ttl_ms
WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND ` + mysqlHeld(session)
}

func mysqlRenewRead(session bool) string {
	return `SELECT lock_key, token FROM {table}
WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND ` + mysqlHeld(session)
}

func mysqlInspect(session bool) string {
	return `SELECT token, fence, owner, expires_at - ` + MySQLNowMs + ` FROM {table}
WHERE lock_key = ? AND ` + mysqlHeld(session)
}

// The statements of both modes, as they are sent (with {table} and the
// batch markers still to be filled in).
var (
	MySQLAcquire            = mysqlAcquire(false)
	MySQLAcquireRead        = mysqlAcquireRead(false)
	MySQLRelease            = mysqlRelease
	MySQLRenew              = mysqlRenew(false)
	MySQLRenewRead          = mysqlRenewRead(false)
	MySQLInspect            = mysqlInspect(false)
	MySQLPurge              = mysqlPurge
	MySQLSessionAcquire     = mysqlAcquire(true)
	MySQLSessionAcquireRead = mysqlAcquireRead(true)
	MySQLSessionRenew       = mysqlRenew(true)
	MySQLSessionRenewRead   = mysqlRenewRead(true)
	MySQLSessionInspect     = mysqlInspect(true)
	// MySQLBeaconLock and MySQLBeaconUnlock bind the holder's token; each
	// returns 1 on success.
	MySQLBeaconLock   = "SELECT GET_LOCK(" + MySQLBeaconName("?") + ", 0)"
	MySQLBeaconUnlock = "SELECT RELEASE_LOCK(" + MySQLBeaconName("?") + ")"
)

// MySQL is the dialect of MySQL 5.7 and later and MariaDB 10.3 and later.
// Its Unavailable classifier is left to the driver.
var MySQL = mysqlDialect(false)

// MySQLSession is the dialect of session mode (GET_LOCK): the lease-row
// statements where a row also counts as free when its holder's beacon, a
// GET_LOCK lock on the holder's own connection, is gone.
var MySQLSession = mysqlDialect(true)

func mysqlDialect(session bool) *Dialect {
	return &Dialect{
		Name:        "mysql",
		MinTTL:      100 * time.Millisecond,
		CreateTable: MySQLCreateTable,
		Probe:       mysqlProbe,
		Acquire:     mysqlAcquire(session),
		AcquireRead: mysqlAcquireRead(session),
		Granted:     mysqlGranted,
		Release:     mysqlRelease,
		Renew:       mysqlRenew(session),
		RenewRead:   mysqlRenewRead(session),
		// MySQL allows 65535 placeholders per prepared statement.
		MaxBatch: 500,
		Inspect:  mysqlInspect(session),
		Purge:    mysqlPurge,
		// A statement with arguments that is not prepared costs three
		// commands (prepare, execute, close) with go-sql-driver/mysql.
		Prepare:     true,
		Placeholder: QuestionPlaceholder,
	}
}

// mysqlGranted reads Acquire's outcome from the OK packet: a last insert id
// above 0 is the fence of a row we took.
func mysqlGranted(res sql.Result) (int64, bool, error) {
	id, err := res.LastInsertId()
	if err != nil {
		return 0, false, err
	}
	return id, id > 0, nil
}
