package pglock_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/pglock"
)

var modes = []pglock.Mode{pglock.LeaseRow, pglock.Advisory}

func table(mode pglock.Mode) string {
	if mode == pglock.Advisory {
		return pglock.DefaultSessionTable
	}
	return pglock.DefaultTable
}

// open returns a Client on dsn, closed when the test ends.
func open(t *testing.T, dsn string, mode pglock.Mode, opts ...distlock.Option) *distlock.Client {
	t.Helper()
	opts = append([]distlock.Option{distlock.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := pglock.Open(t.Context(), dsn, &pglock.Options{Mode: mode}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestKilledMidAcquire terminates the session of a client while its acquire
// waits inside the database (an admin transaction holds the row), as an
// operator or a failover would: the statement never commits, the client
// learns it does not hold the lock, and the key is free at once.
func TestKilledMidAcquire(t *testing.T) {
	dsn, admin := startPostgres(t)
	ctx := t.Context()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			app := "distlock-killed-" + mode.String() // names the session to kill
			c := open(t, withParam(dsn, "application_name", app), mode, distlock.WithTTL(2*time.Second))
			other := open(t, dsn, mode)
			key := "killed-mid-acquire"
			// The row must exist for the admin to lock it.
			l, err := other.TryLock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Unlock(ctx); err != nil {
				t.Fatal(err)
			}

			tx, err := admin.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, "SELECT 1 FROM "+table(mode)+" WHERE lock_key = $1 FOR UPDATE", key); err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				l, err := c.TryLock(ctx, key)
				if err == nil {
					l.Unlock(ctx)
					err = errors.New("TryLock succeeded")
				}
				got <- err
			}()
			// Wait until the acquire is blocked on the row, then kill it.
			var killed int
			for deadline := time.Now().Add(10 * time.Second); killed == 0 && time.Now().Before(deadline); {
				err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND application_name = $1 AND query LIKE 'INSERT INTO `+table(mode)+`%'`, app).Scan(&killed)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if killed == 0 {
				t.Fatal("the acquire never blocked on the row")
			}
			tx.Rollback(ctx)
			err = <-got
			if err == nil || errors.Is(err, distlock.ErrLocked) {
				t.Errorf("TryLock whose session was killed: %v, want an error saying it failed (not contention)", err)
			}
			st, err := other.Status(ctx, key)
			if err != nil || st.Held {
				t.Errorf("Status after the killed acquire = %+v, %v; want free", st, err)
			}
			l2, err := other.TryLock(ctx, key)
			if err != nil {
				t.Fatalf("the key is not free after the killed acquire: %v", err)
			}
			if l2.Fence() <= l.Fence() {
				t.Errorf("fence %d after %d", l2.Fence(), l.Fence())
			}
			l2.Unlock(ctx)
		})
	}
}

// withParam adds a query parameter to a URL DSN.
func withParam(dsn, name, value string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + name + "=" + value
}

// proxy forwards TCP connections to a server and can cut a connection
// after the server's next reply has been received, without passing it on:
// the request took effect, and the client never learns it.
type proxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool // cut the next connection that gets a reply
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(server, client); server.Close() })
		p.wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && p.cut.CompareAndSwap(true, false) {
					client.Close()
					server.Close()
					return
				}
				if n > 0 {
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					client.Close()
					return
				}
			}
		})
	}
}

// TestReplyLostAfterCommit cuts the connection of an acquire after the
// database committed it and before its reply reached the client: the
// read-back by token must find the lock granted (lease-row mode), or, in
// advisory mode, find it free (the holder's session died with the
// connection, so nobody holds it); in both the key is not orphaned.
func TestReplyLostAfterCommit(t *testing.T) {
	pg := testserver.StartPostgres(t)
	p := startProxy(t, pg.Addr())
	cfg, err := pgxpool.ParseConfig(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.ConnConfig.User, p.ln.Addr(), cfg.ConnConfig.Database)
	ctx := t.Context()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := open(t, dsn, mode)
			other := open(t, pg.DSN(), mode)
			key := "reply-lost-" + mode.String()
			// Use the connections just before, so that pgx's database/sql
			// layer does not ping them first (it does after a second idle)
			// and the cut hits the acquire's reply.
			warm, err := c.TryLock(ctx, key+"-warm")
			if err != nil {
				t.Fatal(err)
			}
			warm.Unlock(ctx)
			p.cut.Store(true)
			l, err := c.TryLock(ctx, key)
			if p.cut.Load() {
				t.Fatal("no reply was cut")
			}
			switch mode {
			case pglock.LeaseRow:
				if err != nil {
					t.Fatalf("TryLock whose reply was lost after commit: %v; want the lock, read back by token", err)
				}
				st, err := other.Status(ctx, key)
				if err != nil || !st.Held || st.Fence != l.Fence() {
					t.Errorf("Status = %+v, %v; want held with fence %d", st, err, l.Fence())
				}
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			case pglock.Advisory:
				if err == nil {
					// The cut hit the beacon's reply before the upsert: fine.
					l.Unlock(ctx)
				}
			}
			l2, err := other.TryLock(ctx, key)
			if err != nil {
				t.Fatalf("the key is orphaned after the lost reply: %v", err)
			}
			l2.Unlock(ctx)
		})
	}
}

// TestRestartWhileHeld restarts the database while a lock is held, down for
// longer than the lock's TTL: the holder learns of the loss, and the next
// holder's fence is above the lost one.
func TestRestartWhileHeld(t *testing.T) {
	pg := testserver.StartPostgres(t, testserver.Private())
	ctx := t.Context()
	const ttl = time.Second
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := open(t, pg.DSN(), mode, distlock.WithTTL(ttl))
			key := "restart-" + mode.String()
			l, err := c.TryLock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			pg.Stop()
			time.Sleep(ttl + ttl/2)
			pg.Restart()
			select {
			case <-l.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the holder did not learn of its loss")
			}
			if !errors.Is(l.Err(), distlock.ErrLost) {
				t.Errorf("Err = %v, want ErrLost", l.Err())
			}
			other := open(t, pg.DSN(), mode)
			var l2 *distlock.Lock
			for deadline := time.Now().Add(10 * time.Second); ; {
				if l2, err = other.TryLock(ctx, key); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("TryLock after the restart: %v", err)
			}
			if l2.Fence() <= l.Fence() {
				t.Errorf("fence after restart %d, not above the lost %d", l2.Fence(), l.Fence())
			}
			l2.Unlock(ctx)
		})
	}
}

// TestCrashKeepsFencesMonotonic kills the database (the test server does
// not wait for the disk, so recent commits may be lost) and checks that
// fences keep growing: they are seeded from the clock.
func TestCrashKeepsFencesMonotonic(t *testing.T) {
	pg := testserver.StartPostgres(t, testserver.Private())
	ctx := t.Context()
	key := "crash"
	var last uint64
	for round := range 2 {
		c, err := pglock.Open(ctx, pg.DSN(), nil, distlock.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			l, err := c.TryLock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if l.Fence() <= last {
				t.Errorf("round %d: fence %d after %d", round, l.Fence(), last)
			}
			last = l.Fence()
			l.Unlock(ctx)
		}
		c.Close()
		pg.Kill()
		pg.Restart()
	}
}

// TestKeysAreData stores and locks keys full of SQL syntax.
func TestKeysAreData(t *testing.T) {
	dsn, admin := startPostgres(t)
	ctx := t.Context()
	keys := []string{
		`'`, `''`, `"`, `';--`, `'); DROP TABLE distlock_locks; --`, `/* comment */`, `*/`, `-- x`,
		`a' OR '1'='1`, `$1`, `$$`, `\`, `%_`, `;`, `{table}`, "line\nbreak", "ключ 🔒",
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a, b := open(t, dsn, mode), open(t, dsn, mode)
			for _, k := range keys {
				l, err := a.TryLock(ctx, k)
				if err != nil {
					t.Fatalf("TryLock(%q): %v", k, err)
				}
				if _, err := b.TryLock(ctx, k); !errors.Is(err, distlock.ErrLocked) {
					t.Errorf("second TryLock(%q): %v, want ErrLocked", k, err)
				}
				var stored string
				if err := admin.QueryRow(ctx, "SELECT lock_key FROM "+table(mode)+" WHERE lock_key = $1", k).Scan(&stored); err != nil || stored != k {
					t.Errorf("stored key %q, %v; want %q", stored, err, k)
				}
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock(%q): %v", k, err)
				}
			}
			var n int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table(mode)).Scan(&n); err != nil || n < len(keys) {
				t.Errorf("%d rows (%v), want at least %d: the table is intact", n, err, len(keys))
			}
		})
	}
}
