package drivertest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memHarness runs the suite against the in-memory store: a test of the
// suite itself.
type memHarness struct {
	s      *memStore
	notify bool
	ttl    time.Duration // 0: the suite's default
}

func (h *memHarness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	d := &memDriver{s: h.s}
	if h.notify {
		return memNotifyDriver{d}, nil
	}
	return d, nil
}

func (h *memHarness) Evict(ctx context.Context, t *testing.T, key string) error {
	h.s.evict(key)
	return nil
}

func (h *memHarness) Snapshot(ctx context.Context, t *testing.T) (func(context.Context) error, error) {
	restore := h.s.snapshot()
	return func(context.Context) error { restore(); return nil }, nil
}

// ttlHarness also picks the suite's TTL.
type ttlHarness struct{ *memHarness }

func (h ttlHarness) TTL() time.Duration { return h.ttl }

func TestConformancePolling(t *testing.T) {
	drivertest.RunConformanceTests(t, &memHarness{s: newMemStore()})
}

func TestConformanceNotifier(t *testing.T) {
	drivertest.RunConformanceTests(t, ttlHarness{&memHarness{s: newMemStore(), notify: true, ttl: 300 * time.Millisecond}})
}

// brokenDrivers pairs each mutation of the memory store with the case that
// must catch it: the suite is only as good as the faults it has been seen to
// find.
var brokenDrivers = []struct{ mutation, catchedBy string }{
	{"no-exclusion", "TryLockContended"},
	{"no-exclusion", "MutualExclusion"},
	{"check-then-set", "MutualExclusion"},
	{"acquire-not-idempotent", "DriverContract"},
	{"release-any-token", "OwnerOnly"},
	{"renew-any-token", "OwnerOnly"},
	{"renew-resurrects", "LossDetected"},
	{"renew-resurrects", "Do"},
	{"fence-resets", "FenceMonotonic"},
	{"fence-counter", "FenceAfterRollback"},
	{"fold-case", "KeysAreExact"},
	{"no-owner", "Status"},
}

const brokenEnv = "DRIVERTEST_BROKEN"

// TestBrokenDriver runs the suite on a broken store. It does something only
// in the child processes TestSuiteCatchesBrokenDrivers starts.
func TestBrokenDriver(t *testing.T) {
	mutation := os.Getenv(brokenEnv)
	if mutation == "" {
		t.Skip("runs only in the child processes of TestSuiteCatchesBrokenDrivers")
	}
	drivertest.RunConformanceTests(t, &memHarness{s: newBrokenMemStore(mutation)})
}

func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	for _, b := range brokenDrivers {
		t.Run(b.mutation+"/"+b.catchedBy, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestBrokenDriver$/^"+b.catchedBy+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), brokenEnv+"="+b.mutation)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed on a store with mutation %q (err %v); case %s should have failed:\n%s", b.mutation, err, b.catchedBy, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenDriver/"+b.catchedBy+" ") || strings.Contains(string(out), "panic:") {
				t.Errorf("mutation %q: want case %s to fail cleanly; output:\n%s", b.mutation, b.catchedBy, out)
			}
		})
	}
}
