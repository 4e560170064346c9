package pglock_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserowtest"
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

// openDriver returns the bare driver on dsn, closed when the test ends.
func openDriver(t *testing.T, dsn string, mode pglock.Mode) driver.Driver {
	t.Helper()
	d, err := pglock.OpenDriver(t.Context(), dsn, &pglock.Options{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
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

// backend is this package for the shared fault tests; admin, if not nil,
// reads rows behind the driver's back.
func backend(admin *pgxpool.Pool) leaserowtest.Backend[pglock.Mode] {
	b := leaserowtest.Backend[pglock.Mode]{Modes: modes, LeaseRow: pglock.LeaseRow, Open: open, Driver: openDriver, Table: table}
	if admin != nil {
		b.StoredKey = func(ctx context.Context, table, key string) (stored string, err error) {
			err = admin.QueryRow(ctx, "SELECT lock_key FROM "+table+" WHERE lock_key = $1", key).Scan(&stored)
			return stored, err
		}
		b.Rows = func(ctx context.Context, table string) (n int, err error) {
			err = admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
			return n, err
		}
	}
	return b
}

// TestReplyLostAfterCommit: see leaserowtest.ReplyLostAfterCommit.
func TestReplyLostAfterCommit(t *testing.T) {
	pg := testserver.StartPostgres(t)
	p := leaserowtest.StartProxy(t, pg.Addr(), nil)
	cfg, err := pgxpool.ParseConfig(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	viaProxy := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.ConnConfig.User, p.Addr(), cfg.ConnConfig.Database)
	leaserowtest.ReplyLostAfterCommit(t, backend(nil), p, viaProxy, pg.DSN())
}

// TestRestartWhileHeld: see leaserowtest.RestartWhileHeld.
func TestRestartWhileHeld(t *testing.T) {
	leaserowtest.RestartWhileHeld(t, backend(nil), testserver.StartPostgres(t, testserver.Private()))
}

// TestCrashKeepsFencesMonotonic: see leaserowtest.CrashKeepsFencesMonotonic.
func TestCrashKeepsFencesMonotonic(t *testing.T) {
	leaserowtest.CrashKeepsFencesMonotonic(t, backend(nil), testserver.StartPostgres(t, testserver.Private()))
}

// TestKeysAreData stores and locks keys full of SQL syntax, PostgreSQL's
// placeholders and dollar quotes among them.
func TestKeysAreData(t *testing.T) {
	dsn, admin := startPostgres(t)
	leaserowtest.KeysAreData(t, backend(admin), dsn, append([]string{`$1`, `$$`}, leaserowtest.SQLKeys...))
}

// TestAbandonedSession: see leaserowtest.AbandonedSession.
func TestAbandonedSession(t *testing.T) {
	pg := testserver.StartPostgres(t)
	p := leaserowtest.StartProxy(t, pg.Addr(), leaserowtest.IsUpsert)
	cfg, err := pgxpool.ParseConfig(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	// Statements with their text on the wire, for the proxy to tell the
	// upsert by.
	viaProxy := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&default_query_exec_mode=exec", cfg.ConnConfig.User, p.Addr(), cfg.ConnConfig.Database)
	leaserowtest.AbandonedSession(t, backend(nil), p, viaProxy, pg.DSN())
}
