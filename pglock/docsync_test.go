package pglock

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
	short := strings.NewReplacer(leaserow.PostgresNowUs, "NOW_US", leaserow.PostgresNowMs, "NOW_MS")
	for name, stmt := range map[string]string{
		"CreateTable": leaserow.PostgresCreateTable,
		"Acquire":     leaserow.PostgresAcquire,
		"AcquireRead": leaserow.PostgresAcquireRead,
		"Release":     leaserow.PostgresRelease,
		"Renew":       leaserow.PostgresRenew,
		"Inspect":     leaserow.PostgresInspect,
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
