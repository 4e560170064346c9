package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunPassesCMDStatusThrough(t *testing.T) {
	t.Parallel()
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cmd    []string
		want   int
		stderr string
	}{
		{"success", []string{"true"}, 0, ""},
		{"exit code", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9, ""},
		{"not found in PATH", []string{"distlock-no-such-command"}, exitNotFound, `cannot run distlock-no-such-command: exec: "distlock-no-such-command": executable file not found`},
		{"path not found", []string{"./no/such/file"}, exitNotFound, "no such file or directory"},
		{"not executable", []string{notExec}, exitCannotExec, "permission denied"},
		{"directory", []string{t.TempDir()}, exitCannotExec, "cannot run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := sqliteStore(t)
			r := runCLI(t, append([]string{"run", "--store", store, "k", "--"}, tt.cmd...)...)
			if r.code != tt.want || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("CMD %q: want exit %d, stderr containing %q; got %v", tt.cmd, tt.want, tt.stderr, r)
			}
			if !isFree(t, store, "k") {
				t.Errorf("CMD %q: the lock is still held after distlock returned", tt.cmd)
			}
		})
	}
}

func TestRunPassesArgvEnvAndStreams(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)

	// Arguments reach CMD one by one, never joined into a shell string.
	r := runCLI(t, "run", "--store", store, "k", "--", "sh", "-c", `printf '[%s]' "$@"`, "sh", "a b", "", "$HOME", "--", "-x")
	if r.code != 0 || r.stdout != "[a b][][$HOME][--][-x]" {
		t.Errorf("argv: want [a b][][$HOME][--][-x]; got %v", r)
	}

	r = runCLI(t, "run", "--store", store, "job/nightly report", "--", "sh", "-c", `echo "$DISTLOCK_KEY|$DISTLOCK_FENCE|$PATH"`)
	if want := regexp.MustCompile(`^job/nightly report\|[1-9][0-9]*\|` + regexp.QuoteMeta(os.Getenv("PATH")) + "\n$"); r.code != 0 || !want.MatchString(r.stdout) {
		t.Errorf("environment: want %v; got %v", want, r)
	}

	var stderr syncBuffer
	r = runCLIWith(t.Context(), strings.NewReader("from stdin\n"), &stderr, "run", "--store", store, "k", "--", "sh", "-c", "cat; echo to stderr >&2")
	if r.code != 0 || r.stdout != "from stdin\n" || r.stderr != "to stderr\n" {
		t.Errorf("streams: want stdin copied to stdout and CMD's stderr passed on; got %v", r)
	}
}

func TestRunFencesIncrease(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	var last uint64
	for i := range 3 {
		r := runCLI(t, "run", "--store", store, "k", "--", "sh", "-c", `echo "$DISTLOCK_FENCE"`)
		fence, err := strconv.ParseUint(strings.TrimSpace(r.stdout), 10, 64)
		if r.code != 0 || err != nil {
			t.Fatalf("run %d: want a fence on stdout; got %v", i, r)
		}
		if fence <= last {
			t.Errorf("run %d: fence %d is not above the previous %d", i, fence, last)
		}
		last = fence
	}
}

func TestRunUnreachableSQLite(t *testing.T) {
	t.Parallel()
	// The store's directory cannot be created: its parent is a regular file.
	// (Making a directory unwritable is no test when running as root.)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	store := "sqlite://" + filepath.Join(file, "sub", "locks.db")
	for _, args := range [][]string{
		{"run", "--store", store, "k", "--", "true"},
		{"status", "--store", store, "k"},
	} {
		r := runCLI(t, args...)
		if r.code != exitUnavailable || !strings.Contains(r.stderr, "distlock: ") {
			t.Errorf("distlock %q: want exit %d with a message; got %v", args, exitUnavailable, r)
		}
	}
}

func TestRunWhileHeld(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	holdLock(t, store, "k", "holder-on-web1")
	holderNamed := regexp.MustCompile(`held by holder-on-web1 \(fence \d+, [0-9.]+s left\)`)

	r := runCLI(t, "run", "--store", store, "--wait", "0", "k", "--", "touch", filepath.Join(t.TempDir(), "ran"))
	if r.code != exitLocked || !holderNamed.MatchString(r.stderr) || !strings.Contains(r.stderr, `lock "k" not acquired: `) {
		t.Errorf("--wait 0: want exit %d naming the holder; got %v", exitLocked, r)
	}

	r = runCLI(t, "run", "--store", store, "--wait", "300ms", "k", "--", "true")
	if r.code != exitLocked || !holderNamed.MatchString(r.stderr) || !strings.Contains(r.stderr, "not acquired within 300ms") {
		t.Errorf("--wait 300ms: want exit %d naming the holder; got %v", exitLocked, r)
	}

	// Another key is free.
	if r := runCLI(t, "run", "--store", store, "--wait", "0", "other", "--", "true"); r.code != 0 {
		t.Errorf("another key: %v", r)
	}
}

func TestRunWaitsForRelease(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{true, false} {
		t.Run("tty="+strconv.FormatBool(tty), func(t *testing.T) {
			t.Parallel()
			store := sqliteStore(t)
			l := holdLock(t, store, "k", "holder-on-web1")
			var stderr interface {
				Write([]byte) (int, error)
				String() string
			} = &syncBuffer{}
			if tty {
				stderr = &ttyBuffer{}
			}
			done := make(chan result, 1)
			go func() {
				done <- runCLIWith(t.Context(), nil, stderr, "run", "--store", store, "k", "--", "sh", "-c", `echo "$DISTLOCK_FENCE"`)
			}()
			if tty {
				eventually(t, 10*time.Second, "the waiting message", func() bool { return strings.Contains(stderr.String(), "waiting") })
			} else {
				time.Sleep(300 * time.Millisecond) // let it wait a little; correctness does not depend on it
			}
			if err := l.Unlock(t.Context()); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("distlock did not take the released lock")
			}
			if fence, _ := strconv.ParseUint(strings.TrimSpace(r.stdout), 10, 64); r.code != 0 || fence <= l.Fence() {
				t.Errorf("want exit 0 and a fence above the holder's %d; got %v", l.Fence(), r)
			}
			if !tty && r.stderr != "" {
				t.Errorf("not a terminal: want a silent wait; got %v", r)
			}
			if tty {
				want := regexp.MustCompile(`^distlock: waiting for lock "k", held by holder-on-web1 \(fence \d+, [0-9.]+s left\)\n$`)
				if !want.MatchString(r.stderr) {
					t.Errorf("terminal: want one waiting message naming the holder; got %v", r)
				}
			}
		})
	}
}

func TestRunInterruptedWait(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	holdLock(t, store, "k", "holder")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() {
		done <- runCLIWith(ctx, nil, &syncBuffer{}, "run", "--store", store, "k", "--", "touch", filepath.Join(t.TempDir(), "ran"))
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		if r.code != exitSignalBase+2 || !strings.Contains(r.stderr, `while waiting for lock "k"`) {
			t.Errorf("want exit %d and a message; got %v", exitSignalBase+2, r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the wait did not end")
	}
}

func TestRunLockLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		status string // CMD's, as reported
	}{
		// sleep dies by SIGTERM.
		{"SIGTERM", []string{"--grace", "1m", "k", "--", "sleep", "60"}, "status 143"},
		// sleep inherits SIGTERM ignored, and dies by SIGKILL after --grace.
		{"SIGKILL after grace", []string{"--grace", "100ms", "k", "--", "sh", "-c", `trap "" TERM; exec sleep 60`}, "status 137"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store, f, plain := faultyStore(t)
			done := make(chan result, 1)
			go func() {
				done <- runCLIWith(t.Context(), nil, &syncBuffer{}, append([]string{"run", "--store", store, "--ttl", "300ms"}, tt.args...)...)
			}()
			eventually(t, 10*time.Second, "the lock to be taken", func() bool { return !isFree(t, plain, "k") })
			time.Sleep(100 * time.Millisecond) // let CMD start; a loss before that is also exit 76
			f.set(true, false)
			select {
			case r := <-done:
				if r.code != exitLost || !strings.Contains(r.stderr, `lock "k" lost while CMD ran: `) || !strings.Contains(r.stderr, tt.status) {
					t.Errorf("want exit %d, a message naming the key and CMD's %s; got %v", exitLost, tt.status, r)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("distlock did not stop CMD after the loss")
			}
		})
	}
}

func TestRunUnlockFailureKeepsCMDStatus(t *testing.T) {
	t.Parallel()
	store, f, _ := faultyStore(t)
	f.set(false, true)
	r := runCLI(t, "run", "--store", store, "--ttl", "1s", "k", "--", "sh", "-c", "exit 5")
	if r.code != 5 || !strings.Contains(r.stderr, "warning: unlock \"k\"") || !strings.Contains(r.stderr, "injected release failure") {
		t.Errorf("want CMD's status 5 and a warning; got %v", r)
	}
}

// A lock taken away between renewals is found gone by the release when CMD
// ends: CMD may have run unprotected, which is exit 76, not CMD's status.
func TestRunLockGoneAtRelease(t *testing.T) {
	t.Parallel()
	store, f, _ := faultyStore(t)
	dir := t.TempDir()
	ready, proceed := filepath.Join(dir, "ready"), filepath.Join(dir, "proceed")
	done := make(chan result, 1)
	go func() {
		done <- runCLIWith(t.Context(), nil, &syncBuffer{}, "run", "--store", store, "--ttl", "1m", "k", "--",
			"sh", "-c", `touch "$1"; while [ ! -e "$2" ]; do sleep 0.02; done`, "sh", ready, proceed)
	}()
	eventually(t, 10*time.Second, "CMD to start", func() bool { _, err := os.Stat(ready); return err == nil })
	f.set(true, false) // the next renewal is 20s away: the release finds out
	if err := os.WriteFile(proceed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != exitLost || !strings.Contains(r.stderr, `lock "k" was no longer held when CMD ended with status 0`) {
			t.Errorf("want exit %d and a message; got %v", exitLost, r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("distlock did not return")
	}
}
