//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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
		return nil, fmt.Errorf("cannot start distlock's supervisor %s: %w", exe, err)
	}

	reports := bufio.NewReader(reportR)
	first, err := readReport(reports)
	if err != nil || first.kind != "started" {
		reportR.Close()
		lifeW.Close()
		waitErr := t.sup.Wait()
		if err == nil && first.kind == "failed" {
			return nil, &startError{code: first.n, msg: first.text}
		}
		return nil, fmt.Errorf("distlock's supervisor ended before starting CMD (%v)", waitErr)
	}
	t.group = first.n
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

// watch follows the supervisor's reports until it exits.
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
	ended := false
	for !ended || reports != nil {
		select {
		case rep, ok := <-reports:
			switch {
			case !ok:
				reports = nil
				ended = true // if not yet, never
			case rep.kind == "exited" && !ended:
				t.ws, t.left = syscall.WaitStatus(rep.n), rep.text == "true"
				ended = true
				close(t.endedC)
			}
		}
	}
	reportR.Close()
	t.err = t.sup.Wait()
	t.life.Close()
	select {
	case <-t.endedC:
		var exitErr *exec.ExitError
		if errors.As(t.err, &exitErr) {
			t.err = nil // the supervisor's own status says nothing about CMD
		}
	default:
		// The supervisor died without telling how CMD ended: nobody
		// watches CMD's group any more.
		syscall.Kill(-t.group, syscall.SIGKILL)
		t.err = fmt.Errorf("distlock's supervisor of CMD (pid %d) ended before CMD: %v; CMD's process group was killed", t.sup.Process.Pid, t.err)
	}
	close(t.goneC)
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
