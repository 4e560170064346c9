package testenv

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test ended instead of ending
// the real one. Like the real Fatalf and Skipf, its endings call
// runtime.Goexit, so code after them never runs.
type recorder struct {
	testing.TB // the real test, for every method not overridden

	ended  string // "fatal", "skip" or "" if the test went on
	msg    string
	helper bool
}

func (r *recorder) Helper() { r.helper = true }

func (r *recorder) Fatalf(format string, args ...any) {
	r.ended, r.msg = "fatal", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.ended, r.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on a goroutine of its own, as the testing
// package runs a test, and reports whether f returned normally.
func run(t *testing.T, f func(tb testing.TB)) (r *recorder, returned bool) {
	r = &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
		returned = true
	}()
	<-done
	return r, returned
}

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"", false},
		{"true", true},
		{"TRUE", true},
		{"True", true},
		{"1", true},
		{"0", false},
		{"false", false},
		{"yes", false},
	} {
		t.Run(fmt.Sprintf("CI=%q", tc.value), func(t *testing.T) {
			t.Setenv("CI", tc.value)
			if got := InCI(); got != tc.want {
				t.Errorf("InCI() with CI=%q = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		ci   string
		want string
	}{
		{"", "skip"},
		{"false", "skip"},
		{"true", "fatal"},
		{"1", "fatal"},
	} {
		t.Run(fmt.Sprintf("CI=%q", tc.ci), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r, returned := run(t, func(tb testing.TB) {
				Unavailable(tb, "redis-server not found; set %s=host:port", "DISTLOCK_TEST_REDIS")
			})
			if returned {
				t.Fatal("Unavailable returned; it must end the test")
			}
			if r.ended != tc.want {
				t.Errorf("Unavailable ended the test with %q, want %q", r.ended, tc.want)
			}
			if !strings.Contains(r.msg, "redis-server not found; set DISTLOCK_TEST_REDIS=host:port") {
				t.Errorf("message %q does not carry the caller's text", r.msg)
			}
			if !r.helper {
				t.Error("Unavailable did not call t.Helper")
			}
		})
	}
}
