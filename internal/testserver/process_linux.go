package testserver

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// setDeathSignal has the kernel SIGKILL the child when the thread that
// started it dies, which for a Go program means when the test binary dies
// (the runtime does not end its threads, except those a goroutine locked with
// runtime.LockOSThread and never unlocked).
func setDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// descendants returns the processes descended from pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(n); ok {
			children[ppid] = append(children[ppid], n)
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// procStat returns a process's parent and state ('R', 'S', 'T', 'Z', ...).
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) == 0 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// waitStopped waits (up to five seconds) until pid is stopped or gone.
func waitStopped(pid int) {
	waitFor(pid, func(state byte, exists bool) bool {
		return !exists || state == 'T' || state == 't' || state == 'Z' || state == 'X'
	})
}

// waitGone waits (up to five seconds) until pid has exited.
func waitGone(pid int) {
	waitFor(pid, func(state byte, exists bool) bool {
		return !exists || state == 'Z' || state == 'X'
	})
}

func waitFor(pid int, done func(state byte, exists bool) bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, state, ok := procStat(pid)
		if done(state, ok) || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// scratchRoot is where instance directories go: /dev/shm when it is a
// writable tmpfs with room to spare, as creating the thousand files of a
// data directory there takes a tenth of the time it takes on a disk (and the
// servers never wait for one); else the temporary directory.
func scratchRoot() string {
	const shm, room = "/dev/shm", 2 << 30
	var st syscall.Statfs_t
	if err := syscall.Statfs(shm, &st); err == nil &&
		st.Type == 0x01021994 && // TMPFS_MAGIC
		uint64(st.Bavail)*uint64(st.Bsize) >= room &&
		syscall.Access(shm, 0x2|0x1) == nil { // W_OK|X_OK
		return shm
	}
	return os.TempDir()
}
