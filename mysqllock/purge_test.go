package mysqllock_test

import (
	"context"
	"testing"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserowtest"
	"github.com/distlock/distlock/mysqllock"
)

// TestPurge: see leaserowtest.PurgeDeletesFreeRows.
func TestPurge(t *testing.T) {
	dsn, admin := startMariaDB(t)
	leaserowtest.PurgeInEveryMode(t, backend(admin), func(ctx context.Context, mode mysqllock.Mode, table string) (driver.Driver, error) {
		return mysqllock.OpenDriver(ctx, dsn, &mysqllock.Options{Mode: mode, Table: table})
	})
}
