package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testenv"
)

// recorder is a testing.TB that records how a test ended instead of ending
// the real one; like the real methods, its endings call runtime.Goexit.
type recorder struct {
	testing.TB // the real test, for Helper, Cleanup, Logf and the rest

	ended string // "fatal", "skip", or "" while the test goes on
	msg   string
}

func (r *recorder) Fatalf(format string, args ...any) { r.end("fatal", fmt.Sprintf(format, args...)) }
func (r *recorder) Fatal(args ...any)                 { r.end("fatal", fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any)  { r.end("skip", fmt.Sprintf(format, args...)) }
func (r *recorder) Skip(args ...any)                  { r.end("skip", fmt.Sprint(args...)) }
func (r *recorder) SkipNow()                          { r.end("skip", "") }
func (r *recorder) FailNow()                          { r.end("fatal", "") }

func (r *recorder) end(how, msg string) {
	r.ended, r.msg = how, msg
	runtime.Goexit()
}

// record runs f with a recorder on a goroutine of its own and reports how it
// ended.
func record(t *testing.T, f func(tb testing.TB)) *recorder {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// wantUnavailable checks that r ended as testenv.Unavailable ends a test:
// failed under CI, skipped elsewhere, with a message containing want.
func wantUnavailable(t *testing.T, r *recorder, want string) {
	t.Helper()
	how := "skip"
	if testenv.InCI() {
		how = "fatal"
	}
	if r.ended != how || !strings.Contains(r.msg, want) {
		t.Errorf("test ended with %q %q; want %q with a message containing %q", r.ended, r.msg, how, want)
	}
}

// mustAnswer fails the test unless ping succeeds within a few seconds.
func mustAnswer(t *testing.T, what string, ping func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ping(ctx); err != nil {
		t.Fatalf("%s: server does not answer: %v", what, err)
	}
}

// mustTimeOut fails the test unless ping fails with a timeout within a short
// deadline: what a paused server does.
func mustTimeOut(t *testing.T, what string, ping func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := ping(ctx)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: ping = %v after %v, want a timeout", what, err, time.Since(began))
	}
}

// mustRefuse fails the test unless ping fails at once: what a stopped or
// killed server does.
func mustRefuse(t *testing.T, what string, ping func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ping(ctx); err == nil {
		t.Fatalf("%s: server still answers", what)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: ping timed out (%v); want the connection refused", what, err)
	}
}
