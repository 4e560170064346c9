package sqlitelock_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/sqlitelock"
)

// harness gives each NewDriver its own connections to one database file, as
// separate processes would have, evicts with a plain DELETE through a
// handle of its own, and rolls the lock table back to a copy of its rows.
type harness struct {
	path  string
	admin *sql.DB
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return sqlitelock.OpenDriver(ctx, h.path, nil)
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	_, err := h.admin.ExecContext(ctx, "DELETE FROM distlock_locks WHERE lock_key = ?", key)
	return err
}

// Snapshot copies the lock table's rows; the rollback puts them back, as a
// restored backup, or a power cut that lost the last commits, would.
func (h *harness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	return drivertest.SnapshotTable(ctx, h.admin, "distlock_locks")
}

func (h *harness) Lacks() map[string]string {
	return map[string]string{
		"transport": "the store is a file each process opens, not reached over a network",
		"restart":   "there is no server to restart",
	}
}

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks.db")
	// Opening a driver first creates the table the admin handle deletes from.
	drv, err := sqlitelock.OpenDriver(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := drv.Close(); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	drivertest.RunConformanceTests(t, &harness{path: path, admin: admin})
}
