// Package drivertest is the conformance suite every distlock driver runs.
//
// A driver's tests wire it in with a [Harness] that opens fresh drivers on the
// store under test and can remove a lock behind its holder's back; SQLite's
// is the whole of sqlitelock/conformance_test.go:
//
//	func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
//		return sqlitelock.OpenDriver(ctx, h.path, nil) // its own connections, as another process
//	}
//
//	func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
//		_, err := h.admin.ExecContext(ctx, "DELETE FROM distlock_locks WHERE lock_key = ?", key)
//		return err
//	}
//
//	func TestConformance(t *testing.T) {
//		drivertest.RunConformanceTests(t, &harness{path: path, admin: admin})
//	}
//
// The driver's test package also runs goleak.VerifyTestMain in its TestMain,
// so that a goroutine outliving Client.Close fails it. A harness may pick the
// suite's TTL by implementing interface{ TTL() time.Duration }; the default is
// the larger of the driver's MinTTL and 500ms.
//
// # What it checks
//
// The suite is an ordered list of named cases, each run as a subtest on keys
// of its own and each stating one rule, which is printed with every failure
// ("a key's fence grows strictly with every acquisition, ...: fence 1, want
// above the previous holder's 4"). In order: Status, TryLockContended,
// Unlock, DriverContract, OwnerOnly, CrashedHolderExpires, RenewalKeepsLock,
// LossDetected, FenceMonotonic, LockCancelled, LockWakesOnRelease,
// LockContextBoundsWaitOnly, Do, Close, InvalidInput, KeysAreExact,
// AmbiguousAcquire, RenewalBatched and MutualExclusion (16 Clients × 200
// critical sections on one key). Run one with -run 'TestConformance/LossDetected'.
//
// Cases build portable Clients with [distlock.NewClient], one driver per
// Client, so two Clients behave like two processes, and use the public API.
// Faults are injected by wrapping the real driver (an acquire whose reply is
// lost, with or without the lock taken; a count of renewal calls) and by the
// harness's Evict. DriverContract and OwnerOnly also call the driver directly,
// where the rule is the driver's own (a made-up token must not release a lock).
//
// # Time
//
// Time bounds are generous and check liveness only (a cancelled waiter
// returns within 2s; a removed lock is noticed within a few renewal
// intervals); no case asserts speed. The suite takes about 16 TTLs plus the
// stress case, and passes under the race detector: on a 2-core machine under
// -race, about 9s on an in-memory store and 26s on SQLite.
package drivertest
