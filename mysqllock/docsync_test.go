package mysqllock

import (
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/leaserow"
	"github.com/distlock/distlock/internal/leaserowtest"
)

// TestDocShowsStatements checks that the wire protocol in the package
// documentation is the SQL the driver sends (with the clock written as
// NOW_MS and NOW_US), so that other languages can rely on it.
func TestDocShowsStatements(t *testing.T) {
	leaserowtest.DocShowsStatements(t, "doc.go",
		strings.NewReplacer(leaserow.MySQLNowMs, "NOW_MS", leaserow.MySQLNowUs, "NOW_US", "{keys}", "?, ...", "{tokens}", "?, ..."),
		map[string]string{
			"CreateTable": leaserow.MySQLCreateTable,
			"Acquire":     leaserow.MySQLAcquire,
			"AcquireRead": leaserow.MySQLAcquireRead,
			"Release":     leaserow.MySQLRelease,
			"Renew":       leaserow.MySQLRenew,
			"RenewRead":   leaserow.MySQLRenewRead,
			"Inspect":     leaserow.MySQLInspect,
			"Purge":       leaserow.MySQLPurge,
		})
}
