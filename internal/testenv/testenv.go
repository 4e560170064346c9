package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// InCI reports whether the tests run under continuous integration: the
// environment variable CI is "true" (in any case) or "1".
func InCI() bool {
	v := os.Getenv("CI")
	return v == "1" || strings.EqualFold(v, "true")
}

// Unavailable ends a test that cannot reach something it needs. The message
// (fmt.Sprintf of format and args) should name what is missing and how to
// provide it, for example "redis-server not found in PATH; install it or set
// DISTLOCK_TEST_REDIS=host:port".
//
// Under CI it calls t.Fatalf; elsewhere t.Skipf. Either way it does not
// return (both call runtime.Goexit), so it must be called from the goroutine
// running the test.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s\n(CI is set: a backend that cannot be reached fails the test instead of skipping it)", msg)
		return
	}
	t.Skipf("%s\n(skipped; with CI=true this would fail)", msg)
}
