//go:build unix && !linux

package main

// setUpSupervisor does nothing: orphans of CMD's tree go to init, which
// reaps them.
func setUpSupervisor() {}
