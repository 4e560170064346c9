//go:build !unix

package testserver

import (
	"errors"
	"os"
	"os/exec"
)

// supported is false: the lifecycle methods need Unix signals (SIGSTOP above
// all), so the Start functions report the servers as unavailable.
const supported = false

var errUnsupported = errors.New("testserver: needs a Unix system")

func configure(*exec.Cmd, *owner)        {}
func signalGroup(int, signal) error      { return errUnsupported }
func signalProcess(int, signal) error    { return errUnsupported }
func descendants(int) []int              { return nil }
func waitStopped(int)                    {}
func waitGone(int)                       {}
func unprivilegedOwner() (*owner, error) { return nil, errUnsupported }
func isRoot() bool                       { return false }
func scratchRoot() string                { return os.TempDir() }
func processExists(int) bool             { return true }
