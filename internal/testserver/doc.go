// Package testserver starts real Redis, PostgreSQL and MariaDB servers as
// child processes of a test, so that driver tests can talk to a real server
// and inject faults into it: kill it, pause it, restart it.
//
//	r := testserver.StartRedis(t)
//	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
//	...
//	r.Pause()   // requests now go unanswered
//	r.Resume()
//	r.Restart() // same address, every key lost
//
// # Servers
//
// [StartRedis], [StartPostgres] and [StartMariaDB] each start a private
// server on a free loopback port (127.0.0.1), with a directory of its own,
// wait until it answers, and end it when the test ends (t.Cleanup). The
// handles give the address ([Redis.Addr]) or DSN ([Postgres.DSN],
// [MariaDB.DSN]):
//
//   - Redis: redis-server with no persistence (--save "" --appendonly no),
//     or with the [Persistent] option an RDB file saved at every graceful
//     stop. [Redis.Snapshot] and [Redis.RestoreSnapshot] save the keys and
//     bring them back later, as a backup restore or a failover to a replica
//     that missed writes does.
//   - PostgreSQL: postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable,
//     trust authentication, fsync, synchronous_commit and full_page_writes
//     off. The binaries are found in PATH or /usr/lib/postgresql/*/bin. As
//     PostgreSQL refuses to run as root, a test running as root runs it as the
//     postgres user (or nobody).
//   - MariaDB: root@tcp(127.0.0.1:PORT)/test, the go-sql-driver/mysql form;
//     root has an empty password and the database test exists. It runs with
//     --no-defaults, no binary log and a small InnoDB that flushes its log once
//     a second. (An external server may be MySQL.)
//
// Data directories are copies of a template made once by initdb or
// mariadb-install-db and cached under the user's cache directory
// (os.UserCacheDir()/distlock-testserver, keyed by the binaries' path, size
// and time, so that an upgrade makes a new one; delete the directory to clear
// it). Instance directories go on /dev/shm when it is a tmpfs with at least
// 2 GiB free, else in the temporary directory: copying a data directory there
// takes about 50 ms against several hundred on a disk.
//
// Readiness is two facts: the server's own log says it listens (so another
// process that took the same port cannot pass for it), and a protocol round
// trip succeeds over a new connection (Redis PING; a PostgreSQL startup up to
// ReadyForQuery; a MySQL login as root into test). A port taken between its
// discovery and the server's bind is retried with another port.
//
// # Lifecycle
//
// Each handle has Stop (graceful shutdown: SIGTERM, SIGINT for PostgreSQL's
// fast shutdown; killed after 15s), Kill (SIGKILL, as in a crash), Pause
// (SIGSTOP: connections stay open, nothing is answered), Resume (SIGCONT)
// and Restart (start again on the same port, after a graceful stop if it
// still runs). Signals reach every process of the server: its process group,
// and on Linux every descendant found in /proc, as PostgreSQL's backends
// leave the group. Restart keeps PostgreSQL's and MariaDB's data directories,
// though a Kill may lose the last transactions (their commits do not wait for
// the disk); Redis keeps nothing unless Persistent. The cleanup resumes a
// paused server before ending it.
//
// The methods end the test on failure (t.Fatalf), so, like t.Fatal, they must
// be called from the test's goroutine.
//
// # Process hygiene
//
// Each server runs in a process group of its own and, on Linux, dies with the
// test binary (Pdeathsig, SIGKILL) even if the test binary is killed. Its
// stdout and stderr go to a log file in its directory; failure messages carry
// the end of that log, and so does the test's log when the test failed.
//
// # External servers
//
// These environment variables point the Start functions at servers that
// already run instead:
//
//	DISTLOCK_TEST_REDIS     host:port
//	DISTLOCK_TEST_POSTGRES  a DSN, as postgres://user@host:port/db?sslmode=disable
//	DISTLOCK_TEST_MYSQL     a DSN, as user:password@tcp(host:port)/db
//
// The Start function then checks that the server answers and returns a
// handle whose External method reports true. A test cannot kill or pause a
// server it does not own: on such a handle, Stop, Kill, Pause, Resume and
// Restart skip the test (t.Skip), saying that it needs a private server.
// Fault-injection tests pass the [Private] option, which ignores the
// variables and always starts a private server, so they never skip. Tests
// sharing an external server must use keys and tables of their own.
//
// # Unavailable servers
//
// When a server can be had neither way (the binary is missing, or the
// external server does not answer), the Start function calls
// testenv.Unavailable: the test fails under CI (CI=true) and is skipped
// elsewhere, with a message saying what to install or which variable to set.
package testserver
