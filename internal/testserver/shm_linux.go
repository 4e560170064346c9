//go:build linux && (amd64 || arm64)

package testserver

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// removeStaleSegment removes the SysV shared memory segment that a killed
// PostgreSQL server left behind: the one its postmaster.pid names (line 7:
// key and id), if /proc/sysvipc/shm shows that id with that key and no
// process attached. A server that shut down cleanly removed both the segment
// and the file.
func removeStaleSegment(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	key, id := f[0], f[1]
	table, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return
	}
	for _, row := range strings.Split(string(table), "\n") {
		// key shmid perms size cpid lpid nattch ...
		c := strings.Fields(row)
		if len(c) >= 7 && c[0] == key && c[1] == id && c[6] == "0" {
			if n, err := strconv.Atoi(id); err == nil {
				const ipcRMID = 0
				syscall.Syscall(syscall.SYS_SHMCTL, uintptr(n), ipcRMID, 0)
			}
			return
		}
	}
}
