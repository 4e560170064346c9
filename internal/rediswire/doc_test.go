package rediswire

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/rediswire/rediswiretest"
)

// TestDocShowsScripts keeps the wire protocol in doc.go verbatim: every
// embedded script must appear there.
func TestDocShowsScripts(t *testing.T) {
	files, err := fs.Glob(luaFiles, "lua/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no embedded scripts: %v", err)
	}
	scripts := map[string]string{}
	for _, name := range files {
		scripts[name] = lua(strings.TrimPrefix(name, "lua/"))
	}
	rediswiretest.DocShowsScripts(t, "doc.go", scripts)
}
