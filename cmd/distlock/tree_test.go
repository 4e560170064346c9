//go:build unix

package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of CMD's process tree: what happens to the processes CMD starts.

// treeScript is a CMD for sh -c that starts a grandchild (sleep 300 in the
// background), records its fence in $1.fence, the grandchild's pid in
// $1.grandchild and its own pid in $1 (atomically, last), then waits.
const treeScript = `echo "$DISTLOCK_FENCE" > "$1.fence"; sleep 300 & echo $! > "$1.grandchild"; ` +
	`echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; wait`

// startedTree waits for a treeScript to record itself and returns its pid,
// its grandchild's and its fence. Both processes are killed at the end of
// the test if still alive.
func startedTree(t *testing.T, pidFile string) (pid, grandchild int, fence uint64) {
	t.Helper()
	pid, fence = startedCMD(t, pidFile)
	grandchild = pidIn(t, pidFile+".grandchild")
	return pid, grandchild, fence
}

// pidIn reads the pid in file, to be killed at the end of the test if still
// alive.
func pidIn(t *testing.T, file string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// evict ends the lease of key in the SQLite store behind its holder's back,
// through a connection of its own, as an operator or a clock jump would.
func evict(t *testing.T, store, key string) {
	t.Helper()
	path := strings.TrimPrefix(store, "sqlite://")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE distlock_locks SET expires_at = 0 WHERE lock_key = ?`, key)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("evict %q: %d rows, %v", key, n, err)
	}
}

// A lost lock stops CMD's whole process group: distlock exits 76 only once
// the grandchild is gone too.
func TestE2ELossStopsTheTree(t *testing.T) {
	t.Parallel()
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	holder := startDistlock(t, "run", "--store", store, "--ttl", "1s", "k", "--", "sh", "-c", treeScript, "sh", pidFile)
	pid, grandchild, _ := startedTree(t, pidFile)

	evict(t, store, "k")
	if code := holder.wait(t, 30*time.Second); code != exitLost {
		t.Fatalf("want exit %d after the loss; got %d\n%v", exitLost, code, holder)
	}
	if alive(grandchild) || alive(pid) {
		t.Errorf("after exit %d: CMD (pid %d) alive %v, its grandchild (pid %d) alive %v; want both gone",
			exitLost, pid, alive(pid), grandchild, alive(grandchild))
	}
}

// kill -9 of distlock kills CMD and its grandchild, and a waiter takes the
// lock once its TTL has run out.
func TestE2EKill9KillsTheTree(t *testing.T) {
	t.Parallel()
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	holder := startDistlock(t, "run", "--store", store, "--ttl", "2s", "k", "--", "sh", "-c", treeScript, "sh", pidFile)
	pid, grandchild, fence := startedTree(t, pidFile)
	waiter := startDistlock(t, "run", "--store", store, "k", "--", "sh", "-c", `echo "$DISTLOCK_FENCE"`)

	killed := time.Now()
	if err := holder.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := holder.wait(t, 20*time.Second); code != 128+9 {
		t.Errorf("holder: want death by SIGKILL; got %d", code)
	}
	eventually(t, 10*time.Second, fmt.Sprintf("CMD (pid %d) and its grandchild (pid %d) to die with distlock", pid, grandchild),
		func() bool { return !alive(pid) && !alive(grandchild) })

	if code := waiter.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("waiter: want exit 0; got %d\n%v", code, waiter)
	}
	if f := fenceOf(t, waiter); f <= fence {
		t.Errorf("waiter's fence %d is not above the killed holder's %d", f, fence)
	}
	t.Logf("waiter took the lock %v after the kill (TTL 2s)", time.Since(killed).Round(100*time.Millisecond))
}

// A process CMD leaves behind in its group gets SIGTERM when CMD exits, and
// the lock is released only once it is gone: the next holder's CMD finds it
// dead, having seen the SIGTERM.
func TestE2ELeftoverGoneBeforeRelease(t *testing.T) {
	t.Parallel()
	store, dir := sqliteStore(t), t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The leftover takes a moment to exit after SIGTERM, and says it got it.
	// It records its pid once it traps SIGTERM; CMD exits after that.
	leftover := filepath.Join(dir, "leftover.sh")
	script := `trap 'sleep 0.3; touch "$1.term"; exit 0' TERM; echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; sleep 300 & wait`
	if err := os.WriteFile(leftover, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	holder := startDistlock(t, "run", "--store", store, "k", "--",
		"sh", "-c", `sh "$2" "$1" & while [ ! -e "$1" ]; do sleep 0.01; done; exit 3`, "sh", pidFile, leftover)
	eventually(t, 20*time.Second, "CMD to start its leftover", func() bool { _, err := os.Stat(pidFile); return err == nil })
	pid := pidIn(t, pidFile)

	code, next := runDistlock(t, "run", "--store", store, "k", "--",
		"sh", "-c", `if kill -0 "$1" 2>/dev/null; then echo alive; elif [ -e "$2.term" ]; then echo gone after SIGTERM; else echo gone without SIGTERM; fi`,
		"sh", strconv.Itoa(pid), pidFile)
	if code != 0 || next.stdout.String() != "gone after SIGTERM\n" {
		t.Errorf("next holder: want exit 0 and the leftover gone after SIGTERM; got %d\n%v", code, next)
	}
	if code := holder.wait(t, 30*time.Second); code != 3 {
		t.Errorf("holder: want CMD's status 3; got %d\n%v", code, holder)
	}
	if msg := holder.stderr.String(); !strings.Contains(msg, "left processes in its group") {
		t.Errorf("holder: want the leftover reported; got\n%s", msg)
	}
}

// A leftover that ignores SIGTERM is killed --grace later; distlock still
// exits with CMD's status, and the lock is free once it returns.
func TestRunKillsLeftoverAfterGrace(t *testing.T) {
	t.Parallel()
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	r := runCLI(t, "run", "--store", store, "--grace", "200ms", "k", "--",
		"sh", "-c", `sh -c 'trap "" TERM; exec sleep 300' & echo $! > "$1"; exit 4`, "sh", pidFile)
	pid := pidIn(t, pidFile)
	if r.code != 4 || !strings.Contains(r.stderr, "SIGKILL after 200ms") {
		t.Errorf("want CMD's status 4 and the leftover reported; got %v", r)
	}
	if alive(pid) {
		t.Errorf("the leftover (pid %d) is alive after distlock returned", pid)
	}
	if !isFree(t, store, "k") {
		t.Error("the lock is still held after distlock returned")
	}
}

// SIGINT, SIGTERM and SIGHUP sent to distlock reach the whole of CMD's
// process group: a shell that traps the signal sees its own child die of it.
func TestE2ESignalsReachCMDsChildren(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, ready := sqliteStore(t), filepath.Join(t.TempDir(), "ready")
			p := startDistlock(t, "run", "--store", store, "k", "--", "sh", "-c",
				`trap 'echo CMD got `+name+`' `+name+`; sh -c 'touch "$1"; exec sleep 300' sh "$1"; echo "child status $?"; exit 7`,
				"sh", ready)
			// ready exists once CMD's trap is set and its child runs.
			eventually(t, 20*time.Second, "CMD's child to start", func() bool { _, err := os.Stat(ready); return err == nil })
			p.cmd.Process.Signal(sig)
			want := fmt.Sprintf("child status %d", 128+int(sig))
			if code := p.wait(t, 20*time.Second); code != 7 || !strings.Contains(p.stdout.String(), want) {
				t.Errorf("want CMD's child killed by %s (%q) and exit 7; got %d\n%v", name, want, code, p)
			}
		})
	}
}

// If the supervisor dies before CMD (killed on its own), nobody watches
// CMD's group any more: distlock kills it, says so, and releases the lock.
func TestRunSupervisorKilled(t *testing.T) {
	t.Parallel()
	store, pidFile := sqliteStore(t), filepath.Join(t.TempDir(), "pid")
	wait := startCLI(t, "run", "--store", store, "k", "--", "sh", "-c", `echo $PPID > "$1.supervisor"; `+treeScript, "sh", pidFile)
	pid, grandchild, _ := startedTree(t, pidFile)
	supervisor := pidIn(t, pidFile+".supervisor")
	if err := syscall.Kill(supervisor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := wait(20 * time.Second); r.code != 1 || !strings.Contains(r.stderr, "supervisor of CMD") || !strings.Contains(r.stderr, "process group was killed") {
		t.Errorf("want exit 1 and the supervisor's death reported; got %v", r)
	}
	eventually(t, 10*time.Second, "CMD and its grandchild to be killed", func() bool { return !alive(pid) && !alive(grandchild) })
	if !isFree(t, store, "k") {
		t.Error("the lock is still held after distlock returned")
	}
}
