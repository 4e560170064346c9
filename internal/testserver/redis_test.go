package testserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	r := StartRedis(t, Private())
	addr := r.Addr()
	if r.External() {
		t.Fatal("External() = true for a private server")
	}
	mustAnswer(t, "after start", r.Ping)
	if got := redisDo(t, addr, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}

	// A connection opened before the pause stays open; its request is
	// answered only after Resume.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)

	r.Pause()
	mustTimeOut(t, "paused", r.Ping)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := rd.ReadString('\n'); err == nil {
		t.Fatal("a paused server answered on an open connection")
	}
	r.Resume()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := rd.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("after Resume, the open connection read %q, %v; want +PONG", line, err)
	}
	mustAnswer(t, "resumed", r.Ping)
	if got := redisDo(t, addr, "GET", "k"); got != "v" {
		t.Fatalf("GET after pause = %q, want v", got)
	}

	r.Restart()
	if r.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", r.Addr(), addr)
	}
	mustAnswer(t, "restarted", r.Ping)
	if got := redisDo(t, addr, "GET", "k"); got != "(nil)" {
		t.Fatalf("GET after Restart = %q, want (nil): nothing is persisted", got)
	}

	r.Stop()
	mustRefuse(t, "stopped", r.Ping)
	r.Restart()
	mustAnswer(t, "restarted after Stop", r.Ping)

	r.Kill()
	mustRefuse(t, "killed", r.Ping)
	r.Restart()
	mustAnswer(t, "restarted after Kill", r.Ping)

	r.Pause()
	r.Restart() // resumes it to stop it
	mustAnswer(t, "restarted while paused", r.Ping)

	// Left paused: the cleanup must resume and kill it.
	r.Pause()
}

// redisDo sends one command and returns its reply: a simple string's or a
// bulk string's text, "(nil)" for a null, and fails the test on an error
// reply.
func redisDo(t *testing.T, addr string, args ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '+', ':':
		return line[1:]
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			t.Fatalf("bad reply %q", line)
		}
		if n < 0 {
			return "(nil)"
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	default:
		t.Fatalf("%v: reply %q", args, line)
		return ""
	}
}

// TestRedisPersistent: a Persistent server keeps its keys across Restart,
// a Kill loses what came after the last save, and a snapshot brings back
// the keys it saved.
func TestRedisPersistent(t *testing.T) {
	t.Parallel()
	r := StartRedis(t, Private(), Persistent())
	addr := r.Addr()
	redisDo(t, addr, "SET", "k", "v")
	r.Restart()
	if got := redisDo(t, addr, "GET", "k"); got != "v" {
		t.Fatalf("GET after Restart = %q, want v: a graceful stop saves", got)
	}
	redisDo(t, addr, "SET", "unsaved", "x")
	r.Kill()
	r.Restart()
	if got := redisDo(t, addr, "GET", "unsaved"); got != "(nil)" {
		t.Errorf("GET of a key written after the last save, after Kill = %q, want (nil)", got)
	}
	if got := redisDo(t, addr, "GET", "k"); got != "v" {
		t.Errorf("GET of a saved key after Kill = %q, want v", got)
	}

	snap := r.Snapshot()
	redisDo(t, addr, "SET", "k", "newer")
	redisDo(t, addr, "SET", "later", "y")
	r.Restart() // saves the newer keys, which the restore must replace
	r.RestoreSnapshot(snap)
	if r.Addr() != addr {
		t.Fatalf("Addr after RestoreSnapshot = %s, want %s", r.Addr(), addr)
	}
	if got := redisDo(t, addr, "GET", "k"); got != "v" {
		t.Errorf("GET after RestoreSnapshot = %q, want v, the value at the snapshot", got)
	}
	if got := redisDo(t, addr, "GET", "later"); got != "(nil)" {
		t.Errorf("GET of a key written after the snapshot = %q, want (nil)", got)
	}
}

// TestRedisSnapshotWithoutPersistence: a snapshot of a server that is not
// Persistent comes back on RestoreSnapshot, and nothing survives a Restart
// either side of it.
func TestRedisSnapshotWithoutPersistence(t *testing.T) {
	t.Parallel()
	r := StartRedis(t, Private())
	addr := r.Addr()
	redisDo(t, addr, "SET", "k", "v")
	snap := r.Snapshot()
	r.Restart()
	if got := redisDo(t, addr, "GET", "k"); got != "(nil)" {
		t.Errorf("GET after a Snapshot and a Restart = %q, want (nil): nothing is persisted", got)
	}
	r.RestoreSnapshot(snap)
	if got := redisDo(t, addr, "GET", "k"); got != "v" {
		t.Errorf("GET after RestoreSnapshot = %q, want v", got)
	}
	r.Restart()
	if got := redisDo(t, addr, "GET", "k"); got != "(nil)" {
		t.Errorf("GET after RestoreSnapshot and a Restart = %q, want (nil)", got)
	}
}

func TestRedisExternal(t *testing.T) {
	srv := StartRedis(t, Private())
	t.Setenv(EnvRedis, srv.Addr())

	r := StartRedis(t)
	if !r.External() || r.Addr() != srv.Addr() {
		t.Fatalf("with %s set: External() = %v, Addr() = %s; want true, %s", EnvRedis, r.External(), r.Addr(), srv.Addr())
	}
	mustAnswer(t, "external", r.Ping)
	for name, op := range map[string]func(*Redis){
		"Stop": (*Redis).Stop, "Kill": (*Redis).Kill, "Pause": (*Redis).Pause,
		"Resume": (*Redis).Resume, "Restart": (*Redis).Restart,
		"Snapshot": func(r *Redis) { r.Snapshot() },
	} {
		rec := record(t, func(tb testing.TB) { op(StartRedis(tb)) })
		if rec.ended != "skip" || !strings.Contains(rec.msg, name+" needs a private Redis server") {
			t.Errorf("%s on an external server ended the test with %q %q; want a skip", name, rec.ended, rec.msg)
		}
	}
	mustAnswer(t, "external, after the skipped lifecycle calls", srv.Ping)

	// Private ignores the variable.
	if p := StartRedis(t, Private()); p.External() || p.Addr() == srv.Addr() {
		t.Errorf("Private(): External() = %v, Addr() = %s; want a server of its own", p.External(), p.Addr())
	}
}

func TestRedisExternalUnreachable(t *testing.T) {
	port, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRedis, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	rec := record(t, func(tb testing.TB) { StartRedis(tb) })
	wantUnavailable(t, rec, EnvRedis+"=127.0.0.1:")
}

func TestRedisMissingBinary(t *testing.T) {
	t.Setenv(EnvRedis, "") // the external server would be used instead
	t.Setenv("PATH", t.TempDir())
	saved := redisDirs
	redisDirs = nil
	t.Cleanup(func() { redisDirs = saved })
	rec := record(t, func(tb testing.TB) { StartRedis(tb) })
	wantUnavailable(t, rec, "redis-server not found")
	if !strings.Contains(rec.msg, EnvRedis) {
		t.Errorf("message %q does not say how to provide a server (%s)", rec.msg, EnvRedis)
	}
}

// TestRedisSentinel: the Sentinel answers for the master it was given, by
// name, and is gone after the test.
func TestRedisSentinel(t *testing.T) {
	var addr string
	t.Run("run", func(t *testing.T) {
		master := StartRedis(t, Private())
		s := StartRedisSentinel(t, master, "m1")
		addr = s.Addr()
		if got := redisDo(t, addr, "SENTINEL", "CKQUORUM", "m1"); !strings.HasPrefix(got, "OK 1 usable Sentinels") {
			t.Errorf("SENTINEL CKQUORUM m1 = %q", got)
		}
	})
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("the Sentinel on %s still accepts connections after its test", addr)
	}
}
