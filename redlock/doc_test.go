package redlock

import (
	"os"
	"strings"
	"testing"
)

// TestDocShowsScript keeps the wire protocol in doc.go verbatim: the one
// script of this package must appear there, comments aside.
func TestDocShowsScript(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok {
			doc.WriteString(rest)
		}
	}
	var code strings.Builder
	for line := range strings.Lines(fenceLua) {
		if !strings.HasPrefix(line, "--") {
			code.WriteString(line)
		}
	}
	if !strings.Contains(doc.String(), code.String()) {
		t.Errorf("doc.go does not show fence.lua verbatim; it is:\n%s", code.String())
	}
}
