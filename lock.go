package distlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock/driver"
)

type lockState int

const (
	stateHeld lockState = iota
	stateReleasing
	stateReleased
	stateLost
)

// Lock is a held lock. Its methods are safe for concurrent use.
//
// Ownership is separate from liveness: while held, the Client renews the
// lock in the background; when the store says it is no longer ours, or its
// TTL runs out before a renewal succeeds, the lock is lost: Done closes, Err
// reports why, and Context is cancelled with that cause.
type Lock struct {
	c     *Client
	key   string
	token string
	fence uint64
	owner string

	done   chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by c.mu.
	state     lockState
	lease     driver.Lease
	autoRenew bool
	interval  time.Duration
	acquired  time.Time
	deadline  time.Time // local and conservative: send time of the last good renewal + TTL
	nextRenew time.Time
	renewing  bool  // a renewal batch with this lock is in flight
	lastErr   error // the last transient renewal failure
	err       error // set once, when the lock stops being held
	ended     bool  // Done is closed
	// storeExpiry is the latest the store may still hold the lock, by what
	// this process has seen: one TTL (plus the drift margin) after the
	// answer to, or the failure of, the last request that may have extended
	// it. Background releases retry until then.
	storeExpiry time.Time
}

func newLock(c *Client, lease driver.Lease, cfg lockConfig, sent, answered time.Time) *Lock {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Lock{
		c:         c,
		key:       lease.Key,
		token:     lease.Token,
		fence:     lease.Fence,
		owner:     cfg.owner,
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		lease:     lease,
		autoRenew: cfg.autoRenew,
		interval:  cfg.interval(),
		acquired:  time.Now(),
		deadline:  heldUntil(sent, lease.TTL),
		nextRenew: sent.Add(cfg.interval()),

		storeExpiry: goneBy(answered, lease.TTL),
	}
}

// storeHorizon is the latest the store may still hold l. While a renewal of
// l is in flight it moves on with the clock: the renewal may land at any
// moment until its answer is seen.
func (l *Lock) storeHorizon() time.Time {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.renewing {
		return latest(l.storeExpiry, goneBy(time.Now(), l.lease.TTL))
	}
	return l.storeExpiry
}

// Key returns the lock's key.
func (l *Lock) Key() string { return l.key }

// Fence returns the fencing token: a number made by the store, strictly
// greater than the fence of every earlier holder of this key. Pass it to the
// resource you protect and have it reject writes carrying a smaller one.
func (l *Lock) Fence() uint64 { return l.fence }

// Owner returns the metadata stored with the lock (WithOwner).
func (l *Lock) Owner() string { return l.owner }

// Done returns a channel closed when the lock is released or lost.
func (l *Lock) Done() <-chan struct{} { return l.done }

// Context returns a context cancelled when the lock is released or lost;
// context.Cause then returns the same error as Err (or context.Canceled after
// Unlock). Derive the work's context from it so that the work stops the
// moment the lock is lost.
func (l *Lock) Context() context.Context { return l.ctx }

// Err returns nil while the lock is held and after a successful Unlock. After
// a loss it returns an error wrapping ErrLost and the cause; after the
// Client's Close released it, one wrapping ErrClosed.
func (l *Lock) Err() error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.err
}

// Deadline returns the time the lock is certainly held until, by this
// process's clock: when the last successful renewal (or the acquire) was sent,
// plus the TTL, less a margin for clock-rate drift (1% + 2ms) and a lead for
// ending it in time (a tenth of the TTL, at most 50ms). The store's own
// expiry is never earlier. When it passes without a successful renewal, the
// lock is lost at once (Done closes, Err wraps ErrLost), whatever a call to
// the store in flight is doing, so the loss is seen before the store can
// let another holder in.
func (l *Lock) Deadline() time.Time {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.deadline
}

// Unlock releases the lock if it is still ours. If it had been lost, the
// error wraps ErrNotHeld. One round trip. If the store cannot be reached
// before ctx ends, Unlock returns the error and the Client keeps trying in
// the background until the store has certainly let the lock go by itself.
func (l *Lock) Unlock(ctx context.Context) error {
	if err := l.c.begin(); err != nil {
		// Close released it, or is releasing it now.
		return l.c.wrap("unlock", l.key, fmt.Errorf("%w: %w", ErrNotHeld, err))
	}
	defer l.c.ops.Done()
	return l.release(ctx, nil)
}

func (l *Lock) release(ctx context.Context, reason error) error {
	c := l.c
	c.mu.Lock()
	switch l.state {
	case stateLost, stateReleasing, stateReleased:
		err := l.notHeldLocked()
		c.mu.Unlock()
		return c.wrap("unlock", l.key, err)
	}
	// No renewal from now on; the lock stays in the held set until the
	// release ends, so that its deadline still ends it.
	l.state = stateReleasing
	lease := l.lease
	c.mu.Unlock()

	err := c.releaseLease(ctx, lease, l.storeHorizon, nil)
	switch {
	case err == nil:
		l.finish(stateReleased, wrapReason(c, l.key, reason), false)
		return nil
	case errors.Is(err, ErrNotHeld):
		lost := c.wrap("unlock", l.key, fmt.Errorf("%w: %w", ErrLost, err))
		l.finish(stateLost, lost, false)
		return c.wrap("unlock", l.key, err)
	default:
		c.releaseLater(lease, l.storeHorizon)
		if !l.finish(stateReleased, wrapReason(c, l.key, reason), false) {
			// The deadline passed while the release was in flight: the
			// lock was lost, whatever becomes of the release.
			c.mu.Lock()
			lerr := l.notHeldLocked()
			c.mu.Unlock()
			return c.wrap("unlock", l.key, fmt.Errorf("%w (release: %w)", lerr, err))
		}
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: the release was not confirmed (retrying in the background): %w", ErrUnavailable, err)
		}
		return c.wrap("unlock", l.key, err)
	}
}

func wrapReason(c *Client, key string, reason error) error {
	if reason == nil {
		return nil
	}
	return c.wrap("close", key, reason)
}

// releaseLease calls the driver until the release succeeds, the store
// answers that the lock is not held (or the request is invalid), ctx ends,
// stop closes (nil: never), or the store has certainly let the lock go by
// itself (horizon). Each try ends by ctx and by the horizon; it returns the
// last error.
func (c *Client) releaseLease(ctx context.Context, lease driver.Lease, horizon func() time.Time, stop <-chan struct{}) error {
	return c.releaseUntil(ctx, lease, horizon, stop, false)
}

// releaseUntil is releaseLease; with chase, a "not held" answer does not end
// it either: for the token of an attempt whose outcome was unknown, whose
// request may still reach the store, it keeps releasing until the horizon.
func (c *Client) releaseUntil(ctx context.Context, lease driver.Lease, horizon func() time.Time, stop <-chan struct{}, chase bool) error {
	backoff := 10 * time.Millisecond
	for {
		h := horizon()
		tctx, cancel := context.WithDeadline(ctx, h)
		err := c.drv.Release(tctx, lease)
		cancel()
		if err == nil || errors.Is(err, ErrInvalid) || (errors.Is(err, ErrNotHeld) && !chase) {
			return err
		}
		wait := jitter(backoff)
		if ctx.Err() != nil || time.Now().Add(wait).After(horizon()) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-stop:
			return err
		case <-time.After(wait):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// finish moves the lock to a final state, once: closes Done and cancels its
// context. With onlyIfHeld it does nothing unless the lock is still held (a
// loss must not overwrite an Unlock in flight). It reports whether it acted.
func (l *Lock) finish(state lockState, err error, onlyIfHeld bool) bool {
	c := l.c
	c.mu.Lock()
	if l.ended || (onlyIfHeld && l.state != stateHeld) {
		c.mu.Unlock()
		return false
	}
	l.ended = true
	l.state = state
	l.err = err
	delete(c.held, l)
	held := time.Since(l.acquired)
	c.mu.Unlock()
	cause := err
	if cause == nil {
		cause = context.Canceled
	}
	l.cancel(cause)
	close(l.done)
	c.metrics.released(state == stateLost, held)
	return true
}

// Refresh renews the lock now, by its TTL from now on the store's clock. One
// round trip. Needed only with WithAutoRenew(false). If the lock is no
// longer ours, or was lost while the renewal was in flight, the error wraps
// ErrNotHeld and the lock is (or stays) lost.
func (l *Lock) Refresh(ctx context.Context) error {
	c := l.c
	if err := c.begin(); err != nil {
		return c.wrap("refresh", l.key, fmt.Errorf("%w: %w", ErrNotHeld, err))
	}
	defer c.ops.Done()
	c.mu.Lock()
	if l.state != stateHeld {
		err := l.notHeldLocked()
		c.mu.Unlock()
		return c.wrap("refresh", l.key, err)
	}
	lease := l.lease
	c.mu.Unlock()
	sent := time.Now()
	err := c.renewOne(ctx, lease)
	answered := time.Now()
	if errors.Is(err, ErrNotHeld) {
		l.lose(err)
		return c.wrap("refresh", l.key, err)
	}
	c.mu.Lock()
	l.storeExpiry = latest(l.storeExpiry, goneBy(answered, lease.TTL))
	if l.state != stateHeld {
		// Lost (or released) while the renewal was in flight: whatever the
		// store answered, the lock is not ours any more.
		lerr := l.notHeldLocked()
		c.mu.Unlock()
		return c.wrap("refresh", l.key, lerr)
	}
	if err == nil && !answered.Before(l.deadline) {
		// Too late to count: the renewal loop ends the lock at its deadline.
		err = fmt.Errorf("%w: the renewal was answered after the lock's deadline", ErrNotHeld)
	} else if until := heldUntil(sent, lease.TTL); err == nil && until.After(l.deadline) {
		l.deadline = until
		l.nextRenew = sent.Add(l.interval)
	}
	c.mu.Unlock()
	return c.wrap("refresh", l.key, err)
}

// notHeldLocked is the error of a call on a lock that is no longer held
// (c.mu held).
func (l *Lock) notHeldLocked() error {
	err := l.err
	if err == nil {
		err = errors.New("already unlocked")
	}
	return fmt.Errorf("%w: %w", ErrNotHeld, err)
}

// renewOne renews a single lease and returns its own result.
func (c *Client) renewOne(ctx context.Context, lease driver.Lease) error {
	res, err := c.drv.Renew(ctx, []driver.Lease{lease})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("driver returned %d renewal results for 1 lease", len(res))
	}
	return res[0]
}

// lose marks a held lock lost because of cause.
func (l *Lock) lose(cause error) {
	err := l.c.wrap("renew", l.key, fmt.Errorf("%w: %w", ErrLost, cause))
	if l.finish(stateLost, err, true) {
		l.c.log.Warn("distlock: lock lost", "key", l.key, "fence", l.fence, "err", cause)
	}
}
