package leaserowtest

import (
	"os"
	"strings"
	"testing"
)

// DocShowsStatements checks that the code blocks of a Go file's comments
// (its package documentation) show every line of each statement, as the
// driver sends it after short has written its clock expressions and batch
// markers the way the documentation does: other languages rely on it.
func DocShowsStatements(t *testing.T, file string, short *strings.Replacer, stmts map[string]string) {
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
	doc := b.String()
	for name, stmt := range stmts {
		for _, line := range strings.Split(short.Replace(stmt), "\n") {
			if !strings.Contains(doc, line) {
				t.Errorf("%s: %s lacks the line %q", name, file, line)
			}
		}
	}
}
