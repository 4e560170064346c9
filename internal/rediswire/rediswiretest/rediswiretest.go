// Package rediswiretest holds the checks the Redis drivers' tests share: that
// a package documentation shows its scripts verbatim, and that a driver's
// calls return by their ctx's end on servers that stopped answering.
package rediswiretest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
)

// DocShowsScripts checks that the code blocks of file's comments (its
// package documentation) show each script verbatim, blank lines and Lua
// comment lines aside: other languages rely on the documented protocol.
func DocShowsScripts(t *testing.T, file string, scripts map[string]string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok && !strings.HasPrefix(rest, "--") {
			doc.WriteString(rest)
		}
	}
	for name, script := range scripts {
		var code strings.Builder
		for line := range strings.Lines(script) {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--") {
				code.WriteString(line)
			}
		}
		if !strings.Contains(doc.String(), code.String()) {
			t.Errorf("%s does not show %s verbatim; its code is:\n%s", file, name, code.String())
		}
	}
}

// Deadline is how CallsReturnByDeadline runs each call.
type Deadline struct {
	Ctx   time.Duration // each call's ctx
	Limit time.Duration // how long a call may take: Ctx, with room for a loaded machine
	// Check, if set, judges each call's error ("Renew" gives the batch's
	// error, or the lease's).
	Check func(t *testing.T, op string, err error)
}

// CallsReturnByDeadline warms d up (an Acquire of "held", an Inspect and a
// Renew of it, which also load the scripts), calls stop (which makes the
// servers stop answering), then makes each call with a ctx of dl.Ctx and
// fails the test if one takes longer than dl.Limit.
func CallsReturnByDeadline(t *testing.T, d driver.Driver, stop func(), dl Deadline) {
	t.Helper()
	ctx := t.Context()
	held, err := d.Acquire(ctx, driver.AcquireRequest{Key: "held", Token: "t1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Inspect(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Renew(ctx, []driver.Lease{held}); err != nil {
		t.Fatal(err)
	}
	stop()
	calls := []struct {
		op   string
		call func(ctx context.Context) error
	}{
		{"Acquire", func(ctx context.Context) error {
			_, err := d.Acquire(ctx, driver.AcquireRequest{Key: "new", Token: "t2", TTL: time.Minute})
			return err
		}},
		{"Release", func(ctx context.Context) error { return d.Release(ctx, held) }},
		{"Renew", func(ctx context.Context) error {
			errs, err := d.Renew(ctx, []driver.Lease{held})
			if err == nil && len(errs) == 1 && errs[0] != nil {
				err = errs[0]
			}
			return err
		}},
		{"Inspect", func(ctx context.Context) error {
			_, err := d.Inspect(ctx, "held")
			return err
		}},
	}
	if q, ok := d.(driver.Queuer); ok {
		calls = append(calls, struct {
			op   string
			call func(ctx context.Context) error
		}{"AcquireWait", func(ctx context.Context) error {
			_, err := q.AcquireWait(ctx, driver.AcquireRequest{Key: "held", Token: "t3", TTL: time.Minute})
			return err
		}})
	}
	for _, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, dl.Ctx)
		start := time.Now()
		err := c.call(cctx)
		took := time.Since(start)
		cancel()
		if took > dl.Limit {
			t.Errorf("%s took %v with a %v ctx", c.op, took.Round(time.Millisecond), dl.Ctx)
		}
		if dl.Check != nil {
			dl.Check(t, c.op, err)
		}
	}
}

// UnknownOutcome is a Deadline.Check for a single server: every call fails
// with an error that keeps ctx's in its chain and is not ErrUnavailable
// (the request was sent: its outcome is unknown).
func UnknownOutcome(t *testing.T, op string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s on a server that does not answer: no error", op)
	case errors.Is(err, driver.ErrUnavailable):
		t.Errorf("%s: %v; the request was sent, its outcome is unknown, not unavailable", op, err)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s: %v, want the ctx's error in the chain", op, err)
	}
}
