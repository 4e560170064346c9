package once

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/distlock/distlock/internal/leaserow"
)

// Database names the SQL database behind a *sql.DB, which decides the SQL
// the Guard speaks.
type Database string

// The databases a Guard supports.
const (
	// SQLite 3.42 or later (modernc.org/sqlite, or any database/sql driver).
	SQLite Database = "sqlite"
	// Postgres is PostgreSQL 9.5 or later (pgx's stdlib driver, or any
	// other; tested on 15).
	Postgres Database = "postgres"
	// MySQL is MySQL 5.7 or later, or MariaDB 10.3 or later
	// (go-sql-driver/mysql; tested on MariaDB 10.11).
	MySQL Database = "mysql"
)

// DefaultTable is the once table's name when WithTable is not given.
const DefaultTable = "distlock_once"

// The states a row can be in. A claimed row whose lease has expired (or was
// abandoned) is free to be claimed again.
const (
	stateClaimed = "claimed"
	stateDone    = "done"
)

// dialect is the SQL of one database. Statements use {table} for the table
// name; arguments are bound in the order given with each field.
//
// Every statement that reads a row returns, in this order: state, token,
// fence, owner, remaining_ms (expires_at minus the database clock), result,
// updated_at.
type dialect struct {
	db Database

	createTable string
	probe       string
	// claim: key, token, owner, ttl_ms. With claimRead empty it returns the
	// row as it is afterwards; otherwise it runs for its effect, reports
	// the new fence as its last insert id if it took the row (0 if not),
	// and only then claimRead (key) reads the row.
	claim     string
	claimRead string
	// claimArgs binds the claim's arguments in the statement's order.
	claimArgs func(key, token, owner string, ttlMs int64) []any
	// read: key.
	read string
	// extend: key, token.
	extend string
	// complete: result, key, token.
	complete string
	// abandon: key, token.
	abandon string
	// forget: key.
	forget string
	// prepare: prepare the fixed statements once per Guard.
	prepare bool
	// permanent reports whether err is an answer from the database that
	// proves the statement had no effect and retrying cannot help (no such
	// table, a syntax or data error, access denied).
	permanent func(error) bool
}

func dialectOf(db Database) (*dialect, error) {
	switch strings.ToLower(string(db)) {
	case "sqlite", "sqlite3":
		return sqliteDialect, nil
	case "postgres", "postgresql", "pgx":
		return postgresDialect, nil
	case "mysql", "mariadb":
		return mysqlDialect, nil
	}
	return nil, fmt.Errorf("%w: unknown database %q (want once.SQLite, once.Postgres or once.MySQL)", errInvalid, db)
}

// The SQL shared by all dialects apart from the clock and placeholders.
const (
	columns = "once_key, state, token, fence, owner, ttl_ms, expires_at, result, created_at, updated_at"
)

// ---- SQLite ----

const (
	sqliteNowMs = leaserow.SQLiteNowMs
	sqliteNowUs = leaserow.SQLiteNowUs
	sqliteFree  = "state = 'claimed' AND expires_at <= " + sqliteNowMs
	sqliteRow   = "state, token, fence, owner, expires_at - " + sqliteNowMs + ", result, updated_at"
)

// The SQLite statements.
const (
	SQLiteCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  once_key   TEXT    NOT NULL PRIMARY KEY,
  state      TEXT    NOT NULL,
  token      TEXT    NOT NULL,
  fence      INTEGER NOT NULL,
  owner      TEXT    NOT NULL,
  ttl_ms     INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  result     BLOB,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID`

	SQLiteClaim = `INSERT INTO {table} (` + columns + `)
VALUES (?1, 'claimed', ?2, max(?5, ` + sqliteNowUs + `), ?3, ?4, ` + sqliteNowMs + ` + ?4, NULL, ` + sqliteNowMs + `, ` + sqliteNowMs + `)
ON CONFLICT (once_key) DO UPDATE SET
  token      = CASE WHEN ` + sqliteFree + ` THEN excluded.token      ELSE token      END,
  fence      = CASE WHEN ` + sqliteFree + ` THEN max(fence + 1, excluded.fence) ELSE fence END,
  owner      = CASE WHEN ` + sqliteFree + ` THEN excluded.owner      ELSE owner      END,
  ttl_ms     = CASE WHEN ` + sqliteFree + ` THEN excluded.ttl_ms     ELSE ttl_ms     END,
  updated_at = CASE WHEN ` + sqliteFree + ` THEN excluded.updated_at ELSE updated_at END,
  expires_at = CASE WHEN ` + sqliteFree + ` THEN excluded.expires_at ELSE expires_at END
RETURNING ` + sqliteRow

	SQLiteRead = `SELECT ` + sqliteRow + ` FROM {table} WHERE once_key = ?1`

	SQLiteExtend = `UPDATE {table} SET expires_at = ` + sqliteNowMs + ` + ttl_ms
WHERE once_key = ?1 AND token = ?2 AND state = 'claimed'`

	SQLiteComplete = `UPDATE {table} SET state = 'done', result = ?1, expires_at = 0, updated_at = ` + sqliteNowMs + `
WHERE once_key = ?2 AND token = ?3 AND state = 'claimed'`

	SQLiteAbandon = `UPDATE {table} SET token = '', owner = '', expires_at = 0, updated_at = ` + sqliteNowMs + `
WHERE once_key = ?1 AND token = ?2 AND state = 'claimed'`

	SQLiteForget = `DELETE FROM {table} WHERE once_key = ?1 AND state = 'done'`
)

var sqliteDialect = &dialect{
	db:          SQLite,
	createTable: SQLiteCreateTable,
	probe:       "SELECT " + columns + " FROM {table} LIMIT 0",
	claim:       SQLiteClaim,
	// The fifth argument is the caller's clock in microseconds, the floor
	// of a new fence: SQLite's own clock ticks in milliseconds, too coarse
	// to keep two claims apart if a row is deleted in between.
	claimArgs: func(key, token, owner string, ttlMs int64) []any {
		return []any{key, token, owner, ttlMs, time.Now().UnixMicro()}
	},
	read:      SQLiteRead,
	extend:    SQLiteExtend,
	complete:  SQLiteComplete,
	abandon:   SQLiteAbandon,
	forget:    SQLiteForget,
	prepare:   true,
	permanent: sqlitePermanent,
}

// SQLite primary result codes that no retry can cure.
var sqlitePermanentCodes = map[int]bool{
	1:  true, // SQLITE_ERROR: no such table, syntax error
	8:  true, // SQLITE_READONLY
	11: true, // SQLITE_CORRUPT
	14: true, // SQLITE_CANTOPEN
	23: true, // SQLITE_AUTH
	26: true, // SQLITE_NOTADB
}

func sqlitePermanent(err error) bool {
	code, ok := leaserow.ErrorCode(err)
	return ok && sqlitePermanentCodes[code&0xff]
}

// ---- PostgreSQL ----

const (
	pgNowMs = "floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
	pgNowUs = "floor(extract(epoch FROM statement_timestamp()) * 1000000)::bigint"
	pgFree  = "o.state = 'claimed' AND o.expires_at <= " + pgNowMs
	pgRow   = "state, token, fence, owner, expires_at - " + pgNowMs + ", result, updated_at"
)

// The PostgreSQL statements.
const (
	PostgresCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  once_key   TEXT   NOT NULL PRIMARY KEY,
  state      TEXT   NOT NULL,
  token      TEXT   NOT NULL,
  fence      BIGINT NOT NULL,
  owner      TEXT   NOT NULL,
  ttl_ms     BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  result     BYTEA,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
)`

	PostgresClaim = `INSERT INTO {table} AS o (` + columns + `)
VALUES ($1, 'claimed', $2, ` + pgNowUs + `, $3, $4, ` + pgNowMs + ` + $4, NULL, ` + pgNowMs + `, ` + pgNowMs + `)
ON CONFLICT (once_key) DO UPDATE SET
  token      = CASE WHEN ` + pgFree + ` THEN excluded.token      ELSE o.token      END,
  fence      = CASE WHEN ` + pgFree + ` THEN greatest(o.fence + 1, excluded.fence) ELSE o.fence END,
  owner      = CASE WHEN ` + pgFree + ` THEN excluded.owner      ELSE o.owner      END,
  ttl_ms     = CASE WHEN ` + pgFree + ` THEN excluded.ttl_ms     ELSE o.ttl_ms     END,
  updated_at = CASE WHEN ` + pgFree + ` THEN excluded.updated_at ELSE o.updated_at END,
  expires_at = CASE WHEN ` + pgFree + ` THEN excluded.expires_at ELSE o.expires_at END
RETURNING ` + pgRow

	PostgresRead = `SELECT ` + pgRow + ` FROM {table} WHERE once_key = $1`

	PostgresExtend = `UPDATE {table} SET expires_at = ` + pgNowMs + ` + ttl_ms
WHERE once_key = $1 AND token = $2 AND state = 'claimed'`

	PostgresComplete = `UPDATE {table} SET state = 'done', result = $1, expires_at = 0, updated_at = ` + pgNowMs + `
WHERE once_key = $2 AND token = $3 AND state = 'claimed'`

	PostgresAbandon = `UPDATE {table} SET token = '', owner = '', expires_at = 0, updated_at = ` + pgNowMs + `
WHERE once_key = $1 AND token = $2 AND state = 'claimed'`

	PostgresForget = `DELETE FROM {table} WHERE once_key = $1 AND state = 'done'`
)

var postgresDialect = &dialect{
	db:          Postgres,
	createTable: PostgresCreateTable,
	probe:       "SELECT " + columns + " FROM {table} LIMIT 0",
	claim:       PostgresClaim,
	claimArgs: func(key, token, owner string, ttlMs int64) []any {
		return []any{key, token, owner, ttlMs}
	},
	read:     PostgresRead,
	extend:   PostgresExtend,
	complete: PostgresComplete,
	abandon:  PostgresAbandon,
	forget:   PostgresForget,
	// pgx caches prepared statements per connection by itself; preparing
	// through database/sql would break behind transaction-mode poolers.
	prepare:   false,
	permanent: postgresPermanent,
}

// SQLSTATE classes that no retry can cure.
var postgresPermanentClasses = map[string]bool{
	"0A": true, // feature not supported
	"22": true, // data exception
	"23": true, // integrity constraint violation
	"28": true, // invalid authorization
	"3D": true, // invalid catalog name
	"3F": true, // invalid schema name
	"42": true, // syntax error or access rule violation (undefined table, ...)
}

func postgresPermanent(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && postgresPermanentClasses[pe.Code[:2]]
}

// ---- MySQL / MariaDB ----

// The MySQL clock: UTC_TIMESTAMP is independent of the session's time zone
// (so there is no daylight-saving ambiguity) and, like NOW(), fixed for the
// whole statement.
const (
	myNowUs = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
	myNowMs = "(" + myNowUs + " DIV 1000)"
	myFree  = "state = 'claimed' AND expires_at <= " + myNowMs
)

// The MySQL statements. MySQL has no INSERT ... RETURNING; the claim says
// whether it took the row through LAST_INSERT_ID(expr), which the server
// returns in its OK packet (the table has no AUTO_INCREMENT column, so
// nothing else sets it): the new fence when the row was inserted or taken
// over, 0 when it was left alone (fence + LAST_INSERT_ID(0) resets the value
// the VALUES list set). Only then is the row read, by a second statement,
// to learn who holds it or what it stored. ON DUPLICATE KEY UPDATE assigns
// left to right, each assignment seeing the ones before it, so expires_at,
// on which the condition depends, is assigned last.
const (
	MySQLCreateTable = `CREATE TABLE IF NOT EXISTS {table} (
  once_key   VARBINARY(1024) NOT NULL PRIMARY KEY,
  state      VARCHAR(8) CHARACTER SET ascii NOT NULL,
  token      VARCHAR(64) CHARACTER SET ascii NOT NULL,
  fence      BIGINT NOT NULL,
  owner      VARBINARY(256) NOT NULL,
  ttl_ms     BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  result     MEDIUMBLOB NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB`

	MySQLClaim = `INSERT INTO {table} (` + columns + `)
VALUES (?, 'claimed', ?, LAST_INSERT_ID(` + myNowUs + `), ?, ?, ` + myNowMs + ` + ?, NULL, ` + myNowMs + `, ` + myNowMs + `)
ON DUPLICATE KEY UPDATE
  token      = IF(` + myFree + `, VALUES(token), token),
  fence      = IF(` + myFree + `, LAST_INSERT_ID(GREATEST(fence + 1, VALUES(fence))), fence + LAST_INSERT_ID(0)),
  owner      = IF(` + myFree + `, VALUES(owner), owner),
  ttl_ms     = IF(` + myFree + `, VALUES(ttl_ms), ttl_ms),
  updated_at = IF(` + myFree + `, VALUES(updated_at), updated_at),
  expires_at = IF(` + myFree + `, VALUES(expires_at), expires_at)`

	MySQLRead = `SELECT state, token, fence, owner, expires_at - ` + myNowMs + `, result, updated_at FROM {table} WHERE once_key = ?`

	MySQLExtend = `UPDATE {table} SET expires_at = ` + myNowMs + ` + ttl_ms
WHERE once_key = ? AND token = ? AND state = 'claimed'`

	MySQLComplete = `UPDATE {table} SET state = 'done', result = ?, expires_at = 0, updated_at = ` + myNowMs + `
WHERE once_key = ? AND token = ? AND state = 'claimed'`

	MySQLAbandon = `UPDATE {table} SET token = '', owner = '', expires_at = 0, updated_at = ` + myNowMs + `
WHERE once_key = ? AND token = ? AND state = 'claimed'`

	MySQLForget = `DELETE FROM {table} WHERE once_key = ? AND state = 'done'`
)

var mysqlDialect = &dialect{
	db:          MySQL,
	createTable: MySQLCreateTable,
	probe:       "SELECT " + columns + " FROM {table} LIMIT 0",
	claim:       MySQLClaim,
	claimRead:   MySQLRead,
	claimArgs: func(key, token, owner string, ttlMs int64) []any {
		return []any{key, token, owner, ttlMs, ttlMs}
	},
	read:     MySQLRead,
	extend:   MySQLExtend,
	complete: MySQLComplete,
	abandon:  MySQLAbandon,
	forget:   MySQLForget,
	// Without client-side interpolation, go-sql-driver/mysql prepares every
	// statement with arguments on the server (an extra round trip) unless it
	// was prepared beforehand.
	prepare:   true,
	permanent: mysqlPermanent,
}

// MySQL error numbers that no retry can cure.
var mysqlPermanentErrors = map[uint16]bool{
	1044: true, // access denied to database
	1045: true, // access denied for user
	1046: true, // no database selected
	1049: true, // unknown database
	1054: true, // unknown column
	1064: true, // syntax error
	1142: true, // command denied
	1146: true, // table does not exist
	1366: true, // incorrect string value
	1406: true, // data too long
}

func mysqlPermanent(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && mysqlPermanentErrors[me.Number]
}
