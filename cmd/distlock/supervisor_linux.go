package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// setUpSupervisor makes this process a subreaper: the orphans of CMD's tree
// become its children, not init's, so that it reaps them and sees CMD's
// group empty. It also names the process after supervisorArg0 (the kernel
// keeps 15 bytes), which ps and top would otherwise show as "exe", from
// /proc/self/exe. Both are best effort: without the first, orphans go to
// init, which reaps them too.
func setUpSupervisor() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	os.WriteFile("/proc/self/comm", []byte(supervisorArg0), 0)
}
