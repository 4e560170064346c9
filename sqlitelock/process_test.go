package sqlitelock

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// helperEnv, when set, makes the test binary act as one more process taking
// locks in a shared file (see TestMain): "path|rounds".
const helperEnv = "DISTLOCK_SQLITELOCK_HELPER"

// helperProcess increments a counter kept in a plain file next to the
// database, under the lock, rounds times. A lost update or a fence that does
// not grow shows two holders at once.
func helperProcess() int {
	path, roundsStr, _ := strings.Cut(os.Getenv(helperEnv), "|")
	rounds, _ := strconv.Atoi(roundsStr)
	ctx := context.Background()
	c, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	counter := filepath.Join(filepath.Dir(path), "counter")
	for range rounds {
		l, err := c.Lock(ctx, "counter", distlock.WithBackoff(time.Millisecond, 20*time.Millisecond))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		var n int
		var fence uint64
		if b, err := os.ReadFile(counter); err == nil {
			fmt.Sscan(string(b), &n, &fence)
		}
		if l.Fence() <= fence {
			fmt.Fprintf(os.Stderr, "fence %d is not above %d\n", l.Fence(), fence)
			return 3
		}
		if err := os.WriteFile(counter, []byte(fmt.Sprint(n+1, " ", l.Fence())), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := l.Unlock(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	return 0
}

// TestProcesses runs three processes against one file.
func TestProcesses(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "locks.db")
	const procs, rounds = 3, 30
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for i := range cmds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path+"|"+strconv.Itoa(rounds))
		outs[i] = new(strings.Builder)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "counter"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(string(b), &n)
	if n != procs*rounds {
		t.Errorf("counter = %d, want %d: updates were lost, so two processes held the lock at once", n, procs*rounds)
	}
}
