package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// signal names the signals the lifecycle methods send; the platform files map
// them to the system's.
type signal int

const (
	sigInt signal = iota
	sigTerm
	sigKill
	sigStop
	sigCont
)

// owner is the system user a server runs as; nil means the current user.
type owner struct{ uid, gid int }

// spec says how to run one kind of server.
type spec struct {
	name    string                              // the binary's name, for messages
	path    string                              // the binary
	args    func(port int) []string             // its arguments
	runAs   *owner                              // nil: the current user
	dir     string                              // its working directory
	log     string                              // the file its stdout and stderr go to
	ready   string                              // the log line that says it listens
	stopSig signal                              // the graceful stop
	ping    func(context.Context, string) error // a protocol round trip to host:port

	// cleanStop makes the test's cleanup stop the server gracefully rather
	// than kill it, so that it frees what only it can (SysV shared memory).
	cleanStop bool
	// afterCleanup, if set, runs once the server is down for good.
	afterCleanup func()
}

// process is one server child process and the port it keeps across restarts.
type process struct {
	spec
	t       testing.TB
	timeout time.Duration

	mu      sync.Mutex
	port    int
	cmd     *exec.Cmd     // nil when not running
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // cmd.Wait's result, set before exited closes
	paused  bool
}

// errPortInUse marks a start that failed because another process holds the
// port.
var errPortInUse = errors.New("port in use")

const portAttempts = 5

// start starts the server on a fresh port, trying another one when a
// concurrent process took the port between its discovery and the bind. It
// returns how long the last attempt took to become ready.
func (p *process) start() time.Duration {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	for range portAttempts {
		p.port, err = pickPort()
		if err != nil {
			p.t.Fatalf("testserver: %s: %v", p.name, err)
		}
		var took time.Duration
		took, err = p.launch(time.Now().Add(p.timeout))
		if err == nil {
			return took
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	p.t.Fatalf("testserver: starting %s: %v", p.name, err)
	return 0
}

func (p *process) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
}

// launch starts the child on p.port and waits until it is ready. On failure
// the child is dead and the error carries the tail of its log.
func (p *process) launch(deadline time.Time) (time.Duration, error) {
	logf, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	// Failure messages show the log from the command line on; readiness is
	// read from what the server wrote after it.
	start, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(logf, "==== testserver: %s\n", quoteArgs(append([]string{p.path}, p.args(p.port)...)))
	offset, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}

	cmd := exec.Command(p.path, p.args(p.port)...)
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	configure(cmd, p.runAs)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.paused = cmd, exited, false
	go func() {
		err := cmd.Wait()
		p.waitErr = err
		close(exited)
	}()

	if err := p.waitReady(start, offset, deadline); err != nil {
		p.halt(sigKill, 0)
		return 0, err
	}
	return time.Since(began), nil
}

// waitReady polls until the child has logged p.ready (after offset) and
// answers p.ping. Requiring the log line, written only after the child bound
// its port, keeps another process that grabbed the same port from passing for
// ours. Errors carry the log from start on.
func (p *process) waitReady(start, offset int64, deadline time.Time) error {
	var pingErr error
	delay := 5 * time.Millisecond
	for {
		select {
		case <-p.exited:
			err := fmt.Errorf("%s exited before it was ready (%v)%s", p.name, p.waitErr, p.tail(start))
			if isTransient(p.logSince(offset)) {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		default:
		}
		if bytes.Contains(p.logSince(offset), []byte(p.ready)) {
			ctx, cancel := context.WithDeadline(context.Background(), minTime(deadline, time.Now().Add(2*time.Second)))
			pingErr = p.ping(ctx, p.addr())
			cancel()
			if pingErr == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			why := fmt.Sprintf("it never logged %q", p.ready)
			if pingErr != nil {
				why = fmt.Sprintf("it does not answer: %v", pingErr)
			}
			return fmt.Errorf("%s not ready in time: %s%s", p.name, why, p.tail(start))
		}
		time.Sleep(delay)
		delay = min(2*delay, 25*time.Millisecond)
	}
}

// isTransient reports whether a failed start's log says the port (or, just
// after a kill, some resource of the previous run) is still held elsewhere.
func isTransient(log []byte) bool {
	return bytes.Contains(log, []byte("in use")) || bytes.Contains(log, []byte("Unable to lock"))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// halt ends the running child and waits for it. With sigKill every process
// of the server dies at once, as in a crash; otherwise sig goes to the server,
// which gets grace to exit before it is killed (and halt reports it). A paused
// child is resumed first. A child that is not running is left alone.
func (p *process) halt(sig signal, grace time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	pid, exited, paused := p.cmd.Process.Pid, p.exited, p.paused
	p.cmd, p.paused = nil, false
	select {
	case <-exited:
		// Already reaped: its process group id may belong to someone else now.
		return nil
	default:
	}
	if sig == sigKill {
		killTree(pid, exited)
		return nil
	}
	if paused {
		thaw(pid)
	}
	_ = signalProcess(pid, sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
		killTree(pid, exited)
		return fmt.Errorf("%s did not stop within %v and was killed", p.name, grace)
	}
}

// freeze stops (SIGSTOP) every process of the server: first the leader's
// process group, then the descendants that left the group (PostgreSQL's
// backends each start a session of their own). The leader is stopped first
// so that it forks no more.
func freeze(pid int) {
	_ = signalGroup(pid, sigStop)
	waitStopped(pid)
	seen := map[int]bool{}
	for range 3 {
		fresh := false
		for _, d := range descendants(pid) {
			if !seen[d] {
				seen[d], fresh = true, true
				_ = signalProcess(d, sigStop)
			}
		}
		if !fresh {
			return
		}
		for d := range seen {
			waitStopped(d)
		}
	}
}

// thaw continues (SIGCONT) every process of the server.
func thaw(pid int) {
	for _, d := range descendants(pid) {
		_ = signalProcess(d, sigCont)
	}
	_ = signalGroup(pid, sigCont)
}

// killTree kills every process of the server and waits until they are gone.
// It freezes them first, so that none forks or exits (freeing its pid for
// reuse) while the list is taken, and none is left behind holding the port,
// a lock file or shared memory that a restart needs.
func killTree(pid int, exited <-chan struct{}) {
	freeze(pid)
	ds := descendants(pid)
	_ = signalGroup(pid, sigKill)
	for _, d := range ds {
		_ = signalProcess(d, sigKill)
	}
	<-exited
	for _, d := range ds {
		waitGone(d)
	}
}

const stopGrace = 15 * time.Second

func (p *process) stop() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.halt(p.stopSig, stopGrace); err != nil {
		p.t.Fatalf("testserver: Stop: %v%s", err, p.tail(0))
	}
}

func (p *process) kill() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.halt(sigKill, 0)
}

func (p *process) pause() {
	p.t.Helper()
	p.setPaused("Pause", true)
}

func (p *process) resume() {
	p.t.Helper()
	p.setPaused("Resume", false)
}

// setPaused stops or continues every process of the running server:
// PostgreSQL's backends, one per connection, as well as the server.
func (p *process) setPaused(op string, paused bool) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		p.t.Fatalf("testserver: %s: %s is not running%s", op, p.name, p.tail(0))
	}
	if paused {
		freeze(p.cmd.Process.Pid)
	} else {
		thaw(p.cmd.Process.Pid)
	}
	p.paused = paused
}

func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// restart stops the child if it runs (gracefully) and starts it again on the
// same port, retrying while the port or the data directory is still held by
// the previous run.
func (p *process) restart() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.halt(p.stopSig, stopGrace); err != nil {
		p.t.Logf("testserver: Restart: %v", err)
	}
	deadline := time.Now().Add(p.timeout)
	const pause = 100 * time.Millisecond
	var transient error // the last attempt that failed for want of the port
	for {
		took, err := p.launch(deadline)
		if err == nil {
			p.t.Logf("testserver: %s restarted on %s, ready in %v", p.name, p.addr(), took.Round(time.Millisecond))
			return
		}
		if errors.Is(err, errPortInUse) {
			transient = err
		}
		if !errors.Is(err, errPortInUse) || time.Now().Add(pause).After(deadline) {
			if transient != nil && transient != err {
				err = fmt.Errorf("%v\nan attempt before: %v", err, transient)
			}
			p.t.Fatalf("testserver: restarting %s on %s: %v", p.name, p.addr(), err)
		}
		time.Sleep(pause)
	}
}

// cleanup ends the child, resuming it first if it is paused, and shows the
// end of its log if the test failed. It kills the child, or with cleanStop
// stops it gracefully, killing it only if that takes more than 5s.
func (p *process) cleanup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cleanStop {
		_ = p.halt(p.stopSig, 5*time.Second)
	} else {
		_ = p.halt(sigKill, 0)
	}
	if p.afterCleanup != nil {
		p.afterCleanup()
	}
	if p.t.Failed() {
		p.t.Logf("testserver: %s on %s%s", p.name, p.addr(), p.tail(0))
	}
}

// logSince returns the log from offset on.
func (p *process) logSince(offset int64) []byte {
	b, _ := os.ReadFile(p.log)
	if int64(len(b)) < offset {
		return nil
	}
	return b[offset:]
}

// tail formats the last lines of the log written since offset, for failure
// messages.
func (p *process) tail(offset int64) string {
	return formatTail(p.log, p.logSince(offset))
}

func formatTail(path string, b []byte) string {
	const maxLines, maxBytes = 25, 4000
	b = bytes.TrimRight(b, "\n")
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if len(b) == 0 {
		return fmt.Sprintf("\n(%s is empty)", path)
	}
	return fmt.Sprintf("\n--- end of %s ---\n%s\n---", path, strings.Join(lines, "\n"))
}

// quoteArgs formats a command line for the log, quoting what the shell would
// split or drop.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// pickPort is freePort, replaced by tests.
var pickPort = freePort

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// instanceDir makes a private directory for one server, owned by o when o is
// not nil, and removes it when the test ends.
func instanceDir(t testing.TB, name string, o *owner) string {
	t.Helper()
	dir, err := scratchDir("distlock-"+name+"-", o)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testserver: removing %s: %v", dir, err)
		}
	})
	return dir
}

// ownerFile, in each scratch directory, holds the pid of the test process
// that made it.
const ownerFile = ".testserver-pid"

var sweepOnce sync.Once

// scratchDir makes a directory under scratchRoot, owned by o when o is not
// nil and marked with the test process's pid. The first call in a process
// removes the directories of test processes that died without cleaning up
// (killed, or stopped by a panic): on /dev/shm they would hold memory until
// the next boot. Their servers died with them (Pdeathsig).
func scratchDir(prefix string, o *owner) (string, error) {
	root := scratchRoot()
	sweepOnce.Do(func() { sweepScratch(root) })
	dir, err := os.MkdirTemp(root, prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := chown(dir, o); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepScratch removes the scratch directories under root whose test process
// is gone.
func sweepScratch(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "distlock-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || processExists(pid) {
			continue
		}
		os.RemoveAll(dir)
	}
}

// mkdirOwned makes dir (mode 0700) owned by o.
func mkdirOwned(dir string, o *owner) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return chown(dir, o)
}

func chown(path string, o *owner) error {
	if o == nil {
		return nil
	}
	return os.Lchown(path, o.uid, o.gid)
}

// findBinary looks for the first of names in PATH, then in dirs.
func findBinary(names []string, dirs []string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, dir := range dirs {
		for _, name := range names {
			p := filepath.Join(dir, name)
			if isExecutable(p) {
				return p
			}
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
