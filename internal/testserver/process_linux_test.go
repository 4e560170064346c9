package testserver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes TestHelperRedis, run in a child test binary by
// TestServerDiesWithTestBinary, start a Redis server, print its pid and
// directory, and wait to be killed.
const helperEnv = "DISTLOCK_TESTSERVER_HELPER"

func TestHelperRedis(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // not a test of its own
	}
	r := StartRedis(t, Private())
	fmt.Printf("%d %s\n", r.p.cmd.Process.Pid, r.p.dir)
	select {} // until killed
}

func TestServerDiesWithTestBinary(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRedis$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var pid int
	var dir string
	if _, err := fmt.Sscan(line, &pid, &dir); err != nil {
		t.Fatalf("helper printed %q: %v", line, err)
	}
	defer os.RemoveAll(dir) // the helper never ran its cleanup
	if !strings.Contains(dir, "distlock-redis-") {
		t.Fatalf("helper printed directory %q", dir)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, state, ok := procStat(pid)
		if !ok || state == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server (pid %d) outlived the killed test binary", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPostgresKilledLeavesNoSegment(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("SysV segments are only cleaned up on linux/amd64 and linux/arm64")
	}
	var key, id string
	t.Run("kill", func(t *testing.T) {
		pg := StartPostgres(t, Private())
		b, err := os.ReadFile(filepath.Join(pg.p.dir, "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		f := strings.Fields(lines[6])
		key, id = f[0], f[1]
		if !hasSegment(key, id) {
			t.Fatalf("segment %s (key %s) not in /proc/sysvipc/shm", id, key)
		}
		pg.Kill() // the test ends with the server killed
	})
	if hasSegment(key, id) {
		t.Errorf("segment %s (key %s) outlived the killed server's test", id, key)
	}
}

func hasSegment(key, id string) bool {
	table, _ := os.ReadFile("/proc/sysvipc/shm")
	for _, row := range strings.Split(string(table), "\n") {
		if c := strings.Fields(row); len(c) > 1 && c[0] == key && c[1] == id {
			return true
		}
	}
	return false
}

func TestSweepScratch(t *testing.T) {
	root := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]int{
		"distlock-redis-dead":  dead.Process.Pid, // exited and reaped
		"distlock-redis-alive": os.Getppid(),
		"distlock-redis-self":  os.Getpid(),
	} {
		if err := os.MkdirAll(filepath.Join(root, name, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, ownerFile), []byte(fmt.Sprint(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "distlock-unmarked"), 0o700); err != nil {
		t.Fatal(err)
	}
	sweepScratch(root)
	for name, want := range map[string]bool{
		"distlock-redis-dead": false, "distlock-redis-alive": true, "distlock-redis-self": true, "distlock-unmarked": true,
	} {
		if got := isDir(filepath.Join(root, name)); got != want {
			t.Errorf("after the sweep, %s exists = %v, want %v", name, got, want)
		}
	}
}
