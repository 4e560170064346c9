//go:build !unix

package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
)

// supervisedTree reports whether CMD runs in a process group of its own
// under a supervisor: not here, where CMD is a plain child.
const supervisedTree = false

// superviseIfAsked returns: there is no supervisor on this platform.
func superviseIfAsked() {}

// tree is CMD alone: this platform has no process groups to stop its
// children with.
type tree struct {
	cmd    *exec.Cmd
	endedC chan struct{}
	err    error
}

func startTree(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) (*tree, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &tree{cmd: cmd, endedC: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		if cmd.ProcessState == nil || !errors.As(err, &exitErr) {
			t.err = err
		}
		close(t.endedC)
	}()
	return t, nil
}

func (t *tree) ended() <-chan struct{} { return t.endedC }
func (t *tree) gone() <-chan struct{}  { return t.endedC }

func (t *tree) result() (status int, left bool) {
	if t.cmd.ProcessState == nil {
		return 1, false
	}
	return exitStatus(t.cmd.ProcessState), false
}

func (t *tree) failure() error { return t.err }

func (t *tree) signal(s os.Signal) error {
	if err := t.cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// terminate kills CMD: Windows has no SIGTERM to send.
func (t *tree) terminate() {
	if err := t.cmd.Process.Signal(os.Interrupt); err != nil {
		t.cmd.Process.Kill()
	}
}

func (t *tree) kill()    { t.cmd.Process.Kill() }
func (t *tree) abandon() {}
