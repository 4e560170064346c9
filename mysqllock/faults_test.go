package mysqllock_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserowtest"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/mysqllock"
)

var modes = []mysqllock.Mode{mysqllock.LeaseRow, mysqllock.GetLock}

func table(mode mysqllock.Mode) string {
	if mode == mysqllock.GetLock {
		return mysqllock.DefaultSessionTable
	}
	return mysqllock.DefaultTable
}

// open returns a Client on dsn, closed when the test ends.
func open(t *testing.T, dsn string, mode mysqllock.Mode, opts ...distlock.Option) *distlock.Client {
	t.Helper()
	opts = append([]distlock.Option{distlock.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := mysqllock.Open(t.Context(), dsn, &mysqllock.Options{Mode: mode}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openDriver returns the bare driver on dsn, closed when the test ends.
func openDriver(t *testing.T, dsn string, mode mysqllock.Mode) driver.Driver {
	t.Helper()
	d, err := mysqllock.OpenDriver(t.Context(), dsn, &mysqllock.Options{Mode: mode})
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
	dsn, admin := startMariaDB(t)
	ctx := t.Context()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := open(t, dsn, mode, distlock.WithTTL(2*time.Second))
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

			conn, err := admin.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, "SELECT 1 FROM "+table(mode)+" WHERE lock_key = ? FOR UPDATE", key); err != nil {
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
			killed := false
			for deadline := time.Now().Add(10 * time.Second); !killed && time.Now().Before(deadline); {
				var id int64
				err := admin.QueryRowContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
WHERE INFO LIKE 'INSERT INTO `+table(mode)+`%' LIMIT 1`).Scan(&id)
				if err == nil {
					if _, err := admin.ExecContext(ctx, "KILL ?", id); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !killed {
				t.Fatal("the acquire never blocked on the row")
			}
			tx.Rollback()
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

// backend is this package for the shared fault tests; admin, if not nil,
// reads rows behind the driver's back.
func backend(admin *sql.DB) leaserowtest.Backend[mysqllock.Mode] {
	b := leaserowtest.Backend[mysqllock.Mode]{Modes: modes, LeaseRow: mysqllock.LeaseRow, Open: open, Driver: openDriver, Table: table}
	if admin != nil {
		b.StoredKey = func(ctx context.Context, table, key string) (stored string, err error) {
			err = admin.QueryRowContext(ctx, "SELECT lock_key FROM "+table+" WHERE lock_key = ?", key).Scan(&stored)
			return stored, err
		}
		b.Rows = func(ctx context.Context, table string) (n int, err error) {
			err = admin.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n)
			return n, err
		}
	}
	return b
}

// isStatement reports whether a client packet is a statement (COM_QUERY,
// COM_STMT_EXECUTE), whose reply the proxy may cut, rather than a
// COM_STMT_PREPARE, which has no effect.
func isStatement(packet []byte) bool {
	return len(packet) > 4 && (packet[4] == 0x03 || packet[4] == 0x17)
}

// TestReplyLostAfterCommit: see leaserowtest.ReplyLostAfterCommit.
func TestReplyLostAfterCommit(t *testing.T) {
	db := testserver.StartMariaDB(t)
	p := leaserowtest.StartProxy(t, db.Addr(), isStatement)
	cfg, err := mysql.ParseDSN(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = p.Addr()
	leaserowtest.ReplyLostAfterCommit(t, backend(nil), p, cfg.FormatDSN(), db.DSN())
}

// TestRestartWhileHeld: see leaserowtest.RestartWhileHeld.
func TestRestartWhileHeld(t *testing.T) {
	leaserowtest.RestartWhileHeld(t, backend(nil), testserver.StartMariaDB(t, testserver.Private()))
}

// TestCrashKeepsFencesMonotonic: see leaserowtest.CrashKeepsFencesMonotonic.
func TestCrashKeepsFencesMonotonic(t *testing.T) {
	leaserowtest.CrashKeepsFencesMonotonic(t, backend(nil), testserver.StartMariaDB(t, testserver.Private()))
}

// TestKeysAreData stores and locks keys full of SQL syntax, MySQL's
// placeholder, backslash escapes and comment marker among them.
func TestKeysAreData(t *testing.T) {
	dsn, admin := startMariaDB(t)
	leaserowtest.KeysAreData(t, backend(admin), dsn, append([]string{`?`, `\\'`, `#`}, leaserowtest.SQLKeys...))
}

// TestAbandonedSession: see leaserowtest.AbandonedSession.
func TestAbandonedSession(t *testing.T) {
	db := testserver.StartMariaDB(t)
	p := leaserowtest.StartProxy(t, db.Addr(), leaserowtest.IsUpsert)
	cfg, err := mysql.ParseDSN(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = p.Addr()
	cfg.InterpolateParams = true // statements with their text, for the proxy to tell the upsert by
	leaserowtest.AbandonedSession(t, backend(nil), p, cfg.FormatDSN(), db.DSN())
}
