package pglock_test

import (
	"context"
	"testing"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserowtest"
	"github.com/distlock/distlock/pglock"
)

// TestPurge: see leaserowtest.PurgeDeletesFreeRows.
func TestPurge(t *testing.T) {
	dsn, admin := startPostgres(t)
	leaserowtest.PurgeInEveryMode(t, backend(admin), func(ctx context.Context, mode pglock.Mode, table string) (driver.Driver, error) {
		return pglock.OpenDriver(ctx, dsn, &pglock.Options{Mode: mode, Table: table})
	})
}
