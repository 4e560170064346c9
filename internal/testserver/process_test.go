package testserver

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestStartRetriesTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	var calls atomic.Int32
	pickPort = func() (int, error) {
		if calls.Add(1) == 1 {
			return port, nil // as if another process took it first
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = freePort })

	r := StartRedis(t, Private())
	if calls.Load() != 2 || r.Addr() == taken.Addr().String() {
		t.Fatalf("after %d port picks, the server is on %s; want it on a second port, not %s", calls.Load(), r.Addr(), taken.Addr())
	}
	mustAnswer(t, "started on a second port", r.Ping)
}

func TestRestartWaitsForItsPort(t *testing.T) {
	r := StartRedis(t, Private())
	r.Stop()
	taken, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { taken.Close() })
	r.Restart() // fails while the port is taken, then succeeds
	mustAnswer(t, "restarted once its port was free", r.Ping)
}

func TestRestartGivesUpOnATakenPort(t *testing.T) {
	r := StartRedis(t, Private(), StartTimeout(2*time.Second))
	r.Stop()
	taken, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	rec := record(t, func(tb testing.TB) {
		r.t = tb
		r.p.t = tb
		r.Restart()
	})
	r.t, r.p.t = t, t
	if rec.ended != "fatal" || !strings.Contains(rec.msg, "Address already in use") {
		t.Errorf("Restart on a taken port ended with %q %q; want a failure quoting the server's log", rec.ended, rec.msg)
	}
}

func TestFailureShowsLogTail(t *testing.T) {
	rec := record(t, func(tb testing.TB) { StartRedis(tb, Private(), Args("--no-such-directive", "1")) })
	if rec.ended != "fatal" {
		t.Fatalf("a server that cannot start ended the test with %q, want a failure", rec.ended)
	}
	for _, want := range []string{"exited before it was ready", "--- end of ", "no-such-directive"} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, rec.msg)
		}
	}
}

func TestFormatTail(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	got := formatTail("x.log", []byte(b.String()))
	if strings.Contains(got, "line 74\n") || !strings.Contains(got, "line 75\n") || !strings.Contains(got, "line 99\n") {
		t.Errorf("formatTail kept the wrong lines:\n%s", got)
	}
	if got := formatTail("x.log", nil); !strings.Contains(got, "x.log is empty") {
		t.Errorf("formatTail of nothing = %q", got)
	}
}

func TestCachedTemplate(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	builds := 0
	build := func(dir string) error {
		builds++
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(filepath.Join(data, "sub"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(data, "sub", "f"), []byte("x"), 0o600); err != nil {
			return err
		}
		return os.Symlink("sub/f", filepath.Join(data, "link"))
	}
	first, err := cachedTemplate(t, "fake", []string{"a"}, nil, build)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cachedTemplate(t, "fake", []string{"a"}, nil, build)
	if err != nil || again != first || builds != 1 {
		t.Fatalf("second call = %s, %v after %d builds; want %s from the cache", again, err, builds, first)
	}
	other, err := cachedTemplate(t, "fake", []string{"b"}, nil, build)
	if err != nil || other == first || builds != 2 {
		t.Fatalf("another key = %s, %v after %d builds; want a new build", other, err, builds)
	}

	// Another process finishing first: its template is used, ours dropped.
	raced, err := cachedTemplate(t, "fake", []string{"c"}, nil, func(dir string) error {
		winner := filepath.Join(templatePath("fake", []string{"c"}), "data")
		if err := os.MkdirAll(winner, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(winner, "winner"), nil, 0o644); err != nil {
			return err
		}
		return build(dir)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(raced, "winner")); err != nil {
		t.Errorf("lost the race but did not use the winner's template: %v", err)
	}
	if stages, _ := filepath.Glob(filepath.Join(cacheRoot(), ".stage-*")); len(stages) > 0 {
		t.Errorf("staging directories left behind: %v", stages)
	}

	// The copy keeps modes and symlinks.
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyTree(first, dst, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "sub"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("copied directory: %v, %v; want mode 0700", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "link")); err != nil || string(b) != "x" {
		t.Errorf("copied symlink reads %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "sub/f" {
		t.Errorf("copied symlink points to %q, %v; want sub/f", target, err)
	}
}
