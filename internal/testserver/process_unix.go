//go:build unix

package testserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

const supported = true

var sysSignals = map[signal]syscall.Signal{
	sigInt:  syscall.SIGINT,
	sigTerm: syscall.SIGTERM,
	sigKill: syscall.SIGKILL,
	sigStop: syscall.SIGSTOP,
	sigCont: syscall.SIGCONT,
}

// configure puts the child in a process group of its own (so that signals
// reach every process of the server and none of the test's), runs it as o,
// and, on Linux, has the kernel kill it if the test binary dies.
func configure(cmd *exec.Cmd, o *owner) {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}
	}
	setDeathSignal(attr)
	cmd.SysProcAttr = attr
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig signal) error {
	err := syscall.Kill(-pid, sysSignals[sig])
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// signalProcess sends sig to pid alone.
func signalProcess(pid int, sig signal) error {
	err := syscall.Kill(pid, sysSignals[sig])
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// unprivilegedOwner returns the user to run servers as that refuse to run as
// root (PostgreSQL): nil when the test does not run as root, else the
// "postgres" user, or "nobody" when there is none.
func unprivilegedOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &owner{uid: uid, gid: gid}, nil
	}
	return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody user exists to run the server as")
}

func isRoot() bool { return os.Geteuid() == 0 }

// processExists reports whether pid names a process (perhaps, after pid
// reuse, another one than it named before: then a stale directory is merely
// kept).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
