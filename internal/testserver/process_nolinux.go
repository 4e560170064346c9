//go:build unix && !linux

package testserver

import (
	"os"
	"syscall"
)

// setDeathSignal does nothing: only Linux can tie a child's life to its
// parent's. Elsewhere a server outlives a test binary that is killed.
func setDeathSignal(*syscall.SysProcAttr) {}

// descendants finds nothing: without /proc only the server's process group
// is signalled, and PostgreSQL backends, which leave it, are neither paused
// nor killed with it.
func descendants(int) []int { return nil }

func waitStopped(int) {}
func waitGone(int)    {}

func scratchRoot() string { return os.TempDir() }
