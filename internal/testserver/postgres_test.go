package testserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	pg := StartPostgres(t, Private())
	addr := pg.Addr()
	if pg.External() {
		t.Fatal("External() = true for a private server")
	}
	u, err := url.Parse(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "postgres" || u.Host != addr || u.User.Username() != "postgres" || u.Path != "/postgres" || u.Query().Get("sslmode") != "disable" {
		t.Fatalf("DSN() = %s, want postgres://postgres@%s/postgres?sslmode=disable", pg.DSN(), addr)
	}
	tg, err := parsePostgresDSN(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	mustAnswer(t, "after start", pg.Ping)
	pgExec(t, tg, "CREATE TABLE kept (x int)")
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		if got := pgShow(t, tg, setting); got != "off" {
			t.Errorf("SHOW %s = %q, want off", setting, got)
		}
	}

	// A connection opened before the pause (its backend is another process
	// of the group) stops answering too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := pgConnect(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	pg.Pause()
	mustTimeOut(t, "paused", pg.Ping)
	if err := pgQuery(conn, "SELECT 1", 300*time.Millisecond); err == nil {
		t.Fatal("a paused server answered on an open connection")
	}
	pg.Resume()
	mustAnswer(t, "resumed", pg.Ping)

	pg.Restart()
	if pg.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", pg.Addr(), addr)
	}
	mustAnswer(t, "restarted", pg.Ping)
	pgExec(t, tg, "INSERT INTO kept VALUES (1)") // the data directory survived

	pg.Stop()
	mustRefuse(t, "stopped", pg.Ping)
	pg.Restart()
	mustAnswer(t, "restarted after Stop", pg.Ping)

	pg.Kill()
	mustRefuse(t, "killed", pg.Ping)
	pg.Restart() // crash recovery
	mustAnswer(t, "restarted after Kill", pg.Ping)
	pgExec(t, tg, "SELECT count(*) FROM kept")

	pg.Pause() // the cleanup must resume and kill it
}

// pgExec runs sql with the simple query protocol and fails the test on an
// error.
func pgExec(t *testing.T, tg pgTarget, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := pgConnect(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := pgQuery(conn, sql, 10*time.Second); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgShow returns a setting's value.
func pgShow(t *testing.T, tg pgTarget, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, rd, err := pgConnect(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pgSend(conn, "SHOW "+name)
	value := ""
	for {
		typ, body, err := pgRead(rd)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case 'D': // DataRow: int16 count, then int32 length and bytes per column
			if len(body) >= 6 {
				n := int(int32(binary.BigEndian.Uint32(body[2:])))
				if n >= 0 && len(body) >= 6+n {
					value = string(body[6 : 6+n])
				}
			}
		case 'E':
			t.Fatal(pgError(body))
		case 'Z':
			return value
		}
	}
}

// pgQuery sends a simple query on an open connection and reads up to
// ReadyForQuery, within timeout.
func pgQuery(conn net.Conn, sql string, timeout time.Duration) error {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	if err := pgSend(conn, sql); err != nil {
		return err
	}
	var failed error
	rd := bufio.NewReader(conn)
	for {
		typ, body, err := pgRead(rd)
		if err != nil {
			return err
		}
		switch typ {
		case 'E':
			failed = pgError(body)
		case 'Z':
			return failed
		}
	}
}

func pgSend(conn net.Conn, sql string) error {
	msg := []byte{'Q'}
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(sql)+1))
	msg = append(append(msg, sql...), 0)
	_, err := conn.Write(msg)
	return err
}

func TestParsePostgresDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want pgTarget
	}{
		{"postgres://u:pw@db.example:6000/app?sslmode=disable", pgTarget{"tcp", "db.example:6000", "u", "app"}},
		{"postgresql://127.0.0.1/x", pgTarget{"tcp", "127.0.0.1:5432", "postgres", "x"}},
		{"postgres://", pgTarget{"tcp", "localhost:5432", "postgres", "postgres"}},
		{"postgres:///app?host=/run/postgresql&user=me", pgTarget{"unix", "/run/postgresql/.s.PGSQL.5432", "me", "app"}},
		{"host=10.0.0.1 port=7000 user=bob dbname=locks sslmode=disable", pgTarget{"tcp", "10.0.0.1:7000", "bob", "locks"}},
		{"host=/tmp user='alice'", pgTarget{"unix", "/tmp/.s.PGSQL.5432", "alice", "alice"}},
	} {
		got, err := parsePostgresDSN(tc.dsn)
		if err != nil || got != tc.want {
			t.Errorf("parsePostgresDSN(%q) = %+v, %v; want %+v", tc.dsn, got, err, tc.want)
		}
	}
	if _, err := parsePostgresDSN("not a dsn"); err == nil {
		t.Error(`parsePostgresDSN("not a dsn") succeeded`)
	}
}

func TestPostgresExternal(t *testing.T) {
	srv := StartPostgres(t, Private())
	t.Setenv(EnvPostgres, srv.DSN())
	pg := StartPostgres(t)
	if !pg.External() || pg.DSN() != srv.DSN() || pg.Addr() != srv.Addr() {
		t.Fatalf("with %s set: External() = %v, DSN() = %s; want true, %s", EnvPostgres, pg.External(), pg.DSN(), srv.DSN())
	}
	mustAnswer(t, "external", pg.Ping)
	rec := record(t, func(tb testing.TB) { StartPostgres(tb).Kill() })
	if rec.ended != "skip" || !strings.Contains(rec.msg, "Kill needs a private PostgreSQL server") {
		t.Errorf("Kill on an external server ended the test with %q %q; want a skip", rec.ended, rec.msg)
	}
	mustAnswer(t, "external, after the skipped Kill", srv.Ping)

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPostgres, "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres")
	rec = record(t, func(tb testing.TB) { StartPostgres(tb) })
	wantUnavailable(t, rec, EnvPostgres+"=postgres://")
}

func TestPostgresMissingBinary(t *testing.T) {
	t.Setenv(EnvPostgres, "") // the external server would be used instead
	t.Setenv("PATH", t.TempDir())
	saved := postgresDirGlobs
	postgresDirGlobs = nil
	t.Cleanup(func() { postgresDirGlobs = saved })
	rec := record(t, func(tb testing.TB) { StartPostgres(tb) })
	wantUnavailable(t, rec, "initdb and postgres not found")
	if !strings.Contains(rec.msg, EnvPostgres) {
		t.Errorf("message %q does not say how to provide a server (%s)", rec.msg, EnvPostgres)
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin") {
		t.Error("9.6 sorts after 15")
	}
	if versionLess("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin") {
		t.Error("16 sorts before 15")
	}
}
