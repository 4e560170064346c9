//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The supervisor is distlock re-executed as CMD's parent. It starts CMD in a
// process group of its own and outlives it: it reports CMD's stops and end
// to distlock, reaps what CMD leaves behind, and exits once CMD's group is
// empty. If distlock dies first, however it dies, the supervisor kills
// CMD's whole group and exits. It stays in a process group of its own,
// outside CMD's, so that neither the terminal's keys nor CMD's kill 0 reach
// it, and so that "CMD's group is empty" can be asked of the kernel.
//
// It is not a command: distlock starts it with argv[0] set to
// supervisorArg0, which main (and the tests' TestMain) check first
// (superviseIfAsked).
//
// Reports go to distlock on a pipe, one line each:
//
//	started PID         CMD runs; its process group is PID
//	failed CODE TEXT    CMD did not start (CODE 126 or 127)
//	stopped SIG         CMD was stopped by signal SIG
//	exited STATUS LEFT  CMD ended with wait status STATUS; LEFT says whether
//	                    processes remain in its group
//
// and the pipe's end means the supervisor has exited.

// supervisorArg0 is the supervisor's argv[0]. Its argv goes on with the
// terminal mode (supervisorForeground or supervisorBackground) and CMD.
const supervisorArg0 = "distlock-supervisor"

const (
	supervisorForeground = "foreground" // CMD's group takes the terminal (supervisorTTYFD)
	supervisorBackground = "background"
)

// The descriptors distlock passes to the supervisor.
const (
	// supervisorLifeFD is the read end of a pipe that only distlock holds
	// the write end of, and never writes: it reads EOF when distlock is gone.
	supervisorLifeFD   = 3
	supervisorReportFD = 4 // the write end of the reports
	supervisorTTYFD    = 5 // the controlling terminal, in foreground mode
)

// superviseIfAsked runs the supervisor and exits when this process is
// one; otherwise it returns at once. The exit is syscall.Exit, not os.Exit:
// there is nothing to flush, and a -race build would sleep a second first.
func superviseIfAsked() {
	if len(os.Args) < 3 || os.Args[0] != supervisorArg0 {
		return
	}
	syscall.Exit(superviseCMD(os.Args[1] == supervisorForeground, os.Args[2:]))
}

// leftoverPoll is how often the supervisor looks whether CMD's group has
// emptied, once CMD has ended and left processes in it.
const leftoverPoll = 10 * time.Millisecond

func superviseCMD(foreground bool, argv []string) int {
	// CMD inherits none of these.
	for _, fd := range []int{supervisorLifeFD, supervisorReportFD, supervisorTTYFD} {
		syscall.CloseOnExec(fd)
	}
	life := os.NewFile(supervisorLifeFD, "life")
	report := os.NewFile(supervisorReportFD, "report")
	say := func(format string, args ...any) {
		fmt.Fprintf(report, format+"\n", args...) // after distlock's death, EPIPE: nobody to tell
	}
	if len(argv) == 0 {
		say("failed %d no CMD", exitCannotExec)
		return exitUsage
	}

	// Signals sent to this process are not for CMD (distlock forwards them
	// to CMD's group itself) and must not end it. Caught, not ignored: CMD
	// gets them at their defaults, except those distlock was started with
	// ignored (nohup), which stay ignored.
	notifySignals(make(chan os.Signal, 1))
	setUpSupervisor()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if foreground {
		// Unless distlock's group has lost the terminal since it asked
		// (Ctrl-Z while this process started): CMD would take it from the
		// shell. distlock gives it to CMD's group when continued.
		tty := os.NewFile(supervisorTTYFD, "tty")
		fg, err := foregroundGroup(tty)
		parentGroup, _ := syscall.Getpgid(os.Getppid())
		cmd.SysProcAttr.Foreground = err == nil && fg == parentGroup
		cmd.SysProcAttr.Ctty = supervisorTTYFD
	}

	var mu sync.Mutex
	group := 0 // CMD's process group, once started
	go func() {
		io.Copy(io.Discard, life) // returns when distlock is gone
		mu.Lock()
		if group != 0 {
			syscall.Kill(-group, syscall.SIGKILL)
		}
		syscall.Exit(1)
	}()

	mu.Lock()
	if err := cmd.Start(); err != nil {
		mu.Unlock()
		say("failed %d %s", startFailureCode(err), strings.ReplaceAll(err.Error(), "\n", " "))
		return 0
	}
	pid := cmd.Process.Pid
	group = pid
	mu.Unlock()
	say("started %d", pid)

	// CMD is waited for here, not with cmd.Wait: stops must be seen, and
	// orphans reaped.
	var ws syscall.WaitStatus
	for {
		wpid, err := syscall.Wait4(-1, &ws, syscall.WUNTRACED, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 1 // cannot be: CMD is a child until reaped. distlock kills its group.
		}
		if wpid != pid {
			continue // an orphan, reaped
		}
		if ws.Stopped() {
			say("stopped %d", ws.StopSignal())
			continue
		}
		break
	}
	reapOrphans()
	left := groupExists(pid)
	say("exited %d %t", uint32(ws), left)
	// distlock stops what is left; the group is empty once its last
	// process is reaped (here, or by init where orphans go there).
	for left {
		time.Sleep(leftoverPoll)
		reapOrphans()
		left = groupExists(pid)
	}
	return 0
}

// reapOrphans reaps the children that have ended, without waiting.
func reapOrphans() {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || wpid <= 0 {
			return
		}
	}
}

// groupExists reports whether process group pgid has any process (EPERM:
// one that this process may not signal, a setuid program).
func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || err == syscall.EPERM
}
