package testserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMariaDB(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, Private())
	addr := m.Addr()
	if m.External() {
		t.Fatal("External() = true for a private server")
	}
	if want := fmt.Sprintf("root@tcp(%s)/test", addr); m.DSN() != want {
		t.Fatalf("DSN() = %s, want %s", m.DSN(), want)
	}
	tg, err := parseMySQLDSN(m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	mustAnswer(t, "after start", m.Ping)
	myExec(t, tg, "CREATE TABLE kept (x int) ENGINE=InnoDB")
	for name, want := range map[string]string{
		"DATABASE()":                       "test",
		"@@character_set_server":           "utf8mb4",
		"@@log_bin":                        "0",
		"@@innodb_flush_log_at_trx_commit": "0",
	} {
		if got := myValue(t, tg, "SELECT "+name); got != want {
			t.Errorf("SELECT %s = %q, want %q", name, got, want)
		}
	}

	// A connection opened before the pause stops answering too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := myConnect(ctx, tg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	m.Pause()
	mustTimeOut(t, "paused", m.Ping)
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := myQuery(c, "SELECT 1"); err == nil {
		t.Fatal("a paused server answered on an open connection")
	}
	m.Resume()
	mustAnswer(t, "resumed", m.Ping)

	m.Restart()
	if m.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", m.Addr(), addr)
	}
	mustAnswer(t, "restarted", m.Ping)
	myExec(t, tg, "INSERT INTO kept VALUES (1)") // the data directory survived

	m.Stop()
	mustRefuse(t, "stopped", m.Ping)
	m.Restart()
	mustAnswer(t, "restarted after Stop", m.Ping)

	m.Kill()
	mustRefuse(t, "killed", m.Ping)
	m.Restart() // crash recovery
	mustAnswer(t, "restarted after Kill", m.Ping)
	myExec(t, tg, "SELECT count(*) FROM kept")

	m.Pause() // the cleanup must resume and kill it
}

// myExec runs sql and fails the test on an error.
func myExec(t *testing.T, tg myTarget, sql string) {
	t.Helper()
	myValue(t, tg, sql)
}

// myValue runs sql over a new connection and returns the first column of its
// first row ("" for a statement without rows, "NULL" for a null).
func myValue(t *testing.T, tg myTarget, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := myConnect(ctx, tg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.quit()
	v, err := myQuery(c, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// myQuery sends COM_QUERY and reads the whole response, returning the first
// column of the first row. Values longer than 250 bytes are not supported.
func myQuery(c *myConn, sql string) (string, error) {
	c.seq = 0
	if err := c.write(append([]byte{0x03}, sql...)); err != nil {
		return "", err
	}
	p, err := c.read()
	if err != nil {
		return "", err
	}
	switch {
	case len(p) == 0:
		return "", errors.New("empty response")
	case p[0] == 0x00:
		return "", nil
	case p[0] == 0xff:
		return "", myError(p)
	}
	// A result set: column definitions, EOF, rows, EOF.
	value, eofs, rows := "", 0, 0
	for eofs < 2 {
		p, err := c.read()
		if err != nil {
			return "", err
		}
		switch {
		case len(p) > 0 && p[0] == 0xff:
			return "", myError(p)
		case len(p) < 9 && len(p) > 0 && p[0] == 0xfe:
			eofs++
		case eofs == 1:
			if rows++; rows == 1 {
				switch n := int(p[0]); {
				case n == 0xfb:
					value = "NULL"
				case n < 0xfb && len(p) >= 1+n:
					value = string(p[1 : 1+n])
				default:
					return "", fmt.Errorf("value too long for this test helper")
				}
			}
		}
	}
	return value, nil
}

func TestParseMySQLDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want myTarget
	}{
		{"root@tcp(127.0.0.1:3307)/test", myTarget{"tcp", "127.0.0.1:3307", "root", "test"}},
		{"u:p@ss@tcp(db.example)/app?parseTime=true", myTarget{"tcp", "db.example:3306", "u", "app"}},
		{"me@unix(/run/mysqld/mysqld.sock)/locks", myTarget{"unix", "/run/mysqld/mysqld.sock", "me", "locks"}},
		{"/test", myTarget{"tcp", "127.0.0.1:3306", "", "test"}},
	} {
		got, err := parseMySQLDSN(tc.dsn)
		if err != nil || got != tc.want {
			t.Errorf("parseMySQLDSN(%q) = %+v, %v; want %+v", tc.dsn, got, err, tc.want)
		}
	}
	for _, bad := range []string{"root@tcp(127.0.0.1:3306)", "root@127.0.0.1:3306/test", "root@udp(x)/test"} {
		if _, err := parseMySQLDSN(bad); err == nil {
			t.Errorf("parseMySQLDSN(%q) succeeded", bad)
		}
	}
}

func TestMariaDBExternal(t *testing.T) {
	srv := StartMariaDB(t, Private())
	t.Setenv(EnvMySQL, srv.DSN())
	m := StartMariaDB(t)
	if !m.External() || m.DSN() != srv.DSN() || m.Addr() != srv.Addr() {
		t.Fatalf("with %s set: External() = %v, DSN() = %s; want true, %s", EnvMySQL, m.External(), m.DSN(), srv.DSN())
	}
	mustAnswer(t, "external", m.Ping)
	rec := record(t, func(tb testing.TB) { StartMariaDB(tb).Restart() })
	if rec.ended != "skip" || !strings.Contains(rec.msg, "Restart needs a private MariaDB server") {
		t.Errorf("Restart on an external server ended the test with %q %q; want a skip", rec.ended, rec.msg)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvMySQL, "root@tcp(127.0.0.1:"+strconv.Itoa(port)+")/test")
	rec = record(t, func(tb testing.TB) { StartMariaDB(tb) })
	wantUnavailable(t, rec, EnvMySQL+"=root@tcp(127.0.0.1:")
}

func TestMariaDBMissingBinary(t *testing.T) {
	t.Setenv(EnvMySQL, "") // the external server would be used instead
	t.Setenv("PATH", t.TempDir())
	saved := mariadbDirs
	mariadbDirs = nil
	t.Cleanup(func() { mariadbDirs = saved })
	rec := record(t, func(tb testing.TB) { StartMariaDB(tb) })
	wantUnavailable(t, rec, "mariadbd and mariadb-install-db not found")
	if !strings.Contains(rec.msg, EnvMySQL) {
		t.Errorf("message %q does not say how to provide a server (%s)", rec.msg, EnvMySQL)
	}
}
