//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/distlock/distlock/internal/testenv"
)

// terminal is a pseudo-terminal whose other side a test types on and reads.
type terminal struct {
	master *os.File
	output syncBuffer // everything the terminal displayed
	done   chan struct{}
}

// openTerminal opens a pseudo-terminal and returns it and its slave side,
// for the process under test; the test closes the slave once that started.
func openTerminal(t *testing.T) (*terminal, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminal here: %v", err)
	}
	var n uint32
	ctlErr := control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	})
	if ctlErr != nil {
		master.Close()
		t.Fatal(ctlErr)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	term := &terminal{master: master, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.output.Write(buf[:n])
			if err != nil {
				return // EIO once no process has the terminal open
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		master.Close()
		<-term.done
	})
	return term, slave
}

// control runs f on f's descriptor without making the file blocking.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

func (term *terminal) typeIn(t *testing.T, s string) {
	t.Helper()
	if _, err := term.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func (term *terminal) waitFor(t *testing.T, what string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("the terminal to show %q; it shows %q", what, term.output.String()),
		func() bool { return strings.Contains(term.output.String(), what) })
}

// startOnTerminal starts the distlock binary as the session leader of the
// terminal, in its foreground, as ssh -t or a terminal emulator runs a
// command.
func startOnTerminal(t *testing.T, slave *os.File, args ...string) *proc {
	t.Helper()
	return startLeader(t, slave, exec.Command(distlockBinary(t), args...))
}

// startLeader starts cmd as the session leader of the terminal whose slave
// side is given, and closes that.
func startLeader(t *testing.T, slave *os.File, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cmd.Env = append(testEnv(), p.cmd.Env...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// One Ctrl-C on the terminal gives CMD one SIGINT, and CMD reads the
// terminal as if distlock were not there.
func TestE2ETerminalCtrlCOnce(t *testing.T) {
	t.Parallel()
	term, slave := openTerminal(t)
	store := sqliteStore(t)
	p := startOnTerminal(t, slave, "run", "--store", store, "k", "--", "sh", "-c",
		`n=0; trap 'n=$((n+1)); echo "SIGINT $n"' INT; echo ready; `+
			`while ! read line; do :; done; echo "read $line after $n SIGINT"; exit 5`)
	term.waitFor(t, "ready")
	term.typeIn(t, "\x03") // Ctrl-C
	term.waitFor(t, "SIGINT 1")
	term.typeIn(t, "hello\n")
	code := p.wait(t, 20*time.Second)
	<-term.done
	out := term.output.String()
	if code != 5 || !strings.Contains(out, "read hello after 1 SIGINT") || strings.Contains(out, "SIGINT 2") {
		t.Errorf("want CMD to see one SIGINT, read its line and exit 5; got exit %d, terminal:\n%s", code, out)
	}
}

// startShell starts an interactive bash, with job control, on a new
// terminal, for the test to type commands into.
func startShell(t *testing.T) *terminal {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Unavailable(t, "bash not found in PATH (the job-control shell of this test): %v", err)
	}
	term, slave := openTerminal(t)
	shell := exec.Command(bash, "--norc", "--noprofile", "-i")
	shell.Env = []string{"PS1=$ ", "TERM=dumb", "HISTFILE=/dev/null"}
	startLeader(t, slave, shell)
	return term
}

// Ctrl-Z stops CMD and distlock's job together and gives the terminal back
// to the shell; fg continues both, CMD in the terminal's foreground again.
func TestE2ETerminalCtrlZ(t *testing.T) {
	t.Parallel()
	term := startShell(t)
	store := sqliteStore(t)
	term.typeIn(t, distlockBinary(t)+" run --store "+store+` k -- sh -c 'echo started-$((6*7)); read line; echo "got-$line"; exit 3'`+"\n")
	// Markers are computed, so that the echo of what is typed is not taken
	// for them.
	term.waitFor(t, "started-42")
	term.typeIn(t, "\x1a") // Ctrl-Z
	term.waitFor(t, "Stopped")
	term.typeIn(t, "echo shell-$((1+1))\n") // the shell has the terminal
	term.waitFor(t, "shell-2")
	term.typeIn(t, "fg\n")
	term.typeIn(t, "hello\n") // CMD has it again
	term.waitFor(t, "got-hello")
	term.typeIn(t, "echo rc-$?\n")
	term.waitFor(t, "rc-3")
	term.typeIn(t, "exit\n")
}

// A neighbour in distlock's pipeline that reads the terminal while CMD's
// group has it stops the job: CMD stops with it (it must not run on while
// the lock is not renewed); fg gives the terminal to the neighbour and
// continues CMD, and Ctrl-C then reaches CMD through distlock.
func TestE2ETerminalPipelineNeighbour(t *testing.T) {
	t.Parallel()
	term := startShell(t)
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	// The neighbour reads the terminal once CMD runs, and so has it.
	term.typeIn(t, distlockBinary(t)+" run --store "+store+` k -- sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 300' `+pidFile+
		` | (while [ ! -e `+pidFile+` ]; do sleep 0.01; done; read z < /dev/tty; echo "neighbour-$z"; cat > /dev/null)`+"\n")
	term.waitFor(t, "Stopped")
	pid := pidIn(t, pidFile)
	if state := processState(t, pid); state != "T" {
		t.Errorf("job stopped: want CMD (pid %d) stopped too; its state is %s", pid, state)
	}
	term.typeIn(t, "fg\n")
	term.typeIn(t, "abc\n")
	term.waitFor(t, "neighbour-abc")
	eventually(t, 10*time.Second, "CMD to be continued", func() bool { return processState(t, pid) != "T" })
	term.typeIn(t, "\x03") // Ctrl-C: to distlock's job, passed on to CMD
	eventually(t, 10*time.Second, "CMD to die of the SIGINT", func() bool { return !alive(pid) })
	term.typeIn(t, "exit\n")
}

// processState is the state letter of pid in /proc (R, S, T, Z...).
func processState(t *testing.T, pid int) string {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	state, _, _ := strings.Cut(after, " ")
	return state
}
