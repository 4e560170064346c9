package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// forwardedSignals are passed on to CMD's process group while CMD runs.
// While distlock waits for the lock they end the wait instead.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// startError is a failure to start CMD, with the shell's status for it.
type startError struct {
	code int // exitNotFound or exitCannotExec
	msg  string
}

func (e *startError) Error() string { return e.msg }

// startFailureCode is the shell's status for a command that did not start:
// 127 when it was not found, 126 when it was found but cannot be executed.
func startFailureCode(err error) int {
	var se *startError
	switch {
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return exitNotFound
	}
	return exitCannotExec
}

// exitStatus is a process's status the shell's way: its exit code, or 128+N
// when signal N ended it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}
