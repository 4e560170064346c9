package sqlitelock_test

import (
	"context"
	"testing"

	"github.com/distlock/distlock/internal/leaserowtest"
	"github.com/distlock/distlock/sqlitelock"
)

// TestPurge: see leaserowtest.PurgeDeletesFreeRows.
func TestPurge(t *testing.T) {
	path := dbPath(t)
	drv, err := sqlitelock.OpenDriver(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	leaserowtest.PurgeDeletesFreeRows(t, drv, func(ctx context.Context, key string) (k string, err error) {
		err = raw.QueryRowContext(ctx, "SELECT lock_key FROM "+sqlitelock.DefaultTable+" WHERE lock_key = ?", key).Scan(&k)
		return k, err
	})
}
