package pglock

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
		strings.NewReplacer(leaserow.PostgresNowUs, "NOW_US", leaserow.PostgresNowMs, "NOW_MS"),
		map[string]string{
			"CreateTable": leaserow.PostgresCreateTable,
			"Acquire":     leaserow.PostgresAcquire,
			"AcquireRead": leaserow.PostgresAcquireRead,
			"Release":     leaserow.PostgresRelease,
			"Renew":       leaserow.PostgresRenew,
			"Inspect":     leaserow.PostgresInspect,
			"Purge":       leaserow.PostgresPurge,
		})
}
