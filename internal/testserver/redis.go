package testserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testenv"
)

// A Redis is a Redis server for one test: a private redis-server child
// process, or the external server named by DISTLOCK_TEST_REDIS.
type Redis struct {
	lifecycle
	addr    string
	persist bool // started Persistent
}

// redisDirs are searched for redis-server after PATH.
var redisDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/opt/homebrew/bin"}

// StartRedis starts a private redis-server on a free loopback port, with no
// persistence (unless the Persistent option is given) and a temporary
// directory of its own, and stops it when the test ends. When DISTLOCK_TEST_REDIS is set (host:port) and the Private
// option is not given, it uses that server instead. When neither can be had
// it calls testenv.Unavailable: the test fails under CI and skips elsewhere.
func StartRedis(t testing.TB, opts ...Option) *Redis {
	t.Helper()
	o := buildOptions(opts)
	if addr := os.Getenv(EnvRedis); addr != "" && !o.private {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := redisPing(ctx, addr); err != nil {
			testenv.Unavailable(t, "testserver: %s=%s does not answer PING: %v", EnvRedis, addr, err)
		}
		return &Redis{lifecycle: lifecycle{t: t, server: "Redis", env: EnvRedis}, addr: addr}
	}
	if !supported {
		testenv.Unavailable(t, "testserver: private Redis servers need a Unix system; set %s=host:port to use a running server", EnvRedis)
	}
	bin := findBinary([]string{"redis-server"}, redisDirs)
	if bin == "" {
		testenv.Unavailable(t, "testserver: redis-server not found in PATH or %s; install it (Debian: apt-get install redis-server) or set %s=host:port to use a running server",
			strings.Join(redisDirs, ", "), EnvRedis)
	}

	dir := instanceDir(t, "redis", nil)
	save := "" // no save point: nothing is written, even at shutdown
	if o.persist {
		// A save point makes a graceful shutdown save; one an hour away
		// makes nothing else save on its own.
		save = "3600 1"
	}
	p := &process{
		spec: spec{
			name: "redis-server",
			path: bin,
			args: func(port int) []string {
				return append([]string{
					"--port", fmt.Sprint(port),
					"--bind", "127.0.0.1",
					"--save", save,
					"--appendonly", "no",
					"--dir", dir,
					"--daemonize", "no",
					"--logfile", "",
				}, o.args...)
			},
			dir:     dir,
			log:     filepath.Join(dir, "redis.log"),
			ready:   "Ready to accept connections",
			stopSig: sigTerm,
			ping:    redisPing,
		},
		t:       t,
		timeout: o.timeout,
	}
	t.Cleanup(p.cleanup)
	took := p.start()
	t.Logf("testserver: redis-server on %s ready in %v", p.addr(), took.Round(time.Millisecond))
	return &Redis{lifecycle: lifecycle{t: t, p: p, server: "Redis", env: EnvRedis}, addr: p.addr(), persist: o.persist}
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return r.addr }

// Ping sends PING and expects +PONG: a round trip that fails, after ctx's
// deadline, while the server is paused.
func (r *Redis) Ping(ctx context.Context) error { return redisPing(ctx, r.addr) }

// redisPing sends PING over a new connection and expects +PONG.
func redisPing(ctx context.Context, addr string) error {
	return redisCommand(ctx, addr, "PING", "+PONG")
}

// redisCommand sends an inline command over a new connection and expects
// the reply line want.
func redisCommand(ctx context.Context, addr, cmd, want string) error {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != want {
		return fmt.Errorf("%s answered %q", cmd, line)
	}
	return nil
}

// A RedisSnapshot is a copy of a Redis server's keys, made by
// [Redis.Snapshot].
type RedisSnapshot struct{ path string }

// Snapshot saves the server's keys now (SAVE) and keeps a copy of its RDB
// file, as a backup would, for RestoreSnapshot. A server that is not
// Persistent still keeps nothing across a Restart.
func (r *Redis) Snapshot() RedisSnapshot {
	r.t.Helper()
	p := r.private("Snapshot")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := redisCommand(ctx, r.addr, "SAVE", "+OK"); err != nil {
		r.t.Fatalf("testserver: Snapshot: %v%s", err, p.tail(0))
	}
	b, err := os.ReadFile(filepath.Join(p.dir, redisRDB))
	if err != nil {
		r.t.Fatalf("testserver: Snapshot: %v", err)
	}
	f, err := os.CreateTemp(p.dir, "snapshot-*.rdb")
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.t.Fatalf("testserver: Snapshot: %v", err)
	}
	r.forgetRDB()
	return RedisSnapshot{path: f.Name()}
}

// forgetRDB removes the RDB file of a server that is not Persistent, which
// would otherwise load it at its next start.
func (r *Redis) forgetRDB() {
	if r.persist {
		return
	}
	if err := os.Remove(filepath.Join(r.p.dir, redisRDB)); err != nil && !os.IsNotExist(err) {
		r.t.Fatalf("testserver: %v", err)
	}
}

// RestoreSnapshot brings the server back to s, as a restore from a backup,
// or a failover to a replica that missed the writes since, does: it kills the
// server (so that it saves nothing of its own), puts s's RDB file in place
// and starts it again on the same address. Expiry times in an RDB file are
// absolute: keys that expired since the snapshot are gone. A server that is
// not Persistent loses the restored keys at its next Restart.
func (r *Redis) RestoreSnapshot(s RedisSnapshot) {
	r.t.Helper()
	p := r.private("RestoreSnapshot")
	b, err := os.ReadFile(s.path)
	if err != nil {
		r.t.Fatalf("testserver: RestoreSnapshot: %v", err)
	}
	p.kill()
	if err := os.WriteFile(filepath.Join(p.dir, redisRDB), b, 0o644); err != nil {
		r.t.Fatalf("testserver: RestoreSnapshot: %v", err)
	}
	p.restart()
	r.forgetRDB()
}

// redisRDB is the RDB file's name in the server's directory (Redis's
// default dbfilename).
const redisRDB = "dump.rdb"

// StartRedisSentinel starts a private Redis Sentinel on a free loopback
// port that monitors master under name (quorum 1), and stops it when the
// test ends. Its Addr is the Sentinel's, for go-redis's FailoverOptions.
func StartRedisSentinel(t testing.TB, master *Redis, name string) *Redis {
	t.Helper()
	if !supported {
		testenv.Unavailable(t, "testserver: private Redis Sentinels need a Unix system")
	}
	bin := findBinary([]string{"redis-server"}, redisDirs)
	if bin == "" {
		testenv.Unavailable(t, "testserver: redis-server not found in PATH or %s; install it (Debian: apt-get install redis-server)", strings.Join(redisDirs, ", "))
	}
	host, port, ok := strings.Cut(master.Addr(), ":")
	if !ok {
		t.Fatalf("testserver: master address %q is not host:port", master.Addr())
	}
	dir := instanceDir(t, "sentinel", nil)
	// Sentinel runs only from a configuration file it can rewrite.
	conf := filepath.Join(dir, "sentinel.conf")
	monitor := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n", name, host, port, name)
	if err := os.WriteFile(conf, []byte(monitor), 0o600); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	p := &process{
		spec: spec{
			name: "redis-sentinel",
			path: bin,
			args: func(port int) []string {
				return []string{conf, "--sentinel",
					"--port", fmt.Sprint(port),
					"--bind", "127.0.0.1",
					"--dir", dir,
					"--daemonize", "no",
					"--logfile", "",
				}
			},
			dir:     dir,
			log:     filepath.Join(dir, "sentinel.log"),
			ready:   "+monitor master",
			stopSig: sigTerm,
			ping:    redisPing,
		},
		t:       t,
		timeout: 30 * time.Second,
	}
	t.Cleanup(p.cleanup)
	took := p.start()
	t.Logf("testserver: redis sentinel on %s, monitoring %s as %q, ready in %v", p.addr(), master.Addr(), name, took.Round(time.Millisecond))
	return &Redis{lifecycle: lifecycle{t: t, p: p, server: "Redis Sentinel", env: EnvRedis}, addr: p.addr()}
}
