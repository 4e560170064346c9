package mysqllock

import (
	"os"
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/leaserow"
)

// TestDocShowsStatements checks that the wire protocol in the package
// documentation is the SQL the driver sends (with the clock written as
// NOW_MS and NOW_US), so that other languages can rely on it.
func TestDocShowsStatements(t *testing.T) {
	doc := codeBlocks(t, "doc.go")
	short := strings.NewReplacer(leaserow.MySQLNowMs, "NOW_MS", leaserow.MySQLNowUs, "NOW_US", "{keys}", "?, ...", "{tokens}", "?, ...")
	for name, stmt := range map[string]string{
		"CreateTable": leaserow.MySQLCreateTable,
		"Acquire":     leaserow.MySQLAcquire,
		"AcquireRead": leaserow.MySQLAcquireRead,
		"Release":     leaserow.MySQLRelease,
		"Renew":       leaserow.MySQLRenew,
		"RenewRead":   leaserow.MySQLRenewRead,
		"Inspect":     leaserow.MySQLInspect,
	} {
		for _, line := range strings.Split(short.Replace(stmt), "\n") {
			if !strings.Contains(doc, line) {
				t.Errorf("%s: doc.go lacks the line %q", name, line)
			}
		}
	}
}

// codeBlocks returns the indented code lines of a Go file's comments.
func codeBlocks(t *testing.T, file string) string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		if l, ok := strings.CutPrefix(line, "//\t"); ok {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
