//go:build linux

package main

import "syscall"

// childSysProcAttr asks the kernel to SIGKILL CMD when the thread that
// started it dies, so CMD cannot outlive distlock and run on without the lock
// being renewed, even when distlock is killed with kill -9. startChild keeps
// that thread alive until CMD has been waited for.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// parentDeathSignal reports whether CMD dies with distlock on this platform.
const parentDeathSignal = true
