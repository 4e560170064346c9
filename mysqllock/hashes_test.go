package mysqllock_test

import (
	"testing"

	"github.com/distlock/distlock/internal/leaserow"
)

// TestHashesAgree checks that the GET_LOCK name computed in Go is the one
// the SQL computes.
func TestHashesAgree(t *testing.T) {
	_, admin := startMariaDB(t)
	for _, s := range []string{"k", "", "ключ 🔒", "a'b;--", "TOKEN123"} {
		var name string
		if err := admin.QueryRowContext(t.Context(), "SELECT "+leaserow.MySQLBeaconName("?"), s).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if want := leaserow.BeaconName(s); name != want {
			t.Errorf("beacon of %q: SQL %q, Go %q", s, name, want)
		}
	}
}
