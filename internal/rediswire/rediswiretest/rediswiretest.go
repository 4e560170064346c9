// Package rediswiretest holds the checks the Redis drivers' tests share: that
// a package documentation shows its scripts verbatim.
package rediswiretest

import (
	"os"
	"strings"
	"testing"
)

// DocShowsScripts checks that the code blocks of file's comments (its
// package documentation) show each script verbatim, blank lines and Lua
// comment lines aside: other languages rely on the documented protocol.
func DocShowsScripts(t *testing.T, file string, scripts map[string]string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok && !strings.HasPrefix(rest, "--") {
			doc.WriteString(rest)
		}
	}
	for name, script := range scripts {
		var code strings.Builder
		for line := range strings.Lines(script) {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--") {
				code.WriteString(line)
			}
		}
		if !strings.Contains(doc.String(), code.String()) {
			t.Errorf("%s does not show %s verbatim; its code is:\n%s", file, name, code.String())
		}
	}
}
