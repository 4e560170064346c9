package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
)

func TestMain(m *testing.M) {
	// run, called in process, starts this test binary as CMD's supervisor.
	superviseIfAsked()
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeBinary()
		os.Exit(code)
	}))
}

// The end-to-end tests build the binary once, into binDir.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// distlockBinary builds the distlock binary (with -race when the tests run
// with it) the first time it is called.
func distlockBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "distlock-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "distlock")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of CMD's
// output copier and distlock's messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ttyBuffer plays a terminal on stderr.
type ttyBuffer struct{ syncBuffer }

func (*ttyBuffer) isTerminal() bool { return true }

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI calls run in process with empty stdin.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return runCLIWith(t.Context(), strings.NewReader(""), &syncBuffer{}, args...)
}

// runCLIWith calls run in process with the given stdin and stderr.
func runCLIWith(ctx context.Context, stdin io.Reader, stderr interface {
	io.Writer
	String() string
}, args ...string) result {
	var stdout syncBuffer
	code := run(ctx, args, stdin, &stdout, stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// startCLI calls run in process in the background; wait returns its
// result, failing the test if run has not returned within timeout.
func startCLI(t *testing.T, args ...string) (wait func(timeout time.Duration) result) {
	done := make(chan result, 1)
	go func() { done <- runCLIWith(t.Context(), nil, &syncBuffer{}, args...) }()
	return func(timeout time.Duration) result {
		t.Helper()
		select {
		case r := <-done:
			return r
		case <-time.After(timeout):
			t.Fatalf("distlock %q did not return within %v", args, timeout)
			return result{}
		}
	}
}

// sqliteStore returns the URL of a fresh SQLite store in a temporary directory.
func sqliteStore(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "locks.db")
}

// isFree reports whether key is free in store.
func isFree(t *testing.T, store, key string) bool {
	t.Helper()
	client, err := distlock.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	st, err := client.Status(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return !st.Held
}

// holdLock takes key in store from the test itself, with owner as metadata,
// and releases it at the end of the test.
func holdLock(t *testing.T, store, key, owner string) *distlock.Lock {
	t.Helper()
	client, err := distlock.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	l, err := client.TryLock(t.Context(), key, distlock.WithOwner(owner), distlock.WithTTL(30*time.Second))
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// eventually waits for cond, failing the test after timeout (a liveness
// bound, generous on purpose).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
