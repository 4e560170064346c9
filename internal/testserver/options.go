package testserver

import "time"

// Environment variables that point the Start functions at servers that
// already run, instead of starting private ones.
const (
	EnvRedis    = "DISTLOCK_TEST_REDIS"    // host:port
	EnvPostgres = "DISTLOCK_TEST_POSTGRES" // a DSN, URL or keyword form
	EnvMySQL    = "DISTLOCK_TEST_MYSQL"    // a go-sql-driver/mysql DSN
)

// An Option changes how a Start function starts its server.
type Option func(*options)

type options struct {
	args    []string
	timeout time.Duration
	private bool
	persist bool
}

func buildOptions(opts []Option) options {
	o := options{timeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Args appends arguments to the server's command line, after the ones the
// Start function sets, so they can override them. For Redis they are
// redis-server flags ("--maxmemory", "10mb"), for PostgreSQL postgres flags
// ("-c", "max_connections=20"), for MariaDB mariadbd flags
// ("--max-connections=20"). They are ignored when an environment variable
// selects an external server.
func Args(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// StartTimeout bounds how long a start or restart may take before the test
// fails (30s when not set: generous, for a loaded 2-core machine under -race).
func StartTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Private makes the Start function start its own server even when the
// environment variable names an external one. Tests that need the lifecycle
// methods (fault injection) use it so that they never skip.
func Private() Option {
	return func(o *options) { o.private = true }
}

// Persistent makes a Redis server keep its keys on disk, in the RDB file
// dump.rdb of its directory: it saves them on a graceful stop, so Restart
// keeps every key (with its absolute expiry time), while Kill, as a crash,
// loses what came after the last save. PostgreSQL and MariaDB always keep
// their data; for them the option changes nothing.
func Persistent() Option {
	return func(o *options) { o.persist = true }
}
