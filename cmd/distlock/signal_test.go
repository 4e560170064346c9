//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunSIGINTEndsWait sends a real SIGINT to the test process while run
// waits for a lock. It is not parallel: a run supervising a CMD at that
// moment would pass the signal on.
func TestRunSIGINTEndsWait(t *testing.T) {
	store := sqliteStore(t)
	holdLock(t, store, "k", "holder")
	stderr := &ttyBuffer{}
	ran := filepath.Join(t.TempDir(), "ran")
	done := make(chan result, 1)
	go func() {
		done <- runCLIWith(t.Context(), nil, stderr, "run", "--store", store, "k", "--", "touch", ran)
	}()
	// The message comes after run subscribed to signals.
	eventually(t, 10*time.Second, "the waiting message", func() bool { return strings.Contains(stderr.String(), "waiting") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != 130 || !strings.Contains(r.stderr, `interrupted (interrupt) while waiting for lock "k"`) {
			t.Errorf("want exit 130 and a message; got %v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGINT did not end the wait")
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("CMD ran after the wait was interrupted")
	}
}
