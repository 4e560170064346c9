package leaserow

import "time"

// The SQLite clock, read inside each statement. SQLite evaluates 'now' once
// per statement, so every use in one statement sees the same instant.
// unixepoch('subsec') needs SQLite 3.42 or later; RETURNING needs 3.35.
const (
	// SQLiteNowMs is the store clock in milliseconds since the Unix epoch.
	SQLiteNowMs = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
	// SQLiteNowUs is the store clock in microseconds since the Unix epoch.
	// SQLite's clock ticks in milliseconds, so it is a multiple of 1000.
	SQLiteNowUs = "(" + SQLiteNowMs + " * 1000)"

	sqliteExpired = "expires_at <= " + SQLiteNowMs
)

// The SQLite statements, in the order of the Dialect's fields.
const (
	SQLiteCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  lock_key   TEXT    NOT NULL PRIMARY KEY,
  token      TEXT    NOT NULL,
  fence      INTEGER NOT NULL,
  owner      TEXT    NOT NULL,
  ttl_ms     INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID`

	SQLiteProbe = `SELECT lock_key, token, fence, owner, ttl_ms, expires_at FROM {table} LIMIT 0`

	SQLiteAcquire = `INSERT INTO {table} (lock_key, token, fence, owner, ttl_ms, expires_at)
VALUES (?1, ?2, max(?5, ` + SQLiteNowUs + `), ?3, ?4, ` + SQLiteNowMs + ` + ?4)
ON CONFLICT (lock_key) DO UPDATE SET
  token      = CASE WHEN ` + sqliteExpired + ` THEN excluded.token      ELSE token      END,
  fence      = CASE WHEN ` + sqliteExpired + ` THEN max(fence + 1, excluded.fence) ELSE fence END,
  owner      = CASE WHEN ` + sqliteExpired + ` THEN excluded.owner      ELSE owner      END,
  ttl_ms     = CASE WHEN ` + sqliteExpired + ` THEN excluded.ttl_ms     ELSE ttl_ms     END,
  expires_at = CASE WHEN ` + sqliteExpired + ` THEN excluded.expires_at ELSE expires_at END
RETURNING token, fence, owner, ttl_ms, expires_at - ` + SQLiteNowMs

	SQLiteRelease = `UPDATE {table} SET token = '', owner = '', expires_at = -` + SQLiteNowMs + `
WHERE lock_key = ?1 AND token = ?2 AND expires_at > ` + SQLiteNowMs

	SQLiteRenew = `UPDATE {table} SET expires_at = ` + SQLiteNowMs + ` + ttl_ms
WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND expires_at > ` + SQLiteNowMs + `
RETURNING lock_key, token`

	SQLiteInspect = `SELECT token, fence, owner, expires_at - ` + SQLiteNowMs + ` FROM {table}
WHERE lock_key = ?1 AND expires_at > ` + SQLiteNowMs

	SQLitePurge = `DELETE FROM {table}
WHERE max(abs(expires_at), fence / 1000) <= ` + SQLiteNowMs + ` - ?1`
)

// SQLite result codes (the low byte of an extended code) that prove a
// statement never ran.
const (
	sqliteCantOpen = 14 // SQLITE_CANTOPEN: the database file cannot be opened
	sqliteNotADB   = 26 // SQLITE_NOTADB: the file is not a database
)

// SQLite is the dialect of SQLite 3.42 and later.
var SQLite = &Dialect{
	Name:        "sqlite",
	MinTTL:      100 * time.Millisecond,
	CreateTable: SQLiteCreateTable,
	Probe:       SQLiteProbe,
	Acquire:     SQLiteAcquire,
	// SQLite's clock ticks in milliseconds: too coarse to keep two
	// acquisitions apart if a row is deleted in between.
	ClockArg: true,
	Release:  SQLiteRelease,
	Renew:    SQLiteRenew,
	// SQLite allows 32766 parameters per statement since 3.32; 500 leases
	// (1000 parameters) keep each statement small.
	MaxBatch:    500,
	Inspect:     SQLiteInspect,
	Purge:       SQLitePurge,
	Prepare:     true,
	Placeholder: NumberedPlaceholder("?"),
	Unavailable: sqliteUnavailable,
}

func sqliteUnavailable(err error) bool {
	code, ok := ErrorCode(err)
	if !ok {
		return false
	}
	switch code & 0xff {
	case sqliteCantOpen, sqliteNotADB:
		return true
	}
	return false
}
