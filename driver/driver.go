package driver

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors a driver wraps so the portable layer can tell outcomes apart.
// The portable distlock package re-exports the first two under the same names.
var (
	// ErrLocked: another token holds the key. A definite answer.
	ErrLocked = errors.New("distlock: key is locked by another holder")
	// ErrNotHeld: the token no longer holds the key (released, expired, taken
	// over or removed). A definite answer.
	ErrNotHeld = errors.New("distlock: lock is not held")
	// ErrUnavailable: the store could not be reached and the request surely
	// had no effect (for example the dial was refused).
	ErrUnavailable = errors.New("distlock: store unavailable")
	// ErrRetry: Acquire took nothing and knows of no holder, because the
	// store could not decide in time (Redlock: no majority within the
	// lock's validity; what was written has been given back, or expires).
	// A definite answer: Lock waits and tries again, TryLock reports the
	// store as unavailable.
	ErrRetry = errors.New("distlock: the store could not decide in time")
)

// Info describes what a driver can honour.
type Info struct {
	// Name is the backend's short name, used in errors and logs ("sqlite").
	Name string
	// MinTTL is the smallest TTL the store can honour. Smaller TTLs are
	// rejected by the portable layer with an error naming this value.
	MinTTL time.Duration
	// TTLGranularity, when non-zero, is the unit the store rounds TTLs up to
	// (etcd leases are whole seconds).
	TTLGranularity time.Duration
}

// AcquireRequest is one attempt to take Key for Token.
type AcquireRequest struct {
	Key   string
	Token string        // unique, unguessable; made by the portable layer
	TTL   time.Duration // already validated against Info
	Owner string        // free-form metadata shown by status; may be empty
}

// Lease is a lock the store granted.
type Lease struct {
	Key   string
	Token string
	Fence uint64        // made by the store; strictly increasing per key
	TTL   time.Duration // the TTL the store applied (may be rounded up)
	// Since, if set, is when the TTL began counting by the local clock,
	// when that is before the request was sent: a lock on a lease shared
	// with other locks (etcd) is only as fresh as the lease's last renewal.
	// Zero means the send time of the request. The portable layer counts
	// the lock's deadline from the earlier of the two, and renews at once
	// if too little is left.
	Since time.Time
}

// Holder is what Inspect reads about a key.
type Holder struct {
	Held bool // false: the key is free (the other fields are zero)
	// Token is the holder's token, for the portable layer's read-back only.
	// A driver may leave it empty for a lock it could not keep even if the
	// store still shows it (a session store shows it only for the sessions
	// it keeps), so that the read-back never hands such a lock out.
	Token string
	Fence uint64        // the holder's fence
	Owner string        // the holder's metadata
	TTL   time.Duration // remaining time by the store's clock; 0 if unknown
}

// HeldError is the contention answer of Acquire when the store said who holds
// the key (at no extra cost). It matches ErrLocked with errors.Is.
type HeldError struct {
	Holder Holder
}

func (e *HeldError) Error() string {
	if e.Holder.Owner == "" {
		return ErrLocked.Error()
	}
	return fmt.Sprintf("%v (held by %s)", ErrLocked, e.Holder.Owner)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *HeldError) Is(target error) bool { return target == ErrLocked }

// Driver is the contract every backend implements. Every call makes a single
// attempt; retrying, waiting and renewal scheduling belong to the portable
// layer. Implementations must be safe for concurrent use.
type Driver interface {
	// Info reports the backend's name and limits. It does no I/O.
	Info() Info

	// Acquire tries once to take req.Key for req.Token with a TTL measured by
	// the store's clock, and returns the lease with a fresh fence.
	// Contention: ErrLocked (ideally *HeldError). If the store already holds
	// req.Key for req.Token (a retried request), Acquire succeeds and returns
	// that lease.
	Acquire(ctx context.Context, req AcquireRequest) (Lease, error)

	// Release deletes the lock only if l.Token still holds l.Key.
	// ErrNotHeld if it does not (expired, taken over, removed). l.Fence is 0
	// when the acquire's answer was lost (the portable layer then releases
	// by token alone): a driver that guards release by fence must then
	// match the token only.
	Release(ctx context.Context, l Lease) error

	// Renew extends each lease by its TTL, from now on the store's clock, only
	// if its token still holds its key. The result has one entry per lease:
	// nil (extended), an error wrapping ErrNotHeld (lost), or another error
	// (unknown for that lease: the portable layer retries it while its TTL
	// allows). A non-nil second result means the batch as a whole failed
	// (timeout, connection reset) and nothing is known about any lease.
	Renew(ctx context.Context, leases []Lease) ([]error, error)

	// Inspect reads the current holder of key. A free or expired key is
	// Holder{Held: false} with a nil error.
	Inspect(ctx context.Context, key string) (Holder, error)

	// Close releases resources the driver opened itself. It must not close a
	// client or database handle the user passed in.
	Close() error
}

// Notifier is implemented by drivers whose store can wake waiters when a key
// may have become free (pub/sub, LISTEN/NOTIFY, in-process signals).
type Notifier interface {
	// Subscribe starts listening for releases of key. The returned channel
	// receives a value (best effort, it may coalesce) when the key may have
	// become free. A driver may wake every subscriber or only one (the
	// longest waiting, to avoid a stampede); one that wakes only one must pass
	// an unused wake-up on when that subscriber cancels. A release after
	// Subscribe returns is never missed: either the subscription is active
	// when Subscribe returns, or the driver wakes the subscriber once it has
	// become active (so the caller's next attempt sees any release between).
	// Subscribers also re-check on a timer, so a lost wake-up costs latency,
	// never correctness. cancel stops it and must be called.
	Subscribe(ctx context.Context, key string) (wake <-chan struct{}, cancel func(), err error)
}

// Queuer is implemented by drivers whose store keeps an ordered queue of
// waiters (etcd). The driver then owns waiting.
type Queuer interface {
	// AcquireWait blocks until req.Key is held for req.Token or ctx ends.
	// When ctx ends first it returns by ctx's deadline, having removed its
	// own queue entry, or started removing it in the background if the store
	// does not answer at once, so it never blocks the waiters behind it for
	// longer than that removal takes; the error joins ctx's error with
	// ErrLocked (ideally a *HeldError naming the holder it waited for).
	AcquireWait(ctx context.Context, req AcquireRequest) (Lease, error)
}

// Purger is implemented by drivers whose store keeps a record of a key after
// its lock is released (the SQL lease row, which carries the key's fence).
// Such records are what keeps a fence from repeating, so they may only go
// once the store's clock has passed every fence they hold: under the fence
// rule (next fence = max(previous + 1, the store's clock in microseconds)) a
// record freed longer ago than any step back of the store's clock can be
// removed without a later fence ever repeating or going below it.
type Purger interface {
	// Purge deletes the records of keys that nobody holds and that nobody
	// has held for at least olderThan by the store's clock, and returns how
	// many it deleted. It never touches a held key.
	Purge(ctx context.Context, olderThan time.Duration) (int64, error)
}
