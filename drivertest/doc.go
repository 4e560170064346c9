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
// # Capabilities
//
// A harness offers more by implementing optional interfaces, as database/sql
// drivers do:
//
//   - [Transport]: the store's server addresses, and NewDriverVia, a driver
//     that reaches server i through another address. The suite puts a fault
//     proxy ([github.com/distlock/distlock/drivertest/netfault.Proxy]) in
//     front of each server, and switches what the network does to one
//     Client while another reaches the store directly.
//   - [Restarter]: Restart stops and starts the store, keeping what it
//     persists.
//   - [Rollbacker]: Snapshot records the store's lock data, and the function
//     it returns brings the store back to it, as a restore from a backup or
//     a failover to a replica that missed writes does.
//   - [Lacker]: why the harness lacks one of them, for the log.
//
// The suite's log says what the harness offers; a case that needs a
// capability the harness lacks is skipped with the reason. [RunFaultTests]
// runs only the cases that need one, for a second topology of a store (etcd
// with three members beside one).
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
// AmbiguousAcquire, then the cases of the capabilities (FrozenHolder,
// LostAcquireReply, LostReleaseReply, LostRenewReply and StoreUnreachable
// with Transport, FenceAfterRestart, FenceAfterRollback), RenewalBatched and
// MutualExclusion (16 Clients × 200 critical sections on one key). Run one
// with -run 'TestConformance/LossDetected'.
//
// Cases build portable Clients with [distlock.NewClient], one driver per
// Client, so two Clients behave like two processes, and use the public API.
// Faults are injected by wrapping the real driver (an acquire whose reply is
// lost, with or without the lock taken; a count of renewal calls), by the
// harness's Evict, and with Transport in the network itself, where they
// happen: a holder whose network stalls, goes dark or slows past the TTL
// (FrozenHolder: its Done must close by its Deadline, before another Client
// can take the key), replies lost after the store ran an acquire, a release
// or a renewal (decided, never guessed; nothing held beyond a TTL; never two
// holders), a store that refuses connections (ErrUnavailable). A restart and
// a rollback of the store must not bring a fence back. DriverContract and
// OwnerOnly also call the driver directly, where the rule is the driver's
// own (a made-up token must not release a lock).
//
// # Time
//
// Time bounds are generous and check liveness only (a cancelled waiter
// returns within 2s; a removed lock is noticed within a few renewal
// intervals); no case asserts speed. One bound is a promise: a lock that
// could not be renewed is declared lost (Done closed) within 100ms of its
// Deadline, which the transport cases check with 250ms of room for a loaded
// machine, logging the lateness they measured; the other holder's check is
// strict (Done closed before another Client got the key), as that is what
// exclusion means. The suite takes about 16 TTLs
// plus the stress case, about 15 more with Transport, and passes under the
// race detector: on a 2-core machine under -race, about 9s on an in-memory
// store and 26s on SQLite.
package drivertest
