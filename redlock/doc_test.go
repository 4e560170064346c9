package redlock

import (
	"testing"

	"github.com/distlock/distlock/internal/rediswire/rediswiretest"
)

// TestDocShowsScript keeps the wire protocol in doc.go verbatim: the one
// script of this package must appear there, comments aside.
func TestDocShowsScript(t *testing.T) {
	rediswiretest.DocShowsScripts(t, "doc.go", map[string]string{"fence.lua": fenceLua})
}
