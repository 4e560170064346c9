package testserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testenv"
)

// A MariaDB is a MySQL-protocol server for one test: a private MariaDB
// server (mariadbd, which older packages name mysqld) child process, or the
// external server, MariaDB or MySQL, named by DISTLOCK_TEST_MYSQL. Private
// servers need MariaDB: MySQL 8 has no mysql_install_db.
type MariaDB struct {
	lifecycle
	dsn string
	tg  myTarget
}

// mariadbDirs are searched for the server and its installer after PATH.
var mariadbDirs = []string{"/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/mysql/scripts", "/opt/homebrew/bin"}

// mariadbInnoDB keeps InnoDB small, and fast at the price of durability. The
// template is made with the same sizes.
var mariadbInnoDB = []string{
	"--innodb-buffer-pool-size=32M",
	"--innodb-log-file-size=8M",
}

// StartMariaDB starts a private MariaDB server on a free loopback port and
// stops it when the test ends. Its data directory is a copy of a cached
// mariadb-install-db template: root with an empty password, and an empty
// database test. It runs with --no-defaults (no my.cnf is read), no binary
// log, a small InnoDB that flushes its log once a second, and
// --skip-name-resolve. When the test runs as root, it runs with --user=root.
//
// When DISTLOCK_TEST_MYSQL is set (a go-sql-driver/mysql DSN) and the Private
// option is not given, it uses that server instead. When neither can be had
// it calls testenv.Unavailable: the test fails under CI and skips elsewhere.
func StartMariaDB(t testing.TB, opts ...Option) *MariaDB {
	t.Helper()
	o := buildOptions(opts)
	if dsn := os.Getenv(EnvMySQL); dsn != "" && !o.private {
		tg, err := parseMySQLDSN(dsn)
		if err != nil {
			testenv.Unavailable(t, "testserver: %s: %v", EnvMySQL, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := myPing(ctx, tg, false); err != nil {
			testenv.Unavailable(t, "testserver: %s=%s does not answer: %v", EnvMySQL, dsn, err)
		}
		return &MariaDB{lifecycle: lifecycle{t: t, server: "MariaDB", env: EnvMySQL}, dsn: dsn, tg: tg}
	}
	if !supported {
		testenv.Unavailable(t, "testserver: private MariaDB servers need a Unix system; set %s to a DSN to use a running server", EnvMySQL)
	}
	server := findBinary([]string{"mariadbd", "mysqld"}, mariadbDirs)
	install := findBinary([]string{"mariadb-install-db", "mysql_install_db"}, mariadbDirs)
	if server == "" || install == "" {
		testenv.Unavailable(t, "testserver: mariadbd and mariadb-install-db not found in PATH or %s; install them (Debian: apt-get install mariadb-server) or set %s to a DSN to use a running server",
			strings.Join(mariadbDirs, ", "), EnvMySQL)
	}
	var asRoot []string
	if isRoot() {
		asRoot = []string{"--user=root"} // mariadbd refuses root otherwise
	}

	template, err := cachedTemplate(t, "mariadb", append([]string{binaryKey(server), binaryKey(install)}, mariadbInnoDB...), nil,
		func(dir string) error { return runInstallDB(install, dir, asRoot, o.timeout) })
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	began := time.Now()
	dir := instanceDir(t, "mariadb", nil)
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	if err := copyTree(template, data, nil); err != nil {
		t.Fatalf("testserver: copying the mariadb template: %v", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	copied := time.Since(began)

	p := &process{
		spec: spec{
			name: filepath.Base(server),
			path: server,
			args: func(port int) []string {
				args := []string{
					"--no-defaults", // must come first
					"--datadir=" + data,
					"--tmpdir=" + tmp,
					fmt.Sprintf("--port=%d", port),
					"--bind-address=127.0.0.1",
					"--socket=" + filepath.Join(dir, "mysqld.sock"),
					"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
					"--skip-name-resolve",
					"--skip-log-bin",
					"--character-set-server=utf8mb4",
					"--innodb-flush-log-at-trx-commit=0",
					"--innodb-doublewrite=0",
					"--innodb-buffer-pool-dump-at-shutdown=0",
					"--innodb-buffer-pool-load-at-startup=0",
				}
				args = append(args, asRoot...)
				args = append(args, mariadbInnoDB...)
				return append(args, o.args...)
			},
			dir:     dir,
			log:     filepath.Join(dir, "mariadb.log"),
			ready:   "ready for connections",
			stopSig: sigTerm,
		},
		t:       t,
		timeout: o.timeout,
	}
	p.ping = func(ctx context.Context, addr string) error {
		return myPing(ctx, myTarget{network: "tcp", addr: addr, user: "root", db: "test"}, true)
	}
	t.Cleanup(p.cleanup)
	took := p.start()
	t.Logf("testserver: %s on %s ready in %v (data directory copied in %v)",
		p.name, p.addr(), took.Round(time.Millisecond), copied.Round(time.Millisecond))
	return &MariaDB{
		lifecycle: lifecycle{t: t, p: p, server: "MariaDB", env: EnvMySQL},
		dsn:       fmt.Sprintf("root@tcp(%s)/test", p.addr()),
		tg:        myTarget{network: "tcp", addr: p.addr(), user: "root", db: "test"},
	}
}

// runInstallDB makes dir/data a new data directory: system tables, root with
// an empty password, and the database test.
func runInstallDB(install, dir string, asRoot []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	extra := filepath.Join(dir, "bootstrap.sql")
	if err := os.WriteFile(extra, []byte("CREATE DATABASE IF NOT EXISTS test CHARACTER SET utf8mb4;\n"), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "install.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + filepath.Join(dir, "data"),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		"--extra-file=" + extra,
	}
	args = append(args, asRoot...)
	args = append(args, mariadbInnoDB...)
	cmd := exec.CommandContext(ctx, install, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	configure(cmd, nil)
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s: %v%s", filepath.Base(install), err, formatTail(logPath, b))
	}
	return nil
}

// DSN returns a go-sql-driver/mysql DSN for the server:
// root@tcp(127.0.0.1:PORT)/test for a private server, DISTLOCK_TEST_MYSQL as
// it is for an external one.
func (m *MariaDB) DSN() string { return m.dsn }

// Addr returns the server's host:port (for an external server reached over a
// Unix socket, the socket's path).
func (m *MariaDB) Addr() string { return m.tg.addr }

// Ping logs in as root into test over a new connection and quits: a round
// trip that fails, after ctx's deadline, while the server is paused. For an
// external server, whose password it does not know, the server's greeting
// counts as an answer.
func (m *MariaDB) Ping(ctx context.Context) error { return myPing(ctx, m.tg, m.p != nil) }
