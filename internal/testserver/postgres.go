package testserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testenv"
)

// A Postgres is a PostgreSQL server for one test: a private postgres child
// process, or the external server named by DISTLOCK_TEST_POSTGRES.
type Postgres struct {
	lifecycle
	dsn string
	tg  pgTarget
}

// postgresDirGlobs are searched, newest version first, for a directory
// holding both initdb and postgres when PATH has none.
var postgresDirGlobs = []string{"/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin"}

// postgresSettings make a throwaway server fast (nothing waits for the disk)
// and keep its dynamic shared memory in its data directory, where it goes
// with the directory even when the server was killed, rather than in
// /dev/shm.
var postgresSettings = []string{
	"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	"-c", "dynamic_shared_memory_type=mmap",
}

// initdbFlags make the template: superuser postgres, trusted, and 1 MB WAL
// segments (16 MB is the default) so that each copy is smaller.
var initdbFlags = []string{"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--wal-segsize=1"}

// StartPostgres starts a private PostgreSQL server on a free loopback port
// and stops it when the test ends. Its data directory is a copy of a cached
// initdb template (user postgres, trust authentication, UTF8, locale C); it
// runs with fsync, synchronous_commit and full_page_writes off. When the test
// runs as root, the server runs as the postgres user (or nobody), as
// PostgreSQL refuses root.
//
// When DISTLOCK_TEST_POSTGRES is set (a DSN) and the Private option is not
// given, it uses that server instead. When neither can be had it calls
// testenv.Unavailable: the test fails under CI and skips elsewhere.
func StartPostgres(t testing.TB, opts ...Option) *Postgres {
	t.Helper()
	o := buildOptions(opts)
	if dsn := os.Getenv(EnvPostgres); dsn != "" && !o.private {
		tg, err := parsePostgresDSN(dsn)
		if err != nil {
			testenv.Unavailable(t, "testserver: %s: %v", EnvPostgres, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pgPing(ctx, tg, true); err != nil {
			testenv.Unavailable(t, "testserver: %s=%s does not answer: %v", EnvPostgres, dsn, err)
		}
		return &Postgres{lifecycle: lifecycle{t: t, server: "PostgreSQL", env: EnvPostgres}, dsn: dsn, tg: tg}
	}
	if !supported {
		testenv.Unavailable(t, "testserver: private PostgreSQL servers need a Unix system; set %s to a DSN to use a running server", EnvPostgres)
	}
	binDir := postgresBinDir()
	if binDir == "" {
		testenv.Unavailable(t, "testserver: initdb and postgres not found together in PATH or %s; install them (Debian: apt-get install postgresql) or set %s to a DSN to use a running server",
			strings.Join(postgresDirGlobs, ", "), EnvPostgres)
	}
	initdb, postgres := filepath.Join(binDir, "initdb"), filepath.Join(binDir, "postgres")
	runAs, err := unprivilegedOwner()
	if err != nil {
		testenv.Unavailable(t, "testserver: %v; set %s to a DSN to use a running server", err, EnvPostgres)
	}

	template, err := cachedTemplate(t, "postgres", append([]string{binaryKey(initdb), binaryKey(postgres)}, initdbFlags...), runAs,
		func(dir string) error { return runInitdb(initdb, dir, runAs, o.timeout) })
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	began := time.Now()
	dir := instanceDir(t, "postgres", runAs)
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := copyTree(template, data, runAs); err != nil {
		t.Fatalf("testserver: copying the postgres template: %v", err)
	}
	if err := mkdirOwned(sock, runAs); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if len(sock)+len("/.s.PGSQL.65535") >= 108 { // sun_path's size on Linux
		sock = "" // no Unix socket rather than a failed start
	}
	copied := time.Since(began)

	p := &process{
		spec: spec{
			name: "postgres",
			path: postgres,
			args: func(port int) []string {
				args := []string{"-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", sock}
				args = append(args, postgresSettings...)
				return append(args, o.args...)
			},
			runAs:   runAs,
			dir:     dir,
			log:     filepath.Join(dir, "postgres.log"),
			ready:   "database system is ready to accept connections",
			stopSig: sigInt, // fast shutdown: SIGTERM would wait for every client to leave
			// A killed postmaster leaves its SysV segment behind (PostgreSQL
			// removes it at its next start, which a test's last Kill never
			// sees), and the kernel's table of segments is finite.
			cleanStop:    true,
			afterCleanup: func() { removeStaleSegment(filepath.Join(data, "postmaster.pid")) },
		},
		t:       t,
		timeout: o.timeout,
	}
	p.ping = func(ctx context.Context, addr string) error {
		return pgPing(ctx, pgTarget{network: "tcp", addr: addr, user: "postgres", db: "postgres"}, false)
	}
	t.Cleanup(p.cleanup)
	took := p.start()
	t.Logf("testserver: postgres on %s ready in %v (data directory copied in %v)",
		p.addr(), took.Round(time.Millisecond), copied.Round(time.Millisecond))
	return &Postgres{
		lifecycle: lifecycle{t: t, p: p, server: "PostgreSQL", env: EnvPostgres},
		dsn:       fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", p.addr()),
		tg:        pgTarget{network: "tcp", addr: p.addr(), user: "postgres", db: "postgres"},
	}
}

// postgresBinDir returns a directory holding both initdb and postgres: that
// of initdb in PATH (symlinks resolved), else the newest of postgresDirGlobs.
func postgresBinDir() string {
	both := func(dir string) bool {
		return isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres"))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && both(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
		if both(filepath.Dir(p)) {
			return filepath.Dir(p)
		}
	}
	for _, pattern := range postgresDirGlobs {
		dirs, _ := filepath.Glob(pattern)
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
		for _, dir := range dirs {
			if both(dir) {
				return dir
			}
		}
	}
	return ""
}

// versionLess orders paths holding version numbers numerically
// (.../9.6/bin before .../15/bin).
func versionLess(a, b string) bool {
	num := func(s string) int {
		for _, part := range strings.Split(s, "/") {
			if n, err := strconv.Atoi(strings.SplitN(part, ".", 2)[0]); err == nil {
				return n
			}
		}
		return -1
	}
	if na, nb := num(a), num(b); na != nb {
		return na < nb
	}
	return a < b
}

// runInitdb makes dir/data a new cluster, as runAs.
func runInitdb(initdb, dir string, runAs *owner, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	logPath := filepath.Join(dir, "initdb.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, initdb, append([]string{"-D", filepath.Join(dir, "data")}, initdbFlags...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	configure(cmd, runAs)
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("initdb: %v%s", err, formatTail(logPath, b))
	}
	return nil
}

// DSN returns a URL for the server:
// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable for a private
// server, DISTLOCK_TEST_POSTGRES as it is for an external one.
func (pg *Postgres) DSN() string { return pg.dsn }

// Addr returns the server's host:port (for an external server reached over a
// Unix socket, the socket's path).
func (pg *Postgres) Addr() string { return pg.tg.addr }

// Ping logs in over a new connection and out again: a round trip that fails,
// after ctx's deadline, while the server is paused. For an external server
// that asks for a password, being asked counts as an answer.
func (pg *Postgres) Ping(ctx context.Context) error { return pgPing(ctx, pg.tg, pg.p == nil) }
