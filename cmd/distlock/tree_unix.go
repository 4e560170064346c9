//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// supervisedTree reports whether CMD runs in a process group of its own
// under a supervisor: all that distlock does to CMD reaches the group, and
// the group is killed when distlock dies, even by kill -9.
const supervisedTree = true

// tree is CMD's process tree, run by a supervisor (supervisor_unix.go):
// CMD and everything it starts, in a process group of CMD's own.
type tree struct {
	sup   *exec.Cmd // the supervisor, CMD's parent
	life  *os.File  // the write end of the supervisor's life pipe: never written
	group int       // CMD's process group (CMD's pid)

	// tty is distlock's controlling terminal, or nil. jobControl is whether
	// distlock's process group is a job that the shell can stop and
	// continue (not the group of the session's leader), so that a CMD
	// stopped from the terminal stops distlock too.
	tty        *os.File
	jobControl bool

	endedC chan struct{} // closed when CMD has ended
	goneC  chan struct{} // closed when the supervisor has exited
	ws     syscall.WaitStatus
	left   bool  // with ws: processes remained in CMD's group
	err    error // before goneC closes: why CMD's end is unknown, or an output copy error
}

// startTree starts the supervisor, which starts CMD (argv, with env and the
// given streams). It returns once CMD runs, or with CMD's start failure (a
// *startError).
func startTree(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) (*tree, error) {
	exe, err := selfExecutable()
	if err != nil {
		return nil, fmt.Errorf("cannot find distlock's own executable to supervise CMD: %w", err)
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		lifeR.Close()
		lifeW.Close()
		return nil, err
	}
	t := &tree{life: lifeW, endedC: make(chan struct{}), goneC: make(chan struct{})}
	mode, files := supervisorBackground, []*os.File{lifeR, reportW}
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		t.tty = tty
		sid, _ := unix.Getsid(0)
		t.jobControl = sid != syscall.Getpgrp()
		if fg, err := foregroundGroup(tty); err == nil && fg == syscall.Getpgrp() {
			// distlock has the terminal: CMD's group takes it, so that the
			// terminal's signals (Ctrl-C) reach CMD's group, once, and CMD
			// can read the terminal.
			mode, files = supervisorForeground, append(files, tty)
		}
	}
	t.sup = &exec.Cmd{
		Path:        exe,
		Args:        append([]string{supervisorArg0, mode}, argv...),
		Env:         env,
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = t.sup.Start()
	lifeR.Close()
	reportW.Close()
	if err != nil {
		lifeW.Close()
		reportR.Close()
		t.closeTTY()
		return nil, fmt.Errorf("cannot start distlock's supervisor %s: %w", exe, err)
	}

	reports := bufio.NewReader(reportR)
	first, err := readReport(reports)
	if err != nil || first.kind != "started" {
		reportR.Close()
		lifeW.Close()
		waitErr := t.sup.Wait()
		t.closeTTY()
		if err == nil && first.kind == "failed" {
			return nil, &startError{code: first.n, msg: first.text}
		}
		return nil, fmt.Errorf("distlock's supervisor ended before starting CMD (%v)", waitErr)
	}
	t.group = first.n
	if t.tty != nil {
		// distlock's own writes to the terminal, and its tcsetpgrp calls,
		// must not stop it while CMD's group has the terminal. For good:
		// os/signal cannot restore the default, and distlock starts no
		// other process.
		signal.Ignore(syscall.SIGTTOU)
	}
	go t.watch(reports, reportR)
	return t, nil
}

// selfExecutable is this program's file, to run as the supervisor. On
// Linux /proc/self/exe stays valid when the file has been replaced since.
func selfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			return "/proc/self/exe", nil
		}
	}
	return os.Executable()
}

// report is one line from the supervisor.
type report struct {
	kind string // started, failed, stopped, exited
	n    int    // the pid, code, signal or wait status
	text string // the rest of the line
}

func readReport(r *bufio.Reader) (report, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return report{}, err
	}
	kind, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	num, text, _ := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return report{}, fmt.Errorf("bad report from distlock's supervisor: %q", line)
	}
	return report{kind: kind, n: int(n), text: text}, nil
}

// watch follows the supervisor's reports until it exits, keeps distlock's
// job and CMD's group stopping and continuing together, and gives the
// terminal back when CMD ends.
func (t *tree) watch(r *bufio.Reader, reportR *os.File) {
	reports := make(chan report)
	go func() {
		defer close(reports)
		for {
			rep, err := readReport(r)
			if err != nil {
				return
			}
			reports <- rep
		}
	}()
	var jobSigs chan os.Signal
	if t.jobControl {
		// SIGTSTP stays at its default: it stops distlock.
		jobSigs = make(chan os.Signal, 4)
		signal.Notify(jobSigs, syscall.SIGCONT, syscall.SIGTTIN)
		defer signal.Stop(jobSigs)
	}
	// How distlock's job came to be stopped with CMD's group, so that the
	// next SIGCONT continues both: by CMD's group stopping (then CMD had the
	// terminal, or wanted it), or by the job's.
	const (
		running = iota
		stoppedByCMD
		stoppedByJob
	)
	stopped := running
	ended := false
	for !ended || reports != nil {
		select {
		case rep, ok := <-reports:
			switch {
			case !ok:
				reports = nil
				ended = true // if not yet, never
			case rep.kind == "stopped" && t.tty != nil && isTerminalStop(syscall.Signal(rep.n)):
				if !t.jobControl {
					// No shell can continue distlock: a stop from the
					// terminal would be for good. The kernel ignores
					// such stops in a group without a job-control
					// parent; so does distlock.
					syscall.Kill(-t.group, syscall.SIGCONT)
					continue
				}
				// CMD's group was stopped from the terminal (Ctrl-Z, or a
				// read in the background): stop distlock's job, as the
				// terminal would have had CMD been in it; the shell then
				// takes the terminal.
				stopped = stoppedByCMD
				syscall.Kill(0, syscall.SIGTSTP)
			case rep.kind == "exited" && !ended:
				t.giveTerminalBack()
				t.ws, t.left = syscall.WaitStatus(rep.n), rep.text == "true"
				ended = true
				close(t.endedC)
			}
		case s := <-jobSigs:
			switch {
			case s == syscall.SIGTTIN:
				// A neighbour in distlock's pipeline read the terminal,
				// and the job stops: CMD's group stops with it, so that it
				// does not run on while the lock is not renewed. Both by
				// SIGSTOP: distlock catches SIGTTIN, and CMD's stop is
				// then not taken for one from the terminal.
				stopped = stoppedByJob
				syscall.Kill(-t.group, syscall.SIGSTOP)
				syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
			default:
				// Continued in the terminal's foreground (fg): CMD's group
				// takes the terminal, unless a neighbour stopped the job
				// to read it. (Also when distlock was stopped before CMD
				// could take it.)
				if fg, err := foregroundGroup(t.tty); err == nil && fg == syscall.Getpgrp() && stopped != stoppedByJob && !ended {
					setForegroundGroup(t.tty, t.group)
				}
				if stopped != running {
					stopped = running
					syscall.Kill(-t.group, syscall.SIGCONT)
				}
			}
		}
	}
	reportR.Close()
	select {
	case <-t.endedC:
		t.err = t.sup.Wait()
		var exitErr *exec.ExitError
		if errors.As(t.err, &exitErr) {
			t.err = nil // the supervisor's own status says nothing about CMD
		}
	default:
		// The supervisor died without telling how CMD ended: nobody
		// watches CMD's group any more. (Killed first: Wait waits for
		// CMD's output, which the group may hold.)
		syscall.Kill(-t.group, syscall.SIGKILL)
		t.err = fmt.Errorf("distlock's supervisor of CMD (pid %d) ended before CMD (%v); CMD's process group was killed",
			t.sup.Process.Pid, t.sup.Wait())
	}
	t.life.Close()
	if t.tty != nil {
		t.giveTerminalBack()
		t.closeTTY()
	}
	close(t.goneC)
}

func isTerminalStop(s syscall.Signal) bool {
	return s == syscall.SIGTSTP || s == syscall.SIGTTIN || s == syscall.SIGTTOU
}

// giveTerminalBack makes distlock's group the terminal's foreground again
// if CMD's group still has it.
func (t *tree) giveTerminalBack() {
	if t.tty == nil {
		return
	}
	if fg, err := foregroundGroup(t.tty); err == nil && fg == t.group {
		setForegroundGroup(t.tty, syscall.Getpgrp())
	}
}

func (t *tree) closeTTY() {
	if t.tty != nil {
		t.tty.Close()
	}
}

func foregroundGroup(tty *os.File) (int, error) {
	return unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
}

func setForegroundGroup(tty *os.File, group int) error {
	return unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, group)
}

// ended is closed when CMD has ended; result is then valid.
func (t *tree) ended() <-chan struct{} { return t.endedC }

// gone is closed when CMD's tree is gone: its group is empty, or CMD's
// end is unknown (then failure says why).
func (t *tree) gone() <-chan struct{} { return t.goneC }

// result is CMD's status the shell's way (its exit code, or 128+N when
// signal N ended it) and whether it left processes in its group.
func (t *tree) result() (status int, left bool) {
	if t.ws.Signaled() {
		return exitSignalBase + int(t.ws.Signal()), t.left
	}
	return t.ws.ExitStatus(), t.left
}

// failure, once the tree is gone, is why CMD's end is unknown, or an error
// copying its output; nil otherwise.
func (t *tree) failure() error { return t.err }

// signal sends s to CMD's whole process group.
func (t *tree) signal(s os.Signal) error {
	n, ok := s.(syscall.Signal)
	if !ok {
		return fmt.Errorf("cannot send %v", s)
	}
	if err := syscall.Kill(-t.group, n); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// terminate sends SIGTERM to CMD's group, and SIGCONT so that a stopped
// process gets it too.
func (t *tree) terminate() {
	syscall.Kill(-t.group, syscall.SIGTERM)
	syscall.Kill(-t.group, syscall.SIGCONT)
}

// kill sends SIGKILL to CMD's group.
func (t *tree) kill() { syscall.Kill(-t.group, syscall.SIGKILL) }

// abandon stops waiting for CMD's group to empty: the supervisor, seeing
// distlock let go, kills the group again and exits.
func (t *tree) abandon() { t.life.Close() }
