//go:build !linux

package main

import "syscall"

// childSysProcAttr is nil: this platform has no parent-death signal. CMD is
// still stopped when the lock is lost while distlock runs, but if distlock
// itself is killed (kill -9, a crash), CMD runs on until it ends while the
// lock expires after its TTL.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// parentDeathSignal reports whether CMD dies with distlock on this platform.
const parentDeathSignal = false
