// Package once runs the work behind a business key exactly once, across every
// process that shares one SQL table: the database once-guard of the seed
// article (points D1, D3, D4). PostgreSQL, MySQL/MariaDB and SQLite are
// supported; SQLite (modernc.org/sqlite, no cgo) needs no server.
//
//	g, err := once.Open(ctx, "postgres://app@db/app")   // or once.New(db, once.Postgres)
//	...
//	points, ran, err := g.Do(ctx, "checkin:"+userID+":"+today, func(ctx context.Context) ([]byte, error) {
//		return awardPoints(ctx, userID) // runs once per user and day
//	})
//
// The key must be the unambiguous business key (user and date, order
// number, invoice month), never an auto-increment id or a random string:
// every retry and every server must name the same work the same way (D3).
//
// # Claims
//
// Guard.Claim claims a key and answers one of three things:
//
//   - a *Claim: the key was new, or its last claimer abandoned it or died
//     (its lease ran out). The claim carries a token (128 random bits) and a
//     fence, a number made by the database, strictly greater than every
//     earlier claim's of the key; a heartbeat renews its lease every TTL/3.
//     Finish it with Complete (storing an optional result of at most
//     MaxResultLen bytes) or Abandon. If the heartbeat finds the claim taken
//     over, or cannot renew it before the lease ends, Done closes and
//     Context is cancelled: stop the work.
//   - ErrDone, as a *DoneError with the stored result: the work was done.
//   - ErrInProgress, as an *InProgressError saying who claims it and until
//     when: a live claim runs.
//
// Guard.Do wraps the three: it runs the work if it gets the claim, completes
// with its result, abandons if the work fails, and answers a done key with
// its stored result.
//
// # Guarantees
//
//   - Every operation is one autocommit statement (a MySQL claim that does
//     not get the key is two: the upsert, then a read of the row), judged
//     by the database's clock: no transaction
//     is held open and no row is locked between statements (D2), so a
//     claimer that stalls or dies holds nothing but its lease.
//   - At most one live claim per key. A claim is taken only from a missing
//     row or a claimed row whose lease has run out by the database's clock;
//     a done row is never taken.
//   - Complete, Abandon and renewal match the claim's token: a claim that
//     was taken over can no longer complete (its error wraps
//     distlock.ErrNotHeld and names the new claimer), so it never
//     overwrites the new claimer's outcome. A claim whose lease ran out but
//     was not taken over can still complete: nobody else ran the work.
//   - After a statement whose outcome is unknown (timeout, broken
//     connection, the server session killed, ctx cancelled while the
//     statement was in flight), the claimer reads the row back by its token
//     before answering (D4): Claim returns the claim if its token holds the
//     row, the row's answer (done, in progress) if not, and tries again if
//     the row is free (its first attempt did not land); Complete returns nil
//     if the row is done under its token, and sends the completion again if
//     the row is still claimed under its token. If Claim's ctx ends before
//     the outcome is known, it abandons by token whatever it may have
//     claimed before returning (in the background if the database does not
//     answer within a second). So a retry never runs the work twice, and
//     never drops it.
//   - Keys, tokens, owners and results are always bound parameters; the
//     table name is checked to be a plain identifier.
//
// What is not guaranteed: the work runs more than once if a claimer's lease
// runs out while its work runs or before its completion reaches the
// database, and another claimer takes the key over: the claimer was paused
// for longer than the TTL, or the database was unreachable for longer than
// that. The first claimer then learns it from Done and from Complete's
// error; a resource that records the highest fence it has seen can reject
// the stale claimer's writes. Choose the TTL above the longest pause you
// want to survive (the default is 30s; Do retries its completion for twice
// the TTL, at least 30s). Also not guaranteed: anything about the work's own
// side effects if it fails half-way: Do abandons, and the next claimer runs
// it from the start.
//
// # Schema
//
// One table (default distlock_once; WithTable), created on first use with
// CREATE TABLE IF NOT EXISTS unless WithCreateTable(false):
//
//	once_key    the key (at most distlock.MaxKeyLen = 1024 bytes of UTF-8)
//	state       'claimed' or 'done'
//	token       the current claim's token; '' after Abandon
//	fence       the current (or completing) claim's fence
//	owner       the current claimer's WithOwner metadata
//	ttl_ms      the claim's lease in milliseconds, reused by every renewal
//	expires_at  end of the lease, milliseconds since the Unix epoch by the
//	            database's clock; 0 when done or abandoned
//	result      what Complete stored (NULL if nothing)
//	created_at  first claim, milliseconds since the Unix epoch (database clock)
//	updated_at  last change of state (claim, takeover, abandon, completion)
//
// A key is free when its row is missing, or claimed with expires_at at or
// before the clock. Column types per database are in SQLiteCreateTable,
// PostgresCreateTable and MySQLCreateTable (on MySQL the key is
// VARBINARY(1024), so keys compare byte for byte: "a", "A" and "a " are three
// keys). Rows are only deleted by Forget, which deletes a done key so that it
// can run again.
//
// # Statements
//
// The exported constants SQLiteClaim, PostgresClaim, MySQLClaim (and the
// Read, Extend, Complete, Abandon and Forget statements beside them) are the
// exact SQL sent, with {table} standing for the table's name; a program in
// another language that sends the same statements interoperates. The claim is
// an upsert that inserts the row, or takes it over if it is free (bumping the
// fence to max(fence + 1, clock in microseconds)), and otherwise leaves it
// unchanged; it returns the row as it is afterwards, and the claim is ours
// when the row's token is ours. (MySQL, which has no RETURNING, reports the
// new fence through LAST_INSERT_ID(expr) when it took the row, 0 otherwise,
// and the row is then read by a second statement.) Complete and Abandon are UPDATEs matching key,
// token and state 'claimed'; renewal sets expires_at to the clock plus ttl_ms
// for the same match.
//
// Fences start at the clock in microseconds, so they keep growing even if a
// row is deleted (Forget, or an operator) and the key claimed again. The one
// assumption is that the database's clock does not step back.
//
// # Round trips
//
//	Claim           1 (MySQL: 2 when the key is done or in progress);
//	                +1 read-back after an unknown outcome; +1 renewal (2 when
//	                no row changed) when granted with under TTL/3 left
//	Complete        1; +1 read-back after an unknown outcome (and 1 per resend)
//	Abandon         1
//	Extend, renewal 1 per TTL/3 (2 when the database reports no changed row)
//	Status, Forget  1
//	Do              Claim + Complete (2); a done key: 1 (MySQL 2)
//
// The first operation of a Guard also creates and checks the table (and on
// MySQL and SQLite prepares the statements once per connection). On
// PostgreSQL, pgx caches its prepared statements per connection, so the
// counts hold once a connection has run each statement.
//
// # URLs
//
// Open takes sqlite:, postgres: / postgresql: and mysql: URLs:
//
//	sqlite:///absolute/path/once.db    sqlite:relative/path/once.db
//	postgres://user:password@host:5432/database?sslmode=disable
//	mysql://user:password@host:3306/database
//
// Each takes table=NAME and create_table=BOOL; sqlite also busy_timeout=
// DURATION (default 5s; the file is opened in WAL mode). Other parameters of
// a postgres URL go to pgx (sslmode, connect_timeout, ...), of a mysql URL to
// go-sql-driver/mysql as DSN parameters (tls, timeout, ...). An unknown
// sqlite parameter, a repeated or malformed one, is an error wrapping
// distlock.ErrInvalid.
//
// # Your own *sql.DB
//
// New takes a *sql.DB and the database it speaks. For a pgx pool pass
// stdlib.OpenDBFromPool(pool). For SQLite give the handle a busy timeout
// (modernc.org/sqlite: _pragma=busy_timeout(5000)) and WAL mode. Errors are
// classified (a missing table or a syntax error ends at once; anything else
// is treated as an unknown outcome and read back) for pgx, go-sql-driver/mysql
// and modernc.org/sqlite; with other drivers every error is read back.
package once
