package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// forwardedSignals are passed on to CMD while it runs. While distlock waits
// for the lock they end the wait instead.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// startChild starts cmd and returns a channel that receives cmd.Wait's
// result.
//
// The goroutine that starts cmd stays locked to its OS thread until cmd has
// been waited for. Linux's parent-death signal (childSysProcAttr) fires when
// the thread that forked exits, not the process, and the Go runtime ends a
// thread when a goroutine locked to it returns without unlocking: unlocked,
// the fork could happen on a thread that another goroutine later locks and
// takes down, and CMD would be killed for nothing.
func startChild(cmd *exec.Cmd) (<-chan error, error) {
	cmd.SysProcAttr = childSysProcAttr()
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// startFailureCode is the shell's status for a command that did not start:
// 127 when it was not found, 126 when it was found but cannot be executed.
func startFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitCannotExec
}

// exitStatus is CMD's status the shell's way: its exit code, or 128+N when
// signal N ended it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// terminate asks p to stop with SIGTERM, or kills it where SIGTERM cannot be
// sent (Windows).
func terminate(p *os.Process) {
	err := p.Signal(syscall.SIGTERM)
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.Kill()
	}
}
