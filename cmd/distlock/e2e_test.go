//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests: the built binary, real child processes, real signals,
// real exit codes. Time bounds are liveness bounds, generous on purpose.

// proc is a distlock process started by a test.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
}

func startDistlock(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(distlockBinary(t), args...)
	p.cmd.Env = testEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	// No controlling terminal, wherever the tests run: the terminal's tests
	// bring their own.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	p.cmd.WaitDelay = 5 * time.Second // a stray grandchild must not hang the test
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// testEnv is the environment of the distlock processes the tests start:
// this one's, except that a -race build does not sleep a second at exit (as
// it does by default, for other threads' reports).
func testEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// wait returns the exit status the shell would report (128+N for signal N).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("distlock %q still running after %v\nstderr:\n%s", p.cmd.Args[1:], timeout, p.stderr.String())
	}
	return exitStatus(p.cmd.ProcessState)
}

func (p *proc) String() string {
	return fmt.Sprintf("distlock %q\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], p.stdout.String(), p.stderr.String())
}

// runDistlock runs the binary to completion.
func runDistlock(t *testing.T, args ...string) (int, *proc) {
	t.Helper()
	p := startDistlock(t, args...)
	return p.wait(t, 60*time.Second), p
}

// cmdScript is a CMD for sh -c that records its fence and its pid (written
// atomically into $1) and then becomes sleep 60.
const cmdScript = `echo "$DISTLOCK_FENCE" > "$1.fence"; echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 60`

// startedCMD waits for a cmdScript to record itself and returns its pid and
// fence. The pid is killed at the end of the test if still alive.
func startedCMD(t *testing.T, pidFile string) (pid int, fence uint64) {
	t.Helper()
	eventually(t, 20*time.Second, "CMD to start", func() bool { _, err := os.Stat(pidFile); return err == nil })
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	fence, err = strconv.ParseUint(strings.TrimSpace(readFile(t, pidFile+".fence")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pid, fence
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// alive reports whether pid is a live process (a zombie is dead: in a
// container nobody may reap it).
func alive(pid int) bool {
	if runtime.GOOS == "linux" {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		_, after, _ := strings.Cut(string(stat), ") ")
		return !strings.HasPrefix(after, "Z") && !strings.HasPrefix(after, "X")
	}
	return syscall.Kill(pid, 0) == nil
}

func fenceOf(t *testing.T, p *proc) uint64 {
	t.Helper()
	f, err := strconv.ParseUint(strings.TrimSpace(p.stdout.String()), 10, 64)
	if err != nil {
		t.Fatalf("want a fence on stdout: %v\n%v", err, p)
	}
	return f
}

// (a) A held lock makes --wait 0 exit 75, naming the holder; the holder
// exits with its CMD's status.
func TestE2EHeldLockExits75(t *testing.T) {
	t.Parallel()
	store, dir := sqliteStore(t), t.TempDir()
	ready, release := filepath.Join(dir, "ready"), filepath.Join(dir, "release")
	holder := startDistlock(t, "run", "--store", store, "--owner", "e2e-holder", "k", "--",
		"sh", "-c", `touch "$1"; while [ ! -e "$2" ]; do sleep 0.05; done; exit 7`, "sh", ready, release)
	eventually(t, 20*time.Second, "the holder's CMD to start", func() bool { _, err := os.Stat(ready); return err == nil })

	code, p := runDistlock(t, "run", "--store", store, "--wait", "0", "k", "--", "touch", filepath.Join(dir, "ran"))
	if code != exitLocked || !strings.Contains(p.stderr.String(), "held by e2e-holder (fence ") {
		t.Errorf("want exit %d naming the holder; got %d\n%v", exitLocked, code, p)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("CMD ran without the lock")
	}

	os.WriteFile(release, nil, 0o644)
	if code := holder.wait(t, 30*time.Second); code != 7 {
		t.Errorf("holder: want CMD's status 7; got %d\n%v", code, holder)
	}
	if code, p := runDistlock(t, "run", "--store", store, "--wait", "0", "k", "--", "true"); code != 0 {
		t.Errorf("after the holder: want the lock free; got %d\n%v", code, p)
	}
}

// (b) A holder paused (SIGSTOP) past its TTL loses the lock to another run,
// which gets a higher fence; when it resumes it stops its CMD and exits 76.
func TestE2ESIGSTOPLosesLock(t *testing.T) {
	t.Parallel()
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	holder := startDistlock(t, "run", "--store", store, "--ttl", "2s", "k", "--", "sh", "-c", cmdScript, "sh", pidFile)
	pid, fence := startedCMD(t, pidFile)

	if err := holder.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	code, other := runDistlock(t, "run", "--store", store, "--wait", "60s", "k", "--", "sh", "-c", `echo "$DISTLOCK_FENCE"`)
	if code != 0 {
		t.Fatalf("other run: want exit 0 while the holder is paused; got %d\n%v", code, other)
	}
	if f := fenceOf(t, other); f <= fence {
		t.Errorf("other run's fence %d is not above the paused holder's %d", f, fence)
	}

	time.Sleep(time.Until(stopped.Add(6 * time.Second)))
	if err := holder.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := holder.wait(t, 30*time.Second); code != exitLost {
		t.Errorf("holder: want exit %d after resuming without the lock; got %d\n%v", exitLost, code, holder)
	}
	if msg := holder.stderr.String(); !strings.Contains(msg, `lock "k" lost while CMD ran`) || !strings.Contains(msg, "CMD ended with status 143") {
		t.Errorf("holder: want the loss and CMD's SIGTERM reported; got\n%s", msg)
	}
	eventually(t, 10*time.Second, "the holder's CMD to be gone", func() bool { return !alive(pid) })
}

// (c) SIGTERM, SIGINT and SIGHUP sent to distlock reach CMD; distlock waits
// for CMD and exits with its status.
func TestE2ESignalsForwarded(t *testing.T) {
	t.Parallel()
	t.Run("CMD dies by SIGTERM", func(t *testing.T) {
		t.Parallel()
		store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
		p := startDistlock(t, "run", "--store", store, "k", "--", "sh", "-c", cmdScript, "sh", pidFile)
		pid, _ := startedCMD(t, pidFile)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 128+15 {
			t.Errorf("want exit 143; got %d\n%v", code, p)
		}
		if alive(pid) {
			t.Errorf("CMD (pid %d) survived", pid)
		}
		if r := runCLI(t, "status", "--store", store, "k"); !strings.Contains(r.stdout, "state: free") {
			t.Errorf("lock not released: %v", r)
		}
	})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		t.Run("CMD traps "+name, func(t *testing.T) {
			t.Parallel()
			store, ready := sqliteStore(t), filepath.Join(t.TempDir(), "ready")
			p := startDistlock(t, "run", "--store", store, "k", "--", "sh", "-c",
				`trap 'echo got '$2'; exit 3' `+name+`; touch "$1"; while :; do sleep 0.05; done`, "sh", ready, name)
			eventually(t, 20*time.Second, "CMD to start", func() bool { _, err := os.Stat(ready); return err == nil })
			p.cmd.Process.Signal(sig)
			if code := p.wait(t, 30*time.Second); code != 3 || p.stdout.String() != "got "+name+"\n" {
				t.Errorf("want CMD to catch %s and distlock to exit with its status 3; got %d\n%v", name, code, p)
			}
		})
	}
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// The binary's own exit codes for a CMD that fails or cannot start.
func TestE2EExitCodes(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"run", "--store", store, "k", "--", "sh", "-c", "exit 9"}, 9},
		{[]string{"run", "--store", store, "k", "--", "distlock-no-such-command"}, exitNotFound},
		{[]string{"run", "--store", store, "k", "true"}, exitUsage},
		{[]string{"run", "--store", "nosuch://x", "k", "--", "true"}, exitUsage},
		{[]string{"status", "--store", store, "k"}, exitOK},
	} {
		if code, p := runDistlock(t, tt.args...); code != tt.want {
			t.Errorf("want exit %d; got %d\n%v", tt.want, code, p)
		}
	}
}

// TestE2EUnreachableStoreSaysSoOnce: a store that refuses connections gives
// exit 69 and one line on stderr, without the client library's own logging
// of each failed dial.
func TestE2EUnreachableStoreSaysSoOnce(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"redis://127.0.0.1:1", "redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"} {
		code, p := runDistlock(t, "run", "--store", store, "--wait", "0", "k", "--", "true")
		if code != exitUnavailable {
			t.Errorf("%s: exit %d, want %d\n%v", store, code, exitUnavailable, p)
		}
		if lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "distlock: ") {
			t.Errorf("%s: stderr is %d lines, want one from distlock:\n%s", store, len(lines), p.stderr.String())
		}
	}
}
